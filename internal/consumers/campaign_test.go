package consumers_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/internal/testenv"
)

func errorCode(t *testing.T, ev testenv.Event) string {
	t.Helper()
	if ev.Type != "error" {
		t.Fatalf("got %s %s; want an error", ev.Type, ev.Data)
	}
	var d struct{ Code, Message string }
	if err := json.Unmarshal(ev.Data, &d); err != nil || d.Message == "" {
		t.Fatalf("error without code and message: %s", ev.Data)
	}
	return d.Code
}

// The campaign room of seed 001: campaign_data first (the REST detail), then
// every change made through REST, as the object's REST JSON.
func TestCampaignRoom(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		s := start(t, dsn)
		_, ownerTok := s.user("owner")
		_, fanTok := s.user("fan")
		c := s.call("POST", "/api/campaigns/", ownerTok, map[string]any{"title": "Kiosk", "goal_amount": "100.00", "status": "active"}, 201)
		cp := fmt.Sprintf("/api/campaigns/%d/", id(c))
		s.call("POST", cp+"milestones/", ownerTok, map[string]any{"title": "Half", "target_amount": "50.00"}, 201)
		s.settle()

		// The seeds' dashboard connects with no token at all.
		room := testenv.MustDialWS(t, s.ws+fmt.Sprintf("/ws/campaign/%d/", id(c)), nil)
		ev := room.NextEvent(wait)
		if ev.Type != "campaign_data" {
			t.Fatalf("first message %s; want campaign_data", ev.Type)
		}
		sameJSON(t, ev.Data, raw(s.call("GET", cp, "", nil, 200)))

		contrib := s.call("POST", cp+"contributions/", fanTok, map[string]any{"amount": "60.00"}, 201)
		ev = room.NextEvent(wait)
		if ev.Type != "contribution" {
			t.Fatalf("got %s; want contribution", ev.Type)
		}
		sameJSON(t, ev.Data, raw(contrib))
		ev = room.NextEvent(wait) // the contribution reached the milestone
		if ev.Type != "milestone" {
			t.Fatalf("got %s; want milestone", ev.Type)
		}
		var m struct{ Reached bool }
		_ = json.Unmarshal(ev.Data, &m)
		if !m.Reached {
			t.Errorf("milestone event not reached: %s", ev.Data)
		}
		for _, step := range []struct {
			typ, path, tok string
			body           map[string]any
		}{
			{"update", "updates/", ownerTok, map[string]any{"title": "News", "content": "Body"}},
			{"comment", "comments/", fanTok, map[string]any{"content": "Great!"}},
			{"release", "releases/", ownerTok, map[string]any{"version": "1.0", "title": "One"}},
			{"milestone", "milestones/", ownerTok, map[string]any{"title": "All", "target_amount": "100.00"}},
		} {
			obj := s.call("POST", cp+step.path, step.tok, step.body, 201)
			ev := room.NextEvent(wait)
			if ev.Type != step.typ {
				t.Fatalf("got %s; want %s", ev.Type, step.typ)
			}
			sameJSON(t, ev.Data, raw(obj))
		}
		room.NoMessage(150 * time.Millisecond)
	})
}

// The seed front end creates through REST and then announces through the
// socket: the room still sees each change exactly once. An announce of a
// version nobody published (e.g. made before this process started) goes out.
func TestAnnounceIsDeduplicated(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	_, ownerTok := s.user("owner")
	_, fanTok := s.user("fan")
	c := s.call("POST", "/api/campaigns/", ownerTok, map[string]any{"title": "Kiosk", "goal_amount": "100.00", "status": "active"}, 201)
	cp := fmt.Sprintf("/api/campaigns/%d/", id(c))
	wsURL := s.ws + fmt.Sprintf("/ws/campaign/%d/", id(c))
	announcer := testenv.MustDialWS(t, wsURL, nil)
	watcher := testenv.MustDialWS(t, wsURL, nil)
	announcer.NextEvent(wait)
	watcher.NextEvent(wait)

	com := s.call("POST", cp+"comments/", fanTok, map[string]any{"content": "First"}, 201)
	announcer.Send(map[string]any{"type": "comment", "data": map[string]any{"id": id(com)}})
	announcer.Send(map[string]any{"type": "comment", "data": map[string]any{"id": id(com)}})
	ev := watcher.NextEvent(wait)
	if ev.Type != "comment" {
		t.Fatalf("got %s", ev.Type)
	}
	sameJSON(t, ev.Data, raw(com))
	watcher.NoMessage(300 * time.Millisecond)

	// An edit is a new version: announcing it after the relay published it
	// adds nothing either.
	edited := s.call("PATCH", fmt.Sprintf("%scomments/%d/", cp, id(com)), fanTok, map[string]any{"content": "Edited"}, 200)
	ev = watcher.NextEvent(wait)
	sameJSON(t, ev.Data, raw(edited))
	announcer.Send(map[string]any{"type": "comment", "data": map[string]any{"id": id(com)}})
	watcher.NoMessage(300 * time.Millisecond)

	// A version this process never published (its event already gone from
	// the outbox and unknown here) is announced.
	if _, err := s.app.Platform().DB().Exec("UPDATE comments SET content = 'Changed behind herald' WHERE id = $1", id(com)); err != nil {
		t.Fatal(err)
	}
	announcer.Send(map[string]any{"type": "comment", "data": map[string]any{"id": id(com)}})
	ev = watcher.NextEvent(wait)
	var got struct{ Content string }
	_ = json.Unmarshal(ev.Data, &got)
	if ev.Type != "comment" || got.Content != "Changed behind herald" {
		t.Fatalf("announce of a new version: %s %s", ev.Type, ev.Data)
	}
}

