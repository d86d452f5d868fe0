package eventlog_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/eventlog"
	"github.com/heraldhq/herald/internal/realtime/layer"
	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
	"github.com/heraldhq/herald/internal/testenv"
)

// received collects what a layer hands its handler, and its OnLost calls.
type received struct {
	mu   sync.Mutex
	msgs []layer.Message
	lost []string
	more chan struct{}
}

func newReceived() *received { return &received{more: make(chan struct{}, 1)} }

func (r *received) handle(m layer.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default:
	}
}

func (r *received) onLost(g string) {
	r.mu.Lock()
	r.lost = append(r.lost, g)
	r.mu.Unlock()
}

// offsets waits until n messages arrived and returns their offsets.
func (r *received) offsets(t *testing.T, n int) []uint64 {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		got := offsets(r.msgs)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("received offsets %v; waited for %d", got, n)
		}
	}
}

func seq(from, to uint64) []uint64 {
	var out []uint64
	for o := from; o <= to; o++ {
		out = append(out, o)
	}
	return out
}

// event is what the relay publishes for outbox row off of campaign_1.
func event(off uint64) layer.Message {
	return layer.Message{Group: "campaign_1", Type: "comment", Data: fmt.Appendf(nil, `{"n":%d}`, off), Offset: off, Epoch: "e1"}
}

// On one process (SQLite), a new memory layer — herald restarted — goes on
// where the database's log stands: positions and history come from the
// log, and events published with their positions keep them.
func TestMemoryLayerGoesOnFromTheLog(t *testing.T) {
	db := open(t, testenv.SQLite(t))
	ctx := context.Background()
	logged(t, db, "campaign_1", "e1", 1, 21, 20) // 21 is committed, its relay not done yet
	rec := newReceived()
	m := layer.NewMemory(rec.handle, layer.MemoryOptions{Log: eventlog.New(db, eventlog.Options{}), Logger: slog.New(slog.DiscardHandler)})
	defer m.Close()
	if off, epoch, err := m.Position(ctx, "campaign_1"); err != nil || off != 20 || epoch != "e1" {
		t.Fatalf("position before any publish: %d %q %v; want 20 of e1, the log's last published", off, epoch, err)
	}
	if msgs, ok, err := m.History(ctx, "campaign_1", 15, "e1"); err != nil || !ok || !slices.Equal(offsets(msgs), seq(16, 20)) {
		t.Fatalf("history after 15: %v %v %v", offsets(msgs), ok, err)
	}
	if err := m.Subscribe(ctx, "campaign_1"); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second time as a relay that died before marking it
		if off, err := m.Publish(ctx, event(21)); err != nil || off != 21 {
			t.Fatalf("publish 21: %d %v", off, err)
		}
	}
	if got := rec.offsets(t, 1); !slices.Equal(got, []uint64{21}) {
		t.Fatalf("delivered %v; want 21 once", got)
	}
	// The window holds 21 only; older comes from the log, up to 21.
	if msgs, ok, err := m.History(ctx, "campaign_1", 17, "e1"); err != nil || !ok || !slices.Equal(offsets(msgs), seq(18, 21)) {
		t.Fatalf("history after 17: %v %v %v", offsets(msgs), ok, err)
	}
	if _, ok, err := m.History(ctx, "campaign_1", 17, "another"); err != nil || ok {
		t.Fatalf("history of another epoch: %v %v", ok, err)
	}
}

// Redis restarted empty loses no event: a subscription catches up from the
// log without calling OnLost, positions and history come from the log, and
// events published with their positions keep them.
func TestRedisRestartedEmptyLosesNothing(t *testing.T) {
	srv := redistest.Start(t)
	db := open(t, testenv.SQLite(t))
	ctx := context.Background()
	log := eventlog.New(db, eventlog.Options{})
	rec := newReceived()
	r, err := layer.NewRedis(ctx, srv.URL(), rec.handle, layer.RedisOptions{Log: log, OnLost: rec.onLost, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	logged(t, db, "campaign_1", "e1", 1, 5, 5)
	// Redis has never seen the group: its position is the log's.
	if off, epoch, err := r.Position(ctx, "campaign_1"); err != nil || off != 5 || epoch != "e1" {
		t.Fatalf("position: %d %q %v; want 5 of e1", off, epoch, err)
	}
	if err := r.Subscribe(ctx, "campaign_1"); err != nil {
		t.Fatal(err)
	}
	logged(t, db, "campaign_1", "e1", 6, 8, 8) // as the relay marks them once published
	for off := uint64(6); off <= 8; off++ {
		if _, err := r.Publish(ctx, event(off)); err != nil {
			t.Fatal(err)
		}
	}
	if got := rec.offsets(t, 3); !slices.Equal(got, seq(6, 8)) {
		t.Fatalf("delivered %v; want 6..8", got)
	}
	// 9 and 10 are published to a Redis that then loses everything before
	// this process's subscriber read them; 11 and 13 reach the new Redis.
	logged(t, db, "campaign_1", "e1", 9, 13, 10)
	srv.Pause()
	srv.Kill()
	srv.Restart()
	for _, off := range []uint64{11, 13} {
		if _, err := publishWhenUp(ctx, r, event(off)); err != nil {
			t.Fatal(err)
		}
	}
	if got := rec.offsets(t, 8); !slices.Equal(got, seq(6, 13)) {
		t.Fatalf("delivered %v; want 6..13, each once, in order", got)
	}
	rec.mu.Lock()
	lost := rec.lost
	rec.mu.Unlock()
	if len(lost) != 0 {
		t.Errorf("OnLost called for %v", lost)
	}
	// A resume from before the new Redis's window reads the log.
	if msgs, ok, err := r.History(ctx, "campaign_1", 3, "e1"); err != nil || !ok || !slices.Equal(offsets(msgs), seq(4, 13)) {
		t.Errorf("history after 3: %v %v %v", offsets(msgs), ok, err)
	}
	if st := r.Stats(); st.LogHistory == 0 || st.LogPositions == 0 {
		t.Errorf("stats %+v: the log was not read", st)
	}
}

// publishWhenUp publishes msg once Redis answers again.
func publishWhenUp(ctx context.Context, r *layer.Redis, msg layer.Message) (uint64, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		off, err := r.Publish(ctx, msg)
		if err == nil || time.Now().After(deadline) {
			return off, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
