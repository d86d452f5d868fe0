package relay_test

import (
	"context"
	"database/sql"
	"log/slog"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/money"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime/layer"
	"github.com/heraldhq/herald/internal/relay"
	"github.com/heraldhq/herald/internal/testenv"
)

// keptOffsets returns the lowest and highest offset the outbox keeps of
// group, how many it keeps and how many of them wait to be published.
func keptOffsets(t *testing.T, db *sql.DB, group string) (lo, hi, n, waiting int64) {
	t.Helper()
	err := db.QueryRow("SELECT COALESCE(MIN(off), 0), COALESCE(MAX(off), 0), COUNT(*), COALESCE(SUM(CASE WHEN published THEN 0 ELSE 1 END), 0) FROM outbox WHERE grp = $1", group).
		Scan(&lo, &hi, &n, &waiting)
	if err != nil {
		t.Fatal(err)
	}
	return lo, hi, n, waiting
}

// Published events stay in the outbox as the event log for the history
// window: a group's latest HistorySize (pruned a quarter at a time), none
// older than HistoryAge; events not yet published are never pruned.
func TestPublishedEventsAreKeptForTheWindow(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		a := newApp(t, dsn)
		user, campaigns := setup(t, a, 2)
		ctx := context.Background()
		p := a.Platform()
		db := p.DB()
		busy, quiet := platform.CampaignGroup(campaigns[0]), platform.CampaignGroup(campaigns[1])
		for i := 0; i < 520; i++ {
			amount := money.Cents(1)
			if _, err := p.Contribute(ctx, user, campaigns[0], platform.ContributionInput{Amount: &amount}); err != nil {
				t.Fatal(err)
			}
		}
		amount := money.Cents(1)
		if _, err := p.Contribute(ctx, user, campaigns[1], platform.ContributionInput{Amount: &amount}); err != nil {
			t.Fatal(err)
		}
		r := relay.New(db, &batchRecorder{failAt: -1}, relay.Options{HistorySize: 300, HistoryAge: time.Hour, Logger: slog.New(slog.DiscardHandler)})
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		// Pruned a quarter of the window at a time, last when offset 450
		// was published: everything up to 150.
		if lo, hi, n, waiting := keptOffsets(t, db.DB, busy); lo != 151 || hi != 520 || n != 370 || waiting != 0 {
			t.Errorf("busy group keeps offsets %d..%d (%d events, %d waiting); want 151..520, all published", lo, hi, n, waiting)
		}
		if _, _, n, _ := keptOffsets(t, db.DB, quiet); n != 1 {
			t.Errorf("quiet group keeps %d events; want its one", n)
		}

		// Past HistoryAge, published events go; waiting ones stay.
		if _, err := p.Contribute(ctx, user, campaigns[1], platform.ContributionInput{Amount: &amount}); err != nil {
			t.Fatal(err)
		}
		aged := relay.New(db, failing{}, relay.Options{HistoryAge: 50 * time.Millisecond, MaxBackoff: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
		if _, err := db.ExecContext(ctx, "UPDATE outbox SET created_at = $1", time.Now().Add(-time.Minute).UTC()); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- aged.Run(rctx) }()
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, _, nb, _ := keptOffsets(t, db.DB, busy)
			_, _, nq, wq := keptOffsets(t, db.DB, quiet)
			if nb == 0 && nq == 1 && wq == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after HistoryAge: busy keeps %d, quiet %d (%d waiting); want 0 and the 1 waiting", nb, nq, wq)
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		<-done
	})
}

// With a Window, each group's published events are pruned to its own
// window: by count as they are published, by age as time passes, while
// events older than any window go with the global pass.
func TestPublishedEventsAreKeptForEachGroupsWindow(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		a := newApp(t, dsn)
		user, campaigns := setup(t, a, 3)
		ctx := context.Background()
		p := a.Platform()
		db := p.DB()
		short, def, stale := platform.CampaignGroup(campaigns[0]), platform.CampaignGroup(campaigns[1]), platform.CampaignGroup(campaigns[2])
		window := func(g string) (int, time.Duration) {
			if g == short {
				return 10, time.Minute
			}
			return layer.DefaultHistorySize, layer.DefaultHistoryAge
		}
		contribute := func(campaign int64, n int) {
			t.Helper()
			amount := money.Cents(1)
			for range n {
				if _, err := p.Contribute(ctx, user, campaign, platform.ContributionInput{Amount: &amount}); err != nil {
					t.Fatal(err)
				}
			}
		}
		contribute(campaigns[0], 100)
		contribute(campaigns[1], 100)
		contribute(campaigns[2], 1)
		discard := slog.New(slog.DiscardHandler)
		r := relay.New(db, &batchRecorder{failAt: -1}, relay.Options{Window: window, Logger: discard})
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		// short is pruned two events (a quarter of its window) at a time,
		// last when offset 100 was published; the default group keeps all.
		if lo, hi, n, waiting := keptOffsets(t, db.DB, short); lo != 91 || hi != 100 || n != 10 || waiting != 0 {
			t.Errorf("short-window group keeps offsets %d..%d (%d events, %d waiting); want 91..100, all published", lo, hi, n, waiting)
		}
		if lo, hi, n, waiting := keptOffsets(t, db.DB, def); lo != 1 || hi != 100 || n != 100 || waiting != 0 {
			t.Errorf("default group keeps offsets %d..%d (%d events, %d waiting); want 1..100, all published", lo, hi, n, waiting)
		}

		// By age: short's and def's events were recorded two minutes ago,
		// outside short's window of a minute and inside def's ten; stale's
		// a day and more ago, outside any window. A new relay learns of
		// short and def as it publishes their new events; it never
		// published stale's.
		contribute(campaigns[0], 1)
		contribute(campaigns[1], 1)
		now := time.Now()
		if _, err := db.ExecContext(ctx, "UPDATE outbox SET created_at = $1 WHERE grp <> $2", now.Add(-2*time.Minute).UTC(), stale); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "UPDATE outbox SET created_at = $1 WHERE grp = $2", now.Add(-25*time.Hour).UTC(), stale); err != nil {
			t.Fatal(err)
		}
		// HistoryAge paces the pruning (a tenth of it); every group's
		// window is Window's.
		aged := relay.New(db, &batchRecorder{failAt: -1}, relay.Options{Window: window, HistoryAge: 50 * time.Millisecond, Logger: discard})
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- aged.Run(rctx) }()
		defer func() {
			cancel()
			<-done
		}()
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, _, ns, _ := keptOffsets(t, db.DB, short)
			_, _, nst, _ := keptOffsets(t, db.DB, stale)
			if ns == 0 && nst == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after short's window: short keeps %d events, stale %d; want none", ns, nst)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if lo, hi, n, waiting := keptOffsets(t, db.DB, def); lo != 1 || hi != 101 || n != 101 || waiting != 0 {
			t.Errorf("default group keeps offsets %d..%d (%d events, %d waiting); want 1..101, all published", lo, hi, n, waiting)
		}
	})
}
