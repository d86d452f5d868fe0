package consumers_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
	"github.com/heraldhq/herald/internal/testenv"
)

// removedText is in the text of every comment these tests remove: no message a
// client gets after the removal may hold it.
const removedText = "s3cret-words"

func noSecret(t *testing.T, what string, data []byte) {
	t.Helper()
	if strings.Contains(string(data), removedText) {
		t.Errorf("%s carries a removed comment: %s", what, data)
	}
}

// removal is the data of a comment_removed event.
func removal(comment, campaign int64) string {
	return fmt.Sprintf(`{"id":%d,"campaign":%d}`, comment, campaign)
}

// noContent sends a request without a body that is answered 204.
func (s *server) noContent(method, path, token string) {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		s.t.Fatalf("%s %s: %d, want 204", method, path, res.StatusCode)
	}
}

// A removed comment reaches every viewer as comment_removed on v1, v2 and
// SSE; the snapshot no longer holds it; announcing it again is refused and
// publishes nothing.
func TestCommentRemovedLive(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		s := start(t, dsn)
		r := newRoom(t, s)
		_, bobTok := s.user("bob")
		com := s.call("POST", fmt.Sprintf("/api/campaigns/%d/comments/", r.id), bobTok, map[string]any{"content": "hello " + removedText}, 201)
		s.settle()

		v1 := testenv.MustDialWS(t, s.ws+fmt.Sprintf("/ws/campaign/%d/", r.id), nil)
		if ev := v1.NextEvent(wait); ev.Type != "campaign_data" || !strings.Contains(string(ev.Data), removedText) {
			t.Fatalf("v1 first got %s %s; want campaign_data with the comment", ev.Type, ev.Data)
		}
		v2 := dialV2(t, r.url(""))
		at := joined(t, v2, r.group)
		sse, _, err := testenv.DialSSE(t, s.base+fmt.Sprintf("/sse/campaign/%d/", r.id), nil)
		if err != nil {
			t.Fatal(err)
		}
		sse.MustNext(wait) // campaign_data
		sse.MustNext(wait) // subscribed

		s.noContent("DELETE", fmt.Sprintf("/api/campaigns/%d/comments/%d/", r.id, id(com)), bobTok)
		want := removal(id(com), r.id)
		ev := v1.NextEvent(wait)
		if ev.Type != "comment_removed" || ev.Group != "" {
			t.Fatalf("v1 got %+v; want comment_removed without a position", ev)
		}
		sameJSON(t, ev.Data, want)
		ev = v2.NextEvent(wait)
		if ev.Type != "comment_removed" || ev.Group != r.group || ev.Epoch != at.Epoch || ev.Offset != at.Offset+1 {
			t.Fatalf("v2 got %+v; want comment_removed at %s:%d", ev, at.Epoch, at.Offset+1)
		}
		sameJSON(t, ev.Data, want)
		sev := sse.MustNext(wait)
		if sev.Event != "comment_removed" || !strings.HasSuffix(sev.ID, fmt.Sprintf(":%d", at.Offset+1)) {
			t.Fatalf("SSE got %+v; want comment_removed with its position", sev)
		}
		sameJSON(t, json.RawMessage(sev.Data), want)

		// A fresh viewer's snapshot no longer holds it.
		fresh := testenv.MustDialWS(t, s.ws+fmt.Sprintf("/ws/campaign/%d/", r.id), nil)
		snap := fresh.NextEvent(wait)
		if snap.Type != "campaign_data" || !strings.Contains(string(snap.Data), `"comments_count":0`) {
			t.Fatalf("snapshot after the removal: %s %s", snap.Type, snap.Data)
		}
		noSecret(t, "the snapshot", snap.Data)

		// Announcing the removed comment (as the seeds' front end does after
		// its own writes) is refused, on either version, and publishes
		// nothing.
		v1.Send(map[string]any{"type": "comment", "data": map[string]any{"id": id(com)}})
		ev = v1.NextEvent(wait)
		var e struct{ Code string }
		_ = json.Unmarshal(ev.Data, &e)
		if ev.Type != "error" || e.Code != "not_found" {
			t.Fatalf("announce of a removed comment: %s %s; want error not_found", ev.Type, ev.Data)
		}
		v2.Send(map[string]any{"type": "comment", "id": "a1", "data": map[string]any{"id": id(com)}})
		if ev = v2.NextEvent(wait); ev.Type != "error" || !strings.Contains(string(ev.Data), `"not_found"`) || !strings.Contains(string(ev.Data), `"a1"`) {
			t.Fatalf("v2 announce of a removed comment: %s %s; want error not_found for a1", ev.Type, ev.Data)
		}
		s.settle()
		fresh.NoMessage(200 * time.Millisecond)
		v1.NoMessage(50 * time.Millisecond)
	})
}

