package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/eventlog"
	"github.com/heraldhq/herald/internal/realtime/layer"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/testenv"
)

// open returns a migrated database.
func open(t *testing.T, dsn string) *store.DB {
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
	return db
}

// logged records events first..last of group in epoch, published up to
// published (inclusive), and sets the group's log row to last.
func logged(t *testing.T, db *store.DB, group, epoch string, first, last, published int64) {
	t.Helper()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "INSERT INTO group_log (grp, epoch, last) VALUES ($1, $2, $3) ON CONFLICT (grp) DO UPDATE SET epoch = excluded.epoch, last = excluded.last",
		group, epoch, last); err != nil {
		t.Fatal(err)
	}
	for off := first; off <= last; off++ {
		if _, err := db.ExecContext(ctx, "INSERT INTO outbox (grp, type, data, created_at, epoch, off, published) VALUES ($1, 'comment', $2, $3, $4, $5, $6)",
			group, fmt.Sprintf(`{"n":%d}`, off), time.Now().UTC(), epoch, off, off <= published); err != nil {
			t.Fatal(err)
		}
	}
}

func offsets(msgs []layer.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Offset
	}
	return out
}

func TestRead(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		db := open(t, dsn)
		ctx := context.Background()
		// campaign_1: events 5..12 kept (1..4 pruned), published up to 10.
		logged(t, db, "campaign_1", "e1", 5, 12, 10)
		l := eventlog.New(db, eventlog.Options{MaxEvents: 6})
		for _, c := range []struct {
			name        string
			epoch       string
			since, upTo uint64
			ok          bool
			want        []uint64
		}{
			{"published after a position", "e1", 6, 0, true, []uint64{7, 8, 9, 10}},
			{"committed up to a bound", "e1", 8, 12, true, []uint64{9, 10, 11, 12}},
			{"at the published head", "e1", 10, 0, true, nil},
			{"the oldest kept", "e1", 4, 9, true, []uint64{5, 6, 7, 8, 9}},
			{"one older than kept", "e1", 3, 8, false, nil},
			{"beyond the bound", "e1", 11, 10, false, nil},
			{"past the published head", "e1", 11, 0, false, nil},
			{"another epoch", "e0", 6, 0, false, nil},
			{"from the start, pruned", "", 0, 0, false, nil},
			{"more than MaxEvents", "e1", 4, 11, false, nil},
		} {
			msgs, ok, err := l.Read(ctx, "campaign_1", c.epoch, c.since, c.upTo)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if ok != c.ok || fmt.Sprint(offsets(msgs)) != fmt.Sprint(c.want) && c.ok {
				t.Errorf("%s: read (%d, %d] of %q: ok %v, offsets %v; want %v, %v", c.name, c.since, c.upTo, c.epoch, ok, offsets(msgs), c.ok, c.want)
			}
			for _, m := range msgs {
				if m.Group != "campaign_1" || m.Epoch != "e1" || m.Type != "comment" || string(m.Data) != fmt.Sprintf(`{"n":%d}`, m.Offset) {
					t.Errorf("%s: read %+v", c.name, m)
				}
			}
		}
		// A group whose first event is still kept reads from the start; one
		// with no events at all is at the start.
		logged(t, db, "quest_2", "q", 1, 3, 3)
		if msgs, ok, err := l.Read(ctx, "quest_2", "", 0, 0); err != nil || !ok || fmt.Sprint(offsets(msgs)) != "[1 2 3]" {
			t.Errorf("quest_2 from the start: %v %v %v", offsets(msgs), ok, err)
		}
		if msgs, ok, err := l.Read(ctx, "user_9", "", 0, 0); err != nil || !ok || len(msgs) != 0 {
			t.Errorf("a group without events from the start: %v %v %v", msgs, ok, err)
		}
		if _, ok, err := l.Read(ctx, "user_9", "x", 3, 0); err != nil || ok {
			t.Errorf("a position in a group without events: ok %v, %v", ok, err)
		}
	})
}

func TestPositions(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		db := open(t, dsn)
		ctx := context.Background()
		logged(t, db, "campaign_1", "e1", 1, 12, 10) // 11 and 12 wait for the relay
		logged(t, db, "quest_2", "q", 1, 3, 3)
		// A reset recorded and not published: offset 0 of the new epoch.
		logged(t, db, "campaign_3", "old", 1, 2, 2)
		if _, err := db.ExecContext(ctx, "UPDATE group_log SET epoch = 'new', last = 0 WHERE grp = 'campaign_3'"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO outbox (grp, type, data, created_at, epoch, off) VALUES ('campaign_3', 'room_reset', '{}', $1, 'new', 0)", time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		l := eventlog.New(db, eventlog.Options{})
		groups := []string{"campaign_1", "user_5", "quest_2", "campaign_3", "campaign_1"}
		ps, err := l.Positions(ctx, groups)
		if err != nil {
			t.Fatal(err)
		}
		want := []layer.Position{{Offset: 10, Epoch: "e1"}, {}, {Offset: 3, Epoch: "q"}, {Offset: 0, Epoch: "new"}, {Offset: 10, Epoch: "e1"}}
		if fmt.Sprint(ps) != fmt.Sprint(want) {
			t.Errorf("positions of %v: %v; want %v", groups, ps, want)
		}
		// More groups than one query names.
		many := make([]string, 1203)
		for i := range many {
			many[i] = fmt.Sprintf("user_%d", i+100)
		}
		many[700] = "quest_2"
		ps, err = l.Positions(ctx, many)
		if err != nil || len(ps) != len(many) || ps[700] != (layer.Position{Offset: 3, Epoch: "q"}) || ps[701] != (layer.Position{}) {
			t.Errorf("positions of %d groups: %d, [700] %v, %v", len(many), len(ps), ps[700], err)
		}
	})
}

