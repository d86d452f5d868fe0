// Package eventlog reads the event log the database keeps: each group's
// position (group_log) and its recent events (the outbox rows, which stay
// after they are published for the history window). Channel layers read
// from it what they lost or never had, so a resume survives a restarted
// process or an emptied Redis.
package eventlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/heraldhq/herald/internal/realtime/layer"
	"github.com/heraldhq/herald/internal/store"
)

// Defaults of Options.
const (
	DefaultMaxEvents  = 2 * layer.DefaultHistorySize
	DefaultReaders    = 4
	DefaultReaderWait = 2 * time.Second
)

// Options bounds what reads of the log may ask of the database.
type Options struct {
	// MaxEvents is the most events one Read returns; a read of more is
	// refused (ok false) without touching the database. Default
	// DefaultMaxEvents.
	MaxEvents int
	// Readers is how many reads run at once (default DefaultReaders);
	// identical concurrent reads share one. A read that waits ReaderWait
	// (default DefaultReaderWait) for its turn fails with ErrBusy, so a
	// storm of resumes cannot take every database connection from writes.
	Readers    int
	ReaderWait time.Duration
	// Window, if set, gives each group's history window (its latest size events, none older than age); nil uses layer.DefaultHistorySize and layer.DefaultHistoryAge for every group.
	// A read reaching outside the window is refused (ok false): the relay
	// prunes the outbox only every so often (a group's oldest a quarter of
	// its window at a time, aged events every few seconds), and what it
	// has not pruned yet is not to be replayed any more.
	Window func(group string) (size int, age time.Duration)
}

// ErrBusy is a read that found every reader busy for ReaderWait.
var ErrBusy = errors.New("event log: too many reads at once")

// Log reads the event log of one database. It is safe for concurrent use.
type Log struct {
	db     *store.DB
	opt    Options
	sem    chan struct{}
	flight singleflight.Group
}

var _ layer.Log = (*Log)(nil)

// New returns a Log over db.
func New(db *store.DB, opt Options) *Log {
	if opt.MaxEvents <= 0 {
		opt.MaxEvents = DefaultMaxEvents
	}
	if opt.Readers <= 0 {
		opt.Readers = DefaultReaders
	}
	if opt.ReaderWait <= 0 {
		opt.ReaderWait = DefaultReaderWait
	}
	return &Log{db: db, opt: opt, sem: make(chan struct{}, opt.Readers)}
}

// acquire takes a reader's turn.
func (l *Log) acquire(ctx context.Context) (release func(), err error) {
	select {
	case l.sem <- struct{}{}:
		return func() { <-l.sem }, nil
	default:
	}
	t := time.NewTimer(l.opt.ReaderWait)
	defer t.Stop()
	select {
	case l.sem <- struct{}{}:
		return func() { <-l.sem }, nil
	case <-t.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, fmt.Errorf("event log: wait for a reader: %w", ctx.Err())
	}
}

type readResult struct {
	msgs []layer.Message
	ok   bool
}

// Read implements layer.Log.
func (l *Log) Read(ctx context.Context, group, epoch string, since, upTo uint64) ([]layer.Message, bool, error) {
	if upTo != 0 && (upTo < since || upTo-since > uint64(l.opt.MaxEvents)) {
		return nil, upTo == since, nil
	}
	key := group + "\x00" + epoch + "\x00" + strconv.FormatUint(since, 10) + "\x00" + strconv.FormatUint(upTo, 10)
	v, err, _ := l.flight.Do(key, func() (any, error) {
		// The read outlives a caller that gives up while others share it.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		release, err := l.acquire(ctx)
		if err != nil {
			return nil, err
		}
		defer release()
		msgs, ok, err := l.read(rctx, group, epoch, since, upTo)
		return readResult{msgs, ok}, err
	})
	if err != nil {
		return nil, false, err
	}
	res := v.(readResult)
	// Each caller gets its own slice (the hub filters it in place).
	return slices.Clone(res.msgs), res.ok, nil
}

