package consumers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testenv"
)

func ackID(t *testing.T, ev testenv.Event) string {
	t.Helper()
	var d struct{ ID json.RawMessage }
	if ev.Type != "ack" || json.Unmarshal(ev.Data, &d) != nil {
		t.Fatalf("got %s %s; want an ack", ev.Type, ev.Data)
	}
	return string(d.ID)
}

// A v2 connection subscribes to more groups it may see, with acks, and
// unsubscribes; what it may not see is refused with the message's id.
func TestSubscribeUnsubscribe(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	r := newRoom(t, s)
	other, otherTok := s.user("other")
	draft := s.call("POST", "/api/campaigns/", r.tok, map[string]any{"title": "Draft", "goal_amount": "1.00"}, 201)
	q := s.call("POST", "/api/quests/", r.tok, map[string]string{"title": "Q"}, 201)
	s.settle()
	c := testenv.MustDialWS(t, s.ws+"/ws/applications/?v=2&token="+otherTok, nil)
	c.Ignore = []string{"presence"}
	subscribedAt(t, c.NextEvent(wait), fmt.Sprintf("user_%d", other))

	c.Send(map[string]any{"type": "subscribe", "id": "s1", "data": map[string]any{"group": r.group}})
	if id := ackID(t, c.NextEvent(wait)); id != `"s1"` {
		t.Fatalf("ack id %s", id)
	}
	if !subscribed(t, c.NextEvent(wait), r.group) {
		t.Fatal("fresh subscription not recovered")
	}
	ids := r.comment(t, 1)
	if got := commentID(t, c.NextEvent(wait)); got != ids[0] {
		t.Fatalf("comment %d; want %d", got, ids[0])
	}
	c.Send(map[string]any{"type": "unsubscribe", "id": 7, "data": map[string]any{"group": r.group}})
	if id := ackID(t, c.NextEvent(wait)); id != `7` {
		t.Fatalf("ack id %s", id)
	}
	r.comment(t, 1)
	c.NoMessage(200 * time.Millisecond)

	for _, tc := range []struct {
		group, code string
	}{
		{fmt.Sprintf("campaign_%d", id(draft)), "not_found"},
		{fmt.Sprintf("quest_%d", id(q)), "forbidden"},
		{"user_1", "forbidden"},
		{"campaign_999999", "not_found"},
		{"lobby_1", "invalid_group"},
		{"Bad Group", "invalid_group"},
		{fmt.Sprintf("campaign_0%d", r.id), "invalid_group"},
	} {
		c.Send(map[string]any{"type": "subscribe", "id": "x", "data": map[string]any{"group": tc.group}})
		ev := c.NextEvent(wait)
		var d struct {
			Code string
			ID   string
		}
		_ = json.Unmarshal(ev.Data, &d)
		if ev.Type != "error" || d.Code != tc.code || d.ID != "x" {
			t.Errorf("subscribe %s: %s %s; want error %s with id", tc.group, ev.Type, ev.Data, tc.code)
		}
	}
	c.Send(map[string]any{"type": "subscribe", "id": "long", "data": map[string]any{"group": r.group, "epoch": strings.Repeat("e", 100), "offset": 1}})
	if code := errorCode(t, c.NextEvent(wait)); code != "invalid_message" {
		t.Errorf("an oversized epoch: %s; want invalid_message", code)
	}
	// v1 connections know nothing of subscribe.
	v1 := testenv.MustDialWS(t, s.ws+"/ws/applications/?token="+otherTok, nil)
	v1.Send(map[string]any{"type": "subscribe", "id": "s", "data": map[string]any{"group": r.group}})
	if code := errorCode(t, v1.NextEvent(wait)); code != "unknown_type" {
		t.Fatalf("v1 subscribe: %s", code)
	}
}

// A v2 announce with an id is acknowledged.
func TestAnnounceAck(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	r := newRoom(t, s)
	c := dialV2(t, r.url(""))
	joined(t, c, r.group)
	ids := r.comment(t, 1)
	c.NextEvent(wait) // the relayed comment
	c.Send(map[string]any{"type": "comment", "id": "a1", "data": map[string]any{"id": ids[0]}})
	if id := ackID(t, c.NextEvent(wait)); id != `"a1"` {
		t.Fatalf("ack id %s", id)
	}
	c.Send(map[string]any{"type": "comment", "id": "a2", "data": map[string]any{"id": 999999}})
	ev := c.NextEvent(wait)
	if errorCode(t, ev) != "not_found" || !json.Valid(ev.Data) {
		t.Fatalf("%s", ev.Data)
	}
}

// v2 members of a campaign room learn how many are watching, as clients come
// and go; v1 members never see it.
func TestPresence(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	r := newRoom(t, s)
	count := func(c *testenv.WSClient) int {
		t.Helper()
		for {
			ev := c.NextEvent(wait)
			if ev.Type != "presence" {
				continue
			}
			var d struct {
				Group string
				Count int
			}
			_ = json.Unmarshal(ev.Data, &d)
			if d.Group != r.group {
				t.Fatalf("presence for %s", d.Group)
			}
			return d.Count
		}
	}
	a := testenv.MustDialWS(t, r.url(""), nil)
	b := testenv.MustDialWS(t, r.url(""), nil)
	v1 := testenv.MustDialWS(t, s.ws+fmt.Sprintf("/ws/campaign/%d/", r.id), nil)
	v1.NextEvent(wait)
	if n := count(a); n != 3 {
		// The first tick may have seen fewer members; the next says 3.
		if n = count(a); n != 3 {
			t.Fatalf("presence %d; want 3", n)
		}
	}
	b.Close()
	for n := count(a); n != 2; n = count(a) {
		if n != 3 {
			t.Fatalf("presence %d while one left; want 2", n)
		}
	}
	if raw, err := v1.Next(1500 * time.Millisecond); err == nil {
		t.Fatalf("v1 client got %s", raw)
	}
}

// An event this process only replayed (published before it had members in
// the room) counts as published: announcing it adds nothing.
func TestAnnounceAfterReplayIsDeduplicated(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	r := newRoom(t, s)
	ids := r.comment(t, 1) // published with nobody in the room
	_, epoch, err := s.app.Hub().Layer().Position(context.Background(), r.group)
	if err != nil || epoch == "" {
		t.Fatalf("position: %q, %v", epoch, err)
	}
	c := dialV2(t, r.url(resumeQuery(r.group, epoch, 0)))
	if got := commentID(t, c.NextEvent(wait)); got != ids[0] {
		t.Fatalf("replayed comment %d; want %d", got, ids[0])
	}
	subscribed(t, c.NextEvent(wait), r.group)
	c.Send(map[string]any{"type": "comment", "id": "again", "data": map[string]any{"id": ids[0]}})
	if id := ackID(t, c.NextEvent(wait)); id != `"again"` {
		t.Fatalf("ack id %s", id)
	}
	c.NoMessage(300 * time.Millisecond)
}
