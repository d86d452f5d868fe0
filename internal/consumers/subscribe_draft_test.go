package consumers_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/testenv"
)

// A viewer's v2 subscribe to a public campaign's room checks that it may
// watch it, then joins. Made a draft in between, the campaign's room
// starts over as the draft's before the viewer is in it to be closed by
// the change, and its join cannot replay across the new epoch: the
// subscribe is refused as not found, the viewer is not left in the room,
// and the draft's events never reach it; the connection goes on.
func TestSubscribeRacingMadeDraftIsRefused(t *testing.T) {
	rg := newRig(t, 100)
	ctx := context.Background()
	id, group := rg.campaign()
	rg.mustComment(id, 1) // the room has an epoch, found public

	viewer, err := rg.p.Register(ctx, platform.Registration{Username: "viewer", Password: "a long passphrase"})
	if err != nil {
		t.Fatal(err)
	}
	draft := platform.CampaignDraft
	var hooked atomic.Bool
	rg.setHooks(func(g string) {
		if g != group || !hooked.CompareAndSwap(false, true) {
			return
		}
		_, was, err := rg.hub.Layer().Position(ctx, group)
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := rg.p.UpdateCampaign(ctx, rg.owner, id, platform.CampaignInput{Status: &draft}); err != nil {
			t.Error(err)
			return
		}
		// Until the reset is published: the room's epoch changes.
		for deadline := time.Now().Add(rigWait); ; time.Sleep(2 * time.Millisecond) {
			_, ep, err := rg.hub.Layer().Position(ctx, group)
			if err != nil || ep != was || time.Now().After(deadline) {
				if err != nil || ep == was {
					t.Errorf("the room's epoch is still %s (%v)", was, err)
				}
				return
			}
		}
	}, nil)

	tok, err := rg.tokens.Access(viewer.ID)
	if err != nil {
		t.Fatal(err)
	}
	c := testenv.MustDialWS(t, rg.ws+"/ws/applications/?v=2&token="+tok, nil)
	c.Ignore = []string{"presence"}
	told(t, c.NextEvent(rigWait), platform.UserGroup(viewer.ID))
	c.Send(map[string]any{"type": "subscribe", "id": "s", "data": map[string]any{"group": group}})
	ev := c.NextEvent(rigWait)
	var refusal struct{ Code, ID string }
	if ev.Type != "error" || json.Unmarshal(ev.Data, &refusal) != nil || refusal.Code != "not_found" || refusal.ID != "s" {
		t.Fatalf("subscribe to a campaign made a draft meanwhile: %s %s; want error not_found for s", ev.Type, ev.Data)
	}
	if !hooked.Load() {
		t.Fatal("the subscribe joined without the hook")
	}
	// The refused join leaves the group (after its reply).
	member := func() bool {
		for _, m := range rg.hub.Members(group) {
			if m.UserID() == viewer.ID {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(rigWait); member(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the viewer is still a member of %s after it was made a draft", group)
		}
	}
	// The owner writes to the draft; then the viewer's own group gets an
	// event, which must be the next thing the viewer receives.
	rg.mustComment(id, 1)
	if _, err := rg.hub.Publish(ctx, platform.UserGroup(viewer.ID), "application_update", []byte(`{"application_id":1}`)); err != nil {
		t.Fatal(err)
	}
	if ev := c.NextEvent(rigWait); ev.Type != "application_update" {
		t.Fatalf("after the draft's comment the viewer got %s %s; want only its own group's event", ev.Type, ev.Data)
	}
}
