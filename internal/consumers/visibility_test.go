package consumers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
	"github.com/heraldhq/herald/internal/testenv"
)

const secret = "SECRET-DRAFT-TEXT"

// onRedis runs herald on the shared Redis under a prefix of the test's own.
func onRedis(t *testing.T) func(*config.Config) {
	return func(c *config.Config) { c.Layer, c.RedisPrefix = redistest.SharedURL(), redistest.Prefix(t) }
}

// layers are the channel layers a test runs herald on, by name: the
// in-memory one and Redis (onRedis).
var layers = map[string]func(*testing.T) func(*config.Config){
	"memory": func(*testing.T) func(*config.Config) { return func(*config.Config) {} },
	"redis":  onRedis,
}

// stream is a WebSocket or SSE client of a campaign room, read until an
// event carrying a marker arrives.
type stream interface {
	// until returns the types of the messages before the one whose data
	// contains marker, failing if any of them contains secret.
	until(t *testing.T, marker string) []string
}

type wsStream struct {
	name string
	c    *testenv.WSClient
}

func (s wsStream) until(t *testing.T, marker string) []string {
	t.Helper()
	var types []string
	for {
		ev := s.c.NextEvent(wait)
		if strings.Contains(string(ev.Data), secret) {
			t.Fatalf("%s received the draft's content: %s %s", s.name, ev.Type, ev.Data)
		}
		if strings.Contains(string(ev.Data), marker) {
			return types
		}
		if ev.Type == "subscribed" {
			var d struct{ Recovered bool }
			_ = json.Unmarshal(ev.Data, &d)
			types = append(types, fmt.Sprintf("subscribed:%v", d.Recovered))
			continue
		}
		types = append(types, ev.Type)
	}
}

type sseStream struct {
	name string
	c    *testenv.SSEClient
}

func (s sseStream) until(t *testing.T, marker string) []string {
	t.Helper()
	var types []string
	for {
		ev := s.c.MustNext(wait)
		if strings.Contains(ev.Data, secret) {
			t.Fatalf("%s received the draft's content: %s %s", s.name, ev.Event, ev.Data)
		}
		if strings.Contains(ev.Data, marker) {
			return types
		}
		if ev.Event == "subscribed" {
			types = append(types, "subscribed:"+fmt.Sprint(strings.Contains(ev.Data, `"recovered":true`)))
			continue
		}
		types = append(types, ev.Event)
	}
}

// What a draft's owner posted and then edited before making the campaign
// public never reaches anyone else: not from the history a v2 or SSE client
// resumes from (from the start, or from a position the owner had), and not
// in campaign_data. Making the draft public starts the room over: the
// owner's live connection is closed to reconnect, and every old position
// gets recovered=false and a fresh campaign_data.
func TestDraftContentNeverReplayed(t *testing.T) {
	for name, tweak := range layers {
		t.Run(name, func(t *testing.T) {
			s := start(t, testenv.SQLite(t), tweak(t))
			_, tok := s.user("owner")
			c := s.call("POST", "/api/campaigns/", tok, map[string]any{"title": "Soon", "goal_amount": "1.00"}, 201)
			cid := id(c)
			group := fmt.Sprintf("campaign_%d", cid)
			room := s.ws + fmt.Sprintf("/ws/campaign/%d/?v=2", cid)

			// The owner watches the draft and sees its events live.
			owner := dialV2(t, room+"&token="+tok)
			joined(t, owner, group)
			com := s.call("POST", fmt.Sprintf("/api/campaigns/%d/comments/", cid), tok, map[string]any{"content": secret}, 201)
			seen := owner.NextEvent(wait)
			if seen.Type != "comment" || !strings.Contains(string(seen.Data), secret) {
				t.Fatalf("owner got %s %s; want the draft's comment live", seen.Type, seen.Data)
			}
			s.call("PATCH", fmt.Sprintf("/api/campaigns/%d/comments/%d/", cid, id(com)), tok, map[string]any{"content": "Opening soon"}, 200)
			s.call("PATCH", fmt.Sprintf("/api/campaigns/%d/", cid), tok, map[string]any{"status": "active"}, 200)
			s.settle()

			sse := s.base + fmt.Sprintf("/sse/campaign/%d/", cid)
			streams := map[string]stream{}
			for what, q := range map[string]string{
				"ws from the start":         resumeQuery(group, "", 0),
				"ws from the draft's start": resumeQuery(group, seen.Epoch, 0),
				"ws from the owner's place": resumeQuery(group, seen.Epoch, seen.Offset-1),
			} {
				streams[what] = wsStream{what, dialV2(t, room+q)}
			}
			streams["owner resuming"] = wsStream{"owner resuming", dialV2(t, room+"&token="+tok+resumeQuery(group, seen.Epoch, seen.Offset))}
			for what, h := range map[string]http.Header{
				"sse from the start": nil,
				"sse last-event-id":  {"Last-Event-ID": {fmt.Sprintf("%s:%s:0", group, seen.Epoch)}},
			} {
				u := sse
				if h == nil {
					u += "?resume=" + url.QueryEscape(group+"::0")
				}
				c, _, err := testenv.DialSSE(t, u, h)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				streams[what] = sseStream{what, c}
			}

			const marker = "published at last"
			s.call("POST", fmt.Sprintf("/api/campaigns/%d/comments/", cid), tok, map[string]any{"content": marker}, 201)
			for what, st := range streams {
				got := strings.Join(st.until(t, marker), " ")
				want := "subscribed:false campaign_data"
				if strings.Contains(what, "from the start") {
					want = "subscribed:true" // the room's history starts at its publication
				}
				if got != want {
					t.Errorf("%s: got %q before the first event; want %q", what, got, want)
				}
			}
			if code := owner.WaitClose(wait); code != 1012 {
				t.Fatalf("owner's connection closed with %d when the draft was made public; want 1012", code)
			}
		})
	}
}

