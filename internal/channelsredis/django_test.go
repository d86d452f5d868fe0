package channelsredis_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/groups"
	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
	"github.com/heraldhq/herald/internal/testenv"
)

// python is Debian's, where python3-django and python3-channels-redis
// install; another python3 may come first on PATH.
const python = "/usr/bin/python3"

// requireDjango fails t, in one line saying what to install, when Django
// Channels with channels_redis is missing.
func requireDjango(t *testing.T) {
	t.Helper()
	out, err := exec.Command(python, "-c", "import django, channels, channels_redis").CombinedOutput()
	if err != nil {
		t.Fatalf("Django Channels with channels_redis is needed for %s: apt-get install -y python3-django python3-channels-redis (%v: %s)",
			python, err, bytes.TrimSpace(out))
	}
}

// groupSend runs the test project's manage.py group_send: an unchanged
// Django process calling async_to_sync(channel_layer.group_send) for each
// [group, message] of sends, as the documents' signal handlers do.
func groupSend(t *testing.T, redisURL, layer string, sends [][2]any) {
	t.Helper()
	b, err := json.Marshal(sends)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "sends.json")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "manage.py", "group_send", file)
	cmd.Dir = filepath.Join("testdata", "djangoapp")
	cmd.Env = append(os.Environ(), "CHANNELS_REDIS_URL="+redisURL, "CHANNELS_PREFIX=asgi", "CHANNELS_LAYER="+layer,
		"PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("manage.py group_send: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("sent %d", len(sends)); !strings.Contains(string(out), want) {
		t.Fatalf("manage.py group_send said %q, want %q", out, want)
	}
}

// call makes a REST request and decodes the JSON answer, failing t on
// another status than want.
func call(t *testing.T, base, method, path, token string, body any, want int) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, base+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, res.StatusCode, want, raw)
	}
	var v map[string]any
	_ = json.Unmarshal(raw, &v)
	return v
}

// sameJSON compares JSON texts as values, numbers by their text.
func sameJSON(a, b []byte) bool {
	parse := func(b []byte) any {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v any
		if d.Decode(&v) != nil {
			return nil
		}
		return v
	}
	va := parse(a)
	return va != nil && reflect.DeepEqual(va, parse(b))
}

// received is one event as a client got it.
type received struct {
	group, typ string
	data       []byte
	offset     uint64 // WebSocket v2 only
}

// TestDjangoGroupSendReachesHeraldClients: an unchanged Django process's
// group_send, through either channels_redis layer, reaches every herald
// client of the group on both of two herald processes, WebSocket v2 and
// Server-Sent Events, once each, in order, with the type the documents'
// consumers send and the same data; and the database holds each message
// once.
func TestDjangoGroupSendReachesHeraldClients(t *testing.T) {
	requireDjango(t)
	for _, layer := range []string{"core", "pubsub"} {
		t.Run(layer, func(t *testing.T) { testDjango(t, layer) })
	}
}

