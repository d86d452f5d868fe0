package consumers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/app"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
	"github.com/heraldhq/herald/internal/realtime/transport"
	"github.com/heraldhq/herald/internal/testenv"
)

const wait = 5 * time.Second

// server is a whole herald serving on a loopback port, relay running, with
// the REST helpers these tests use.
type server struct {
	*testenv.Herald
	t    *testing.T
	base string // http://127.0.0.1:port
	ws   string // ws://127.0.0.1:port
	app  *app.App
}

func start(t *testing.T, dsn string, tweak ...func(*config.Config)) *server {
	t.Helper()
	return startWith(t, dsn, nil, tweak...)
}

// startWith is start with app options.
func startWith(t *testing.T, dsn string, opts []app.Option, tweak ...func(*config.Config)) *server {
	t.Helper()
	h := testenv.StartHeraldWith(t, dsn, opts, tweak...)
	return &server{Herald: h, t: t, base: h.Base, ws: h.WS, app: h.App}
}

// queueBoundOnly lengthens the WebSocket write, idle and close timeouts, so
// that a client which stops reading is cut off by its queue bound, with
// 4000, and not by a clock. On a busy machine filling the queue can outlast
// the write timeout, and reading the backlog before the close frame the
// close timeout; either drops the connection without its close frame.
func queueBoundOnly() app.Option {
	return app.WithWebSocketOptions(func(o *transport.Options) {
		o.WriteTimeout, o.IdleTimeout, o.CloseTimeout = time.Hour, time.Hour, time.Hour
	})
}

// call sends a REST request and decodes the JSON answer into a map.
func (s *server) call(method, path, token string, body any, want int) map[string]any {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		s.t.Fatalf("%s %s: %d, want %d: %s", method, path, res.StatusCode, want, raw)
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	m["_raw"] = string(raw)
	return m
}

// settle waits until the relay has published every committed event, so a
// client connecting next sees only what happens after it connected.
func (s *server) settle() {
	s.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		evs, err := s.app.Platform().PendingEvents(context.Background(), 1)
		if err != nil {
			s.t.Fatal(err)
		}
		if len(evs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatal("the relay did not drain the outbox")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *server) user(name string) (int64, string) {
	s.t.Helper()
	u := s.call("POST", "/api/auth/register/", "", map[string]string{"username": name, "password": "password of " + name}, 201)
	tok := s.call("POST", "/api/auth/token/", "", map[string]string{"username": name, "password": "password of " + name}, 200)
	return int64(u["id"].(float64)), tok["access"].(string)
}

func id(m map[string]any) int64 { return int64(m["id"].(float64)) }

// dataJSON is the REST answer without the helper's bookkeeping.
func raw(m map[string]any) string { return m["_raw"].(string) }

func sameJSON(t *testing.T, got json.RawMessage, want string) {
	t.Helper()
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("bad JSON %s", got)
	}
	if err := json.Unmarshal([]byte(want), &b); err != nil {
		t.Fatalf("bad JSON %s", want)
	}
	ga, _ := json.Marshal(a)
	gb, _ := json.Marshal(b)
	if string(ga) != string(gb) {
		t.Fatalf("event data\n%s\nwant REST JSON\n%s", got, want)
	}
}

// The quest flow of seed 000: the creator hears of each new application,
// the applicant of each status change, nobody else of either.
func TestApplicationsFlow(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		s := start(t, dsn)
		_, creatorTok := s.user("creator")
		_, applicantTok := s.user("applicant")
		_, otherTok := s.user("other")
		q := s.call("POST", "/api/quests/", creatorTok, map[string]string{"title": "Chart the bay"}, 201)

		creator := testenv.MustDialWS(t, s.ws+"/ws/applications/?token="+creatorTok, nil)
		applicant := testenv.MustDialWS(t, s.ws+"/ws/applications/?token="+applicantTok, nil)
		other := testenv.MustDialWS(t, s.ws+"/ws/applications/?token="+otherTok, nil)

		a := s.call("POST", fmt.Sprintf("/api/quests/%d/applications/", id(q)), applicantTok, map[string]string{"message": "me"}, 201)
		ev := creator.NextEvent(wait)
		if ev.Type != "new_application" {
			t.Fatalf("creator got %s", ev.Type)
		}
		sameJSON(t, ev.Data, fmt.Sprintf(`{"application_id":%d,"applicant":"applicant","quest_title":"Chart the bay","status":"pending"}`, id(a)))

		upd := s.call("PATCH", fmt.Sprintf("/api/applications/%d/", id(a)), creatorTok, map[string]string{"status": "approved"}, 200)
		ev = applicant.NextEvent(wait)
		if ev.Type != "application_update" {
			t.Fatalf("applicant got %s", ev.Type)
		}
		sameJSON(t, ev.Data, fmt.Sprintf(`{"application_id":%d,"quest_title":"Chart the bay","status":"approved","updated_at":%q}`, id(a), upd["updated_at"]))
		creator.NoMessage(200 * time.Millisecond)
		other.NoMessage(100 * time.Millisecond)
		applicant.NoMessage(100 * time.Millisecond)
	})
}

