package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/apikey"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/groups"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/testenv"
)

const deliveryWait = 20 * time.Second

// newAPIKey creates a key with scopes through what `herald apikey create`
// runs, and returns it and its token.
func newAPIKey(t *testing.T, db *store.DB, scopes ...string) (apikey.Key, string) {
	t.Helper()
	return newAPIKeyIn(t, db, nil, scopes...)
}

// newAPIKeyIn is newAPIKey with the namespaces of reg as scopes too, as
// `herald apikey create --config` reads them.
func newAPIKeyIn(t *testing.T, db *store.DB, reg *groups.Registry, scopes ...string) (apikey.Key, string) {
	t.Helper()
	k, token, err := apikey.New(db, reg, nil).Create(context.Background(), "test backend", scopes)
	if err != nil {
		t.Fatal(err)
	}
	return k, token
}

// runRelay runs the app's outbox relay until the test ends, as serve does:
// a publish's answer waits for it to number the events.
func runRelay(t *testing.T, e *env) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.app.Relay().Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// post sends a JSON POST to a running herald (body marshalled unless a
// string) with a bearer token and extra headers given as pairs.
func post(t *testing.T, url, token string, body any, header ...string) resp {
	t.Helper()
	raw, ok := body.(string)
	if !ok {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		raw = string(b)
	}
	req, err := http.NewRequest("POST", url, strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := resp{Status: res.StatusCode, Header: res.Header, Body: b}
	if strings.Contains(res.Header.Get("Content-Type"), "json") && len(b) > 0 {
		_ = json.Unmarshal(b, &r.JSON)
	}
	return r
}

type position struct {
	Group  string  `json:"group"`
	Offset *uint64 `json:"offset"`
	Epoch  *string `json:"epoch"`
}

type numbered struct {
	Group  string `json:"group"`
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// positions reads the positions a publish answered, each of which must be
// known.
func positions(t *testing.T, r resp) []numbered {
	t.Helper()
	if r.Status != http.StatusCreated {
		t.Fatalf("publish answered %d: %s", r.Status, r.Body)
	}
	var out struct{ Events []position }
	if err := json.Unmarshal(r.Body, &out); err != nil {
		t.Fatal(err)
	}
	var pos []numbered
	for _, p := range out.Events {
		if p.Offset == nil || p.Epoch == nil {
			t.Fatalf("publish answered an event without its position: %s", r.Body)
		}
		pos = append(pos, numbered{p.Group, *p.Offset, *p.Epoch})
	}
	return pos
}

// A published event reaches a campaign room's v2 WebSocket and SSE clients
// at the group's next offset in its epoch, as the answer says, with its
// data as sent (compacted); a batch arrives in order; a refused batch
// sends nothing; and a resume (v2 and Last-Event-ID) replays what was
// published, on SQLite and PostgreSQL, through the outbox and the relay of
// a running server.
func TestPublishReachesClients(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		h := testenv.StartHerald(t, dsn)
		user := post(t, h.Base+"/api/auth/register/", "", map[string]string{"username": "owner", "password": "correct horse owner"})
		if user.Status != http.StatusCreated {
			t.Fatalf("register: %d %s", user.Status, user.Body)
		}
		tok := post(t, h.Base+"/api/auth/token/", "", map[string]string{"username": "owner", "password": "correct horse owner"})
		access, _ := tok.JSON["access"].(string)
		c := post(t, h.Base+"/api/campaigns/", access, map[string]any{"title": "Live", "goal_amount": "10.00", "status": "active"})
		if c.Status != http.StatusCreated {
			t.Fatalf("campaign: %d %s", c.Status, c.Body)
		}
		group := fmt.Sprintf("campaign_%d", c.id())
		_, key := newAPIKey(t, h.App.Platform().DB(), "campaign")
		publishURL := h.Base + "/api/publish/"

		ws := testenv.MustDialWS(t, fmt.Sprintf("%s/ws/campaign/%d/?v=2", h.WS, c.id()), nil)
		ws.Ignore = []string{"presence"}
		if m := ws.NextEvent(deliveryWait); m.Type != "campaign_data" {
			t.Fatalf("first message %+v", m)
		}
		var sub numbered
		if m := ws.NextEvent(deliveryWait); m.Type != "subscribed" || json.Unmarshal(m.Data, &sub) != nil {
			t.Fatalf("second message %+v", m)
		}
		sse, _, err := testenv.DialSSE(t, fmt.Sprintf("%s/sse/campaign/%d/", h.Base, c.id()), nil)
		if err != nil {
			t.Fatal(err)
		}
		sse.MustNext(deliveryWait) // campaign_data
		sse.MustNext(deliveryWait) // subscribed
		before := sse.LastID

		one := positions(t, post(t, publishURL, key, `{"group":"`+group+`","type":"score.update","data":{ "home" : 2, "away": [1, 0] }}`))
		if len(one) != 1 || one[0].Group != group || one[0].Offset != sub.Offset+1 || (sub.Epoch != "" && one[0].Epoch != sub.Epoch) || one[0].Epoch == "" {
			t.Fatalf("answered %+v after subscribed at %+v", one, sub)
		}
		const data = `{"home":2,"away":[1,0]}`
		m := ws.NextEvent(deliveryWait)
		if m.Type != "score.update" || string(m.Data) != data || m.Group != group || m.Offset != one[0].Offset || m.Epoch != one[0].Epoch {
			t.Fatalf("WebSocket got %+v, want score.update %s at %+v", m, data, one[0])
		}
		if ev := sse.MustNext(deliveryWait); ev.Event != "score.update" || ev.Data != data ||
			ev.ID != fmt.Sprintf("%s:%s:%d", group, one[0].Epoch, one[0].Offset) {
			t.Fatalf("SSE got %+v", ev)
		}

		// A batch in order, then a refused batch that sends nothing: the
		// next event after it is the next good publish, one offset on.
		batch := positions(t, post(t, publishURL, key, map[string]any{"events": []map[string]any{
			{"group": group, "type": "goal", "data": map[string]int{"n": 1}},
			{"group": group, "type": "goal", "data": map[string]int{"n": 2}},
			{"group": group, "type": "goal", "data": map[string]int{"n": 3}},
		}}))
		bad := post(t, publishURL, key, map[string]any{"events": []map[string]any{
			{"group": group, "type": "goal", "data": map[string]int{"n": 98}},
			{"group": group, "type": "room_reset", "data": map[string]int{"n": 99}},
		}})
		if bad.Status != http.StatusBadRequest || bad.fieldErrors("events[1].type") == nil {
			t.Fatalf("refused batch: %d %s", bad.Status, bad.Body)
		}
		last := positions(t, post(t, publishURL, key, map[string]any{"group": group, "type": "final", "data": map[string]any{}}))
		want := append(batch, last...)
		for i, p := range want {
			if p.Offset != one[0].Offset+uint64(i)+1 || p.Epoch != one[0].Epoch {
				t.Fatalf("position %d: %+v, want offset %d", i, p, one[0].Offset+uint64(i)+1)
			}
			m := ws.NextEvent(deliveryWait)
			ev := sse.MustNext(deliveryWait)
			wantType := "goal"
			if i == 3 {
				wantType = "final"
			}
			if m.Type != wantType || m.Offset != p.Offset || ev.Event != wantType || !strings.HasSuffix(ev.ID, ":"+strconv.FormatUint(p.Offset, 10)) {
				t.Fatalf("event %d: WebSocket %+v, SSE %+v; want %s at %d", i, m, ev, wantType, p.Offset)
			}
			if i < 3 && string(m.Data) != fmt.Sprintf(`{"n":%d}`, i+1) {
				t.Fatalf("event %d data %s", i, m.Data)
			}
		}

		// Resumes replay everything after the position, in order, then
		// subscribed recovered:true.
		r := testenv.MustDialWS(t, fmt.Sprintf("%s/ws/campaign/%d/?v=2&resume=%s:%s:%d", h.WS, c.id(), group, sub.Epoch, sub.Offset), nil)
		r.Ignore = []string{"presence"}
		for i, wantOff := 0, one[0].Offset; wantOff <= last[0].Offset; i, wantOff = i+1, wantOff+1 {
			if m := r.NextEvent(deliveryWait); m.Offset != wantOff || m.Group != group {
				t.Fatalf("v2 replay %d: %+v, want offset %d", i, m, wantOff)
			}
		}
		if m := r.NextEvent(deliveryWait); m.Type != "subscribed" || !strings.Contains(string(m.Data), `"recovered":true`) {
			t.Fatalf("after the replay: %+v", m)
		}
		sr, _, err := testenv.DialSSE(t, fmt.Sprintf("%s/sse/campaign/%d/", h.Base, c.id()), http.Header{"Last-Event-ID": {before}})
		if err != nil {
			t.Fatal(err)
		}
		for wantOff := one[0].Offset; wantOff <= last[0].Offset; wantOff++ {
			if ev := sr.MustNext(deliveryWait); !strings.HasSuffix(ev.ID, ":"+strconv.FormatUint(wantOff, 10)) {
				t.Fatalf("SSE replay: %+v, want offset %d", ev, wantOff)
			}
		}
		if ev := sr.MustNext(deliveryWait); ev.Event != "subscribed" || !strings.Contains(ev.Data, `"recovered":true`) {
			t.Fatalf("SSE after the replay: %+v", ev)
		}
	})
}

