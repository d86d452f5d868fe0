package platform_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime/layer"
	"github.com/heraldhq/herald/internal/relay"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/testenv"
)

// takeAll is a channel layer that takes every event.
type takeAll struct{}

func (takeAll) PublishBatch(_ context.Context, msgs []layer.Message, _ []string) ([]uint64, error) {
	offs := make([]uint64, len(msgs))
	for i, m := range msgs {
		offs[i] = m.Offset
	}
	return offs, nil
}

// sequence does what herald's relay does after every write: it numbers the
// outbox's events in their groups and publishes them.
func sequence(t *testing.T, p *platform.Platform) {
	t.Helper()
	if err := relay.New(p.DB(), takeAll{}, relay.Options{Logger: slog.New(slog.DiscardHandler)}).Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// logRow is an outbox row with its place in its group's log.
type logRow struct {
	id, off   int64
	typ       string
	epoch     string
	published bool
}

func logOf(t *testing.T, db *store.DB, group string) []logRow {
	t.Helper()
	rows, err := db.Query("SELECT id, off, type, epoch, published FROM outbox WHERE grp = $1 ORDER BY id", group)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []logRow
	for rows.Next() {
		var r logRow
		if err := rows.Scan(&r.id, &r.off, &r.typ, &r.epoch, &r.published); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// Every event gets the next offset of its group, in its epoch, before it
// is published: concurrent writes to one group are numbered 1..n without
// gap or repeat, in the order they were recorded; a rolled-back write takes
// no offset; a reset starts a new epoch at 0.
func TestEventsAreNumberedInTheirWrites(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		p := open(t, dsn)
		owner := mustUser(t, p, "owner")
		fans := []int64{mustUser(t, p, "fan1"), mustUser(t, p, "fan2"), mustUser(t, p, "fan3"), mustUser(t, p, "fan4")}
		cid := activeCampaign(t, p, owner, "100.00")
		group := platform.CampaignGroup(cid)
		const each = 15
		var wg sync.WaitGroup
		errs := make(chan error, len(fans)*each)
		for _, fan := range fans {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					if _, err := p.PostComment(ctx, fan, cid, platform.CommentInput{Content: ptr(fmt.Sprint("c", i))}); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		sequence(t, p)
		rows := logOf(t, p.DB(), group)
		if len(rows) != len(fans)*each {
			t.Fatalf("%d events; want %d", len(rows), len(fans)*each)
		}
		for i, r := range rows {
			if r.off != int64(i+1) || r.epoch != rows[0].epoch || r.epoch == "" || !r.published {
				t.Fatalf("event %d (id %d): offset %d of %q, published %v; want offset %d of one epoch, in id order, published", i, r.id, r.off, r.epoch, r.published, i+1)
			}
		}
		epoch := rows[0].epoch

		// A write that fails after recording its event leaves no offset
		// taken: the next event follows the last committed one.
		db := p.DB()
		refuse := []string{`CREATE TRIGGER refuse_comments AFTER INSERT ON outbox WHEN NEW.type = 'comment' AND NEW.data LIKE '%refuse-me%' BEGIN SELECT RAISE(ABORT, 'refused by test'); END`}
		if db.Dialect == store.Postgres {
			refuse = []string{
				`CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN IF NEW.data LIKE '%refuse-me%' THEN RAISE EXCEPTION 'refused by test'; END IF; RETURN NEW; END; $$ LANGUAGE plpgsql`,
				`CREATE TRIGGER refuse_comments AFTER INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION refuse()`,
			}
		}
		for _, s := range refuse {
			if _, err := db.Exec(s); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := p.PostComment(ctx, fans[0], cid, platform.CommentInput{Content: ptr("refuse-me")}); err == nil {
			t.Fatal("the refused comment was written")
		}
		if _, err := p.PostComment(ctx, fans[0], cid, platform.CommentInput{Content: ptr("after")}); err != nil {
			t.Fatal(err)
		}
		sequence(t, p)
		rows = logOf(t, db, group)
		if last := rows[len(rows)-1]; last.off != len64(rows) || last.epoch != epoch {
			t.Errorf("the event after a rolled-back write is at %d of %q; want %d of %q", last.off, last.epoch, len(rows), epoch)
		}

		// A draft made public: a reset at offset 0 of a new epoch, and the
		// next event at 1 of it.
		draft, err := p.CreateCampaign(ctx, owner, platform.CampaignInput{Title: ptr("Draft"), GoalAmount: cents(t, "10.00")})
		if err != nil {
			t.Fatal(err)
		}
		dgroup := platform.CampaignGroup(draft.ID)
		if _, err := p.PostComment(ctx, owner, draft.ID, platform.CommentInput{Content: ptr("secret")}); err != nil {
			t.Fatal(err)
		}
		sequence(t, p)
		secret := logOf(t, db, dgroup)
		if len(secret) != 1 || secret[0].off != 1 {
			t.Fatalf("draft's log %+v", secret)
		}
		if _, err := p.UpdateCampaign(ctx, owner, draft.ID, platform.CampaignInput{Status: ptr(platform.CampaignActive)}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.PostComment(ctx, fans[1], draft.ID, platform.CommentInput{Content: ptr("fresh")}); err != nil {
			t.Fatal(err)
		}
		sequence(t, p)
		// What the draft's epoch held leaves the log with the reset.
		rows = logOf(t, db, dgroup)
		if len(rows) != 2 {
			t.Fatalf("published campaign's log %+v", rows)
		}
		reset, next := rows[0], rows[1]
		if reset.typ != platform.EventRoomReset || reset.off != 0 || reset.epoch == secret[0].epoch || next.off != 1 || next.epoch != reset.epoch {
			t.Errorf("published campaign's log %+v; want the reset at 0 of a new epoch, then 1 of it", rows)
		}
	})
}

func len64[T any](s []T) int64 { return int64(len(s)) }
