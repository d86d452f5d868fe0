package relay

import (
	"context"
	"sync"
	"time"
)

// Backlog reporting (Options.Backlog): what a round found unpublished in
// the outbox, from the rows it reads anyway. Only a round that reads a
// full batch, and so cannot tell how many more wait, counts the rest, at
// most once per backlogCountEvery and at most backlogCountCap rows (one
// index-only scan of the outbox_pending index).
const (
	backlogCountEvery = time.Second
	backlogCountCap   = 100_000
)

// backlog is what reportRead counted, for the rounds that follow it.
type backlog struct {
	mu        sync.Mutex
	count     int       // the last count, less what was published since
	countedAt time.Time // when it was made
}

// reportRead reports what a round read: all of the outbox's unpublished
// events when it read fewer than a batch of every partition, else at least
// what it read (a count). It returns the number it reported.
func (r *Relay) reportRead(ctx context.Context, evs []event, partial bool) int {
	if r.opt.Backlog == nil {
		return 0
	}
	pending := len(evs)
	if pending == r.opt.Batch || partial {
		pending = max(r.countPending(ctx), pending)
	}
	r.opt.Backlog(pending, oldestOf(evs))
	return pending
}

// reportLeft reports what is left once a round published the first
// published events of evs, of pending read (reportRead).
func (r *Relay) reportLeft(evs []event, pending, published int) {
	if r.opt.Backlog == nil {
		return
	}
	r.bl.mu.Lock()
	r.bl.count = max(r.bl.count-published, 0)
	r.bl.mu.Unlock()
	left := pending - published // pending counts at least evs
	oldest := oldestOf(evs[published:])
	switch {
	case left == 0:
		oldest = time.Time{}
	case oldest.IsZero() && len(evs) > 0:
		// A full batch went out and more wait, unread: none of them was
		// committed before the last event read (an upper bound of their
		// age until the next round, which starts at once, reads them).
		oldest = evs[len(evs)-1].created
	case oldest.IsZero():
		// A round of some partitions read none, and others' events wait
		// (counted): their age is not known here.
		oldest = time.Now()
	}
	r.opt.Backlog(left, oldest)
}

// countPending counts the unpublished events, up to backlogCountCap; at
// most once per backlogCountEvery, the last count less what was published
// since otherwise. A failed count reports 0 (the caller keeps the batch).
func (r *Relay) countPending(ctx context.Context) int {
	r.bl.mu.Lock()
	defer r.bl.mu.Unlock()
	if time.Since(r.bl.countedAt) < backlogCountEvery {
		return r.bl.count
	}
	var n int
	if err := r.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM (SELECT 1 FROM outbox WHERE NOT published LIMIT $1) AS t", backlogCountCap).Scan(&n); err != nil {
		return 0
	}
	r.bl.count, r.bl.countedAt = n, time.Now()
	return n
}

// oldestOf is the commit time of the oldest of evs (zero for none).
func oldestOf(evs []event) time.Time {
	var t time.Time
	for _, e := range evs {
		if t.IsZero() || e.created.Before(t) {
			t = e.created
		}
	}
	return t
}
