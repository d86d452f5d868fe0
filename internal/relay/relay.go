// Package relay publishes the events that committed writes recorded in the
// outbox table to the channel layer, in commit order per group, with the
// offsets and epochs their writes gave them, and marks each published once
// the layer has it. A process that dies between commit and publish loses
// nothing: the events wait in the outbox for the next relay. Published
// events stay in the outbox for the history window (the event log that
// resumes read when a layer lost them) and are pruned after it.
package relay

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/panics"
	"github.com/heraldhq/herald/internal/realtime/layer"
	"github.com/heraldhq/herald/internal/store"
)

// Publisher takes a round of events, in order, to every member of their
// groups (realtime.Hub, through the channel layer: one Redis pipeline per
// round). msgs[i] carries the publish key keys[i]. It returns the offsets
// of the events published: all, or those before the first that failed.
type Publisher interface {
	PublishBatch(ctx context.Context, msgs []layer.Message, keys []string) ([]uint64, error)
}

// Options tunes a Relay; zero values pick the defaults.
type Options struct {
	// Batch is how many events one round publishes at most (default 256).
	Batch int
	// Poll is how often the outbox is checked without a wake-up: the bound on
	// the delay of events written by other processes (default 100ms).
	Poll time.Duration
	// MaxBackoff caps the wait between attempts while publishing fails
	// (default 5s).
	MaxBackoff time.Duration
	// LockWait bounds how long a round on PostgreSQL waits for another
	// process's relay to finish its round (default 5s).
	LockWait time.Duration
	Logger   *slog.Logger
	// Published, if set, is told of each published event and how long ago
	// it was committed; Failed of each round that could not publish.
	Published func(typ string, delay time.Duration)
	Failed    func()
	// Numbered, if set, is told of each event of a round, by its outbox
	// id, once its number is committed and before it is published (a
	// publish's answer gives the positions; reading them back from the
	// outbox can come too late in a busy group, whose oldest events are
	// pruned). It runs on the relay's goroutine and must not block.
	Numbered func(id int64, group, epoch string, offset int64)
	// HistorySize and HistoryAge are the window published events are kept
	// for: a group's latest HistorySize events, none older than HistoryAge
	// (defaults layer.DefaultHistorySize and layer.DefaultHistoryAge). A
	// group's older events are pruned a few hundred at a time, so it keeps
	// up to a quarter more.
	HistorySize int
	HistoryAge  time.Duration
	// OnPanic, if set, is told of each panic recovered in a round
	// (panics.Relay). The round fails like one that could not publish: its
	// transaction is rolled back, its events stay in the outbox and the
	// relay tries again after a backoff.
	OnPanic func(where string)
}

// Relay moves events from the outbox to a Publisher.
type Relay struct {
	db   *store.DB
	pub  Publisher
	opt  Options
	wake chan struct{}
}

// errBusy is a round that waited LockWait for another process's relay.
var errBusy = errors.New("outbox relay: another process's relay is publishing")

// errPanicked is a round that panicked.
var errPanicked = errors.New("outbox relay: the round panicked")

// relayLockID is the PostgreSQL advisory lock held by the one relay that
// publishes at a time, so that several processes never interleave one
// group's events out of order.
const relayLockID = 0x68657262 // "herb"

// New returns a Relay; Run starts it.
func New(db *store.DB, pub Publisher, opt Options) *Relay {
	if opt.Batch <= 0 {
		opt.Batch = 256
	}
	if opt.Poll <= 0 {
		opt.Poll = 100 * time.Millisecond
	}
	if opt.LockWait <= 0 {
		opt.LockWait = 5 * time.Second
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = 5 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.HistorySize <= 0 {
		opt.HistorySize = layer.DefaultHistorySize
	}
	if opt.HistoryAge <= 0 {
		opt.HistoryAge = layer.DefaultHistoryAge
	}
	return &Relay{db: db, pub: pub, opt: opt, wake: make(chan struct{}, 1)}
}

// Notify wakes the relay: a write has committed. It never blocks.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run publishes until ctx ends, then makes one last attempt to flush what is
// pending (bounded by a short timeout) and returns.
func (r *Relay) Run(ctx context.Context) error {
	backoff := time.Duration(0)
	timer := time.NewTimer(0)
	defer timer.Stop()
	pruneInterval := min(r.opt.HistoryAge/10, 10*time.Second)
	lastPrune := time.Now()
	for {
		// While publishing fails, writes do not cut the backoff short: the
		// wake stays pending until the timer fires, so an outage costs one
		// attempt per backoff, not one per write.
		wake := r.wake
		if backoff > 0 {
			wake = nil
		}
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			err := r.flush(fctx)
			cancel()
			if err != nil {
				r.opt.Logger.Warn("outbox relay: events left for the next start", "err", err)
			}
			return nil
		case <-wake:
		case <-timer.C:
		}
		n, err := r.round(ctx)
		if time.Since(lastPrune) >= pruneInterval && ctx.Err() == nil {
			lastPrune = time.Now()
			r.prune(ctx)
		}
		switch {
		case errors.Is(err, errBusy):
			// Another process's relay held the lock for LockWait: it
			// publishes; look again a poll later.
			backoff = 0
			resetTimer(timer, r.opt.Poll)
		case err != nil && ctx.Err() == nil:
			if r.opt.Failed != nil {
				r.opt.Failed()
			}
			backoff = min(max(2*backoff, 50*time.Millisecond), r.opt.MaxBackoff)
			r.opt.Logger.Warn("outbox relay: publish failed; retrying", "err", err, "retry_in", backoff)
			resetTimer(timer, backoff)
		case n == r.opt.Batch:
			backoff = 0
			resetTimer(timer, 0) // more may be waiting
		default:
			backoff = 0
			resetTimer(timer, r.opt.Poll)
		}
	}
}

