package platform_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/apikey"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/testenv"
)

func ev(group, typ, data string) platform.ExternalEvent {
	return platform.ExternalEvent{Group: group, Type: typ, Data: []byte(data)}
}

// A batch is recorded in one transaction, a group's events in the batch's
// order, numbered after the group's earlier events; their ids come back in
// the order sent.
func TestRecordExternalBatch(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		p := open(t, dsn)
		ctx := context.Background()
		if err := p.RecordExternal(ctx, "campaign_1", "warmup", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		pos, err := p.RecordExternalBatch(ctx, []platform.ExternalEvent{
			ev("campaign_2", "a", `{"n":1}`), ev("campaign_1", "b", `{"n":2}`),
			ev("campaign_2", "c", `{"n":3}`), ev("campaign_1", "d", `{"n":4}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		sequence(t, p)
		c1, c2 := logOf(t, p.DB(), "campaign_1"), logOf(t, p.DB(), "campaign_2")
		if len(c1) == 3 && len(c2) == 2 {
			// On SQLite the write numbers its events and says where; on
			// PostgreSQL the relay does, later.
			rec := func(group string, r logRow) platform.Recorded {
				if p.DB().Dialect == store.Postgres {
					return platform.Recorded{Group: group, ID: r.id}
				}
				return platform.Recorded{Group: group, ID: r.id, Epoch: r.epoch, Offset: r.off}
			}
			want := []platform.Recorded{rec("campaign_2", c2[0]), rec("campaign_1", c1[1]), rec("campaign_2", c2[1]), rec("campaign_1", c1[2])}
			if fmt.Sprint(pos) != fmt.Sprint(want) {
				t.Errorf("recorded %v, want %v", pos, want)
			}
		}
		for _, l := range [][]logRow{c1, c2} {
			for i, r := range l {
				if r.off != int64(i+1) || r.epoch != l[0].epoch {
					t.Errorf("log %+v: want offsets 1..%d of one epoch", l, len(l))
				}
			}
		}
		if len(c1) != 3 || c1[1].typ != "b" || c1[2].typ != "d" || len(c2) != 2 || c2[0].typ != "a" || c2[1].typ != "c" {
			t.Errorf("logs: campaign_1 %+v, campaign_2 %+v", c1, c2)
		}
		var data string
		if err := p.DB().QueryRow("SELECT data FROM outbox WHERE grp = 'campaign_1' AND type = 'd'").Scan(&data); err != nil || data != `{"n":4}` {
			t.Errorf("data %q, %v", data, err)
		}
	})
}

// One refused event refuses the whole batch, named by its index, and a
// batch that fails in the database leaves nothing: no event, no offset
// taken.
func TestRecordExternalBatchIsAllOrNothing(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		p := open(t, dsn)
		ctx := context.Background()
		_, err := p.RecordExternalBatch(ctx, []platform.ExternalEvent{
			ev("campaign_1", "a", `{}`), ev("campaign_1", "b", `{}`), ev("campaign_1", "room_reset", `{}`), ev("quest_01", "d", `{}`),
			ev("user_1", "e", "{\"s\":\"\xff\"}"),
		})
		var de *platform.Error
		if !errors.As(err, &de) || de.Kind != platform.KindInvalid || de.Fields["events[2].type"] == nil ||
			de.Fields["events[3].group"] == nil || de.Fields["events[4].data"] == nil || len(de.Fields) != 3 {
			t.Fatalf("refused batch: %v", err)
		}
		for _, n := range []int{0, platform.MaxExternalBatch + 1} {
			if _, err := p.RecordExternalBatch(ctx, make([]platform.ExternalEvent, n)); platform.KindOf(err) != platform.KindInvalid {
				t.Errorf("a batch of %d: %v", n, err)
			}
		}
		db := p.DB()
		var trigger []string
		if db.Dialect == store.Postgres {
			trigger = []string{
				`CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused by test'; END; $$ LANGUAGE plpgsql`,
				`CREATE TRIGGER refuse_boom BEFORE INSERT ON outbox FOR EACH ROW WHEN (NEW.type = 'boom') EXECUTE FUNCTION refuse()`,
			}
		} else {
			trigger = []string{`CREATE TRIGGER refuse_boom BEFORE INSERT ON outbox WHEN NEW.type = 'boom' BEGIN SELECT RAISE(ABORT, 'refused by test'); END`}
		}
		for _, s := range trigger {
			if _, err := db.Exec(s); err != nil {
				t.Fatal(err)
			}
		}
		// The events before the failing one are rolled back with it.
		if _, err := p.RecordExternalBatch(ctx, []platform.ExternalEvent{
			ev("campaign_1", "a", `{}`), ev("campaign_1", "b", `{}`), ev("campaign_2", "boom", `{}`),
		}); err == nil || platform.KindOf(err) != 0 {
			t.Fatalf("failing batch: %v, want a database error", err)
		}
		if evs := drain(t, p); len(evs) != 0 {
			t.Fatalf("refused batches left events: %+v", evs)
		}
		if _, err := p.RecordExternalBatch(ctx, []platform.ExternalEvent{ev("campaign_1", "a", `{}`)}); err != nil {
			t.Fatal(err)
		}
		sequence(t, p)
		if l := logOf(t, p.DB(), "campaign_1"); len(l) != 1 || l[0].off != 1 {
			t.Fatalf("after the failures: %+v; want one event at offset 1 (none taken)", l)
		}
	})
}

