package relay_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/app"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/money"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime/layer"
	"github.com/heraldhq/herald/internal/relay"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/testenv"
)

func TestMain(m *testing.M) {
	if os.Getenv("HERALD_RELAY_CHILD") == "writer" {
		os.Exit(writerChild())
	}
	os.Exit(m.Run())
}

// writerChild commits contributions the way herald does, reports each
// commit on stdout, and then hangs until it is killed: a herald process that
// dies after committing and before its relay published anything.
func writerChild() int {
	ctx := context.Background()
	db, err := store.Open(ctx, os.Getenv("HERALD_RELAY_DSN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	p, err := platform.New(db, platform.Options{Hasher: auth.Hasher{Params: testenv.CheapPasswords}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	user, _ := strconv.ParseInt(os.Getenv("HERALD_RELAY_USER"), 10, 64)
	campaign, _ := strconv.ParseInt(os.Getenv("HERALD_RELAY_CAMPAIGN"), 10, 64)
	n, _ := strconv.Atoi(os.Getenv("HERALD_RELAY_N"))
	for i := 1; i <= n; i++ {
		amount := money.Cents(i)
		c, err := p.Contribute(ctx, user, campaign, platform.ContributionInput{Amount: &amount})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("committed %d\n", c.ID)
	}
	fmt.Println("done")
	select {} // wait for SIGKILL
}

func newApp(t *testing.T, dsn string) *app.App {
	t.Helper()
	cfg := config.Config{DB: dsn, DataDir: t.TempDir(), AccessTTL: time.Hour, RefreshTTL: time.Hour, JWTSecret: strings.Repeat("r", 32)}
	a, err := app.New(context.Background(), cfg, slog.New(slog.DiscardHandler), app.WithPasswordParams(testenv.CheapPasswords))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func setup(t *testing.T, a *app.App, campaigns int) (int64, []int64) {
	t.Helper()
	ctx := context.Background()
	p := a.Platform()
	u, err := p.Register(ctx, platform.Registration{Username: "owner", Password: "owner password"})
	if err != nil {
		t.Fatal(err)
	}
	goal := money.Cents(1_000_000)
	active := platform.CampaignActive
	var ids []int64
	for i := 0; i < campaigns; i++ {
		title := fmt.Sprintf("Campaign %d", i)
		c, err := p.CreateCampaign(ctx, u.ID, platform.CampaignInput{Title: &title, GoalAmount: &goal, Status: &active})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	return u.ID, ids
}

// setupQuiet is setup with setup's own events deleted from the outbox, so
// that only the test's events wait there.
func setupQuiet(t *testing.T, a *app.App, campaigns int) (int64, []int64) {
	t.Helper()
	user, ids := setup(t, a, campaigns)
	if _, err := a.Platform().DB().ExecContext(context.Background(), "DELETE FROM outbox"); err != nil {
		t.Fatal(err)
	}
	return user, ids
}

// contributionIDs reads n contribution events from a campaign room.
func contributionIDs(t *testing.T, c *testenv.WSClient, n int) []int64 {
	t.Helper()
	var ids []int64
	for len(ids) < n {
		ev := c.NextEvent(10 * time.Second)
		if ev.Type != "contribution" {
			continue
		}
		var d struct{ ID int64 }
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	return ids
}

// A process killed (SIGKILL) after committing writes and before publishing
// their events loses none of them: the next relay publishes every one, in
// commit order, exactly once.
func TestKilledWriterLosesNoEvents(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		a := newApp(t, dsn) // migrates; its relay is not running yet
		user, campaigns := setup(t, a, 1)
		const n = 40
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "HERALD_RELAY_CHILD=writer", "HERALD_RELAY_DSN="+dsn,
			"HERALD_RELAY_USER="+strconv.FormatInt(user, 10), "HERALD_RELAY_CAMPAIGN="+strconv.FormatInt(campaigns[0], 10),
			"HERALD_RELAY_N="+strconv.Itoa(n))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var committed []int64
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if line == "done" {
				break
			}
			id, err := strconv.ParseInt(strings.TrimPrefix(line, "committed "), 10, 64)
			if err != nil {
				t.Fatalf("child said %q", line)
			}
			committed = append(committed, id)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if len(committed) != n {
			t.Fatalf("child committed %d of %d", len(committed), n)
		}

		srv := httptest.NewServer(a.Handler())
		defer srv.Close()
		room := testenv.MustDialWS(t, "ws"+strings.TrimPrefix(srv.URL, "http")+fmt.Sprintf("/ws/campaign/%d/", campaigns[0]), nil)
		if ev := room.NextEvent(5 * time.Second); ev.Type != "campaign_data" {
			t.Fatalf("first message %s", ev.Type)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- a.Relay().Run(ctx) }()
		defer func() { cancel(); <-done }()

		got := contributionIDs(t, room, n)
		for i := range committed {
			if got[i] != committed[i] {
				t.Fatalf("published %v; want the committed %v in order", got, committed)
			}
		}
		room.NoMessage(300 * time.Millisecond) // exactly once
		if evs, _ := a.Platform().PendingEvents(context.Background(), 10); len(evs) != 0 {
			t.Errorf("%d events left in the outbox", len(evs))
		}
	})
}

// Concurrent writers to several campaigns: each room receives its events in
// commit order (contribution ids increase), none lost, none twice.
func TestCommitOrderPerGroup(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		a := newApp(t, dsn)
		user, campaigns := setup(t, a, 3)
		srv := httptest.NewServer(a.Handler())
		defer srv.Close()
		rooms := make([]*testenv.WSClient, len(campaigns))
		for i, cid := range campaigns {
			rooms[i] = testenv.MustDialWS(t, "ws"+strings.TrimPrefix(srv.URL, "http")+fmt.Sprintf("/ws/campaign/%d/", cid), nil)
			rooms[i].NextEvent(5 * time.Second)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- a.Relay().Run(ctx) }()
		defer func() { cancel(); <-done }()

		const per = 30
		var wg sync.WaitGroup
		for w := 0; w < 6; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per/2; i++ {
					amount := money.Cents(100)
					cid := campaigns[(w+i)%len(campaigns)]
					if _, err := a.Platform().Contribute(context.Background(), user, cid, platform.ContributionInput{Amount: &amount}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		for i, room := range rooms {
			ids := contributionIDs(t, room, per)
			for j := 1; j < len(ids); j++ {
				if ids[j] <= ids[j-1] {
					t.Fatalf("campaign %d: contribution %d after %d: out of commit order", campaigns[i], ids[j], ids[j-1])
				}
			}
			room.NoMessage(100 * time.Millisecond)
		}
	})
}

// When the layer refuses events they stay in the outbox, in order, for the
// next round.
func TestFailedPublishKeepsEvents(t *testing.T) {
	a := newApp(t, testenv.SQLite(t))
	user, campaigns := setup(t, a, 1)
	for i := 0; i < 3; i++ {
		amount := money.Cents(5)
		if _, err := a.Platform().Contribute(context.Background(), user, campaigns[0], platform.ContributionInput{Amount: &amount}); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := a.Platform().PendingEvents(context.Background(), 100)
	if len(before) != 3 {
		t.Fatalf("%d pending events; want 3", len(before))
	}
	if err := a.Hub().Close(); err != nil { // the layer is gone
		t.Fatal(err)
	}
	if n, err := a.Relay().Round(context.Background()); err == nil || n != 0 {
		t.Fatalf("round on a closed layer: %d published, err %v", n, err)
	}
	after, _ := a.Platform().PendingEvents(context.Background(), 100)
	if len(after) != 3 || after[0].ID != before[0].ID {
		t.Errorf("outbox after a failed round: %+v", after)
	}
}

// holdRelayLock takes the relays' advisory lock (relayLockID) in a
// transaction of its own, as another process's relay mid-round; it is
// released when the test ends or the transaction is rolled back.
func holdRelayLock(t *testing.T, db *store.DB) *sql.Tx {
	t.Helper()
	ctx := context.Background()
	held, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = held.Rollback() })
	if _, err := held.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", 0x68657262); err != nil {
		t.Fatal(err)
	}
	return held
}

