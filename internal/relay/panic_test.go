package relay_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/money"
	"github.com/heraldhq/herald/internal/panics"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime/layer"
	"github.com/heraldhq/herald/internal/relay"
	"github.com/heraldhq/herald/internal/testenv"
)

// panicsOnce is a Publisher whose first round panics.
type panicsOnce struct {
	recorder
	done atomic.Bool
}

func (p *panicsOnce) PublishBatch(ctx context.Context, msgs []layer.Message, keys []string) ([]uint64, error) {
	if p.done.CompareAndSwap(false, true) {
		panic("publish failed")
	}
	return p.recorder.PublishBatch(ctx, msgs, keys)
}

// A round that panics is counted and fails like a round that could not
// publish: its transaction rolls back (on PostgreSQL releasing the relay
// lock), the events stay in the outbox and the relay publishes them on its
// next round.
func TestRelayPanicRetries(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		a := newApp(t, dsn)
		user, campaigns := setupQuiet(t, a, 1)
		ctx := context.Background()
		db := a.Platform().DB()
		amount := money.Cents(5)
		if _, err := a.Platform().Contribute(ctx, user, campaigns[0], platform.ContributionInput{Amount: &amount}); err != nil {
			t.Fatal(err)
		}
		pending, _ := a.Platform().PendingEvents(ctx, 100)
		pub := &panicsOnce{}
		var counted, failed atomic.Int64
		r := relay.New(db, pub, relay.Options{
			MaxBackoff: 100 * time.Millisecond, LockWait: time.Second, Logger: slog.New(slog.DiscardHandler),
			Failed: func() { failed.Add(1) },
			OnPanic: func(where string) {
				if where == panics.Relay {
					counted.Add(1)
				}
			},
		})
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		defer func() { cancel(); <-done }()
		for deadline := time.Now().Add(10 * time.Second); pub.count() < len(pending); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d events published after the round that panicked", pub.count(), len(pending))
			}
		}
		if n := counted.Load(); n != 1 {
			t.Fatalf("%d relay panics counted, want 1", n)
		}
		if n := failed.Load(); n < 1 {
			t.Fatal("the round that panicked was not counted as failed")
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			left, err := a.Platform().PendingEvents(ctx, 100)
			if err == nil && len(left) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("outbox after the retry: %d events, %v", len(left), err)
			}
		}
	})
}
