package consumers_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/heraldhq/herald/internal/app"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/consumers"
	"github.com/heraldhq/herald/internal/testenv"
)

// listed is the campaign as GET /api/campaigns/ lists it: its detail
// without the nested lists and their counts, the data of a campaign event.
func listed(t *testing.T, s *server, cid int64) string {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal([]byte(raw(s.call("GET", fmt.Sprintf("/api/campaigns/%d/", cid), "", nil, 200))), &d); err != nil {
		t.Fatal(err)
	}
	maps.DeleteFunc(d, func(k string, _ any) bool {
		return strings.HasSuffix(k, "s") && k != "status" || k == "updates_count" || k == "comments_count"
	})
	b, _ := json.Marshal(d)
	return string(b)
}

// Every edit of a campaign reaches its room as a campaign event, the
// campaign's REST JSON, on v1, v2 and SSE, and a handshake right after an
// edit never ends on the title from before it. Back to draft, every viewer
// but the owner is told not_found and closed with 4404 (an event stream
// ends), and connecting again is refused as for any draft; the owner's
// connection gets the event, then is closed with 1012 to reconnect to its
// draft.
func TestCampaignEventsLive(t *testing.T) {
	for name, tweak := range layers {
		t.Run(name, func(t *testing.T) {
			s := start(t, testenv.SQLite(t), tweak(t))
			_, tok := s.user("owner")
			_, fanTok := s.user("fan")
			cid := id(s.call("POST", "/api/campaigns/", tok, map[string]any{"title": "Before", "goal_amount": "10.00", "status": "active"}, 201))
			path := fmt.Sprintf("/campaign/%d/", cid)
			s.settle()

			v1 := testenv.MustDialWS(t, s.ws+"/ws"+path, nil)
			v2 := dialV2(t, s.ws+"/ws"+path+"?v=2&token="+fanTok)
			owner := dialV2(t, s.ws+"/ws"+path+"?v=2&token="+tok)
			sse, _, err := testenv.DialSSE(t, s.base+"/sse"+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if ev := v1.NextEvent(wait); ev.Type != "campaign_data" {
				t.Fatalf("v1 first got %s", ev.Type)
			}
			group := fmt.Sprintf("campaign_%d", cid)
			joined(t, v2, group)
			joined(t, owner, group)
			for _, want := range []string{"campaign_data", "subscribed"} {
				if ev := sse.MustNext(wait); ev.Event != want {
					t.Fatalf("SSE got %s %s; want %s", ev.Event, ev.Data, want)
				}
			}
			next := map[string]func() (string, string){
				"v1":    func() (string, string) { ev := v1.NextEvent(wait); return ev.Type, string(ev.Data) },
				"v2":    func() (string, string) { ev := v2.NextEvent(wait); return ev.Type, string(ev.Data) },
				"owner": func() (string, string) { ev := owner.NextEvent(wait); return ev.Type, string(ev.Data) },
				"SSE":   func() (string, string) { ev := sse.MustNext(wait); return ev.Event, ev.Data },
			}
			expect := func(what string) {
				t.Helper()
				want := listed(t, s, cid)
				for who, next := range next {
					typ, data := next()
					if typ != "campaign" {
						t.Fatalf("%s: after %s got %s %s; want a campaign event", who, what, typ, data)
					}
					sameJSON(t, json.RawMessage(data), want)
				}
			}

			// A viewer connecting now is served the snapshot cached above.
			testenv.MustDialWS(t, s.ws+"/ws"+path, nil).NextEvent(wait)
			s.call("PATCH", "/api/campaigns/"+fmt.Sprint(cid)+"/", tok, map[string]any{"title": "After", "goal_amount": "25.00"}, 200)
			// One that connects right after the edit, before or after its
			// event is out, ends on the new title.
			late := testenv.MustDialWS(t, s.ws+"/ws"+path, nil)
			if ev := late.NextEvent(wait); ev.Type != "campaign_data" {
				t.Fatalf("late viewer first got %s", ev.Type)
			} else if !strings.Contains(string(ev.Data), `"title":"After"`) {
				if ev := late.NextEvent(wait); ev.Type != "campaign" || !strings.Contains(string(ev.Data), `"title":"After"`) {
					t.Fatalf("late viewer: an old campaign_data followed by %s %s; want the edit's campaign event", ev.Type, ev.Data)
				}
			}
			expect("an edit")

			// A contribution moves the raised total without a campaign
			// event; closing sends one and keeps everyone.
			s.call("POST", fmt.Sprintf("/api/campaigns/%d/contributions/", cid), fanTok, map[string]any{"amount": "5.00"}, 201)
			for who, next := range next {
				if typ, data := next(); typ != "contribution" {
					t.Fatalf("%s: after a contribution got %s %s", who, typ, data)
				}
			}
			s.call("PATCH", fmt.Sprintf("/api/campaigns/%d/", cid), tok, map[string]any{"status": "closed"}, 200)
			expect("closing")

			s.call("PATCH", fmt.Sprintf("/api/campaigns/%d/", cid), tok, map[string]any{"status": "draft", "title": secret}, 200)
			for who, c := range map[string]*testenv.WSClient{"v1": v1, "v2": v2} {
				ev := c.NextEvent(wait)
				if ev.Type != "error" || !strings.Contains(string(ev.Data), `"code":"not_found"`) {
					t.Fatalf("%s: back to draft got %s %s; want not_found", who, ev.Type, ev.Data)
				}
				if code := c.WaitClose(wait); code != 4404 {
					t.Fatalf("%s: closed with %d; want 4404", who, code)
				}
			}
			if evs := sse.End(wait); len(evs) != 1 || evs[0].Event != "error" || !strings.Contains(evs[0].Data, `"code":"not_found"`) {
				t.Fatalf("SSE: back to draft got %+v before the stream ended; want one not_found error", evs)
			}
			ev := owner.NextEvent(wait)
			if ev.Type != "campaign" || !strings.Contains(string(ev.Data), `"status":"draft"`) {
				t.Fatalf("owner: back to draft got %s %s; want the campaign event", ev.Type, ev.Data)
			}
			if code := owner.WaitClose(wait); code != 1012 {
				t.Fatalf("owner: closed with %d after the campaign event; want 1012 (the room started over)", code)
			}

			s.settle()
			if _, status, _ := testenv.DialSSE(t, s.base+"/sse"+path, nil); status != http.StatusNotFound {
				t.Errorf("SSE to the draft: status %d; want 404", status)
			}
			again := dialV2(t, s.ws+"/ws"+path+"?v=2&token="+fanTok)
			if ev := again.NextEvent(wait); ev.Type != "error" || again.WaitClose(wait) != 4404 {
				t.Fatalf("a viewer back at the draft got %s %s; want not_found and 4404", ev.Type, ev.Data)
			}
			back := dialV2(t, s.ws+"/ws"+path+"?v=2&token="+tok)
			if ev := back.NextEvent(wait); ev.Type != "campaign_data" || !strings.Contains(string(ev.Data), secret) {
				t.Fatalf("the owner back at their draft got %s %s; want its campaign_data", ev.Type, ev.Data)
			}
		})
	}
}

// A viewer joining the room while its campaign goes back to draft, in
// whatever order the relay's publication and the join meet (the join's
// snapshot read, its replay, the events it holds back, a fresh read when
// the room started over), is closed with 4404 and never gets what the
// owner does in the draft afterwards. (On Redis, a subscription that reads
// the room's position after the reset takes the draft's event, older, as
// events it lost, and closes its members with 1012 to resume: they find
// the draft then.)
func TestBackToDraftWhileJoining(t *testing.T) {
	toDraft := func(s *server, tok string, cid int64) {
		s.call("PATCH", fmt.Sprintf("/api/campaigns/%d/", cid), tok, map[string]any{"status": "draft"}, 200)
	}
	inDraft := func(s *server, tok string, cid int64) {
		s.call("POST", fmt.Sprintf("/api/campaigns/%d/comments/", cid), tok, map[string]any{"content": secret}, 201)
	}
	t.Run("memory", func(t *testing.T) { testGoneWhileJoining(t, toDraft, inDraft) })
	t.Run("redis", func(t *testing.T) { testGoneWhileJoining(t, toDraft, inDraft, onRedis(t)) })
}

// testGoneWhileJoining has the owner take each of 20 campaigns away from a
// viewer (hide: back to draft, deleted) as the viewer joins its room, then
// do what after does (nil: nothing), and checks the viewer is closed with
// 4404 and never gets the secret. A viewer closed with 1012 instead (on
// Redis, see above; anywhere, when the relay takes longer than resetWait
// to publish what hid the campaign) connects again, as clients do.
func testGoneWhileJoining(t *testing.T, hide, after func(s *server, tok string, cid int64), tweak ...func(*config.Config)) {
	var (
		mu      sync.Mutex
		trigger func(group string)
	)
	hooks := &consumers.Hooks{BeforeJoin: func(group string) {
		mu.Lock()
		f := trigger
		trigger = nil
		mu.Unlock()
		if f != nil {
			f(group)
		}
	}}
	s := startWith(t, testenv.SQLite(t), []app.Option{app.WithConsumersConfig(hooks.Install)}, tweak...)
	_, tok := s.user("owner")
	for round := range 20 {
		cid := id(s.call("POST", "/api/campaigns/", tok, map[string]any{"title": "Public", "goal_amount": "1.00", "status": "active"}, 201))
		s.settle()
		patched := make(chan struct{})
		mu.Lock()
		trigger = func(string) {
			// The edit commits as the viewer joins; its events are
			// published whenever the relay gets to them.
			go func() {
				defer close(patched)
				hide(s, tok, cid)
			}()
			if round%2 == 1 {
				<-patched // committed before the join, not yet published
			}
		}
		mu.Unlock()
		q := "?v=2"
		if round%4 >= 2 {
			q = "" // v1
		}
		url := s.ws + fmt.Sprintf("/ws/campaign/%d/%s", cid, q)
		viewer := testenv.MustDialWS(t, url, nil)
		<-patched
		if after != nil {
			after(s, tok, cid)
		}
		// 1012 is "reconnect": a client does, and must then be refused.
		code := untilClosed(t, viewer)
		for tries := 0; code == 1012 && tries < 5; tries++ {
			code = untilClosed(t, testenv.MustDialWS(t, url, nil))
		}
		if code != 4404 {
			t.Fatalf("round %d: the viewer's connection closed with %d; want 4404", round, code)
		}
	}
}

// untilClosed reads c until the server closes it, failing if any message
// holds the draft's secret, and returns the close code.
func untilClosed(t *testing.T, c *testenv.WSClient) int {
	t.Helper()
	for {
		raw, err := c.Next(wait)
		if err != nil {
			if !errors.Is(err, testenv.ErrClosed) {
				t.Fatalf("the connection ended without a close frame: %v", err)
			}
			return int(c.CloseCode)
		}
		if strings.Contains(string(raw), secret) {
			t.Fatalf("a viewer got the draft's content: %s", raw)
		}
	}
}