func resetTimer(t *time.Timer, d time.Duration) {
	t.Stop()
	select {
	case <-t.C:
	default:
	}
	t.Reset(d)
}

// Flush publishes rounds until the outbox is empty or an error stops it.
func (r *Relay) Flush(ctx context.Context) error {
	return r.flushWith(ctx, r.Round)
}

// flush is Flush with each round behind the relay's recover boundary.
func (r *Relay) flush(ctx context.Context) error {
	return r.flushWith(ctx, r.round)
}

func (r *Relay) flushWith(ctx context.Context, round func(context.Context) (int, error)) error {
	for {
		n, err := round(ctx)
		if errors.Is(err, errBusy) {
			return nil // the relay holding the lock publishes them
		}
		if err != nil {
			return err
		}
		if n < r.opt.Batch {
			return nil
		}
	}
}

// Round publishes one batch of the oldest events and marks those the
// publisher accepted. It returns how many it published.
//
// First it numbers the batch's new events: each gets its group's next
// offset, in the group's epoch (a reset starts a new epoch at 0), and that
// is committed before any of them is published, so a position a client
// sees is already the database's. Events numbered by a round that failed
// to publish them go first, with their numbers.
//
// On PostgreSQL a round holds the relay lock, so relays of several
// processes never number or publish at once and a group's events are
// published in offset order; a round that finds another process's relay
// busy waits for it (up to LockWait, then returns errBusy). SQLite serves
// one process, whose single relay needs no lock. Neither holds a write
// transaction while the hub fans the events out, which would stall every
// write behind a large room.
func (r *Relay) Round(ctx context.Context) (int, error) {
	if r.db.Dialect == store.Postgres {
		unlock, err := r.lock(ctx)
		if err != nil {
			return 0, err
		}
		defer unlock()
	}
	evs, err := readBatch(ctx, r.db, r.opt.Batch)
	if err != nil {
		return 0, err
	}
	if err := r.number(ctx, evs); err != nil {
		return 0, err
	}
	if r.opt.Numbered != nil {
		for _, e := range evs {
			r.opt.Numbered(e.id, e.group, e.epoch, e.offset)
		}
	}
	published, pubErr := r.publish(ctx, evs)
	if published > 0 {
		err := r.db.Tx(ctx, func(tx *sql.Tx) error {
			return r.markPublished(ctx, tx, evs[:published])
		})
		if err != nil {
			return published, errors.Join(pubErr, err)
		}
	}
	return published, pubErr
}

// lock takes the relay lock on a connection of its own, waiting at most
// LockWait, and returns its release. Waiting for the relay holding it
// rather than trying and coming back later: its round may have read the
// outbox before this process's write committed, and polling for the lock
// would burn the database's CPU exactly when it is busiest. A connection
// whose unlock fails is dropped, which releases the lock with the session.
func (r *Relay) lock(ctx context.Context) (unlock func(), err error) {
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("outbox relay: connection for the lock: %w", err)
	}
	drop := func() {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		_ = conn.Close()
	}
	// One round trip: the session's lock_timeout, then the lock.
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($2) FROM (SELECT set_config('lock_timeout', $1, false)) AS t",
		strconv.FormatInt(r.opt.LockWait.Milliseconds(), 10)+"ms", relayLockID); err != nil {
		drop()
		if store.IsLockTimeout(err) {
			return nil, errBusy
		}
		return nil, fmt.Errorf("outbox relay: take lock: %w", err)
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(uctx, "SELECT pg_advisory_unlock($1), set_config('lock_timeout', '0', false)", relayLockID); err != nil {
			drop()
			return
		}
		_ = conn.Close()
	}, nil
}

