package consumers

import (
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/layer"
)

// What the consumers remember from an event or a position outlives it by
// far. A layer may hand out its strings as substrings of the whole payload
// it read (Redis did), so nothing remembered may share memory with them:
// these tests feed many large buffers and check how much of them stays
// alive.

const (
	retainEvents = 2000
	retainSize   = 8 << 10
)

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// checkGrowth fails unless the live heap grew by far less than the
// buffers fed in: keeping even a tenth of them alive would be a leak.
func checkGrowth(t *testing.T, before uint64, what string) {
	t.Helper()
	after := liveHeap()
	var grown uint64
	if after > before {
		grown = after - before
	}
	if limit := uint64(retainEvents * retainSize / 10); grown > limit {
		t.Fatalf("the live heap grew by %d KiB after %d %s of %d KiB each (limit %d KiB): what is remembered keeps the buffers alive",
			grown>>10, retainEvents, what, retainSize>>10, limit>>10)
	}
}

// retainEpoch is the epoch of every event payload makes.
const retainEpoch = "k3x9.1"

// ev is an event as a layer may hand it out: its group, epoch and type are
// substrings of one buffer, "group\nepoch\ntype\ndata", that holds its data
// too.
type ev struct{ group, epoch, typ, data string }

// payload returns comment id of campaign as ev.
func payload(campaign, id int) ev {
	buf := platform.CampaignGroup(int64(campaign)) + "\n" + retainEpoch + "\n" + platform.EventComment + "\n" +
		`{"id":` + strconv.Itoa(id) + `,"content":"` + strings.Repeat("x", retainSize) + `"}`
	var e ev
	e.group, buf, _ = strings.Cut(buf, "\n")
	e.epoch, buf, _ = strings.Cut(buf, "\n")
	e.typ, e.data, _ = strings.Cut(buf, "\n")
	return e
}

// Observe remembers the version of every campaign object it sees (for
// announces), up to 100,000 of them: an entry must not keep its event's
// payload alive.
func TestObserveKeepsNoPayloadAlive(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	hub, err := realtime.NewHub(realtime.HubOptions{Logger: log}, func(deliver func(layer.Message)) (layer.Layer, error) {
		return layer.NewMemory(deliver, layer.MemoryOptions{}), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	c := New(Config{Hub: hub, Logger: log})
	before := liveHeap()
	// Each object is seen twice (published, then edited): the second time
	// its entry is there already.
	const objects = retainEvents / 2
	for i := range retainEvents {
		e := payload(1+i%50, 1+i%objects)
		if !c.Observe(layer.Message{Group: e.group, Type: e.typ, Data: []byte(e.data), Offset: uint64(1 + i), Epoch: e.epoch}) {
			t.Fatalf("a %s event was kept from clients", e.typ)
		}
	}
	checkGrowth(t, before, "events")
	// The versions are remembered all the same.
	for _, id := range []int{1, objects} {
		e := payload(1+(id-1)%50, id)
		if !c.seen.has(platform.CampaignGroup(int64(1+(id-1)%50)), platform.EventComment, int64(id), []byte(e.data)) {
			t.Fatalf("the version of comment %d is not remembered", id)
		}
	}
}

// The epoch a campaign room was found public in is remembered per room, up
// to 100,000 of them; it comes from the layer (the position of a
// subscription: the epoch of the last event it delivered).
func TestPublicEpochsKeepNoPayloadAlive(t *testing.T) {
	var p publicEpochs
	before := liveHeap()
	for i := range retainEvents {
		e := payload(1+i, 1)
		p.add(e.group, e.epoch)
	}
	checkGrowth(t, before, "epochs")
	if !p.has(platform.CampaignGroup(retainEvents), retainEpoch) {
		t.Fatal("the last room's epoch is not remembered")
	}
}

// A campaign's snapshot is cached with the room's position, up to 10,000
// of them; the position comes from the layer.
func TestSnapshotCacheKeepsNoPayloadAlive(t *testing.T) {
	var s snapshots
	before := liveHeap()
	for i := range retainEvents {
		e := payload(1+i, 1)
		s.put(int64(1+i), snapshotEntry{at: position{Offset: 1, Epoch: e.epoch}})
	}
	checkGrowth(t, before, "positions")
	s.mu.Lock()
	e, ok := s.m[retainEvents]
	s.mu.Unlock()
	if !ok || e.at != (position{Offset: 1, Epoch: retainEpoch}) {
		t.Fatalf("the last campaign's position is cached as %+v (%t)", e.at, ok)
	}
}