func (l *Log) read(ctx context.Context, group, epoch string, since, upTo uint64) ([]layer.Message, bool, error) {
	cur, head, err := l.position(ctx, group)
	if err != nil {
		return nil, false, err
	}
	switch {
	case cur == "":
		return nil, epoch == "" && since == 0, nil // no events yet
	case epoch == "" && since == 0:
		epoch = cur
	case epoch != cur:
		return nil, false, nil
	}
	if upTo == 0 {
		upTo = head
	}
	if since > upTo {
		return nil, false, nil
	}
	if since == upTo {
		return nil, true, nil
	}
	if upTo-since > uint64(l.opt.MaxEvents) {
		return nil, false, nil
	}
	// The window is the group's latest size events, and since+1 the first
	// to be read.
	size, age := l.window(group)
	if max(head, upTo)-since > uint64(size) {
		return nil, false, nil
	}
	oldest := time.Now().Add(-age) // the first event read may be no older
	n := int(upTo - since)
	rows, err := l.db.QueryContext(ctx, "SELECT off, type, data, created_at FROM outbox WHERE grp = $1 AND epoch = $2 AND off > $3 AND off <= $4 ORDER BY off LIMIT $5",
		group, epoch, int64(since), int64(upTo), n)
	if err != nil {
		return nil, false, fmt.Errorf("event log: read %s: %w", group, err)
	}
	defer rows.Close()
	out := make([]layer.Message, 0, n)
	want := since + 1
	for rows.Next() {
		var off int64
		var typ, data string
		var created time.Time
		if err := rows.Scan(&off, &typ, &data, &created); err != nil {
			return nil, false, fmt.Errorf("event log: read %s: %w", group, err)
		}
		if uint64(off) != want {
			return nil, false, nil // the oldest of them are no longer kept
		}
		if len(out) == 0 && created.Before(oldest) {
			return nil, false, nil // the oldest of them left the window by age
		}
		want++
		// cur, the database's string, not epoch, which may be cut from a
		// client's request.
		out = append(out, layer.Message{Group: group, Type: typ, Data: []byte(data), Offset: uint64(off), Epoch: cur})
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("event log: read %s: %w", group, err)
	}
	if len(out) != n {
		return nil, false, nil
	}
	return out, true, nil
}

// window is group's history window: Window's, clamped to at least one
// event and defaulting an unset age.
func (l *Log) window(group string) (size int, age time.Duration) {
	if l.opt.Window == nil {
		return layer.DefaultHistorySize, layer.DefaultHistoryAge
	}
	size, age = l.opt.Window(group)
	if age <= 0 {
		age = layer.DefaultHistoryAge
	}
	return max(size, 1), age
}

// positionQuery reads a group's epoch and the offset of its last published
// event. A group's events are published in offset order, so those before
// its first unpublished one of the current epoch are all published; with
// none unpublished, its last recorded one is. A reset recorded and not yet
// published leaves the group at offset 0 of the new epoch.
const positionQuery = `SELECT g.grp, g.epoch, g.last,
  (SELECT MIN(o.off) FROM outbox o WHERE o.grp = g.grp AND o.epoch = g.epoch AND NOT o.published)
FROM group_log g WHERE g.grp IN (`

// position reads one group's epoch ("" if it has no events) and published
// head.
func (l *Log) position(ctx context.Context, group string) (epoch string, head uint64, err error) {
	ps, err := l.positions(ctx, []string{group})
	if err != nil {
		return "", 0, err
	}
	return ps[0].Epoch, ps[0].Offset, nil
}

// Positions implements layer.Log.
func (l *Log) Positions(ctx context.Context, groups []string) ([]layer.Position, error) {
	release, err := l.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return l.positions(ctx, groups)
}

func (l *Log) positions(ctx context.Context, groups []string) ([]layer.Position, error) {
	out := make([]layer.Position, len(groups))
	at := make(map[string][]int, len(groups))
	for len(groups) > 0 {
		n := min(len(groups), 500)
		args := make([]any, n)
		var q strings.Builder
		q.WriteString(positionQuery)
		for i, g := range groups[:n] {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString("$" + strconv.Itoa(i+1))
			args[i] = g
			at[g] = append(at[g], len(out)-len(groups)+i)
		}
		q.WriteByte(')')
		if err := l.scanPositions(ctx, q.String(), args, at, out); err != nil {
			return nil, err
		}
		groups = groups[n:]
	}
	return out, nil
}

func (l *Log) scanPositions(ctx context.Context, query string, args []any, at map[string][]int, out []layer.Position) error {
	rows, err := l.db.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("event log: read positions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var grp, epoch string
		var last int64
		var pending *int64
		if err := rows.Scan(&grp, &epoch, &last, &pending); err != nil {
			return fmt.Errorf("event log: read positions: %w", err)
		}
		head := last
		if pending != nil {
			head = max(*pending-1, 0)
		}
		for _, i := range at[grp] {
			out[i] = layer.Position{Offset: uint64(head), Epoch: epoch}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("event log: read positions: %w", err)
	}
	return nil
}