// number gives each event of evs not numbered yet its group's next offset
// in the group's epoch, in evs's order, and commits the numbers (and the
// groups' heads in group_log) in one transaction.
func (r *Relay) number(ctx context.Context, evs []event) error {
	var fresh []string
	for _, e := range evs {
		if e.epoch == "" && !slices.Contains(fresh, e.group) {
			fresh = append(fresh, e.group)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	err := r.db.Tx(ctx, func(tx *sql.Tx) error {
		heads, err := readHeads(ctx, tx, fresh)
		if err != nil {
			return err
		}
		for i := range evs {
			e := &evs[i]
			if e.epoch != "" {
				continue
			}
			h := heads[e.group]
			if h == nil {
				h = &head{epoch: newEpoch()}
				heads[e.group] = h
			}
			if e.typ == layer.TypeReset {
				h.epoch, h.last = newEpoch(), 0
			} else {
				h.last++
			}
			e.epoch, e.offset = h.epoch, h.last
		}
		return writeNumbers(ctx, tx, evs, heads)
	})
	if err != nil {
		// Nothing was numbered: the next round numbers them again.
		for i := range evs {
			if slices.Contains(fresh, evs[i].group) && !evs[i].numbered {
				evs[i].epoch, evs[i].offset = "", 0
			}
		}
		return fmt.Errorf("outbox relay: number events: %w", err)
	}
	return nil
}

// head is where a group's log stands: its epoch and last offset.
type head struct {
	epoch string
	last  int64
}

// readHeads reads the heads of groups from group_log; a group without a
// row has no events yet.
func readHeads(ctx context.Context, tx *sql.Tx, groups []string) (map[string]*head, error) {
	heads := make(map[string]*head, len(groups))
	for len(groups) > 0 {
		n := min(len(groups), 500)
		args := make([]any, n)
		marks := make([]string, n)
		for i, g := range groups[:n] {
			args[i], marks[i] = g, "$"+strconv.Itoa(i+1)
		}
		rows, err := tx.QueryContext(ctx, "SELECT grp, epoch, last FROM group_log WHERE grp IN ("+strings.Join(marks, ",")+")", args...)
		if err != nil {
			return nil, fmt.Errorf("read group heads: %w", err)
		}
		for rows.Next() {
			var g string
			h := &head{}
			if err := rows.Scan(&g, &h.epoch, &h.last); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read group heads: %w", err)
			}
			heads[g] = h
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("read group heads: %w", err)
		}
		groups = groups[n:]
	}
	return heads, nil
}

// writeNumbers stores the numbers evs got and the groups' new heads.
func writeNumbers(ctx context.Context, tx *sql.Tx, evs []event, heads map[string]*head) error {
	var vals []string
	var args []any
	for i := range evs {
		e := &evs[i]
		if e.numbered {
			continue
		}
		n := len(args)
		vals = append(vals, fmt.Sprintf("(CAST($%d AS BIGINT), CAST($%d AS TEXT), CAST($%d AS BIGINT))", n+1, n+2, n+3))
		args = append(args, e.id, e.epoch, e.offset)
	}
	if len(vals) > 0 {
		// A CTE names the columns the same way on both databases.
		q := "WITH v(id, epoch, off) AS (VALUES " + strings.Join(vals, ",") + ") UPDATE outbox SET epoch = v.epoch, off = v.off FROM v WHERE outbox.id = v.id"
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("store event numbers: %w", err)
		}
	}
	vals, args = vals[:0], args[:0]
	for g, h := range heads {
		n := len(args)
		vals = append(vals, fmt.Sprintf("($%d, $%d, $%d)", n+1, n+2, n+3))
		args = append(args, g, h.epoch, h.last)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO group_log (grp, epoch, last) VALUES "+strings.Join(vals, ",")+
		" ON CONFLICT (grp) DO UPDATE SET epoch = excluded.epoch, last = excluded.last", args...); err != nil {
		return fmt.Errorf("store group heads: %w", err)
	}
	return nil
}

// newEpoch mints a group's epoch: random, so that a position is never
// ambiguous across a database that was replaced.
func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// round is Round behind the relay's recover boundary: a panic fails the
// round (Round's transaction rolls back as it unwinds) and the relay goes
// on.
func (r *Relay) round(ctx context.Context) (n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			panics.Report(r.opt.Logger, r.opt.OnPanic, panics.Relay, p)
			n, err = 0, errPanicked
		}
	}()
	return r.Round(ctx)
}