// A viewer who connects after a draft was made public but before the
// room's reset was published (the relay held back: another process's relay
// holds the lock) is not given the room's history from before: it is
// refused with 503 until the reset is out, and then starts after it.
func TestDraftPublishedBeforeItsResetIsOut(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testResetNotOut(t, testenv.Postgres(t)) })
	t.Run("redis", func(t *testing.T) { testResetNotOut(t, testenv.Postgres(t), onRedis(t)) })
}

func testResetNotOut(t *testing.T, dsn string, tweak ...func(*config.Config)) {
	s := start(t, dsn, tweak...)
	_, tok := s.user("owner")
	c := s.call("POST", "/api/campaigns/", tok, map[string]any{"title": "Soon", "goal_amount": "1.00"}, 201)
	cid := id(c)
	s.settle()

	// Hold the relay's lock, as another process's relay would.
	ctx := context.Background()
	tx, err := s.app.Platform().DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", 0x68657262); err != nil {
		t.Fatal(err)
	}
	com := s.call("POST", fmt.Sprintf("/api/campaigns/%d/comments/", cid), tok, map[string]any{"content": secret}, 201)
	s.call("PATCH", fmt.Sprintf("/api/campaigns/%d/comments/%d/", cid, id(com)), tok, map[string]any{"content": "Opening soon"}, 200)
	s.call("PATCH", fmt.Sprintf("/api/campaigns/%d/", cid), tok, map[string]any{"status": "active"}, 200)

	room := s.ws + fmt.Sprintf("/ws/campaign/%d/?v=2", cid)
	sseStatus := make(chan int, 1)
	go func() {
		_, st, _ := testenv.DialSSE(t, s.base+fmt.Sprintf("/sse/campaign/%d/", cid), nil)
		sseStatus <- st
	}()
	early, status, err := testenv.DialWS(t, room, nil)
	if status == 0 {
		t.Fatalf("handshake while the reset is pending: %v; want 503", err)
	}
	if st := <-sseStatus; st != http.StatusServiceUnavailable {
		t.Errorf("SSE while the reset is pending: status %d; want 503", st)
	}
	if err := tx.Rollback(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	s.settle()
	const marker = "published at last"
	if status != http.StatusServiceUnavailable {
		// Accepted early: it must still never see the draft.
		early.Ignore = []string{"presence"}
		s.call("POST", fmt.Sprintf("/api/campaigns/%d/comments/", cid), tok, map[string]any{"content": marker}, 201)
		wsStream{"early viewer", early}.until(t, marker)
		t.Fatalf("a viewer was accepted (status %d) while the room's reset was pending; want 503", status)
	}
	later := dialV2(t, room)
	s.call("POST", fmt.Sprintf("/api/campaigns/%d/comments/", cid), tok, map[string]any{"content": marker}, 201)
	if got := (wsStream{"later viewer", later}).until(t, marker); strings.Join(got, " ") != "campaign_data subscribed:true" {
		t.Fatalf("later viewer: %v before the first event; want campaign_data, subscribed", got)
	}
}

// An announce of a draft's object is acknowledged and not published: what
// is published stays in the room's history, and the owner has the events of
// their own writes.
func TestDraftAnnouncesAreNotPublished(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	_, tok := s.user("owner")
	c := s.call("POST", "/api/campaigns/", tok, map[string]any{"title": "Soon", "goal_amount": "1.00"}, 201)
	// Posted while nobody is in the room, so no announce is taken for a
	// version already delivered.
	com := s.call("POST", fmt.Sprintf("/api/campaigns/%d/comments/", id(c)), tok, map[string]any{"content": secret}, 201)
	s.settle()
	owner := dialV2(t, s.ws+fmt.Sprintf("/ws/campaign/%d/?v=2&token=%s", id(c), tok))
	joined(t, owner, fmt.Sprintf("campaign_%d", id(c)))
	owner.Send(map[string]any{"type": "comment", "id": "a1", "data": map[string]any{"id": id(com)}})
	if got := ackID(t, owner.NextEvent(wait)); got != `"a1"` {
		t.Fatalf("ack %s", got)
	}
	// On the in-memory layer a publish is delivered before the announce is
	// acknowledged, so the next message after a second ack tells.
	owner.Send(map[string]any{"type": "subscribe", "id": "s1", "data": map[string]any{"group": fmt.Sprintf("campaign_%d", id(c))}})
	if ev := owner.NextEvent(wait); ev.Type != "ack" {
		t.Fatalf("after announcing a draft's comment: %s %s; want nothing published", ev.Type, ev.Data)
	}
}
