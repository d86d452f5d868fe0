package relay_test

import (
	"context"
	"database/sql"
	"log/slog"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/money"
	"github.com/heraldhq/herald/internal/platform"
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
// window: a group's latest HistorySize (pruned every few hundred), none
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
		// Pruned when offset 512 was published: everything up to 212.
		if lo, hi, n, waiting := keptOffsets(t, db.DB, busy); lo != 213 || hi != 520 || n != 308 || waiting != 0 {
			t.Errorf("busy group keeps offsets %d..%d (%d events, %d waiting); want 213..520, all published", lo, hi, n, waiting)
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
