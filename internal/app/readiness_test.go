package app

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/metrics"
)

// Probes and scrapes that come while a readiness check runs share it: a
// storm of them runs one check at a time against the database and Redis,
// every caller gets its answer, and the check has its own bound, which a
// caller giving up does not cut short.
func TestReadinessCheckIsShared(t *testing.T) {
	var a App
	var running, most, runs atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	down := errors.New("database: connection refused")
	check := func(ctx context.Context) error {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		runs.Add(1)
		if d, ok := ctx.Deadline(); !ok || time.Until(d) > metrics.ReadyTimeout {
			t.Errorf("the check runs with deadline %v (set %v), want within %v", d, ok, metrics.ReadyTimeout)
		}
		select {
		case started <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-ctx.Done():
			t.Error("the shared check was cut short")
		}
		return down
	}

	// The first caller's context ends while it waits: the run goes on for
	// the others.
	first, cancel := context.WithCancel(context.Background())
	const callers = 50
	errs := make(chan error, callers)
	go func() { errs <- a.sharedCheck(first, check) }()
	<-started
	cancel()
	var wg sync.WaitGroup
	var calling atomic.Int32
	for range callers - 1 {
		wg.Go(func() {
			calling.Add(1)
			errs <- a.sharedCheck(context.Background(), check)
		})
	}
	for calling.Load() < callers-1 {
		runtime.Gosched()
	}
	// While the check has not answered, nobody has an answer: neither the
	// first caller, whose context ended, nor those that joined it.
	if len(errs) > 0 {
		t.Fatalf("a caller returned before the check answered: %v", <-errs)
	}
	close(release)
	wg.Wait()
	for range callers {
		if err := <-errs; err != down {
			t.Errorf("a caller got %v, want the check's %v", err, down)
		}
	}
	if m := most.Load(); m != 1 {
		t.Errorf("%d checks ran at once, want 1", m)
	}
	// A check after the last one ended runs again.
	before := runs.Load()
	if err := a.sharedCheck(context.Background(), func(context.Context) error { runs.Add(1); return nil }); err != nil || runs.Load() != before+1 {
		t.Errorf("a later check: %v, %d runs, want a new one", err, runs.Load()-before)
	}
}