func testDjango(t *testing.T, layer string) {
	const n = 30 // messages per group
	const wait = 30 * time.Second
	srv := redistest.Start(t)
	dsn := testenv.Postgres(t)
	var heralds []*testenv.Herald
	for range 2 {
		heralds = append(heralds, testenv.StartHerald(t, dsn, func(c *config.Config) {
			c.Layer, c.RedisPrefix = srv.URL(), "herald:"
			c.ChannelsRedis, c.ChannelsPrefix, c.ChannelsLayer = srv.URL(), "asgi", layer
		}))
	}
	base := heralds[0].Base
	call(t, base, "POST", "/api/auth/register/", "", map[string]string{"username": "ada", "email": "ada@example.com", "password": "correct horse ada"}, 201)
	tok := call(t, base, "POST", "/api/auth/token/", "", map[string]string{"username": "ada", "password": "correct horse ada"}, 200)["access"].(string)
	me := int64(call(t, base, "GET", "/api/auth/me/", tok, nil, 200)["id"].(float64))
	campaign := int64(call(t, base, "POST", "/api/campaigns/", tok, map[string]string{"title": "C", "goal_amount": "100.00", "status": "active"}, 201)["id"].(float64))
	quest := int64(call(t, base, "POST", "/api/quests/", tok, map[string]string{"title": "Find the cat"}, 201)["id"].(float64))
	room, questGroup, userGroup := fmt.Sprintf("campaign_%d", campaign), fmt.Sprintf("quest_%d", quest), fmt.Sprintf("user_%d", me)

	// On each process: a WebSocket (v2) and an event stream on the room and
	// on the applications endpoint (the quest's and the user's groups).
	type client struct {
		name   string
		groups []string
		next   func() received
	}
	var clients []client
	for i, h := range heralds {
		for _, ep := range []struct {
			path   string
			auth   bool
			groups []string
		}{
			{fmt.Sprintf("campaign/%d/", campaign), false, []string{room}},
			{"applications/", true, []string{questGroup, userGroup}},
		} {
			url := h.WS + "/ws/" + ep.path + "?v=2"
			if ep.auth {
				url += "&token=" + tok
			}
			ws := testenv.MustDialWS(t, url, nil)
			ws.Ignore = []string{"presence", "campaign_data"}
			for range ep.groups {
				if e := ws.NextEvent(wait); e.Type != "subscribed" {
					t.Fatalf("ws %s: first message %s %s, want subscribed", ep.path, e.Type, e.Data)
				}
			}
			clients = append(clients, client{fmt.Sprintf("ws %d %s", i, ep.path), ep.groups, func() received {
				e := ws.NextEvent(wait)
				return received{e.Group, e.Type, e.Data, e.Offset}
			}})
			header := http.Header{}
			if ep.auth {
				header.Set("Authorization", "Bearer "+tok)
			}
			sse, _, err := testenv.DialSSE(t, h.Base+"/sse/"+ep.path, header)
			if err != nil {
				t.Fatalf("sse %s: %v", ep.path, err)
			}
			for range ep.groups {
				for {
					ev := sse.MustNext(wait)
					if ev.Event == "subscribed" {
						break
					}
					if ev.Event != "campaign_data" {
						t.Fatalf("sse %s: first event %s, want subscribed", ep.path, ev.Event)
					}
				}
			}
			clients = append(clients, client{fmt.Sprintf("sse %d %s", i, ep.path), ep.groups, func() received {
				ev := sse.MustNext(wait)
				for ev.Event == "presence" { // as the WebSocket clients ignore it
					ev = sse.MustNext(wait)
				}
				return received{typ: ev.Event, data: []byte(ev.Data)}
			}})
		}
	}

	// herald is in the layer: the core layer only delivers to the channels
	// in a group's sorted set when group_send runs (what it stores then
	// waits for the leader), the pub/sub layer only to subscribers.
	rc := srv.Client()
	ctx := context.Background()
	deadline := time.Now().Add(wait)
	for {
		ready := true
		if layer == "core" {
			for _, g := range []string{room, questGroup, userGroup} {
				if rc.ZScore(ctx, "asgi:group:"+g, "herald."+g).Err() != nil {
					ready = false
				}
			}
		} else {
			ready = rc.PubSubNumPat(ctx).Val() >= 1
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("herald did not join the Django app's layer")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// What the documents' signal handlers send, interleaved over the groups.
	type sent struct {
		group, typ string // typ: what clients receive
		data       map[string]any
	}
	var sends [][2]any
	want := map[string][]sent{}
	for i := 1; i <= n; i++ {
		msgs := []sent{
			{room, "contribution", map[string]any{
				"id": i, "campaign": campaign, "user": map[string]any{"id": 789, "username": "contributor"},
				"amount": fmt.Sprintf("%d.50", i), "currency": "USD", "created_at": "2023-05-15T14:30:00Z"}},
			{questGroup, "new_application", map[string]any{
				"application_id": i, "applicant": "bøb", "quest_title": "Find the cat", "status": "pending"}},
			{userGroup, "application_update", map[string]any{
				"application_id": i, "quest_title": "Find the cat", "status": "approved",
				"updated_at": "2024-05-15T14:30:00.123456+00:00", "score": 0.5 + float64(i)}},
		}
		for _, m := range msgs {
			layerType := m.typ
			if m.group == room {
				layerType = "contribution_message" // the campaign consumer's handler
			}
			sends = append(sends, [2]any{m.group, map[string]any{"type": layerType, "data": m.data}})
			want[m.group] = append(want[m.group], m)
		}
	}
	groupSend(t, srv.URL(), layer, sends)

	for _, c := range clients {
		next := map[string]int{}       // group → index of the next event
		offsets := map[string]uint64{} // group → last offset (WebSocket)
		total := n * len(c.groups)
		for range total {
			r := c.next()
			group := r.group
			if group == "" { // an event stream: the type tells the group
				for _, g := range c.groups {
					if k := next[g]; k < n && want[g][k].typ == r.typ {
						group = g
					}
				}
			}
			k := next[group]
			if group == "" || k >= n {
				t.Fatalf("%s: unexpected %s event %s", c.name, r.typ, r.data)
			}
			w := want[group][k]
			wb, _ := json.Marshal(w.data)
			if r.typ != w.typ || !sameJSON(r.data, wb) {
				t.Fatalf("%s: event %d of %s is %s %s, want %s %s", c.name, k+1, group, r.typ, r.data, w.typ, wb)
			}
			if r.offset != 0 {
				if last, ok := offsets[group]; ok && r.offset != last+1 {
					t.Fatalf("%s: %s offset %d after %d", c.name, group, r.offset, last)
				}
				offsets[group] = r.offset
			}
			next[group] = k + 1
		}
	}

	// The processes together took each message once and recorded it.
	var recorded, leaders float64
	for _, h := range heralds {
		mfs, err := h.App.Metrics().Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				switch mf.GetName() {
				case "herald_channels_redis_recorded_total":
					recorded += m.GetCounter().GetValue()
				case "herald_channels_redis_leader":
					leaders += m.GetGauge().GetValue()
				}
			}
		}
	}
	if recorded != 3*n || leaders != 1 {
		t.Errorf("herald_channels_redis_recorded_total %v (want %d), herald_channels_redis_leader %v (want 1)", recorded, 3*n, leaders)
	}

	// Each message is in the log once.
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, g := range []string{room, questGroup, userGroup} {
		var count int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM outbox WHERE grp = $1", g).Scan(&count); err != nil {
			t.Fatal(err)
		}
		if count != n {
			t.Errorf("%s: %d events in the log, want %d", g, count, n)
		}
	}
}

