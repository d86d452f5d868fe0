package consumers_test

import (
	"testing"

	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/testenv"
)

// A creator who subscribes to a quest just created meets its announcement
// (quest_created), whose join of the quest may come first. The subscribe
// is then acknowledged, the other join tells the client where it stands,
// and the connection goes on in the quest's group; before, it was closed
// with 1011 "cannot join".
func TestSubscribeMeetingQuestAnnouncementIsAcknowledged(t *testing.T) {
	rg := newRig(t, 100)
	q, group := rg.quest()
	tok, err := rg.tokens.Access(rg.owner)
	if err != nil {
		t.Fatal(err)
	}
	c := testenv.MustDialWS(t, rg.ws+"/ws/applications/?v=2&token="+tok, nil)
	c.Ignore = []string{"presence"}
	told(t, c.NextEvent(rigWait), platform.UserGroup(rg.owner))
	told(t, c.NextEvent(rigWait), group)
	// Out of the quest's group, as before a quest just created is joined.
	c.Send(map[string]any{"type": "unsubscribe", "id": "u", "data": map[string]any{"group": group}})
	if ev := c.NextEvent(rigWait); ev.Type != "ack" {
		t.Fatalf("unsubscribe: %s %s", ev.Type, ev.Data)
	}

	// Just before the subscribe joins, the announcement is handled.
	announced := rg.announceBeforeJoining(q)
	c.Send(map[string]any{"type": "subscribe", "id": "s", "data": map[string]any{"group": group}})
	var subscribed, acked bool
	for !subscribed || !acked {
		ev := c.NextEvent(rigWait)
		switch {
		case ev.Type == "subscribed":
			told(t, ev, group)
			subscribed = true
		case ev.Type == "ack" && string(ev.Data) == `{"id":"s"}`:
			acked = true
		default:
			t.Fatalf("subscribe meeting the announcement: %s %s; want subscribed for %s and the ack", ev.Type, ev.Data, group)
		}
	}
	if !announced.Load() {
		t.Fatal("the subscribe joined without the hook")
	}
	// In the group, once: the next application arrives, at offset 1.
	rg.apply(q, "ann")
	if ev := c.NextEvent(rigWait); ev.Type != platform.EventNewApplication || ev.Group != group || ev.Offset != 1 {
		t.Fatalf("after the subscribe: %s %s of %q at %d; want new_application of %s at 1", ev.Type, ev.Data, ev.Group, ev.Offset, group)
	}
}