// A backend publishes to a group of a namespace the config file adds, as
// to the built-in ones: a key scoped to the namespace reaches its v2
// WebSocket and SSE clients, in order, at the positions it was answered;
// a channel outside the namespace's rule, a namespace nobody configured
// and a key scoped to another namespace are refused and record nothing.
func TestPublishToConfiguredNamespace(t *testing.T) {
	chat := []groups.Namespace{{Name: "chat", Sep: ':', Subscribe: groups.Anyone}}
	reg, err := groups.New(chat)
	if err != nil {
		t.Fatal(err)
	}
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		h := testenv.StartHerald(t, dsn, func(c *config.Config) { c.Namespaces = chat })
		db := h.App.Platform().DB()
		_, key := newAPIKeyIn(t, db, reg, "chat")
		_, campaignKey := newAPIKey(t, db, "campaign")
		publishURL := h.Base + "/api/publish/"
		const group = "chat:lobby"

		ws := testenv.MustDialWS(t, h.WS+"/ws/?v=2", nil)
		ws.Send(map[string]any{"type": "subscribe", "id": "s", "data": map[string]string{"group": group}})
		if m := ws.NextEvent(deliveryWait); m.Type != "ack" {
			t.Fatalf("subscribe answered %+v, want ack", m)
		}
		var sub numbered
		if m := ws.NextEvent(deliveryWait); m.Type != "subscribed" || json.Unmarshal(m.Data, &sub) != nil || sub.Group != group {
			t.Fatalf("after the ack: %+v", m)
		}
		sse, _, err := testenv.DialSSE(t, h.Base+"/sse/?group="+group, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ev := sse.MustNext(deliveryWait); ev.Event != "subscribed" || !strings.Contains(ev.Data, `"`+group+`"`) {
			t.Fatalf("SSE first: %+v", ev)
		}

		one := positions(t, post(t, publishURL, key, `{"group":"`+group+`","type":"msg","data":{"n":1}}`))
		batch := positions(t, post(t, publishURL, key, map[string]any{"events": []map[string]any{
			{"group": group, "type": "msg", "data": map[string]int{"n": 2}},
			{"group": group, "type": "msg", "data": map[string]int{"n": 3}},
		}}))
		for i, p := range append(one, batch...) {
			want := fmt.Sprintf(`{"n":%d}`, i+1)
			if p.Group != group || p.Offset != sub.Offset+uint64(i)+1 {
				t.Fatalf("event %d answered %+v after subscribed at %+v", i, p, sub)
			}
			if m := ws.NextEvent(deliveryWait); m.Type != "msg" || string(m.Data) != want || m.Group != group || m.Offset != p.Offset || m.Epoch != p.Epoch {
				t.Fatalf("WebSocket event %d: %s %s in %s at %d, want msg %s at %+v", i, m.Type, m.Data, m.Group, m.Offset, want, p)
			}
			if ev := sse.MustNext(deliveryWait); ev.Event != "msg" || ev.Data != want || ev.ID != fmt.Sprintf("%s:%s:%d", group, p.Epoch, p.Offset) {
				t.Fatalf("SSE event %d: %+v, want msg %s at %+v", i, ev, want, p)
			}
		}

		bad := post(t, publishURL, key, `{"group":"chat:a b","type":"msg","data":{}}`)
		if errs := bad.fieldErrors("group"); bad.Status != http.StatusBadRequest || bad.JSON["code"] != "invalid" || len(errs) != 1 || errs[0] != reg.Rule() ||
			!strings.Contains(reg.Rule(), "chat:NAME") {
			t.Errorf("a channel with a space: %d %s; want 400 naming group with the rule %q", bad.Status, bad.Body, reg.Rule())
		}
		if r := post(t, publishURL, key, `{"group":"game:lobby","type":"msg","data":{}}`); r.Status != http.StatusBadRequest || r.JSON["code"] != "invalid" || r.fieldErrors("group") == nil {
			t.Errorf("a namespace not configured: %d %s", r.Status, r.Body)
		}
		r := post(t, publishURL, campaignKey, `{"group":"`+group+`","type":"msg","data":{}}`)
		if r.Status != http.StatusForbidden || r.JSON["code"] != "scope_not_allowed" || r.fieldErrors("group") == nil ||
			!strings.Contains(fmt.Sprint(r.JSON["detail"]), group) {
			t.Errorf("a key scoped to campaign: %d %s", r.Status, r.Body)
		}
		if n := outboxCount(t, db, group); n != 3 {
			t.Errorf("%s holds %d events; want the 3 accepted", group, n)
		}
	})
}

