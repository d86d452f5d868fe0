package consumers

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/money"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/layer"
	"github.com/heraldhq/herald/internal/store"
)

// A burst of handshakes that all miss the snapshot cache reads the
// database once, not once each; a draft is still read per viewer and only
// its owner gets it.
func TestSnapshotBurstReadsOnce(t *testing.T) {
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
	// One read, or two if the race detector slowed the burst past the TTL.
	if loads := c.snaps.loads.Load(); loads > 2 {
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