type event struct {
	id                int64
	group, typ, epoch string
	data              string
	offset            int64
	created           time.Time
	numbered          bool // read with its number
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// readBatch reads up to n of the oldest events not yet published: first
// those numbered already (by a round that could not publish them; their
// numbers come before any new one), then the others, in commit order per
// group.
func readBatch(ctx context.Context, q querier, n int) ([]event, error) {
	rows, err := q.QueryContext(ctx, "SELECT id, grp, type, data, created_at, epoch, off FROM outbox WHERE NOT published ORDER BY epoch = '', id LIMIT $1", n)
	if err != nil {
		return nil, fmt.Errorf("outbox relay: read: %w", err)
	}
	defer rows.Close()
	var evs []event
	for rows.Next() {
		var e event
		if err := rows.Scan(&e.id, &e.group, &e.typ, &e.data, &e.created, &e.epoch, &e.offset); err != nil {
			return nil, fmt.Errorf("outbox relay: read: %w", err)
		}
		e.numbered = e.epoch != ""
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox relay: read: %w", err)
	}
	return evs, nil
}

// publish publishes evs in order until one fails; it returns how many went.
func (r *Relay) publish(ctx context.Context, evs []event) (int, error) {
	if len(evs) == 0 {
		return 0, nil
	}
	msgs := make([]layer.Message, len(evs))
	keys := make([]string, len(evs))
	for i, e := range evs {
		// Its number identifies it: a layer that has it already (a round
		// that published it failed to mark it) drops it.
		msgs[i] = layer.Message{Group: e.group, Type: e.typ, Data: []byte(e.data), Offset: uint64(e.offset), Epoch: e.epoch}
	}
	offs, err := r.pub.PublishBatch(ctx, msgs, keys)
	n := min(len(offs), len(evs))
	if r.opt.Published != nil {
		for _, e := range evs[:n] {
			r.opt.Published(e.typ, time.Since(e.created))
		}
	}
	if err != nil {
		e := evs[min(n, len(evs)-1)]
		return n, fmt.Errorf("outbox relay: publish event %d (%s to %s): %w", e.id, e.typ, e.group, err)
	}
	return n, nil
}

// markPublished marks evs published in tx and prunes, for the groups
// they advanced, the events that left the history window: everything
// before a reset, and a group's oldest events each time it has recorded
// another pruneEvery.
func (r *Relay) markPublished(ctx context.Context, tx *sql.Tx, evs []event) error {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = strconv.FormatInt(e.id, 10)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE outbox SET published = TRUE WHERE id IN ("+strings.Join(ids, ",")+")"); err != nil {
		return fmt.Errorf("outbox relay: mark published: %w", err)
	}
	size := int64(r.opt.HistorySize)
	for _, e := range evs {
		var err error
		switch {
		case e.typ == layer.TypeReset:
			_, err = tx.ExecContext(ctx, "DELETE FROM outbox WHERE grp = $1 AND epoch <> $2 AND published", e.group, e.epoch)
		case e.offset > size && e.offset%pruneEvery == 0:
			_, err = tx.ExecContext(ctx, "DELETE FROM outbox WHERE grp = $1 AND epoch = $2 AND off <= $3 AND published", e.group, e.epoch, e.offset-size)
		}
		if err != nil {
			return fmt.Errorf("outbox relay: prune %s: %w", e.group, err)
		}
	}
	return nil
}

// prune is pruneAged behind the relay's recover boundary; a failure is
// logged and tried again at the next interval.
func (r *Relay) prune(ctx context.Context) {
	defer panics.Recover(r.opt.Logger, r.opt.OnPanic, panics.Relay)
	if _, err := r.pruneAged(ctx); err != nil {
		r.opt.Logger.Warn("outbox relay: prune", "err", err)
	}
}

// pruneEvery is how many events a group records between two prunes of its
// oldest.
const pruneEvery = 256

// pruneBatch bounds the events one pruneAged statement deletes.
const pruneBatch = 5000

// pruneAged deletes published events older than the history window, a
// batch at a time, and returns how many it deleted.
func (r *Relay) pruneAged(ctx context.Context) (int64, error) {
	var total int64
	cutoff := time.Now().Add(-r.opt.HistoryAge)
	for {
		var n int64
		err := r.db.Tx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE published AND created_at < $1 ORDER BY created_at LIMIT $2)",
				cutoff, pruneBatch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("outbox relay: prune events older than %s: %w", r.opt.HistoryAge, err)
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}