// History replays never bring a removed comment back: whether the replay
// comes from the layer's window (warm), from the event log (a restarted
// process, whose memory layer holds nothing) or from Redis, a client
// resuming from before the comment gets the removal where the comment and
// its edit were, the other events as they were, and the removal itself,
// on v2 and SSE alike.
func TestCommentRemovedReplay(t *testing.T) {
	for _, tc := range []struct {
		name  string
		redis bool
	}{{"memory", false}, {"redis", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := testenv.SQLite(t)
			var tweak []func(*config.Config)
			if tc.redis {
				prefix := redistest.Prefix(t)
				tweak = append(tweak, func(c *config.Config) { c.Layer, c.RedisPrefix = redistest.SharedURL(), prefix })
			}
			s := start(t, dsn, tweak...)
			r := newRoom(t, s)
			_, bobTok := s.user("bob")
			// A viewer from the start: the layer delivers (and keeps) every
			// event of the room as it happens.
			live := dialV2(t, r.url(""))
			from := joined(t, live, r.group)
			path := fmt.Sprintf("/api/campaigns/%d/comments/", r.id)
			com := s.call("POST", path, bobTok, map[string]any{"content": "first " + removedText}, 201)
			s.call("PATCH", fmt.Sprintf("%s%d/", path, id(com)), bobTok, map[string]any{"content": "edited " + removedText}, 200)
			kept := s.call("POST", path, r.tok, map[string]any{"content": "kept"}, 201)
			for range 3 {
				live.NextEvent(wait)
			}
			s.noContent("POST", fmt.Sprintf("%s%d/hide/", path, id(com)), r.tok)
			if ev := live.NextEvent(wait); ev.Type != "comment_removed" {
				t.Fatalf("live viewer got %s %s", ev.Type, ev.Data)
			}
			s.settle()

			gone := removal(id(com), r.id)
			want := []struct{ typ, data string }{
				{"comment_removed", gone}, {"comment_removed", gone}, {"comment", raw(kept)}, {"comment_removed", gone},
			}
			check := func(t *testing.T, s *server) {
				t.Helper()
				c := dialV2(t, s.ws+fmt.Sprintf("/ws/campaign/%d/?v=2", r.id)+resumeQuery(r.group, from.Epoch, from.Offset))
				epoch := from.Epoch
				for i, w := range want {
					ev := c.NextEvent(wait)
					if epoch == "" {
						epoch = ev.Epoch // the room's first event started it
					}
					if ev.Type != w.typ || ev.Offset != from.Offset+uint64(i)+1 || ev.Epoch != epoch {
						t.Fatalf("v2 replay %d: %s at %s:%d; want %s at %s:%d", i, ev.Type, ev.Epoch, ev.Offset, w.typ, epoch, from.Offset+uint64(i)+1)
					}
					noSecret(t, "the v2 replay", ev.Data)
					sameJSON(t, ev.Data, w.data)
				}
				if !subscribed(t, c.NextEvent(wait), r.group) {
					t.Fatal("the resume was not recovered")
				}
				sse, _, err := testenv.DialSSE(t, s.base+fmt.Sprintf("/sse/campaign/%d/", r.id),
					http.Header{"Last-Event-ID": {fmt.Sprintf("%s:%s:%d", r.group, from.Epoch, from.Offset)}})
				if err != nil {
					t.Fatal(err)
				}
				for i, w := range want {
					ev := sse.MustNext(wait)
					if ev.Event != w.typ {
						t.Fatalf("SSE replay %d: %s %s; want %s", i, ev.Event, ev.Data, w.typ)
					}
					noSecret(t, "the SSE replay", []byte(ev.Data))
					sameJSON(t, json.RawMessage(ev.Data), w.data)
				}
				if ev := sse.MustNext(wait); ev.Event != "subscribed" || !strings.Contains(ev.Data, `"recovered":true`) {
					t.Fatalf("after the SSE replay: %+v", ev)
				}
			}
			t.Run("warm", func(t *testing.T) { check(t, s) })
			t.Run("restarted", func(t *testing.T) {
				s.Stop()
				check(t, start(t, dsn, tweak...))
			})
		})
	}
}