// A quest created while its creator is connected is followed at once; the
// internal event that arranges it never reaches the client.
func TestQuestCreatedWhileConnected(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	_, creatorTok := s.user("creator")
	_, applicantTok := s.user("applicant")
	creator := testenv.MustDialWS(t, s.ws+"/ws/applications/?token="+creatorTok, nil)
	time.Sleep(50 * time.Millisecond)
	q := s.call("POST", "/api/quests/", creatorTok, map[string]string{"title": "New quest"}, 201)
	// The join is asynchronous to the quest's creation; poll until it took.
	deadline := time.Now().Add(wait)
	for s.app.Hub().GroupSize(fmt.Sprintf("quest_%d", id(q))) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("creator's connection never joined the new quest's group")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.call("POST", fmt.Sprintf("/api/quests/%d/applications/", id(q)), applicantTok, map[string]string{}, 201)
	ev := creator.NextEvent(wait)
	if ev.Type != "new_application" {
		t.Fatalf("got %s, want new_application (and never quest_created)", ev.Type)
	}
}

// Anonymous or invalid credentials are refused at the handshake with 403;
// a header token, a cookie and a one-use ticket all work.
func TestApplicationsAuthentication(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	_, tok := s.user("someone")
	for name, url := range map[string]string{
		"anonymous": "/ws/applications/",
		"garbage":   "/ws/applications/?token=garbage",
		"ticket":    "/ws/applications/?ticket=made-up",
	} {
		_, status, err := testenv.DialWS(t, s.ws+url, nil)
		if err == nil || status != http.StatusForbidden {
			t.Errorf("%s: status %d, err %v; want 403", name, status, err)
		}
	}
	testenv.MustDialWS(t, s.ws+"/ws/applications/", http.Header{"Authorization": {"Bearer " + tok}})
	testenv.MustDialWS(t, s.ws+"/ws/applications/", http.Header{"Cookie": {"herald_access=" + tok}})
	ticket := s.call("POST", "/api/ws-ticket/", tok, nil, 201)["ticket"].(string)
	testenv.MustDialWS(t, s.ws+"/ws/applications/?ticket="+ticket, nil)
	if _, status, _ := testenv.DialWS(t, s.ws+"/ws/applications/?ticket="+ticket, nil); status != http.StatusForbidden {
		t.Errorf("a used ticket: status %d; want 403", status)
	}
	// Browsers from origins outside the allow-list are refused.
	if _, status, _ := testenv.DialWS(t, s.ws+"/ws/applications/?token="+tok, http.Header{"Origin": {"http://evil.example"}}); status != http.StatusForbidden {
		t.Errorf("foreign origin: status %d; want 403", status)
	}
	testenv.MustDialWS(t, s.ws+"/ws/applications/?token="+tok, http.Header{"Origin": {"http://localhost:8000"}})
}

// Client messages on /ws/applications/ get clear errors, never silence.
func TestApplicationsRejectsClientMessages(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	_, tok := s.user("someone")
	c := testenv.MustDialWS(t, s.ws+"/ws/applications/?token="+tok, nil)
	for msg, code := range map[string]string{`{oops`: "invalid_json", `[1,2]`: "invalid_message", `{"type":"hello"}`: "unknown_type"} {
		c.Send(msg)
		ev := c.NextEvent(wait)
		var d struct{ Code, Message string }
		_ = json.Unmarshal(ev.Data, &d)
		if ev.Type != "error" || d.Code != code || d.Message == "" {
			t.Errorf("%s → %s %s; want error %s", msg, ev.Type, ev.Data, code)
		}
	}
}

// With the Redis layer a creator's groups (their own and one per quest) are
// positioned together before the handshake completes; each quest's
// applications still reach them.
func TestApplicationsFlowOnRedis(t *testing.T) {
	s := start(t, testenv.SQLite(t), func(c *config.Config) {
		c.Layer, c.RedisPrefix = redistest.SharedURL(), redistest.Prefix(t)
	})
	_, creatorTok := s.user("creator")
	_, applicantTok := s.user("applicant")
	_, earlyTok := s.user("early")
	var quests []int64
	for i := range 3 {
		q := s.call("POST", "/api/quests/", creatorTok, map[string]string{"title": fmt.Sprintf("Quest %d", i)}, 201)
		quests = append(quests, id(q))
	}
	// An application from before the creator connects: positions read
	// wrongly (from the start) would replay it ahead of the first one below.
	s.call("POST", fmt.Sprintf("/api/quests/%d/applications/", quests[2]), earlyTok, map[string]string{"message": "early"}, 201)
	s.settle()
	creator := testenv.MustDialWS(t, s.ws+"/ws/applications/?token="+creatorTok, nil)
	for i, q := range quests {
		s.call("POST", fmt.Sprintf("/api/quests/%d/applications/", q), applicantTok, map[string]string{"message": "me"}, 201)
		ev := creator.NextEvent(wait)
		if ev.Type != "new_application" || !strings.Contains(string(ev.Data), fmt.Sprintf(`"quest_title":"Quest %d"`, i)) {
			t.Fatalf("creator got %s %s, want new_application for Quest %d", ev.Type, ev.Data, i)
		}
	}
	creator.NoMessage(100 * time.Millisecond)
}
