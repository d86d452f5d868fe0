package api

import (
	"testing"

	"github.com/heraldhq/herald/internal/platform"
)

// A position the relay tells before the publish waits for it is not lost:
// the publish finds it when it starts waiting.
func TestPositionToldBeforeTheWait(t *testing.T) {
	var ws positionWaiters
	defer ws.begin()()
	early := platform.Position{Group: "campaign_1", Epoch: "e", Offset: 7}
	ws.numbered(41, early)
	w := ws.add([]int64{41, 42})
	later := platform.Position{Group: "campaign_1", Epoch: "e", Offset: 8}
	ws.numbered(42, later)
	got := ws.take(w)
	if len(got) != 2 || got[41] != early || got[42] != later {
		t.Fatalf("took %v; want 41 at 7 and 42 at 8", got)
	}
	ws.remove([]int64{41, 42}, w)
	if len(ws.byID) != 0 || len(ws.recent) != 0 {
		t.Fatalf("left %d waiting and %d recent; want none", len(ws.byID), len(ws.recent))
	}
}

// Positions nobody waits for are kept in a ring of recentNumbered: the
// oldest goes when it is full, so its memory is bounded.
func TestRecentPositionsAreBounded(t *testing.T) {
	var ws positionWaiters
	defer ws.begin()()
	for id := range int64(3 * recentNumbered) {
		ws.numbered(id+1, platform.Position{Group: "user_1", Epoch: "e", Offset: id + 1})
	}
	if len(ws.recent) != recentNumbered {
		t.Fatalf("%d recent positions kept; want %d", len(ws.recent), recentNumbered)
	}
	w := ws.add([]int64{1, 3 * recentNumbered})
	got := ws.take(w)
	if _, ok := got[1]; ok || got[3*recentNumbered].Offset != 3*recentNumbered {
		t.Fatalf("took %v; want only the newest (the oldest pushed out)", got)
	}
	if ws.byID[1] != w {
		t.Fatal("a position pushed out of the ring is not waited for")
	}
}

// While no publish is under way, what the relay numbers is not kept: the
// relay tells every event, and the hot path pays one atomic load.
func TestNothingKeptWithoutAPublish(t *testing.T) {
	var ws positionWaiters
	ws.numbered(1, platform.Position{Group: "user_1", Epoch: "e", Offset: 1})
	end := ws.begin()
	ws.numbered(2, platform.Position{Group: "user_1", Epoch: "e", Offset: 2})
	end()
	ws.numbered(3, platform.Position{Group: "user_1", Epoch: "e", Offset: 3})
	if _, ok := ws.recent[2]; len(ws.recent) != 1 || !ok {
		t.Fatalf("kept %v; want only what was told during the publish", ws.recent)
	}
}