// outboxCount is how many events the log holds for group.
func outboxCount(t *testing.T, db *store.DB, group string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM outbox WHERE grp = $1", group).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Every bad publish gets its status and code (and the field, by its index
// in a batch) and records nothing.
func TestPublishRefuses(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		cfg := testConfig(t, dsn)
		cfg.PublishMaxData = 1000
		e := newEnvConfig(t, cfg)
		runRelay(t, e)
		db := e.app.Platform().DB()
		_, key := newAPIKey(t, db, "campaign", "user_7")
		revokedKey, revoked := newAPIKey(t, db, "campaign")
		if _, err := apikey.New(db, nil, nil).Revoke(context.Background(), revokedKey.ID); err != nil {
			t.Fatal(err)
		}
		_, userToken := e.user("alice")
		ok := `{"group":"campaign_1","type":"t","data":{}}`
		events := func(n int) string {
			return `{"events":[` + strings.TrimSuffix(strings.Repeat(ok+",", n), ",") + `]}`
		}
		cases := []struct {
			name, token, body string
			status            int
			code, field       string
		}{
			{"no key", "", ok, 401, "not_authenticated", ""},
			{"unknown key", "hk_0123456789abcdef_" + strings.Repeat("0", 64), ok, 401, "api_key_not_valid", ""},
			{"wrong secret", key[:len(key)-4] + "0000", ok, 401, "api_key_not_valid", ""},
			{"revoked key", revoked, ok, 401, "api_key_not_valid", ""},
			{"a user's token", userToken, ok, 401, "api_key_not_valid", ""},
			{"garbage key", "hk_" + strings.Repeat("z", 5000), ok, 401, "api_key_not_valid", ""},
			{"scope", key, `{"group":"quest_1","type":"t","data":{}}`, 403, "scope_not_allowed", "group"},
			{"exact scope only", key, `{"group":"user_8","type":"t","data":{}}`, 403, "scope_not_allowed", "group"},
			{"scope in a batch", key, `{"events":[` + ok + `,{"group":"user_70","type":"t","data":{}}]}`, 403, "scope_not_allowed", "events[1].group"},
			{"data over the limit", key, `{"group":"campaign_1","type":"t","data":{"a":"` + strings.Repeat("x", 1000) + `"}}`, 400, "invalid", "data"},
			{"data an array", key, `{"group":"campaign_1","type":"t","data":[1]}`, 400, "invalid", "data"},
			{"data null", key, `{"group":"campaign_1","type":"t","data":null}`, 400, "invalid", "data"},
			{"data a string", key, `{"group":"campaign_1","type":"t","data":"x"}`, 400, "invalid", "data"},
			{"no data", key, `{"group":"campaign_1","type":"t"}`, 400, "invalid", "data"},
			{"data not UTF-8", key, "{\"group\":\"campaign_1\",\"type\":\"t\",\"data\":{\"s\":\"\xff\"}}", 400, "invalid", "data"},
			{"type upper case", key, `{"group":"campaign_1","type":"Score","data":{}}`, 400, "invalid", "type"},
			{"type with a space", key, `{"group":"campaign_1","type":"a b","data":{}}`, 400, "invalid", "type"},
			{"type too long", key, `{"group":"campaign_1","type":"` + strings.Repeat("t", 65) + `","data":{}}`, 400, "invalid", "type"},
			{"empty type", key, `{"group":"campaign_1","type":"","data":{}}`, 400, "invalid", "type"},
			{"type room_reset", key, `{"group":"campaign_1","type":"room_reset","data":{}}`, 400, "invalid", "type"},
			{"type quest_created", key, `{"group":"campaign_1","type":"quest_created","data":{}}`, 400, "invalid", "type"},
			{"type subscribed", key, `{"group":"campaign_1","type":"subscribed","data":{}}`, 400, "invalid", "type"},
			{"group with a leading zero", key, `{"group":"campaign_01","type":"t","data":{}}`, 400, "invalid", "group"},
			{"group of no kind", key, `{"group":"lobby","type":"t","data":{}}`, 400, "invalid", "group"},
			{"control group", key, `{"group":"ctl_user_1","type":"t","data":{}}`, 400, "invalid", "group"},
			{"too many events", key, events(101), 400, "invalid", "events"},
			{"no events", key, `{"events":[]}`, 400, "invalid", "events"},
			{"both forms", key, `{"group":"campaign_1","type":"t","data":{},"events":[` + ok + `]}`, 400, "invalid", "events"},
			{"a bad event in a batch", key, `{"events":[` + ok + `,` + ok + `,{"group":"campaign_1","type":"T","data":{}}]}`, 400, "invalid", "events[2].type"},
			{"unknown field", key, `{"group":"campaign_1","type":"t","data":{},"ttl":5}`, 400, "invalid", "ttl"},
			{"not an object", key, `[` + ok + `]`, 400, "parse_error", ""},
			{"malformed", key, `{"group":`, 400, "parse_error", ""},
		}
		for _, c := range cases {
			r := e.do("POST", "/api/publish/", c.token, c.body)
			if r.Status != c.status || r.JSON["code"] != c.code {
				t.Errorf("%s: %d %s; want %d %s", c.name, r.Status, r.Body, c.status, c.code)
				continue
			}
			if c.field != "" && r.fieldErrors(c.field) == nil {
				t.Errorf("%s: %s; want errors naming %s", c.name, r.Body, c.field)
			}
			if r.Status == 401 && r.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: 401 without WWW-Authenticate", c.name)
			}
		}
		if r := e.do("POST", "/api/publish/", key, `{"group":"quest_1","type":"t","data":{}}`); !strings.Contains(r.JSON["detail"].(string), "quest_1") {
			t.Errorf("scope_not_allowed does not name the group: %s", r.Body)
		}
		// The limit is on the compact form: what clients get.
		if r := e.do("POST", "/api/publish/", key, `{"group":"campaign_1","type":"t","data":{"a":      "`+strings.Repeat("x", 990)+`"}}`); r.Status != 201 {
			t.Errorf("data of 998 bytes compacted: %d %s", r.Status, r.Body)
		}
		if n := outboxCount(t, db, "campaign_1"); n != 1 {
			t.Errorf("campaign_1 holds %d events; want only the one accepted", n)
		}

		// Transport: media type, size, method.
		req, _ := http.NewRequest("POST", e.srv.URL+"/api/publish/", strings.NewReader(ok))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "text/plain")
		if res, err := e.srv.Client().Do(req); err != nil || res.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("text/plain: %v %v", res, err)
		} else {
			res.Body.Close()
		}
		big := `{"events":[{"group":"campaign_1","type":"t","data":{"a":"` + strings.Repeat("x", 1<<20) + `"}}]}`
		if r := e.do("POST", "/api/publish/", key, big); r.Status != http.StatusRequestEntityTooLarge {
			t.Errorf("a body over 1 MiB: %d %s", r.Status, r.Body)
		}
		if r := e.do("GET", "/api/publish/", key, nil); r.Status != http.StatusMethodNotAllowed {
			t.Errorf("GET: %d", r.Status)
		}
	})
}

