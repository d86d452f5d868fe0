package consumers

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/money"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/layer"
	"github.com/heraldhq/herald/internal/store"
)

// snapshotPlatform is a platform on a fresh SQLite database with a user,
// and a hub on the in-memory layer (no relay: nothing is published).
func snapshotPlatform(t *testing.T) (*platform.Platform, *realtime.Hub, platform.User) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "snap.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := platform.New(db, platform.Options{Hasher: auth.Hasher{Params: auth.PasswordParams{Memory: 64, Time: 1, Threads: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	hub, err := realtime.NewHub(realtime.HubOptions{Logger: slog.New(slog.DiscardHandler)}, func(d func(layer.Message)) (layer.Layer, error) {
		return layer.NewMemory(d, layer.MemoryOptions{}), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	owner, err := p.Register(ctx, platform.Registration{Username: "owner", Password: "a long passphrase"})
	if err != nil {
		t.Fatal(err)
	}
	return p, hub, owner
}

// A burst of handshakes that all miss the snapshot cache reads the
// database once, not once each; a draft is still read per viewer and only
// its owner gets it.
func TestSnapshotBurstReadsOnce(t *testing.T) {
	ctx := context.Background()
	p, hub, owner := snapshotPlatform(t)
	title, active, draft, goal := "Burst", "active", "draft", money.Cents(100_00)
	pub, err := p.CreateCampaign(ctx, owner.ID, platform.CampaignInput{Title: &title, Status: &active, GoalAmount: &goal})
	if err != nil {
		t.Fatal(err)
	}
	c := New(Config{Platform: p, Hub: hub, Logger: slog.New(slog.DiscardHandler)})
	at, err := c.positionNow(ctx, platform.CampaignGroup(pub.ID))
	if err != nil {
		t.Fatal(err)
	}

	const n = 64
	var wg sync.WaitGroup
	start := make(chan struct{})
	got := make([]snapshot, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got[i], errs[i] = c.snapshot(ctx, int64(i%3), pub.ID, at)
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || string(got[i].json) != string(got[0].json) {
			t.Fatalf("handshake %d: %v, %d bytes", i, errs[i], len(got[i].json))
		}
	}
	if loads := c.snaps.loads.Load(); loads != 1 {
		t.Errorf("%d concurrent handshakes read the database %d times", n, loads)
	}

	d, err := p.CreateCampaign(ctx, owner.ID, platform.CampaignInput{Title: &title, Status: &draft, GoalAmount: &goal})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.snapshot(ctx, 0, d.ID, at); platform.KindOf(err) != platform.KindNotFound {
		t.Errorf("anonymous viewer of a draft: %v; want not found", err)
	}
	if s, err := c.snapshot(ctx, owner.ID, d.ID, at); err != nil || len(s.json) == 0 {
		t.Errorf("owner of a draft: %v", err)
	}
}

// A cached campaign_data lasts until the room moves on, however long that
// takes, and no longer: once this process sees an event of the room after
// the snapshot's position (an edit of the campaign's own title too), the
// snapshot is read again, even for a handshake that found the room where
// it was; an event from before it (one replayed to a joining connection)
// leaves it be.
func TestSnapshotRetiredByTheRoomsEvents(t *testing.T) {
	ctx := context.Background()
	p, hub, owner := snapshotPlatform(t)
	title, active, goal := "Before", "active", money.Cents(100_00)
	cp, err := p.CreateCampaign(ctx, owner.ID, platform.CampaignInput{Title: &title, Status: &active, GoalAmount: &goal})
	if err != nil {
		t.Fatal(err)
	}
	c := New(Config{Platform: p, Hub: hub, Logger: slog.New(slog.DiscardHandler)})
	group := platform.CampaignGroup(cp.ID)
	get := func(at position, wantTitle string, wantLoads uint64) {
		t.Helper()
		s, err := c.snapshot(ctx, 0, cp.ID, at)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(s.json), `"title":"`+wantTitle+`"`) {
			t.Fatalf("snapshot at %v: %s; want the title %q", at, s.json, wantTitle)
		}
		if loads := c.snaps.loads.Load(); loads != wantLoads {
			t.Fatalf("snapshot at %v: %d reads of the database; want %d", at, loads, wantLoads)
		}
	}
	start := position{}
	get(start, "Before", 1)
	get(start, "Before", 1)

	renamed := "After"
	if _, err := p.UpdateCampaign(ctx, owner.ID, cp.ID, platform.CampaignInput{Title: &renamed}); err != nil {
		t.Fatal(err)
	}
	// Unseen, the edit's event leaves the snapshot at the room's position
	// (the connection joining there gets the event after it)…
	get(start, "Before", 1)
	// …and once seen, it is read again.
	ev := layer.Message{Group: group, Type: platform.EventCampaign, Data: []byte(`{"status":"active"}`), Offset: 1, Epoch: "e1"}
	c.Observe(ev)
	get(start, "After", 2)
	next := position{Offset: 1, Epoch: "e1"}
	get(next, "After", 3)
	c.Observe(ev) // replayed
	get(next, "After", 3)
	c.Observe(layer.Message{Group: platform.CampaignGroup(cp.ID + 1), Type: platform.EventComment, Data: []byte(`{"id":1}`), Offset: 2, Epoch: "e1"})
	get(next, "After", 3)
	c.Observe(layer.Message{Group: group, Type: platform.EventComment, Data: []byte(`{"id":1}`), Offset: 2, Epoch: "e1"})
	get(next, "After", 4)
}