// recorder is a Publisher that remembers what it was given.
type recorder struct {
	mu   sync.Mutex
	typs []string
}

func (r *recorder) PublishBatch(_ context.Context, msgs []layer.Message, _ []string) ([]uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var offs []uint64
	for _, m := range msgs {
		r.typs = append(r.typs, m.Type)
		offs = append(offs, uint64(len(r.typs)))
	}
	return offs, nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.typs)
}

// A relay that finds another process's relay holding the lock publishes as
// soon as the lock is free, not a poll interval later: the other round may
// have read the outbox before this process's write committed.
func TestBusyRelayRetriesWhenLockIsFree(t *testing.T) {
	a := newApp(t, testenv.Postgres(t))
	user, campaigns := setupQuiet(t, a, 1)
	ctx := context.Background()
	db := a.Platform().DB()
	held := holdRelayLock(t, db) // the other process's relay, mid-round
	amount := money.Cents(5)
	if _, err := a.Platform().Contribute(ctx, user, campaigns[0], platform.ContributionInput{Amount: &amount}); err != nil {
		t.Fatal(err)
	}
	pub := &recorder{}
	// A poll interval longer than the test: only the retry can publish.
	r := relay.New(db, pub, relay.Options{Poll: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(100 * time.Millisecond)
	if n := pub.count(); n != 0 {
		t.Fatalf("%d events published while the lock was held", n)
	}
	if err := held.Rollback(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for pub.count() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the event was not published after the lock was released")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A round with events waiting waits for the relay lock at most LockWait,
// then gives up without publishing.
func TestRoundWaitsForTheLockAtMostLockWait(t *testing.T) {
	a := newApp(t, testenv.Postgres(t))
	user, campaigns := setup(t, a, 1) // events wait
	ctx := context.Background()
	db := a.Platform().DB()
	amount := money.Cents(5)
	if _, err := a.Platform().Contribute(ctx, user, campaigns[0], platform.ContributionInput{Amount: &amount}); err != nil {
		t.Fatal(err)
	}
	holdRelayLock(t, db)
	r := relay.New(db, &recorder{}, relay.Options{LockWait: 200 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	n, err := r.Round(rctx)
	if err == nil || n != 0 || rctx.Err() != nil {
		t.Fatalf("round under a held lock: %d published, err %v after %v", n, err, time.Since(start))
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Fatalf("gave up after %v, before LockWait", waited)
	}
}

// batchRecorder takes a round at once, as the hub does with the Redis layer,
// and fails from message failAt on.
type batchRecorder struct {
	failAt int
	got    []layer.Message
	keys   []string
}

func (b *batchRecorder) PublishBatch(_ context.Context, msgs []layer.Message, keys []string) ([]uint64, error) {
	var offs []uint64
	for i, m := range msgs {
		if i == b.failAt {
			return offs, errors.New("redis went away")
		}
		b.got, b.keys = append(b.got, m), append(b.keys, keys[i])
		offs = append(offs, uint64(len(b.got)))
	}
	return offs, nil
}

// A round goes to a batch publisher in one call, in outbox order, each
// event with the offset and epoch its write gave it (and no publish key:
// the offset identifies it); what the publisher did not take stays in the
// outbox for the next round.
func TestRoundPublishesABatch(t *testing.T) {
	a := newApp(t, testenv.SQLite(t))
	user, campaigns := setupQuiet(t, a, 1)
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		amount := money.Cents(i)
		if _, err := a.Platform().Contribute(ctx, user, campaigns[0], platform.ContributionInput{Amount: &amount}); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := a.Platform().PendingEvents(ctx, 100)
	pub := &batchRecorder{failAt: 2}
	var published int
	r := relay.New(a.Platform().DB(), pub, relay.Options{Published: func(string, time.Duration) { published++ }})
	n, err := r.Round(ctx)
	if n != 2 || err == nil || published != 2 {
		t.Fatalf("round: %d published (%d reported), err %v; want 2 and the error", n, published, err)
	}
	if len(pub.keys) != 2 || pub.keys[0] != "" || pub.keys[1] != "" {
		t.Errorf("publish keys %q", pub.keys)
	}
	for i, m := range pub.got {
		if m.Epoch == "" || m.Epoch != pub.got[0].Epoch || m.Offset != pub.got[0].Offset+uint64(i) || m.Offset == 0 {
			t.Errorf("event %d published at %d of %q; want consecutive offsets of one epoch", i, m.Offset, m.Epoch)
		}
	}
	after, _ := a.Platform().PendingEvents(ctx, 100)
	if len(before) < 3 || len(after) != len(before)-2 || after[0].ID != before[2].ID {
		t.Fatalf("outbox before %d events, after %+v", len(before), after)
	}
	pub.failAt = -1
	if n, err := r.Round(ctx); err != nil || n != len(after) {
		t.Fatalf("second round: %d, %v", n, err)
	}
}

// failing refuses every round, as a layer whose Redis is down.
type failing struct{}

func (failing) PublishBatch(context.Context, []layer.Message, []string) ([]uint64, error) {
	return nil, errors.New("redis is down")
}

// While publishing fails, commits do not cut the backoff short: a burst of
// writes costs a few attempts, not one each.
func TestWakesWaitForTheBackoff(t *testing.T) {
	a := newApp(t, testenv.SQLite(t))
	user, campaigns := setup(t, a, 1)
	amount := money.Cents(5)
	if _, err := a.Platform().Contribute(context.Background(), user, campaigns[0], platform.ContributionInput{Amount: &amount}); err != nil {
		t.Fatal(err)
	}
	var rounds atomic.Int64
	r := relay.New(a.Platform().DB(), failing{}, relay.Options{
		MaxBackoff: time.Second, Logger: slog.New(slog.DiscardHandler), Failed: func() { rounds.Add(1) },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for range 100 { // a write every 4 ms for 400 ms
		r.Notify()
		time.Sleep(4 * time.Millisecond)
	}
	cancel()
	<-done
	// Backoff 50, 100, 200 ms: about four attempts in 400 ms.
	if n := rounds.Load(); n < 2 || n > 8 {
		t.Errorf("%d failed rounds for 100 writes in 400 ms; want a few, paced by the backoff", n)
	}
}

// cancelling is a recorder that ends the round's context as it publishes:
// the relay stopping mid-round.
type cancelling struct {
	recorder
	cancel context.CancelFunc
}

func (c *cancelling) PublishBatch(ctx context.Context, msgs []layer.Message, keys []string) ([]uint64, error) {
	c.cancel()
	return c.recorder.PublishBatch(ctx, msgs, keys)
}

// A round whose context ends after its events went out still marks them
// published, so the next round (the relay's last flush as it stops, or the
// next process's) does not publish them again.
func TestStoppedMidRoundMarksWhatItPublished(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"sqlite": testenv.SQLite, "postgres": testenv.Postgres} {
		t.Run(name, func(t *testing.T) {
			a := newApp(t, dsn(t))
			setupQuiet(t, a, 1)
			db := a.Platform().DB()
			for s := range 3 {
				if err := a.Platform().RecordExternal(context.Background(), "campaign_1", "t", []byte(fmt.Sprintf(`{"s":%d}`, s))); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			pub := &cancelling{cancel: cancel}
			r := relay.New(db, pub, relay.Options{Logger: slog.New(slog.DiscardHandler)})
			if n, err := r.Round(ctx); n != 3 || err != nil {
				t.Fatalf("round stopped as it published: %d published, %v; want 3, no error", n, err)
			}
			var waiting int
			if err := db.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM outbox WHERE NOT published").Scan(&waiting); err != nil {
				t.Fatal(err)
			}
			if waiting != 0 {
				t.Fatalf("%d published events left unmarked", waiting)
			}
			if n, err := r.Round(context.Background()); n != 0 || err != nil || pub.count() != 3 {
				t.Fatalf("next round: %d published (%d in all), %v; want none again", n, pub.count(), err)
			}
		})
	}
}
