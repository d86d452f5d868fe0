package platform_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/testenv"
)

// clock is a settable platform clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func openWithClock(t *testing.T, dsn string) (*platform.Platform, *clock) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	c := &clock{now: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)}
	p, err := platform.New(db, platform.Options{Hasher: auth.Hasher{Params: testenv.CheapPasswords}, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return p, c
}

func keyed(user int64, key string) (context.Context, *platform.IdempotentRequest) {
	r := &platform.IdempotentRequest{UserID: user, Key: key, Hash: "hash of " + key}
	return platform.WithIdempotentRequest(context.Background(), r), r
}

func keyCount(t *testing.T, p *platform.Platform, user int64) int {
	t.Helper()
	var n int
	if err := p.DB().QueryRow("SELECT COUNT(*) FROM idempotency_keys WHERE user_id = $1", user).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// insertKeys inserts n answered keys of user directly, key i named and
// dated by at, 500 rows a statement.
func insertKeys(t *testing.T, p *platform.Platform, user int64, n int, at func(i int) (string, time.Time)) {
	t.Helper()
	err := p.DB().Tx(context.Background(), func(tx *sql.Tx) error {
		for from := 0; from < n; from += 500 {
			var q strings.Builder
			q.WriteString("INSERT INTO idempotency_keys (user_id, idem_key, request_hash, created_at, status) VALUES ")
			args := []any{user}
			for i := from; i < min(n, from+500); i++ {
				key, created := at(i)
				if i > from {
					q.WriteString(", ")
				}
				fmt.Fprintf(&q, "($1, $%d, 'h', $%d, 201)", len(args)+1, len(args)+2)
				args = append(args, key, created)
			}
			if _, err := tx.Exec(q.String(), args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A write records its request's key in its own transaction: a committed
// write leaves the key, a rolled-back one does not, and a second write with
// the same key commits nothing and says so.
func TestWriteRecordsTheIdempotencyKey(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		p, _ := openWithClock(t, dsn)
		alice := mustUser(t, p, "alice")

		ctx, req := keyed(alice, "k1")
		if _, err := p.CreateQuest(ctx, alice, platform.QuestInput{Title: ptr("Once")}); err != nil {
			t.Fatal(err)
		}
		if !req.Committed() {
			t.Fatal("a committed write did not mark its request committed")
		}
		rec, found, err := p.IdempotencyKey(context.Background(), alice, "k1")
		if err != nil || !found || rec.Hash != req.Hash || rec.Response != nil || !rec.InFlight {
			t.Fatalf("key after the write: %+v found=%v %v", rec, found, err)
		}

		ctx2, req2 := keyed(alice, "k1")
		_, err = p.CreateQuest(ctx2, alice, platform.QuestInput{Title: ptr("Twice")})
		var used *platform.KeyUsedError
		if !errors.As(err, &used) || req2.Committed() {
			t.Fatalf("second write with the key: %v (committed %v); want a KeyUsedError", err, req2.Committed())
		}
		if n, _ := p.ListQuests(context.Background(), platform.QuestFilter{}, platform.PageRequest{}); n.Count != 1 {
			t.Fatalf("%d quests, want 1", n.Count)
		}

		// Rolled back: the campaign is not active, the contribution fails
		// inside the transaction, after the key was inserted.
		camp, err := p.CreateCampaign(context.Background(), alice, platform.CampaignInput{Title: ptr("Draft"), GoalAmount: cents(t, "10.00")})
		if err != nil {
			t.Fatal(err)
		}
		ctx3, req3 := keyed(alice, "k2")
		if _, err := p.Contribute(ctx3, alice, camp.ID, platform.ContributionInput{Amount: cents(t, "1.00")}); platform.KindOf(err) != platform.KindConflict {
			t.Fatalf("contribution to a draft: %v", err)
		}
		if _, found, _ := p.IdempotencyKey(context.Background(), alice, "k2"); found || req3.Committed() {
			t.Fatal("a rolled-back write left its key")
		}
		// So the key is not spent: the retry runs.
		if _, err := p.CreateQuest(ctx3, alice, platform.QuestInput{Title: ptr("After a failure")}); err != nil || !req3.Committed() {
			t.Fatalf("retry after a failed write: %v", err)
		}

		// Keys are per user.
		bob := mustUser(t, p, "bob")
		ctx4, _ := keyed(bob, "k1")
		if _, err := p.CreateQuest(ctx4, bob, platform.QuestInput{Title: ptr("Bob's")}); err != nil {
			t.Fatalf("bob's write with alice's key: %v", err)
		}

		// The stored answer is read back; one that was not kept reads
		// as a response without a body.
		if err := p.StoreResponse(context.Background(), req, platform.StoredResponse{Status: 201, ContentType: "application/json", Location: "/x", Body: []byte(`{"id":1}`)}); err != nil {
			t.Fatal(err)
		}
		rec, _, _ = p.IdempotencyKey(context.Background(), alice, "k1")
		if r := rec.Response; r == nil || r.Status != 201 || r.ContentType != "application/json" || r.Location != "/x" || string(r.Body) != `{"id":1}` || rec.InFlight {
			t.Fatalf("stored response: %+v", rec)
		}
		if err := p.StoreResponse(context.Background(), req3, platform.StoredResponse{Status: 201, Body: make([]byte, platform.MaxStoredResponse+1)}); err != nil {
			t.Fatal(err)
		}
		rec, _, _ = p.IdempotencyKey(context.Background(), alice, "k2")
		if r := rec.Response; r == nil || r.Status != 201 || r.Body != nil {
			t.Fatalf("an answer too large to keep: %+v", r)
		}
	})
}

// A key without a stored answer counts as in flight for a while after its
// write, then as applied by a request that will never answer.
func TestKeyWithoutAnswerStopsBeingInFlight(t *testing.T) {
	p, c := openWithClock(t, testenv.SQLite(t))
	alice := mustUser(t, p, "alice")
	ctx, _ := keyed(alice, "k")
	if _, err := p.CreateQuest(ctx, alice, platform.QuestInput{Title: ptr("Q")}); err != nil {
		t.Fatal(err)
	}
	if rec, _, _ := p.IdempotencyKey(context.Background(), alice, "k"); !rec.InFlight {
		t.Fatal("a key just written is not in flight")
	}
	c.add(time.Minute)
	if rec, _, _ := p.IdempotencyKey(context.Background(), alice, "k"); rec.InFlight || rec.Response != nil {
		t.Fatalf("a key written a minute ago without an answer: %+v", rec)
	}
}

// The sweep deletes keys older than a day, in batches, and keeps younger
// ones.
func TestSweepDeletesKeysAfterADay(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		p, c := openWithClock(t, dsn)
		alice := mustUser(t, p, "alice")
		// More old keys than one batch deletes.
		const old = 2500
		insertKeys(t, p, alice, old, func(i int) (string, time.Time) {
			return fmt.Sprintf("old-%d", i), c.Now().Add(-time.Duration(i) * time.Second)
		})
		ctx, _ := keyed(alice, "kept")
		c.add(time.Hour)
		if _, err := p.CreateQuest(ctx, alice, platform.QuestInput{Title: ptr("Q")}); err != nil {
			t.Fatal(err)
		}
		// A day after the old ones, 23 hours after the kept one.
		c.add(platform.IdempotencyKeyTTL - time.Hour + time.Second)
		n, err := p.SweepIdempotencyKeys(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n != old || keyCount(t, p, alice) != 1 {
			t.Fatalf("swept %d, %d left; want %d swept and the young key left", n, keyCount(t, p, alice), old)
		}
		if _, found, _ := p.IdempotencyKey(context.Background(), alice, "kept"); !found {
			t.Fatal("the young key was swept")
		}
		c.add(time.Hour)
		if n, err := p.SweepIdempotencyKeys(context.Background()); err != nil || n != 1 || keyCount(t, p, alice) != 0 {
			t.Fatalf("second sweep: %d, %v; %d left", n, err, keyCount(t, p, alice))
		}
	})
}

// A user keeps at most MaxIdempotencyKeysPerUser keys: storing an answer
// drops the oldest beyond that, and no other user's.
func TestKeysBoundedPerUser(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		p, c := openWithClock(t, dsn)
		alice, bob := mustUser(t, p, "alice"), mustUser(t, p, "bob")
		insertKeys(t, p, alice, platform.MaxIdempotencyKeysPerUser, func(i int) (string, time.Time) {
			return fmt.Sprintf("k%d", i), c.Now().Add(time.Duration(i-platform.MaxIdempotencyKeysPerUser) * time.Second)
		})
		insertKeys(t, p, bob, 1, func(int) (string, time.Time) { return "b", c.Now().Add(-time.Hour) })
		ctx, req := keyed(alice, "newest")
		if _, err := p.CreateQuest(ctx, alice, platform.QuestInput{Title: ptr("Q")}); err != nil {
			t.Fatal(err)
		}
		if err := p.StoreResponse(ctx, req, platform.StoredResponse{Status: 201, Body: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
		if n := keyCount(t, p, alice); n != platform.MaxIdempotencyKeysPerUser {
			t.Fatalf("alice keeps %d keys, want %d", n, platform.MaxIdempotencyKeysPerUser)
		}
		for key, want := range map[string]bool{"k0": false, "k1": true, "newest": true} {
			if _, found, _ := p.IdempotencyKey(context.Background(), alice, key); found != want {
				t.Errorf("key %s kept: %v, want %v", key, found, want)
			}
		}
		if keyCount(t, p, bob) != 1 {
			t.Error("bob's key went with alice's")
		}
	})
}