// Batches that write the same groups in opposite orders all commit, and
// each group's events are numbered 1..n.
func TestRecordExternalBatchesDoNotDeadlock(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		p := open(t, dsn)
		ctx := context.Background()
		const workers, rounds = 6, 15
		var wg sync.WaitGroup
		errs := make(chan error, workers*rounds)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a, b := "campaign_1", "campaign_2"
				if w%2 == 1 {
					a, b = b, a
				}
				for range rounds {
					if _, err := p.RecordExternalBatch(ctx, []platform.ExternalEvent{ev(a, "x", `{}`), ev(b, "x", `{}`)}); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		sequence(t, p)
		for _, g := range []string{"campaign_1", "campaign_2"} {
			l := logOf(t, p.DB(), g)
			for i, r := range l {
				if r.off != int64(i+1) {
					t.Fatalf("%s: offsets %+v, want 1..%d", g, l, workers*rounds)
				}
			}
			if len(l) != workers*rounds {
				t.Errorf("%s: %d events, want %d", g, len(l), workers*rounds)
			}
		}
	})
}

// A publish's Idempotency-Key belongs to its API key: recorded with the
// batch, it refuses the batch a second time, and neither another API key
// nor a user with a key of the same name is affected.
func TestAPIKeyIdempotency(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		p, c := openWithClock(t, dsn)
		keys := apikey.New(p.DB(), nil, c.Now)
		k1, _, err := keys.Create(context.Background(), "one", []string{"campaign"})
		if err != nil {
			t.Fatal(err)
		}
		k2, _, err := keys.Create(context.Background(), "two", []string{"campaign"})
		if err != nil {
			t.Fatal(err)
		}
		publish := func(keyID, key string) error {
			r := &platform.IdempotentRequest{APIKeyID: keyID, Key: key, Hash: "h"}
			_, err := p.RecordExternalBatch(platform.WithIdempotentRequest(context.Background(), r), []platform.ExternalEvent{ev("campaign_1", "x", `{}`)})
			if err == nil && !r.Committed() {
				t.Error("a committed publish is not marked committed")
			}
			if err == nil {
				err = p.StoreResponse(context.Background(), r, platform.StoredResponse{Status: 201, Body: []byte(`{}`)})
			}
			return err
		}
		if err := publish(k1.ID, "k"); err != nil {
			t.Fatal(err)
		}
		var used *platform.KeyUsedError
		if err := publish(k1.ID, "k"); !errors.As(err, &used) {
			t.Fatalf("the same key again: %v, want KeyUsedError", err)
		}
		if err := publish(k2.ID, "k"); err != nil {
			t.Fatalf("another API key's key of the same name: %v", err)
		}
		alice := mustUser(t, p, "alice")
		if _, found, _ := p.IdempotencyKey(context.Background(), alice, "k"); found {
			t.Error("a user sees an API key's idempotency key")
		}
		rec, found, err := p.KeyRecordOf(context.Background(), &platform.IdempotentRequest{APIKeyID: k1.ID, Key: "k"})
		if err != nil || !found || rec.Response == nil || rec.Response.Status != 201 {
			t.Fatalf("k1's key: %+v, %v, %v", rec, found, err)
		}
		if n := len(logOf(t, p.DB(), "campaign_1")); n != 2 {
			t.Errorf("%d events, want 2 (the repeat recorded nothing)", n)
		}
		c.add(platform.IdempotencyKeyTTL + time.Second)
		if n, err := p.SweepIdempotencyKeys(context.Background()); err != nil || n != 2 {
			t.Errorf("sweep: %d, %v; want both API keys' keys", n, err)
		}
	})
}
