package consumers_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/groups"
	"github.com/heraldhq/herald/internal/realtime/layer"
	"github.com/heraldhq/herald/internal/testenv"
)

const appSecret = "the app's own secret, 32 bytes or more"

// appNamespaces: chat needs the app's token to subscribe and to publish,
// open is anyone's (only the app publishes), members is for signed-in
// users.
func appNamespaces(c *config.Config) {
	c.AppTokenSecret = appSecret
	c.Namespaces = []groups.Namespace{
		{Name: "chat", Sep: ':', Subscribe: groups.TokenHolder, Publish: groups.TokenHolder},
		{Name: "members", Sep: ':', Subscribe: groups.SignedIn, Publish: groups.SignedIn, Presence: true},
		{Name: "open", Sep: '_', Subscribe: groups.Anyone},
	}
}

// appToken signs claims as the app would.
func appToken(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(appSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func subToken(t *testing.T, sub, channel string, ttl time.Duration) string {
	return appToken(t, jwt.MapClaims{"sub": sub, "channel": channel, "exp": time.Now().Add(ttl).Unix()})
}

// send sends a v2 message with id "m" and returns the answer.
func send(t *testing.T, c *testenv.WSClient, typ string, data map[string]any) testenv.Event {
	t.Helper()
	c.Send(map[string]any{"type": typ, "id": "m", "data": data})
	return c.NextEvent(wait)
}

func wantError(t *testing.T, ev testenv.Event, code string) {
	t.Helper()
	if got := errorCode(t, ev); got != code {
		t.Fatalf("error %s %s; want %s", got, ev.Data, code)
	}
}

// An app's namespaces: who may subscribe and publish follows each
// namespace's policy and the app's tokens, and every bad token gets a
// clear error without harming the connection.
func TestNamespacePolicies(t *testing.T) {
	s := start(t, testenv.SQLite(t), appNamespaces)
	anon := testenv.MustDialWS(t, s.ws+"/ws/?v=2", nil)

	// Open to anyone: joined without a token; clients may not publish.
	if ev := send(t, anon, "subscribe", map[string]any{"group": "open_news"}); ackID(t, ev) != `"m"` {
		t.Fatal("no ack")
	}
	subscribedAt(t, anon.NextEvent(wait), "open_news")
	wantError(t, send(t, anon, "publish", map[string]any{"group": "open_news", "type": "note", "data": map[string]any{}}), "forbidden")
	if err := s.app.Platform().RecordExternal(context.Background(), "open_news", "note", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	if ev := anon.NextEvent(wait); ev.Type != "note" || string(ev.Data) != `{"n":1}` || ev.Group != "open_news" {
		t.Fatalf("got %s %s in %s; want the app's note", ev.Type, ev.Data, ev.Group)
	}

	// Signed-in users only.
	wantError(t, send(t, anon, "subscribe", map[string]any{"group": "members:lobby"}), "forbidden")

	// A token namespace: refused without a token and with every bad one.
	wantError(t, send(t, anon, "subscribe", map[string]any{"group": "chat:lobby"}), "forbidden")
	for name, tc := range map[string]struct {
		token, code string
	}{
		"malformed":       {"not.a.token", "invalid_token"},
		"garbage":         {strings.Repeat("x", 500), "invalid_token"},
		"too long":        {strings.Repeat("x", 9000), "invalid_message"},
		"expired":         {subToken(t, "", "chat:lobby", -time.Minute), "token_expired"},
		"just expired":    {subToken(t, "", "chat:lobby", -time.Second), "token_expired"},
		"other channel":   {subToken(t, "", "chat:other", time.Minute), "forbidden"},
		"other user":      {subToken(t, "u2", "chat:lobby", time.Minute), "forbidden"},
		"wrong signature": {subToken(t, "", "chat:lobby", time.Minute) + "x", "invalid_token"},
		"no expiry":       {appToken(t, jwt.MapClaims{"sub": "", "channel": "chat:lobby"}), "invalid_token"},
	} {
		t.Run(name, func(t *testing.T) {
			wantError(t, send(t, anon, "subscribe", map[string]any{"group": "chat:lobby", "token": tc.token}), tc.code)
		})
	}
	wantError(t, send(t, anon, "publish", map[string]any{"group": "chat:lobby", "type": "msg", "data": map[string]any{}}), "forbidden")

	// With the app's token: subscribed, and may publish there.
	tok := subToken(t, "", "chat:lobby", time.Minute)
	if ev := send(t, anon, "subscribe", map[string]any{"group": "chat:lobby", "token": tok}); ackID(t, ev) != `"m"` {
		t.Fatal("no ack")
	}
	subscribedAt(t, anon.NextEvent(wait), "chat:lobby")
	if ev := send(t, anon, "publish", map[string]any{"group": "chat:lobby", "type": "msg", "data": map[string]any{"text": "hi"}}); ackID(t, ev) != `"m"` {
		t.Fatal("publish not acknowledged")
	}
	if ev := anon.NextEvent(wait); ev.Type != "msg" || string(ev.Data) != `{"text":"hi"}` || ev.Group != "chat:lobby" {
		t.Fatalf("got %s %s; want the published msg", ev.Type, ev.Data)
	}
	for name, data := range map[string]map[string]any{
		"reserved type": {"group": "chat:lobby", "type": "room_reset", "data": map[string]any{}},
		"no type":       {"group": "chat:lobby", "data": map[string]any{}},
		"no data":       {"group": "chat:lobby", "type": "msg"},
	} {
		t.Run(name, func(t *testing.T) {
			wantError(t, send(t, anon, "publish", data), "invalid_message")
		})
	}
	wantError(t, send(t, anon, "publish", map[string]any{"group": "nope:x", "type": "msg", "data": 1}), "invalid_group")
	wantError(t, send(t, anon, "subscribe", map[string]any{"group": "chat:a b"}), "invalid_group")
	// The connection is still served.
	if ev := send(t, anon, "unsubscribe", map[string]any{"group": "chat:lobby"}); ackID(t, ev) != `"m"` {
		t.Fatal("no ack")
	}
	// The grant went with the subscription.
	wantError(t, send(t, anon, "publish", map[string]any{"group": "chat:lobby", "type": "msg", "data": 1}), "forbidden")
}

// A connection token makes the client the app's user and joins it to the
// groups it names at once; bad connection tokens are refused at the
// handshake with the reason.
func TestConnectionToken(t *testing.T) {
	s := start(t, testenv.SQLite(t), appNamespaces)
	tok := appToken(t, jwt.MapClaims{"sub": "u1", "channels": []string{"chat:u1", "open_x"}, "exp": time.Now().Add(time.Minute).Unix()})
	c := testenv.MustDialWS(t, s.ws+"/ws/?v=2&token="+tok, nil)
	c.Ignore = []string{"presence"}
	got := map[string]bool{}
	for range 2 {
		ev := c.NextEvent(wait)
		var d struct{ Group string }
		_ = json.Unmarshal(ev.Data, &d)
		if ev.Type != "subscribed" {
			t.Fatalf("got %s %s; want subscribed", ev.Type, ev.Data)
		}
		got[d.Group] = true
	}
	if !got["chat:u1"] || !got["open_x"] {
		t.Fatalf("joined %v; want chat:u1 and open_x", got)
	}
	// The app's user: signed in, and granted chat:u1 for publishing.
	if ev := send(t, c, "publish", map[string]any{"group": "chat:u1", "type": "msg", "data": "x"}); ackID(t, ev) != `"m"` {
		t.Fatal("publish not acknowledged")
	}
	if ev := c.NextEvent(wait); ev.Type != "msg" {
		t.Fatalf("got %s", ev.Type)
	}
	if ev := send(t, c, "subscribe", map[string]any{"group": "members:lobby"}); ackID(t, ev) != `"m"` {
		t.Fatal("a signed-in namespace refused the app's user")
	}
	subscribedAt(t, c.NextEvent(wait), "members:lobby")
	// A subscription token must name this user.
	wantError(t, send(t, c, "subscribe", map[string]any{"group": "chat:b", "token": subToken(t, "", "chat:b", time.Minute)}), "forbidden")
	if ev := send(t, c, "subscribe", map[string]any{"group": "chat:b", "token": subToken(t, "u1", "chat:b", time.Minute)}); ackID(t, ev) != `"m"` {
		t.Fatal("no ack")
	}

	for name, tc := range map[string]struct {
		query, reason string
	}{
		"expired":       {"token=" + appToken(t, jwt.MapClaims{"sub": "u1", "exp": time.Now().Add(-time.Hour).Unix()}), "token_expired"},
		"malformed":     {"token=abc", "invalid_token"},
		"bad group":     {"token=" + appToken(t, jwt.MapClaims{"sub": "u1", "channels": []string{"nope:x"}, "exp": time.Now().Add(time.Minute).Unix()}), "not a group"},
		"numeric sub":   {"token=" + appToken(t, jwt.MapClaims{"sub": 5, "exp": time.Now().Add(time.Minute).Unix()}), "invalid_token"},
		"token group":   {"group=chat:x", "needs the app's grant"},
		"members group": {"group=members:x", "signed-in users"},
		"invalid group": {"group=chat:a%20b", "a group is"},
	} {
		t.Run(name, func(t *testing.T) {
			status, body := handshake(t, s.base+"/ws/?v=2&"+tc.query, nil)
			if status != http.StatusForbidden && status != http.StatusBadRequest || !strings.Contains(body, tc.reason) {
				t.Fatalf("handshake: %d %q; want a refusal saying %q", status, body, tc.reason)
			}
		})
	}
	// ?group= joins what the namespace lets anyone join.
	anon := testenv.MustDialWS(t, s.ws+"/ws/?v=2&group=open_a", nil)
	subscribedAt(t, anon.NextEvent(wait), "open_a")
}

// handshake sends a WebSocket upgrade request and returns the refusal.
func handshake(t *testing.T, url string, header http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// A subscription resting on a token ends when the token does, with a
// reason; one renewed in time goes on.
func TestSubscriptionTokenExpiry(t *testing.T) {
	s := start(t, testenv.SQLite(t), appNamespaces)
	c := testenv.MustDialWS(t, s.ws+"/ws/?v=2", nil)
	short := subToken(t, "", "chat:a", 2*time.Second)
	send(t, c, "subscribe", map[string]any{"group": "chat:a", "token": short})
	subscribedAt(t, c.NextEvent(wait), "chat:a")
	renewed := testenv.MustDialWS(t, s.ws+"/ws/?v=2", nil)
	send(t, renewed, "subscribe", map[string]any{"group": "chat:a", "token": subToken(t, "", "chat:a", 2*time.Second)})
	subscribedAt(t, renewed.NextEvent(wait), "chat:a")
	if ev := send(t, renewed, "subscribe", map[string]any{"group": "chat:a", "token": subToken(t, "", "chat:a", time.Hour)}); ackID(t, ev) != `"m"` {
		t.Fatalf("renewal: %s %s", ev.Type, ev.Data)
	}

	ev := c.NextEvent(wait)
	var d struct{ Group, Code, Message string }
	if ev.Type != "unsubscribed" || json.Unmarshal(ev.Data, &d) != nil || d.Group != "chat:a" || d.Code != "token_expired" || d.Message == "" {
		t.Fatalf("got %s %s; want unsubscribed with token_expired", ev.Type, ev.Data)
	}
	// Left for real: the next event reaches only the renewed client.
	if err := s.app.Platform().RecordExternal(context.Background(), "chat:a", "msg", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if ev := renewed.NextEvent(wait); ev.Type != "msg" {
		t.Fatalf("renewed client got %s %s", ev.Type, ev.Data)
	}
	c.NoMessage(300 * time.Millisecond)
}

// connectApp is an app answering herald's connect callback by the
// client's session cookie.
type connectApp struct {
	mu   sync.Mutex
	seen []map[string]any
}

func (a *connectApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	_ = json.NewDecoder(r.Body).Decode(&body)
	a.mu.Lock()
	a.seen = append(a.seen, body)
	a.mu.Unlock()
	c, _ := r.Cookie("sessionid")
	switch {
	case c == nil:
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"detail": "Authentication credentials were not provided."}`)
	case c.Value == "alice":
		_, _ = io.WriteString(w, `{"user": "alice", "groups": ["chat:alice", "quest_5"]}`)
	case c.Value == "boom":
		w.WriteHeader(http.StatusInternalServerError)
	case c.Value == "slow":
		<-r.Context().Done()
	case c.Value == "junk":
		_, _ = io.WriteString(w, `<html>`)
	case c.Value == "badgroup":
		_, _ = io.WriteString(w, `{"user": "x", "groups": ["../etc"]}`)
	}
}

func (a *connectApp) last() map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[len(a.seen)-1]
}

// With a connect URL, the app decides who a client is and which groups it
// joins, for any path under /ws/ and /sse/; every way the app can fail
// gets the client a clear answer.
func TestConnectCallback(t *testing.T) {
	appSrv := &connectApp{}
	hs := httptest.NewServer(appSrv)
	defer hs.Close()
	s := start(t, testenv.SQLite(t), appNamespaces, func(c *config.Config) {
		c.ConnectURL, c.ConnectTimeout = hs.URL+"/herald/connect/", 500*time.Millisecond
	})
	cookie := func(v string) http.Header { return http.Header{"Cookie": {"sessionid=" + v}} }
	c := testenv.MustDialWS(t, s.ws+"/ws/chat/alice/?v=2", cookie("alice"))
	got := map[string]bool{}
	for range 2 {
		ev := c.NextEvent(wait)
		var d struct{ Group string }
		_ = json.Unmarshal(ev.Data, &d)
		got[d.Group] = ev.Type == "subscribed"
	}
	if !got["chat:alice"] || !got["quest_5"] {
		t.Fatalf("joined %v; want the app's groups", got)
	}
	if seen := appSrv.last(); seen["path"] != "/ws/chat/alice/" || seen["transport"] != "websocket" || seen["query"] != "v=2" {
		t.Fatalf("the app was told %v", seen)
	}
	// The app's grant lets alice publish to chat:alice.
	if ev := send(t, c, "publish", map[string]any{"group": "chat:alice", "type": "msg", "data": "hi"}); ackID(t, ev) != `"m"` {
		t.Fatal("publish not acknowledged")
	}
	if ev := c.NextEvent(wait); ev.Type != "msg" {
		t.Fatalf("got %s", ev.Type)
	}
	// Seeds' group names work for the app's groups too (a Django app's
	// quest_5), in the seeds' v1 format.
	v1 := testenv.MustDialWS(t, s.ws+"/ws/quest/5/", cookie("alice"))
	if err := s.app.Platform().RecordExternal(context.Background(), "quest_5", "new_application", []byte(`{"id":1}`)); err != nil {
		t.Fatal(err)
	}
	if ev := v1.NextEvent(wait); ev.Type != "new_application" || string(ev.Data) != `{"id":1}` {
		t.Fatalf("v1 got %s %s", ev.Type, ev.Data)
	}
	// SSE too.
	sse, status, err := testenv.DialSSE(t, s.base+"/sse/chat/alice/", cookie("alice"))
	if err != nil || status != http.StatusOK {
		t.Fatalf("sse: %d %v", status, err)
	}
	defer sse.Close()

	for name, tc := range map[string]struct {
		cookie string
		status int
		reason string
	}{
		"refused":     {"", http.StatusForbidden, "Authentication credentials were not provided."},
		"app fails":   {"boom", http.StatusServiceUnavailable, "HTTP 500"},
		"app slow":    {"slow", http.StatusServiceUnavailable, "within"},
		"app junk":    {"junk", http.StatusServiceUnavailable, "not {"},
		"bad group":   {"badgroup", http.StatusBadGateway, "not a group herald serves"},
		"unknown app": {"nobody", http.StatusServiceUnavailable, "not {"},
	} {
		t.Run(name, func(t *testing.T) {
			var h http.Header
			if tc.cookie != "" {
				h = cookie(tc.cookie)
			}
			status, body := handshake(t, s.base+"/ws/chat/alice/", h)
			if status != tc.status || !strings.Contains(body, tc.reason) {
				t.Fatalf("handshake: %d %q; want %d saying %q", status, body, tc.status, tc.reason)
			}
		})
	}
	hs.Close()
	if status, body := handshake(t, s.base+"/ws/chat/alice/", cookie("alice")); status != http.StatusServiceUnavailable || !strings.Contains(body, "could not be reached") {
		t.Fatalf("unreachable app: %d %q", status, body)
	}
}

// Without a connect URL only /ws/ itself is served: the app's other paths
// mean nothing to herald.
func TestAppPathsNeedConnectURL(t *testing.T) {
	s := start(t, testenv.SQLite(t), appNamespaces)
	if status, _ := handshake(t, s.base+"/ws/chat/lobby/", nil); status != http.StatusNotFound {
		t.Fatalf("/ws/chat/lobby/ without a connect URL: %d", status)
	}
}

// A namespace with presence counts its groups' members for them; one
// without sends no count. An event stream of /sse/ joins by a connection
// token and gets the group's events with their positions.
func TestNamespacePresenceAndSSE(t *testing.T) {
	s := start(t, testenv.SQLite(t), appNamespaces)
	tok := appToken(t, jwt.MapClaims{"sub": "u1", "exp": time.Now().Add(time.Minute).Unix()})
	a := testenv.MustDialWS(t, s.ws+"/ws/?v=2&group=members:lobby&group=open_x&token="+tok, nil)
	testenv.MustDialWS(t, s.ws+"/ws/?v=2&group=members:lobby&token="+tok, nil)
	for {
		ev := a.NextEvent(wait)
		if ev.Type != "presence" {
			continue
		}
		var d struct {
			Group string
			Count int
		}
		_ = json.Unmarshal(ev.Data, &d)
		if d.Group != "members:lobby" {
			t.Fatalf("presence for %s: only members has it", d.Group)
		}
		if d.Count == 2 {
			break
		}
	}

	ctok := appToken(t, jwt.MapClaims{"sub": "u9", "channels": []string{"chat:u9"}, "exp": time.Now().Add(time.Minute).Unix()})
	sse, status, err := testenv.DialSSE(t, s.base+"/sse/?token="+ctok, nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("sse: %d %v", status, err)
	}
	defer sse.Close()
	if ev := sse.MustNext(wait); ev.Event != "subscribed" || !strings.Contains(ev.Data, `"chat:u9"`) {
		t.Fatalf("sse first: %+v", ev)
	}
	if err := s.app.Platform().RecordExternal(context.Background(), "chat:u9", "msg", []byte(`{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	if ev := sse.MustNext(wait); ev.Event != "msg" || !strings.HasPrefix(ev.ID, "chat:u9:") || !strings.Contains(ev.Data, `{"x":1}`) {
		t.Fatalf("sse event: %+v", ev)
	}
	// The stream resumes by its id: a group with ':' in it round-trips.
	if err := s.app.Platform().RecordExternal(context.Background(), "chat:u9", "msg", []byte(`{"x":2}`)); err != nil {
		t.Fatal(err)
	}
	sse.MustNext(wait)
	last := sse.LastID
	sse.Close()
	if err := s.app.Platform().RecordExternal(context.Background(), "chat:u9", "msg", []byte(`{"x":3}`)); err != nil {
		t.Fatal(err)
	}
	again, _, err := testenv.DialSSE(t, s.base+"/sse/?token="+ctok, http.Header{"Last-Event-ID": {last}})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	// The third event comes next: replayed before subscribed, or live after
	// it when the relay had not published it yet; never the second again.
	for {
		ev := again.MustNext(wait)
		if ev.Event == "subscribed" && strings.Contains(ev.Data, `"recovered":true`) {
			continue
		}
		if ev.Event != "msg" || !strings.Contains(ev.Data, `{"x":3}`) {
			t.Fatalf("after resume: %+v", ev)
		}
		break
	}
}

// A namespace's history window is its own: a resume within it replays,
// one older than it is told recovered=false, while a built-in group keeps
// the default window.
func TestNamespaceHistoryWindow(t *testing.T) {
	s := start(t, testenv.SQLite(t), appNamespaces, func(c *config.Config) {
		c.Namespaces = append(c.Namespaces, groups.Namespace{Name: "short", Sep: ':', Subscribe: groups.Anyone, HistorySize: 3})
	})
	ctx := context.Background()
	for i := range 10 {
		if err := s.app.Platform().RecordExternal(ctx, "short:a", "n", []byte(strconv.Itoa(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	c := testenv.MustDialWS(t, s.ws+"/ws/?v=2&group=short:a", nil)
	// Where the client stands once all ten reached it: replayed before
	// subscribed, or live after it while the relay publishes them.
	var at layer.Position
	for at.Offset < 10 {
		ev := c.NextEvent(wait)
		if ev.Type == "subscribed" {
			_, at = subscribedAt(t, ev, "short:a")
		} else if ev.Type == "n" {
			at = layer.Position{Offset: ev.Offset, Epoch: ev.Epoch}
		} else {
			t.Fatalf("got %s %s", ev.Type, ev.Data)
		}
	}
	resume := func(from uint64) *testenv.WSClient {
		return testenv.MustDialWS(t, s.ws+"/ws/?v=2&group=short:a&resume="+url.QueryEscape("short:a:"+at.Epoch+":"+strconv.FormatUint(from, 10)), nil)
	}
	in := resume(8)
	for _, want := range []string{"9", "10"} {
		if ev := in.NextEvent(wait); ev.Type != "n" || string(ev.Data) != want {
			t.Fatalf("replay: %s %s; want n %s", ev.Type, ev.Data, want)
		}
	}
	if !subscribed(t, in.NextEvent(wait), "short:a") {
		t.Fatal("a resume within the window was not recovered")
	}
	if subscribed(t, resume(2).NextEvent(wait), "short:a") {
		t.Fatal("a resume older than the namespace's 3 events was recovered")
	}
}

// herald's own users are signed in on /ws/ too, by their session cookie;
// a stale cookie leaves the client anonymous rather than refused.
func TestHeraldUserOnAppEndpoint(t *testing.T) {
	s := start(t, testenv.SQLite(t), appNamespaces)
	_, tok := s.user("carol")
	signedIn := testenv.MustDialWS(t, s.ws+"/ws/?v=2&group=members:lobby", http.Header{"Cookie": {auth.CookieName + "=" + tok}})
	subscribedAt(t, signedIn.NextEvent(wait), "members:lobby")
	if status, body := handshake(t, s.base+"/ws/?v=2&group=members:lobby", http.Header{"Cookie": {auth.CookieName + "=stale"}}); status != http.StatusForbidden || !strings.Contains(body, "signed-in users") {
		t.Fatalf("a stale cookie: %d %q; want the anonymous refusal", status, body)
	}
	anon := testenv.MustDialWS(t, s.ws+"/ws/?v=2&group=open_a", http.Header{"Cookie": {auth.CookieName + "=stale"}})
	subscribedAt(t, anon.NextEvent(wait), "open_a")
}

// The app's word admits a client to herald's built-in groups as to its
// own: a subscription token for a draft's room lets in a client herald's
// data keeps out (anonymous, or a herald user other than the owner), and
// so does a connection token naming it, over SSE too. The app owns its
// data and decides; without its word, herald's data does.
func TestAppGrantAdmitsToBuiltinGroups(t *testing.T) {
	s := start(t, testenv.SQLite(t), appNamespaces)
	_, ownerTok := s.user("owner")
	other, otherTok := s.user("other")
	draft := s.call("POST", "/api/campaigns/", ownerTok, map[string]any{"title": "Draft", "goal_amount": "1.00"}, 201)
	s.settle()
	group := "campaign_" + strconv.FormatInt(id(draft), 10)

	anon := testenv.MustDialWS(t, s.ws+"/ws/?v=2", nil)
	anon.Ignore = []string{"presence"}
	wantError(t, send(t, anon, "subscribe", map[string]any{"group": group}), "not_found")
	if ev := send(t, anon, "subscribe", map[string]any{"group": group, "token": subToken(t, "", group, time.Minute)}); ackID(t, ev) != `"m"` {
		t.Fatal("no ack")
	}
	subscribedAt(t, anon.NextEvent(wait), group)

	user := testenv.MustDialWS(t, s.ws+"/ws/applications/?v=2&token="+otherTok, nil)
	user.Ignore = []string{"presence"}
	subscribedAt(t, user.NextEvent(wait), "user_"+strconv.FormatInt(other, 10))
	wantError(t, send(t, user, "subscribe", map[string]any{"group": group}), "not_found")
	if ev := send(t, user, "subscribe", map[string]any{"group": group, "token": subToken(t, strconv.FormatInt(other, 10), group, time.Minute)}); ackID(t, ev) != `"m"` {
		t.Fatal("no ack")
	}
	subscribedAt(t, user.NextEvent(wait), group)

	if status, _ := handshake(t, s.base+"/sse/?group="+group, nil); status != http.StatusForbidden {
		t.Fatalf("?group= of a draft's room without the app's word: %d; want 403", status)
	}
	ctok := appToken(t, jwt.MapClaims{"sub": "u1", "channels": []string{group}, "exp": time.Now().Add(time.Minute).Unix()})
	sse, _, err := testenv.DialSSE(t, s.base+"/sse/?token="+ctok, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev := sse.MustNext(wait); ev.Event != "subscribed" || !strings.Contains(ev.Data, `"`+group+`"`) {
		t.Fatalf("SSE first: %+v", ev)
	}

	if err := s.app.Platform().RecordExternal(context.Background(), group, "note", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*testenv.WSClient{anon, user} {
		if ev := c.NextEvent(wait); ev.Type != "note" || ev.Group != group || string(ev.Data) != `{"n":1}` {
			t.Fatalf("%s got %s %s in %s; want the note", c, ev.Type, ev.Data, ev.Group)
		}
	}
	if ev := sse.MustNext(wait); ev.Event != "note" || ev.Data != `{"n":1}` {
		t.Fatalf("SSE got %+v; want the note", ev)
	}
}