// TestDjangoConnectCallback: the Django app decides who herald's clients
// are and which groups they join. A client connecting to one of the app's
// own paths (/ws/chat/lobby/) with the app's signed cookie is joined to
// chat_lobby, a group of a namespace whose names are Django's, and the
// app's unchanged group_send to it reaches the client; without the
// cookie, or with a forged one, the app refuses it and the client is told
// the app's reason.
func TestDjangoConnectCallback(t *testing.T) {
	requireDjango(t)
	srv := redistest.Start(t)
	django := startDjango(t, srv.URL())
	h := testenv.StartHerald(t, testenv.SQLite(t), func(c *config.Config) {
		c.ChannelsRedis, c.ChannelsPrefix, c.ChannelsLayer = srv.URL(), "asgi", "core"
		c.ConnectURL, c.ConnectTimeout = django+"/herald/connect/", 10*time.Second
		c.Namespaces = []groups.Namespace{{Name: "chat", Sep: '_', Subscribe: groups.TokenHolder}}
	})

	res, err := http.Get(django + "/login?user=ada")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var cookie string
	for _, c := range res.Cookies() {
		if c.Name == "user" {
			cookie = c.Name + "=" + c.Value
		}
	}
	if cookie == "" {
		t.Fatal("Django set no signed cookie")
	}
	ws := testenv.MustDialWS(t, h.WS+"/ws/chat/lobby/", http.Header{"Cookie": {cookie}})
	// The membership is herald's once the handshake is answered; the
	// channel layer's group_send then reaches the client.
	groupSend(t, srv.URL(), "core", [][2]any{
		{"chat_lobby", map[string]any{"type": "chat.message", "data": map[string]any{"text": "hello", "n": 1}}},
		{"chat_other", map[string]any{"type": "chat.message", "data": map[string]any{"text": "not yours"}}},
		{"chat_lobby", map[string]any{"type": "chat.message", "data": map[string]any{"text": "again", "n": 2}}},
	})
	for _, want := range []string{`{"text":"hello","n":1}`, `{"text":"again","n":2}`} {
		e := ws.NextEvent(30 * time.Second)
		if e.Type != "chat_message" || !sameJSON(e.Data, []byte(want)) {
			t.Fatalf("got %s %s; want chat_message %s", e.Type, e.Data, want)
		}
	}

	for name, c := range map[string]string{"no cookie": "", "forged cookie": "user=ada:forged"} {
		t.Run(name, func(t *testing.T) {
			header := http.Header{}
			if c != "" {
				header.Set("Cookie", c)
			}
			_, status, err := testenv.DialWS(t, h.WS+"/ws/chat/lobby/", header)
			if err == nil || status != http.StatusForbidden {
				t.Fatalf("handshake: %d, %v; want 403 from the app", status, err)
			}
			if status, body := get(t, h.Base+"/sse/chat/lobby/", header); status != http.StatusForbidden || !strings.Contains(body, "sign in first") {
				t.Fatalf("event stream: %d %q; want 403 with the app's reason", status, body)
			}
		})
	}
}

// get returns the status and body of a GET.
func get(t *testing.T, url string, header http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header = header
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// startDjango serves the test project with Django's own development server
// on a free port until the test ends, and returns its base URL.
func startDjango(t *testing.T, redisURL string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(python, "manage.py", "runserver", "--noreload", addr)
	cmd.Dir = filepath.Join("testdata", "djangoapp")
	cmd.Env = append(os.Environ(), "CHANNELS_REDIS_URL="+redisURL, "CHANNELS_PREFIX=asgi", "CHANNELS_LAYER=core", "PYTHONDONTWRITEBYTECODE=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(base + "/healthz")
		if err == nil {
			res.Body.Close()
			// Django's server, not another that took the port meanwhile.
			if res.StatusCode == http.StatusOK && strings.HasPrefix(res.Header.Get("Server"), "WSGIServer") {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Django's server did not answer on %s: %v\n%s", addr, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