// Everything a client may send wrong gets an error message; the connection
// stays up.
func TestCampaignRoomBadMessages(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	_, ownerTok := s.user("owner")
	a := s.call("POST", "/api/campaigns/", ownerTok, map[string]any{"title": "A", "goal_amount": "1.00", "status": "active"}, 201)
	b := s.call("POST", "/api/campaigns/", ownerTok, map[string]any{"title": "B", "goal_amount": "1.00", "status": "active"}, 201)
	other := s.call("POST", fmt.Sprintf("/api/campaigns/%d/comments/", id(b)), ownerTok, map[string]any{"content": "on B"}, 201)
	room := testenv.MustDialWS(t, s.ws+fmt.Sprintf("/ws/campaign/%d/", id(a)), nil)
	room.NextEvent(wait)
	cases := []struct {
		msg  string
		code string
	}{
		{`not json`, "invalid_json"},
		{`"just a string"`, "invalid_message"},
		{`{"data":{"id":1}}`, "invalid_message"},
		{`{"type":"donation","data":{"id":1}}`, "unknown_type"},
		{`{"type":"comment"}`, "invalid_message"},
		{`{"type":"comment","data":{"id":"x"}}`, "invalid_message"},
		{`{"type":"comment","data":{"id":-4}}`, "invalid_message"},
		{`{"type":"comment","data":{"id":1.5}}`, "invalid_message"},
		{`{"type":"comment","data":{"id":999999}}`, "not_found"},
		{fmt.Sprintf(`{"type":"comment","data":{"id":%d}}`, id(other)), "not_found"},
	}
	for _, c := range cases {
		room.Send(c.msg)
		if got := errorCode(t, room.NextEvent(wait)); got != c.code {
			t.Errorf("%s → %s; want %s", c.msg, got, c.code)
		}
	}
}

// An unknown campaign, or another user's draft, is accepted, told why and
// closed with 4404; the owner sees their draft.
func TestCampaignRoomNotFound(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	_, ownerTok := s.user("owner")
	_, otherTok := s.user("other")
	d := s.call("POST", "/api/campaigns/", ownerTok, map[string]any{"title": "Draft", "goal_amount": "1.00"}, 201)
	for name, url := range map[string]string{
		"unknown":         "/ws/campaign/424242/",
		"draft anonymous": fmt.Sprintf("/ws/campaign/%d/", id(d)),
		"draft other":     fmt.Sprintf("/ws/campaign/%d/?token=%s", id(d), otherTok),
	} {
		c := testenv.MustDialWS(t, s.ws+url, nil)
		if code := errorCode(t, c.NextEvent(wait)); code != "not_found" {
			t.Errorf("%s: error %s", name, code)
		}
		if code := c.WaitClose(wait); code != ws.StatusCode(4404) {
			t.Errorf("%s: close code %d; want 4404", name, code)
		}
	}
	c := testenv.MustDialWS(t, s.ws+fmt.Sprintf("/ws/campaign/%d/?token=%s", id(d), ownerTok), nil)
	if ev := c.NextEvent(wait); ev.Type != "campaign_data" {
		t.Errorf("owner of a draft got %s", ev.Type)
	}
	// Non-numeric ids do not match the route at all, as in Channels.
	if _, status, _ := testenv.DialWS(t, s.ws+"/ws/campaign/abc/", nil); status != http.StatusNotFound {
		t.Errorf("non-numeric id: status %d", status)
	}
	if _, status, _ := testenv.DialWS(t, s.ws+fmt.Sprintf("/ws/campaign/%d/?token=bad", id(d)), nil); status != http.StatusForbidden {
		t.Errorf("bad token: status %d", status)
	}
}

// Snapshots are shared between clients joining a room at the same position,
// and never outlive an event: a client joining after a change sees it.
func TestSnapshotFollowsChanges(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	r := newRoom(t, s)
	url := s.ws + fmt.Sprintf("/ws/campaign/%d/", r.id)
	first := testenv.MustDialWS(t, url, nil).NextEvent(wait)
	second := testenv.MustDialWS(t, url, nil).NextEvent(wait)
	if string(first.Data) != string(second.Data) {
		t.Fatal("two clients at one position got different snapshots")
	}
	ids := r.comment(t, 1)
	third := testenv.MustDialWS(t, url, nil).NextEvent(wait)
	var d struct {
		Comments []struct{ ID int64 }
	}
	if err := json.Unmarshal(third.Data, &d); err != nil || len(d.Comments) != 1 || d.Comments[0].ID != ids[0] {
		t.Fatalf("snapshot after a comment: %s", third.Data)
	}
}