// A key publishes at most --publish-rate events a second, in bursts of
// twice that but at least a whole batch; beyond it, 429 with Retry-After,
// and nothing recorded. Other keys have buckets of their own.
func TestPublishRateLimit(t *testing.T) {
	cfg := testConfig(t, testenv.SQLite(t))
	cfg.PublishRate = 1 // burst: one batch of 100
	e := newEnvConfig(t, cfg)
	runRelay(t, e)
	db := e.app.Platform().DB()
	_, key := newAPIKey(t, db, "campaign")
	_, other := newAPIKey(t, db, "campaign")
	var list []string
	for i := range 100 {
		list = append(list, fmt.Sprintf(`{"group":"campaign_1","type":"t","data":{"i":%d}}`, i))
	}
	full := `{"events":[` + strings.Join(list, ",") + `]}`
	e.must(http.StatusCreated, "POST", "/api/publish/", key, full)
	r := e.do("POST", "/api/publish/", key, full)
	if r.Status != http.StatusTooManyRequests || r.JSON["code"] != "throttled" {
		t.Fatalf("over the rate: %d %s", r.Status, r.Body)
	}
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 || s > 101 {
		t.Errorf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	e.must(http.StatusCreated, "POST", "/api/publish/", other, full)
	if n := outboxCount(t, db, "campaign_1"); n != 200 {
		t.Errorf("%d events recorded, want 200", n)
	}
}

// A publish sent again with its Idempotency-Key is recorded once and
// answered as the first time; the key belongs to its API key.
func TestPublishIdempotencyKey(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		runRelay(t, e)
		db := e.app.Platform().DB()
		_, key := newAPIKey(t, db, "campaign")
		_, other := newAPIKey(t, db, "campaign")
		body := `{"events":[{"group":"campaign_3","type":"t","data":{"n":1}},{"group":"campaign_4","type":"t","data":{"n":2}}]}`
		first := e.doKey("POST", "/api/publish/", key, body, "retry-1")
		if first.Status != http.StatusCreated || replayed(first) {
			t.Fatalf("first: %d %s", first.Status, first.Body)
		}
		again := e.doKey("POST", "/api/publish/", key, body, "retry-1")
		if again.Status != http.StatusCreated || !replayed(again) || !bytes.Equal(again.Body, first.Body) {
			t.Fatalf("retry: %d %s (replayed %v); want the first answer %s", again.Status, again.Body, replayed(again), first.Body)
		}
		if pos := positions(t, again); len(pos) != 2 || pos[0].Offset != 1 || pos[1].Offset != 1 {
			t.Errorf("the replayed positions: %+v", pos)
		}
		if r := e.doKey("POST", "/api/publish/", key, `{"group":"campaign_3","type":"t","data":{}}`, "retry-1"); r.Status != http.StatusUnprocessableEntity ||
			r.JSON["code"] != "idempotency_key_reused" {
			t.Errorf("the key with another body: %d %s", r.Status, r.Body)
		}
		if r := e.doKey("POST", "/api/publish/", other, body, "retry-1"); r.Status != http.StatusCreated || replayed(r) {
			t.Errorf("another API key's key of the same name: %d %s", r.Status, r.Body)
		}
		if n3, n4 := outboxCount(t, db, "campaign_3"), outboxCount(t, db, "campaign_4"); n3 != 2 || n4 != 2 {
			t.Errorf("recorded %d and %d; want 2 each (once per API key)", n3, n4)
		}
		if r := e.doKey("POST", "/api/publish/", key, body, "bad key"); r.Status != http.StatusBadRequest {
			t.Errorf("a key with a space: %d", r.Status)
		}
	})
}

