package relay_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime/layer"
	"github.com/heraldhq/herald/internal/relay"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/testenv"
)

// partLockNS is the first key of the partitions' advisory locks.
const partLockNS = 0x68657270

// holdPartition takes partition p's lock in a transaction of its own, as
// another process's relay mid-round; it is released when the transaction
// is rolled back or the test ends.
func holdPartition(t *testing.T, db *store.DB, p int) *sql.Tx {
	t.Helper()
	held, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = held.Rollback() })
	if _, err := held.ExecContext(context.Background(), "SELECT pg_advisory_xact_lock($1, $2)", partLockNS, p); err != nil {
		t.Fatal(err)
	}
	return held
}

// groupsInTwoPartitions returns two campaign groups whose events go to
// different partitions of parts.
func groupsInTwoPartitions(parts int) (a, b string) {
	a = "campaign_1"
	for i := 2; ; i++ {
		b = "campaign_" + strconv.Itoa(i)
		if store.OutboxPartition(b, parts) != store.OutboxPartition(a, parts) {
			return a, b
		}
	}
}

// newPlatform is a platform on db whose writers split the outbox into
// parts partitions, telling committed of each commit's partitions.
func newPlatform(t *testing.T, db *store.DB, parts int, committed func(uint64)) *platform.Platform {
	t.Helper()
	p, err := platform.New(db, platform.Options{Hasher: auth.Hasher{Params: testenv.CheapPasswords}, Parts: parts, Committed: committed})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A round publishes the partitions no other relay holds without waiting
// for the one another relay holds, and that one once it is free.
func TestRoundSkipsPartitionsHeldElsewhere(t *testing.T) {
	a := newApp(t, testenv.Postgres(t))
	ctx := context.Background()
	db := a.Platform().DB()
	ga, gb := groupsInTwoPartitions(store.DefaultOutboxPartitions)
	p := newPlatform(t, db, store.DefaultOutboxPartitions, nil)
	for _, g := range []string{ga, gb, ga} {
		if err := p.RecordExternal(ctx, g, "t", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	held := holdPartition(t, db, store.OutboxPartition(ga, store.DefaultOutboxPartitions))
	pub := &groupRecorder{}
	// A round that waited for the held partition would give up after
	// LockWait with nothing published.
	r := relay.New(db, pub, relay.Options{LockWait: time.Minute, Logger: slog.New(slog.DiscardHandler)})
	if n, err := r.Round(ctx); n != 1 || err != nil {
		t.Fatalf("round with %s's partition held: %d published, %v; want %s's 1", ga, n, err, gb)
	}
	if got := pub.offsets(gb); len(got) != 1 || len(pub.offsets(ga)) != 0 {
		t.Fatalf("published %v of %s, %v of %s", got, gb, pub.offsets(ga), ga)
	}
	// Only the held partition waits now: a round waits for it, at most
	// LockWait.
	r = relay.New(db, pub, relay.Options{LockWait: 200 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if n, err := r.Round(ctx); n != 0 || err == nil {
		t.Fatalf("round with only the held partition waiting: %d published, %v; want the wait to give up", n, err)
	}
	if err := held.Rollback(); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Round(ctx); n != 2 || err != nil {
		t.Fatalf("round once the partition is free: %d, %v", n, err)
	}
	if got := pub.offsets(ga); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("%s published at %v; want 1, 2", ga, got)
	}
}

// groupRecorder is a Publisher that keeps, per group, what it was given in
// the order given; relays of several processes may share it.
type groupRecorder struct {
	mu      sync.Mutex
	byGroup map[string][]layer.Message
	n       int
}

func (g *groupRecorder) PublishBatch(_ context.Context, msgs []layer.Message, _ []string) ([]uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.byGroup == nil {
		g.byGroup = map[string][]layer.Message{}
	}
	offs := make([]uint64, len(msgs))
	for i, m := range msgs {
		g.byGroup[m.Group] = append(g.byGroup[m.Group], m)
		offs[i] = m.Offset
	}
	g.n += len(msgs)
	return offs, nil
}

func (g *groupRecorder) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

func (g *groupRecorder) offsets(group string) []uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []uint64
	for _, m := range g.byGroup[group] {
		out = append(out, m.Offset)
	}
	return out
}

// Relays of three processes publish at once while writers of all three
// write to many groups, each group's writes one after another: every
// event is published once, each group's in the order written, numbered
// 1, 2, 3… in one epoch. With "count changed", one process splits the
// outbox into 4 partitions and the others into 16 (a rolling change of
// --outbox-partitions): rows of both counts wait side by side, and the
// relays drain them under the global lock without breaking either.
func TestConcurrentRelaysPublishEachEventOnceInOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		parts []int // per process
	}{
		{"same count", []int{16, 16, 16}},
		{"count changed", []int{16, 16, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newApp(t, testenv.Postgres(t))
			db := a.Platform().DB()
			ctx, cancel := context.WithCancel(context.Background())
			pub := &groupRecorder{}
			var relays []*relay.Relay
			var plats []*platform.Platform
			var panicked atomic.Int64
			var logs testenv.SyncBuffer
			defer func() {
				if t.Failed() {
					t.Logf("the relays' logs:\n%s", logs.String())
				}
			}()
			for i, parts := range tc.parts {
				r := relay.New(db, pub, relay.Options{Partitions: parts, Batch: 16, Poll: 20 * time.Millisecond,
					Logger:  slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("relay", i),
					Backlog: func(int, time.Time) {}, OnPanic: func(string) { panicked.Add(1) }})
				relays = append(relays, r)
				plats = append(plats, newPlatform(t, db, parts, r.NotifyParts))
			}
			var running sync.WaitGroup
			for _, r := range relays {
				running.Add(1)
				go func() {
					defer running.Done()
					if err := r.Run(ctx); err != nil {
						t.Error(err)
					}
				}()
			}
			defer func() { cancel(); running.Wait() }()

			const writers, groups, each = 6, 30, 20
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for s := range each {
						for g := w; g < groups; g += writers {
							// Each write through the next process.
							p := plats[(w+s+g)%len(plats)]
							data := fmt.Sprintf(`{"s":%d}`, s)
							if err := p.RecordExternal(context.Background(), "campaign_"+strconv.Itoa(g+1), "t", []byte(data)); err != nil {
								t.Error(err)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			deadline := time.Now().Add(30 * time.Second)
			for pub.count() < groups*each {
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d events published after 30s", pub.count(), groups*each)
				}
				time.Sleep(10 * time.Millisecond)
			}
			// With the relays stopped and no row left unpublished, nothing
			// can be published again: the count is final.
			cancel()
			running.Wait()
			var unpublished int
			if err := db.QueryRowContext(context.Background(), "SELECT count(*) FROM outbox WHERE NOT published").Scan(&unpublished); err != nil {
				t.Fatal(err)
			}
			if unpublished != 0 {
				t.Errorf("%d outbox rows left unpublished after every event was", unpublished)
			}
			if n := pub.count(); n != groups*each {
				t.Errorf("%d events published; want %d, each once", n, groups*each)
			}
			for g := range groups {
				group := "campaign_" + strconv.Itoa(g+1)
				pub.mu.Lock()
				msgs := pub.byGroup[group]
				pub.mu.Unlock()
				if len(msgs) != each {
					var seen []string
					for _, m := range msgs {
						seen = append(seen, fmt.Sprintf("%s@%d:%s", m.Epoch[:4], m.Offset, m.Data))
					}
					t.Errorf("%s: %d events published; want %d: %v", group, len(msgs), each, seen)
					continue
				}
				for i, m := range msgs {
					var d struct{ S int }
					if err := json.Unmarshal(m.Data, &d); err != nil {
						t.Fatal(err)
					}
					if m.Offset != uint64(i+1) || m.Epoch != msgs[0].Epoch || d.S != i {
						t.Errorf("%s: event %d published as write %d at offset %d of %s; want write %d at %d of %s",
							group, i, d.S, m.Offset, m.Epoch, i, i+1, msgs[0].Epoch)
						break
					}
				}
			}
			if n := panicked.Load(); n != 0 {
				t.Errorf("%d rounds panicked", n)
			}
			var waiting int
			if err := db.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM outbox WHERE NOT published").Scan(&waiting); err != nil {
				t.Fatal(err)
			}
			if waiting != 0 {
				t.Errorf("%d events left unpublished", waiting)
			}
		})
	}
}

// Rows of an older herald (no partition: parts 0) and of another count
// are drained first, in id order, then the relay publishes by partition
// again.
func TestOtherCountsAreDrainedFirst(t *testing.T) {
	a := newApp(t, testenv.Postgres(t))
	ctx := context.Background()
	db := a.Platform().DB()
	if _, err := db.ExecContext(ctx, "DELETE FROM outbox"); err != nil {
		t.Fatal(err)
	}
	ga, gb := groupsInTwoPartitions(8)
	old, now := newPlatform(t, db, 4, nil), newPlatform(t, db, 8, nil)
	write := func(p *platform.Platform, g string, s int) {
		t.Helper()
		if err := p.RecordExternal(ctx, g, "t", []byte(fmt.Sprintf(`{"s":%d}`, s))); err != nil {
			t.Fatal(err)
		}
	}
	write(old, ga, 0)
	write(old, gb, 0)
	if _, err := db.ExecContext(ctx, "UPDATE outbox SET parts = 0, part = 0 WHERE grp = $1", gb); err != nil { // an older herald's row
		t.Fatal(err)
	}
	write(now, ga, 1)
	write(now, gb, 1)
	// The other count's rows hold the global lock's holders back: with a
	// partition held by another relay, the drain still goes (it needs no
	// partition lock) and publishes everything in id order.
	holdPartition(t, db, store.OutboxPartition(ga, 8))
	pub := &groupRecorder{}
	r := relay.New(db, pub, relay.Options{Partitions: 8, LockWait: time.Minute, Logger: slog.New(slog.DiscardHandler)})
	if n, err := r.Round(ctx); n != 4 || err != nil {
		t.Fatalf("draining round: %d published, %v; want all 4", n, err)
	}
	for _, g := range []string{ga, gb} {
		if got := pub.offsets(g); len(got) != 2 || got[0] != 1 || got[1] != 2 {
			t.Errorf("%s published at %v; want 1, 2", g, got)
		}
	}
	// Drained (the round read less than a batch): the next round goes by
	// partition, so a held partition waits while the other is published.
	write(now, ga, 2)
	write(now, gb, 2)
	if n, err := r.Round(ctx); n != 1 || err != nil {
		t.Fatalf("round after the drain with %s's partition held: %d, %v; want %s's event alone", ga, n, err, gb)
	}
}

// A drain round waits for the global lock at most LockWait, as a round of
// partitions waits for its partition, and publishes once it is free.
func TestDrainWaitsForTheGlobalLockAtMostLockWait(t *testing.T) {
	a := newApp(t, testenv.Postgres(t))
	ctx := context.Background()
	db := a.Platform().DB()
	if err := newPlatform(t, db, 4, nil).RecordExternal(ctx, "campaign_1", "t", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	held := holdRelayLock(t, db) // an older herald's relay, mid-round
	pub := &groupRecorder{}
	r := relay.New(db, pub, relay.Options{Partitions: 8, LockWait: 200 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	start := time.Now()
	if n, err := r.Round(ctx); n != 0 || err == nil {
		t.Fatalf("drain round under a held global lock: %d published, %v; want the wait to give up", n, err)
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Fatalf("gave up after %v, before LockWait", waited)
	}
	if err := held.Rollback(); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Round(ctx); n != 1 || err != nil {
		t.Fatalf("drain round once the lock is free: %d, %v", n, err)
	}
}
