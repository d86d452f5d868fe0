package auth

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// DefaultHashWait is how long a password check waits for a slot before the
// server answers that it is busy.
const DefaultHashWait = 2 * time.Second

// waitersPerSlot bounds the queue of a HashGate: beyond this many waiters
// per slot a request is refused at once, since it could not be served within
// the wait anyway.
const waitersPerSlot = 32

// ErrBusy is returned by HashGate.Acquire when no slot frees up in time.
var ErrBusy = errors.New("too many password checks at once")

// HashGate bounds how many password hashes run at once. Each argon2id call
// allocates its whole memory cost (19 MiB by default) for its duration, so
// without a bound a burst of sign-ins or registrations grows the heap by that
// much per concurrent request. Waiters are served in arrival order.
type HashGate struct {
	sem        *semaphore.Weighted
	wait       time.Duration
	waiting    atomic.Int64
	maxWaiting int64
}

// NewHashGate allows slots hashes at once (runtime.GOMAXPROCS(0) if slots
// is not positive), each caller waiting up to wait (DefaultHashWait if not
// positive) for its turn.
func NewHashGate(slots int, wait time.Duration) *HashGate {
	if slots <= 0 {
		slots = runtime.GOMAXPROCS(0)
	}
	if wait <= 0 {
		wait = DefaultHashWait
	}
	return &HashGate{
		sem:        semaphore.NewWeighted(int64(slots)),
		wait:       wait,
		maxWaiting: int64(slots) * waitersPerSlot,
	}
}

// Acquire takes a slot, waiting at most the gate's wait and never past ctx.
// It returns ErrBusy if no slot came free (or too many are already
// waiting), or ctx's error if ctx ended first. On success the caller must
// call release exactly once when its hashing is done.
func (g *HashGate) Acquire(ctx context.Context) (release func(), err error) {
	release = func() { g.sem.Release(1) }
	if g.sem.TryAcquire(1) {
		return release, nil
	}
	if g.waiting.Add(1) > g.maxWaiting {
		g.waiting.Add(-1)
		return nil, ErrBusy
	}
	defer g.waiting.Add(-1)
	wctx, cancel := context.WithTimeout(ctx, g.wait)
	defer cancel()
	if err := g.sem.Acquire(wctx, 1); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, ErrBusy
	}
	return release, nil
}

// Waiting is how many callers are waiting for a slot.
func (g *HashGate) Waiting() int { return int(g.waiting.Load()) }