// A storm of reads takes at most Readers database connections; a read that
// cannot get one in ReaderWait fails with ErrBusy instead of queueing.
func TestReadsAreBounded(t *testing.T) {
	db := open(t, testenv.SQLite(t))
	l := eventlog.New(db, eventlog.Options{Readers: 1, ReaderWait: 20 * time.Millisecond})
	release, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = l.Read(context.Background(), "campaign_1", "e", 0, 5)
	if !errors.Is(err, eventlog.ErrBusy) {
		t.Errorf("read with every reader busy: %v; want ErrBusy", err)
	}
	if _, err := l.Positions(context.Background(), []string{"campaign_1"}); !errors.Is(err, eventlog.ErrBusy) {
		t.Errorf("positions with every reader busy: %v; want ErrBusy", err)
	}
	release()
	if _, ok, err := l.Read(context.Background(), "campaign_1", "", 0, 0); err != nil || !ok {
		t.Errorf("read once a reader is free: %v %v", ok, err)
	}
}

// With a Window, a read reaching outside the group's own window is refused
// although the outbox still holds the events (the relay prunes them only
// every so often); other groups keep theirs.
func TestReadWindowPerGroup(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		db := open(t, dsn)
		ctx := context.Background()
		logged(t, db, "campaign_1", "e1", 1, 10, 10)
		logged(t, db, "campaign_2", "e2", 1, 10, 10)
		logged(t, db, "campaign_3", "e3", 1, 10, 10)
		// campaign_3's first five were recorded two minutes ago.
		if _, err := db.ExecContext(ctx, "UPDATE outbox SET created_at = $1 WHERE grp = 'campaign_3' AND off <= 5", time.Now().Add(-2*time.Minute).UTC()); err != nil {
			t.Fatal(err)
		}
		window := func(g string) (int, time.Duration) {
			switch g {
			case "campaign_1":
				return 3, time.Hour
			case "campaign_3":
				return 1000, time.Minute
			}
			return 1000, time.Hour
		}
		l := eventlog.New(db, eventlog.Options{Window: window})
		for _, c := range []struct {
			group, epoch string
			since, upTo  uint64
			ok           bool
			want         []uint64
		}{
			{"campaign_1", "e1", 7, 0, true, []uint64{8, 9, 10}},
			{"campaign_1", "e1", 6, 0, false, nil},
			{"campaign_1", "e1", 6, 8, false, nil}, // the window ends at the head, not at upTo
			{"campaign_1", "", 0, 0, false, nil},
			{"campaign_2", "", 0, 0, true, seq(1, 10)},
			{"campaign_3", "e3", 5, 0, true, seq(6, 10)},
			{"campaign_3", "e3", 4, 0, false, nil},
			{"campaign_3", "e3", 10, 0, true, nil},
		} {
			msgs, ok, err := l.Read(ctx, c.group, c.epoch, c.since, c.upTo)
			if err != nil || ok != c.ok || !slices.Equal(offsets(msgs), c.want) {
				t.Errorf("read (%d, %d] of %s %q: %v, ok %v, %v; want %v, %v", c.since, c.upTo, c.group, c.epoch, offsets(msgs), ok, err, c.want, c.ok)
			}
		}
		// A memory layer with the same window falls back on the log for
		// what it does not hold, and is refused the same.
		m := layer.NewMemory(func(layer.Message) {}, layer.MemoryOptions{Log: l, Window: window})
		defer m.Close()
		if _, ok, err := m.History(ctx, "campaign_1", 6, "e1"); err != nil || ok {
			t.Errorf("memory layer resuming campaign_1 after 6: ok %v, %v; want refused", ok, err)
		}
		if msgs, ok, err := m.History(ctx, "campaign_1", 7, "e1"); err != nil || !ok || !slices.Equal(offsets(msgs), seq(8, 10)) {
			t.Errorf("memory layer resuming campaign_1 after 7: %v, ok %v, %v; want 8..10", offsets(msgs), ok, err)
		}
	})
}
