package relay_test

import (
	"context"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/money"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/relay"
	"github.com/heraldhq/herald/internal/testenv"
)

// backlogReport is one call of Options.Backlog.
type backlogReport struct {
	pending int
	oldest  time.Time
}

// Each round reports what the outbox holds unpublished: once read (a full
// batch counts the rest) and once published, with the commit time of the
// oldest; an empty outbox is 0 with no time. A round that fails to
// publish leaves its events in the report.
func TestRoundReportsBacklog(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		a := newApp(t, dsn)
		user, campaigns := setupQuiet(t, a, 1)
		ctx := context.Background()
		db := a.Platform().DB()
		for i := 1; i <= 5; i++ {
			amount := money.Cents(i)
			if _, err := a.Platform().Contribute(ctx, user, campaigns[0], platform.ContributionInput{Amount: &amount}); err != nil {
				t.Fatal(err)
			}
		}
		pending, err := a.Platform().PendingEvents(ctx, 100)
		if err != nil || len(pending) != 5 {
			t.Fatalf("%d pending events, %v; want 5", len(pending), err)
		}
		var created []time.Time
		if err := func() error {
			rows, err := db.QueryContext(ctx, "SELECT created_at FROM outbox WHERE NOT published ORDER BY id")
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var c time.Time
				if err := rows.Scan(&c); err != nil {
					return err
				}
				created = append(created, c)
			}
			return rows.Err()
		}(); err != nil {
			t.Fatal(err)
		}
		var got []backlogReport
		pub := &batchRecorder{failAt: 1}
		r := relay.New(db, pub, relay.Options{Batch: 3, LockWait: time.Second,
			Backlog: func(n int, oldest time.Time) { got = append(got, backlogReport{n, oldest}) }})
		check := func(step string, want ...backlogReport) {
			t.Helper()
			if len(got) != len(want) {
				t.Fatalf("%s: reports %+v, want %+v", step, got, want)
			}
			for i := range want {
				if got[i].pending != want[i].pending || !got[i].oldest.Equal(want[i].oldest) {
					t.Fatalf("%s: report %d is %d pending, oldest %v; want %d, %v", step, i, got[i].pending, got[i].oldest, want[i].pending, want[i].oldest)
				}
			}
			got = got[:0]
		}
		// A full batch of 3 (of 5) is read; 1 goes out, the 2nd fails.
		if n, err := r.Round(ctx); n != 1 || err == nil {
			t.Fatalf("round: %d, %v; want 1 and the publisher's error", n, err)
		}
		check("first round", backlogReport{5, created[0]}, backlogReport{4, created[1]})
		// The same 3 again, all published: 2 wait, unread, none committed
		// before the last read.
		pub.failAt = -1
		if n, err := r.Round(ctx); n != 3 || err != nil {
			t.Fatalf("second round: %d, %v", n, err)
		}
		check("second round", backlogReport{4, created[1]}, backlogReport{1, created[3]})
		if n, err := r.Round(ctx); n != 1 || err != nil {
			t.Fatalf("third round: %d, %v", n, err)
		}
		check("third round", backlogReport{1, created[4]}, backlogReport{0, time.Time{}})
		if n, err := r.Round(ctx); n != 0 || err != nil {
			t.Fatalf("round of an empty outbox: %d, %v", n, err)
		}
		check("empty outbox", backlogReport{0, time.Time{}}, backlogReport{0, time.Time{}})
	})
}
