package layer

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/panics"
	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
)

// layerPanics counts the layer's recovered panics.
type layerPanics struct{ n atomic.Int64 }

func (p *layerPanics) hook(where string) {
	if where == panics.Layer {
		p.n.Add(1)
	}
}

// A sweep that panics is counted and the sweeper goes on: a later sweep
// still forgets a group whose events expired.
func TestMemorySweeperPanic(t *testing.T) {
	var counted layerPanics
	var armed atomic.Bool
	armed.Store(true)
	m := NewMemory(func(Message) {}, MemoryOptions{
		HistoryAge: 20 * time.Millisecond, SweepInterval: 5 * time.Millisecond,
		Now: func() time.Time {
			if armed.CompareAndSwap(true, false) {
				panic("clock failed") // the first caller is the sweeper
			}
			return time.Now()
		},
		OnPanic: counted.hook, Logger: quietLog(),
	})
	defer m.Close()
	waitFor(t, "the sweeper's panic", 10*time.Second, func() bool { return counted.n.Load() == 1 })
	if _, err := m.Publish(context.Background(), Message{Group: "g", Type: "t", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a later sweep to forget the expired group", 10*time.Second, func() bool { return m.groupCount() == 0 })
}

// A panic while a Redis subscriber connection's event is handled is
// counted, and the reader goes on with the next event.
func TestRedisReaderPanic(t *testing.T) {
	ctx := context.Background()
	var counted layerPanics
	s := newSink()
	// The layer delivers to a handler that panics on one event.
	r, err := NewRedis(ctx, redistest.SharedURL(), func(m Message) {
		if m.Type == "boom" {
			panic("handler failed")
		}
		s.handle(m)
	}, RedisOptions{Prefix: redistest.Prefix(t), OnPanic: counted.hook, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if err := r.Subscribe(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"boom", "after"} {
		if _, err := r.Publish(ctx, Message{Group: "g", Type: typ, Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.wait(t, "g", 1, 10*time.Second); got[0].Type != "after" || got[0].Offset != 2 {
		t.Fatalf("delivered %+v, want the event after the one that panicked", got[0])
	}
	if n := counted.n.Load(); n != 1 {
		t.Fatalf("%d layer panics counted, want 1", n)
	}
}

// A panic while the confirmer reads new subscriptions' positions fails
// those subscriptions instead of leaving them waiting, and the confirmer
// serves the next ones.
func TestRedisConfirmerPanic(t *testing.T) {
	ctx := context.Background()
	var counted layerPanics
	s := newSink()
	r := newTestRedis(t, redistest.SharedURL(), s, RedisOptions{Prefix: redistest.Prefix(t), OnPanic: counted.hook, Logger: quietLog()})
	var armed atomic.Bool
	armed.Store(true)
	r.testBeforeConfirm = func([]*rsub) {
		if armed.CompareAndSwap(true, false) {
			panic("position read failed")
		}
	}
	start := time.Now()
	if err := r.Subscribe(ctx, "first"); err == nil {
		t.Fatal("the subscription whose position read panicked succeeded")
	}
	if d := time.Since(start); d >= r.opt.SubscribeTimeout {
		t.Fatalf("Subscribe failed only after %v, its timeout", d)
	}
	if err := r.Subscribe(ctx, "second"); err != nil {
		t.Fatalf("the next subscription: %v", err)
	}
	publishN(t, r, "second", 1)
	s.wait(t, "second", 1, 10*time.Second)
	if n := counted.n.Load(); n != 1 {
		t.Fatalf("%d layer panics counted, want 1", n)
	}
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