// An event numbered and pruned from the log before its publish's answer
// could read it back (a busy group: 1,000 newer events) is still answered
// with its position: the relay tells it as it numbers it.
func TestPublishAnswersPositionsOfPrunedEvents(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn) // no relay running: the test drives it
		db := e.app.Platform().DB()
		_, key := newAPIKey(t, db, "campaign")
		answer := make(chan resp, 1)
		go func() {
			answer <- e.do("POST", "/api/publish/", key, `{"group":"campaign_9","type":"first","data":{}}`)
		}()
		// Once it is recorded, 1,300 events follow it into the group
		// before the relay numbers any.
		deadline := time.Now().Add(deliveryWait)
		for outboxCount(t, db, "campaign_9") == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the publish was never recorded")
			}
			time.Sleep(time.Millisecond)
		}
		for range 13 {
			batch := make([]platform.ExternalEvent, 100)
			for i := range batch {
				batch[i] = platform.ExternalEvent{Group: "campaign_9", Type: "later", Data: []byte(`{}`)}
			}
			if _, err := e.app.Platform().RecordExternalBatch(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.app.Relay().Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		var first int
		if err := db.QueryRow("SELECT COUNT(*) FROM outbox WHERE grp = 'campaign_9' AND type = 'first'").Scan(&first); err != nil || first != 0 {
			t.Fatalf("the first event is still in the log (%d, %v): the test does not test what it says", first, err)
		}
		r := <-answer
		if pos := positions(t, r); len(pos) != 1 || pos[0].Offset != 1 || pos[0].Epoch == "" {
			t.Errorf("answered %s, want offset 1", r.Body)
		}
	})
}
