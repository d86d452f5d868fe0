package consumers_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/testenv"
)

// gone reads what a campaign room's connection gets when its campaign is
// not there for it: not_found, then 4404.
func gone(t *testing.T, who string, c *testenv.WSClient) {
	t.Helper()
	if code := errorCode(t, c.NextEvent(wait)); code != "not_found" {
		t.Fatalf("%s: error %s; want not_found", who, code)
	}
	if code := c.WaitClose(wait); code != 4404 {
		t.Fatalf("%s: closed with %d; want 4404", who, code)
	}
}

// A deleted campaign leaves every page open on it: every viewer of its room,
// its owner too, on v1, v2 and SSE, is told not_found and closed with 4404
// (an event stream ends), and a connection that only subscribed to the room
// is closed to reconnect. Coming back, fresh or resuming from a position
// before the deletion, finds nothing, and the layer's history of the room
// holds nothing of the campaign.
func TestCampaignDeletedLive(t *testing.T) {
	for name, tweak := range layers {
		t.Run(name, func(t *testing.T) {
			s := start(t, testenv.SQLite(t), tweak(t))
			_, tok := s.user("owner")
			fan, fanTok := s.user("fan")
			cid := id(s.call("POST", "/api/campaigns/", tok, map[string]any{"title": "Doomed", "goal_amount": "10.00", "status": "active"}, 201))
			s.call("POST", fmt.Sprintf("/api/campaigns/%d/comments/", cid), fanTok, map[string]any{"content": secret}, 201)
			path, group := fmt.Sprintf("/campaign/%d/", cid), platform.CampaignGroup(cid)
			s.settle()

			v1 := testenv.MustDialWS(t, s.ws+"/ws"+path, nil)
			if ev := v1.NextEvent(wait); ev.Type != "campaign_data" {
				t.Fatalf("v1 first got %s", ev.Type)
			}
			v2 := dialV2(t, s.ws+"/ws"+path+"?v=2&token="+fanTok)
			at := joined(t, v2, group)
			owner := dialV2(t, s.ws+"/ws"+path+"?v=2&token="+tok)
			joined(t, owner, group)
			sse, _, err := testenv.DialSSE(t, s.base+"/sse"+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"campaign_data", "subscribed"} {
				if ev := sse.MustNext(wait); ev.Event != want {
					t.Fatalf("SSE got %s %s; want %s", ev.Event, ev.Data, want)
				}
			}
			subscribe := func(c *testenv.WSClient, data map[string]any) {
				t.Helper()
				data["group"] = group
				c.Send(map[string]any{"type": "subscribe", "id": "s", "data": data})
			}
			sub := dialV2(t, s.ws+"/ws/applications/?v=2&token="+fanTok)
			subscribedAt(t, sub.NextEvent(wait), platform.UserGroup(fan))
			subscribe(sub, map[string]any{})
			ackID(t, sub.NextEvent(wait))
			subscribedAt(t, sub.NextEvent(wait), group)

			s.noContent("DELETE", fmt.Sprintf("/api/campaigns/%d/", cid), tok)
			for who, c := range map[string]*testenv.WSClient{"v1": v1, "v2": v2, "owner": owner} {
				gone(t, who, c)
			}
			if evs := sse.End(wait); len(evs) != 1 || evs[0].Event != "error" || !strings.Contains(evs[0].Data, `"code":"not_found"`) {
				t.Fatalf("SSE: the deletion gave %+v before the stream ended; want one not_found error", evs)
			}
			if code := sub.WaitClose(wait); code != 1012 {
				t.Fatalf("a subscription to the room closed with %d; want 1012 (the room started over)", code)
			}

			s.settle()
			gone(t, "v1 again", testenv.MustDialWS(t, s.ws+"/ws"+path, nil))
			gone(t, "the owner again", dialV2(t, s.ws+"/ws"+path+"?v=2&token="+tok))
			gone(t, "v2 resuming", dialV2(t, s.ws+"/ws"+path+"?v=2&token="+fanTok+resumeQuery(group, at.Epoch, at.Offset)))
			if _, status, _ := testenv.DialSSE(t, s.base+"/sse"+path, nil); status != http.StatusNotFound {
				t.Errorf("SSE to the deleted campaign: status %d; want 404", status)
			}
			lastID := http.Header{"Last-Event-ID": {fmt.Sprintf("%s:%s:%d", group, at.Epoch, at.Offset)}}
			if _, status, _ := testenv.DialSSE(t, s.base+"/sse"+path, lastID); status != http.StatusNotFound {
				t.Errorf("SSE resuming the deleted campaign: status %d; want 404", status)
			}
			again := dialV2(t, s.ws+"/ws/applications/?v=2&token="+fanTok)
			subscribedAt(t, again.NextEvent(wait), platform.UserGroup(fan))
			subscribe(again, map[string]any{"epoch": at.Epoch, "offset": at.Offset})
			if code := errorCode(t, again.NextEvent(wait)); code != "not_found" {
				t.Fatalf("subscribing again from before the deletion: %s; want not_found", code)
			}

			// What a replay would read: nothing of the campaign, from its
			// epoch or the one the deletion started.
			ctx := context.Background()
			l := s.app.Hub().Layer()
			_, epoch, err := l.Position(ctx, group)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range []string{at.Epoch, epoch} {
				msgs, _, err := l.History(ctx, group, 0, e)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range msgs {
					if m.Type != platform.EventCampaignDeleted || strings.Contains(string(m.Data), secret) {
						t.Errorf("the history of %s in epoch %s holds %s %s", group, e, m.Type, m.Data)
					}
				}
			}
		})
	}
}

// A viewer joining a campaign's room while the campaign is deleted, in
// whatever order the relay's publication and the join meet, is closed with
// 4404 (on Redis, possibly with 1012 first: connecting again then finds
// nothing).
func TestDeletedWhileJoining(t *testing.T) {
	deleteIt := func(s *server, tok string, cid int64) {
		s.noContent("DELETE", fmt.Sprintf("/api/campaigns/%d/", cid), tok)
	}
	t.Run("memory", func(t *testing.T) { testGoneWhileJoining(t, deleteIt, nil) })
	t.Run("redis", func(t *testing.T) { testGoneWhileJoining(t, deleteIt, nil, onRedis(t)) })
}
