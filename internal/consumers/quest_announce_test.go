package consumers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/testenv"
)

// A quest announced (quest_created on its creator's control group) while
// the creator's connection still joins its groups at connect is left to
// that connect: the client resumes the quest from its own position, and is
// neither sent what it has again by a join from the quest's first event nor
// closed when its own join finds the quest joined.
func TestQuestAnnouncedWhileConnectingIsJoinedOnce(t *testing.T) {
	rg := newRig(t, 100)
	ctx := context.Background()
	q, group := rg.quest()
	rg.apply(q, "ann")
	rg.apply(q, "bob")
	// The client has both applications: it resumes from offset 2.
	var epoch string
	for deadline := time.Now().Add(rigWait); ; {
		off, ep, err := rg.hub.Layer().Position(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		if off == 2 {
			epoch = ep
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s at offset %d; want 2 once both applications are published", group, off)
		}
		time.Sleep(5 * time.Millisecond)
	}

	// Just before the connection joins the quest, the quest is announced,
	// and the announcement handled.
	announced := rg.announceBeforeJoining(q)

	tok, err := rg.tokens.Access(rg.owner)
	if err != nil {
		t.Fatal(err)
	}
	resume := url.QueryEscape(fmt.Sprintf("%s:%s:2", group, epoch))
	c := testenv.MustDialWS(t, rg.ws+"/ws/applications/?v=2&token="+tok+"&resume="+resume, nil)
	c.Ignore = []string{"presence"}
	told(t, c.NextEvent(rigWait), platform.UserGroup(rg.owner))
	if recovered, at := told(t, c.NextEvent(rigWait), group); !recovered || at.Offset != 2 || at.Epoch != epoch {
		t.Fatalf("the quest told recovered=%v at %v; want true at 2 of %s", recovered, at, epoch)
	}
	if !announced.Load() {
		t.Fatal("the connection joined the quest without the hook")
	}
	// The next application is the next event: nothing replayed, no close.
	rg.apply(q, "cat")
	ev := c.NextEvent(rigWait)
	if ev.Type != platform.EventNewApplication || ev.Group != group || ev.Offset != 3 {
		t.Fatalf("after the resume: %s %s of %q at %d; want new_application of %s at 3", ev.Type, ev.Data, ev.Group, ev.Offset, group)
	}
}

// announceBeforeJoining has the next join of quest id's group wait until
// the quest was announced (quest_created on its creator's control group,
// as the relay delivers it) and the announcement handled; what it returns
// tells whether that happened.
func (rg *rig) announceBeforeJoining(id int64) *atomic.Bool {
	t, group := rg.t, platform.QuestGroup(id)
	handled := make(chan struct{})
	rg.mu.Lock()
	rg.announced = func(q int64) {
		if q == id {
			close(handled)
		}
	}
	rg.mu.Unlock()
	var announced atomic.Bool
	rg.setHooks(func(g string) {
		if g != group || !announced.CompareAndSwap(false, true) {
			return
		}
		ann, _ := json.Marshal(map[string]int64{"quest_id": id})
		if _, err := rg.hub.Publish(context.Background(), platform.ControlGroup(rg.owner), platform.EventQuestCreated, ann); err != nil {
			t.Error(err)
			return
		}
		select {
		case <-handled:
		case <-time.After(rigWait):
			t.Error("the announcement was not handled")
		}
	}, nil)
	return &announced
}

// quest creates a quest of the rig's owner and returns its id and group.
func (rg *rig) quest() (int64, string) {
	rg.t.Helper()
	title := "Find the cat"
	q, err := rg.p.CreateQuest(context.Background(), rg.owner, platform.QuestInput{Title: &title})
	if err != nil {
		rg.t.Fatal(err)
	}
	return q.ID, platform.QuestGroup(q.ID)
}

// apply registers user name and has it apply to quest q.
func (rg *rig) apply(q int64, name string) {
	rg.t.Helper()
	ctx := context.Background()
	u, err := rg.p.Register(ctx, platform.Registration{Username: name, Password: "a long passphrase"})
	if err != nil {
		rg.t.Fatal(err)
	}
	if _, err := rg.p.Apply(ctx, u.ID, q, platform.ApplicationInput{Message: "me"}); err != nil {
		rg.t.Fatal(err)
	}
}
