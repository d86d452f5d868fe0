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
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/internal/groups"
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
	// group's older events are pruned a quarter of its size at a time (at
	// most 256), so it keeps up to a quarter more; aged events are pruned
	// every HistoryAge/10, at most 10s apart (see pruneAged). With a
	// Window, HistoryAge only paces that and stands in for an age Window
	// leaves unset.
	HistorySize int
	HistoryAge  time.Duration
	// Window, if set, gives each group's history window (its latest size events, none older than age); nil uses HistorySize and HistoryAge for every group.
	Window func(group string) (size int, age time.Duration)
	// OnPanic, if set, is told of each panic recovered in a round
	// (panics.Relay). The round fails like one that could not publish: its
	// transaction is rolled back, its events stay in the outbox and the
	// relay tries again after a backoff.
	OnPanic func(where string)
	// Backlog, if set, is told by each round what the outbox holds
	// unpublished (as far as the round saw: every pending event it read, or
	// a bounded count when it read a full batch; see backlog.go) and when
	// the oldest of them was committed (zero when none): once it has read
	// them, and again once it published. It runs on the relay's goroutine
	// and must not block.
	Backlog func(pending int, oldest time.Time)
	// Partitions is how many partitions the outbox is split into by group
	// (0: store.DefaultOutboxPartitions; at most store.MaxOutboxPartitions),
	// as the platform's writers split it (platform.Options.OutboxPartitions):
	// on PostgreSQL relays of several processes publish different
	// partitions at once (partitions.go).
	Partitions int
}

// Relay moves events from the outbox to a Publisher.
type Relay struct {
	db   *store.DB
	pub  Publisher
	opt  Options
	wake chan struct{}
	// maxAge is the longest window any group has: HistoryAge, or with a
	// Window the longest a namespace may be given.
	maxAge time.Duration

	// aging holds the groups whose window is shorter than maxAge that this
	// relay published events of, until those left their window (pruneAged).
	mu    sync.Mutex
	aging map[string]*agingGroup

	bl backlog // for Options.Backlog

	// parts is Options.Partitions; hints are the partitions this process's
	// writes recorded events in since the relay last looked (NotifyParts),
	// and probe asks the next round to look for waiting events in every
	// partition (Notify). draining is set while a round found events of
	// another partition count (partitions.go).
	parts    int
	hints    atomic.Uint64
	probe    atomic.Bool
	draining atomic.Bool
}

// agingGroup is a group whose aged events pruneAged deletes on their own.
type agingGroup struct {
	age    time.Duration
	due    time.Time // when its oldest event this relay published may leave the window
	newest time.Time // when its newest event this relay published was recorded
}

// markTimeout bounds marking a round's published events, which goes on
// when the round's context ends.
const markTimeout = 5 * time.Second

// errBusy is a round that waited LockWait for another process's relay.
var errBusy = errors.New("outbox relay: another process's relay is publishing")

// errPanicked is a round that panicked.
var errPanicked = errors.New("outbox relay: the round panicked")

// relayLockID is the relays' global PostgreSQL advisory lock: a round of
// partitions holds it shared, a round that drains every partition
// (events of another partition count, or of a herald from before
// partitions, whose relays take it the same way) exclusively, so that the
// two never publish one group's events at once (partitions.go).
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
	r := &Relay{db: db, pub: pub, opt: opt, wake: make(chan struct{}, 1), maxAge: opt.HistoryAge, parts: store.OutboxPartitions(opt.Partitions)}
	if opt.Window != nil {
		r.maxAge = max(groups.MaxHistoryAge, opt.HistoryAge)
		r.aging = make(map[string]*agingGroup)
	}
	return r
}

// window is group's history window. Window's values are trusted (the group
// registry checked them) but clamped: at least one event, and no longer
// than maxAge, which the global pass of pruneAged relies on.
func (r *Relay) window(group string) (size int64, age time.Duration) {
	if r.opt.Window == nil {
		return int64(r.opt.HistorySize), r.opt.HistoryAge
	}
	n, age := r.opt.Window(group)
	if age <= 0 {
		age = r.opt.HistoryAge
	}
	return int64(max(n, 1)), min(age, r.maxAge)
}

// Notify wakes the relay: a write has committed, and its next round looks
// for waiting events in every partition. It never blocks.
func (r *Relay) Notify() {
	r.probe.Store(true)
	r.wakeUp()
}

// NotifyParts wakes the relay: a write has committed events to the outbox
// partitions in parts (bit i: partition i), which its next round publishes
// (platform.Options.CommittedParts). It never blocks; with no partition it
// does nothing.
func (r *Relay) NotifyParts(parts uint64) {
	if parts == 0 {
		return
	}
	r.hints.Or(parts)
	r.wakeUp()
}

func (r *Relay) wakeUp() {
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
	var want uint64 // partitions to publish: hinted, or left by the last round
	var lastProbe time.Time
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
		// Every partition is looked at once per poll (other processes'
		// events, which no wake-up announces) or when Notify asks.
		want |= r.hints.Swap(0)
		probe := r.probe.Swap(false) || time.Since(lastProbe) >= r.opt.Poll
		if probe {
			lastProbe = time.Now()
		}
		n, left, err := r.round(ctx, want, probe)
		want = left
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
		case n == r.opt.Batch || left != 0:
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

// Flush publishes rounds until the outbox is empty or an error stops it
// (on PostgreSQL: the partitions no other process's relay holds for
// LockWait).
func (r *Relay) Flush(ctx context.Context) error {
	return r.flushWith(ctx, r.roundOf)
}

// flush is Flush with each round behind the relay's recover boundary.
func (r *Relay) flush(ctx context.Context) error {
	return r.flushWith(ctx, r.round)
}

func (r *Relay) flushWith(ctx context.Context, round func(context.Context, uint64, bool) (int, uint64, error)) error {
	want, probe := r.hints.Swap(0), true
	for {
		n, left, err := round(ctx, want, probe)
		if errors.Is(err, errBusy) {
			return nil // the relay holding the lock publishes them
		}
		if err != nil {
			return err
		}
		if n < r.opt.Batch && left == 0 {
			return nil
		}
		want, probe = left, false
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
// On PostgreSQL a round publishes the partitions of the outbox it holds
// the locks of, every partition with events waiting that no other
// process's relay holds, so relays of several processes publish different
// partitions at once and one group's events, all in one partition, in
// offset order; a round that finds every such partition held waits for
// one (up to LockWait, then returns errBusy). See partitions.go. SQLite
// serves one process, whose single relay needs no lock. Neither holds a
// write transaction while the hub fans the events out, which would stall
// every write behind a large room.
func (r *Relay) Round(ctx context.Context) (int, error) {
	n, _, err := r.roundOf(ctx, 0, true)
	return n, err
}

// roundOf is one round: on SQLite of the oldest events, on PostgreSQL of
// the partitions in want and, with probe, of every partition with events
// waiting. left are the partitions the next round should take at once
// (another relay held them, or more wait than a batch).
func (r *Relay) roundOf(ctx context.Context, want uint64, probe bool) (n int, left uint64, err error) {
	if r.db.Dialect == store.Postgres {
		return r.partRound(ctx, want, probe)
	}
	evs, err := readBatch(ctx, r.db, r.opt.Batch)
	if err != nil {
		return 0, 0, err
	}
	n, err = r.publishRound(ctx, r.db, evs, false, nil)
	return n, 0, err
}

// dbConn is where a round's statements run: the pool (*store.DB), or on
// PostgreSQL the connection holding the round's locks (*sql.Conn).
type dbConn interface {
	querier
	execer
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// publishRound numbers, publishes and marks evs, a round's batch read in
// commit order per group, running its statements on c; partial is a batch
// of some partitions only, and heads, if not nil, are the heads of its
// groups read with it (readParts).
func (r *Relay) publishRound(ctx context.Context, c dbConn, evs []event, partial bool, heads map[string]*head) (int, error) {
	pending := r.reportRead(ctx, evs, partial)
	if err := r.number(ctx, c, evs, heads); err != nil {
		return 0, err
	}
	if r.opt.Numbered != nil {
		for _, e := range evs {
			r.opt.Numbered(e.id, e.group, e.epoch, e.offset)
		}
	}
	published, pubErr := r.publish(ctx, evs)
	if published > 0 {
		// What went out is marked even if ctx ended meanwhile (the relay
		// stopping mid-round): left unmarked, it would be published again
		// by the next round, which costs the layer a duplicate to drop.
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
		defer cancel()
		var err error
		switch {
		case r.db.Dialect != store.Postgres:
			err = r.db.Tx(mctx, func(tx *sql.Tx) error {
				return r.markPublished(mctx, tx, evs[:published])
			})
		case !r.prunes(evs[:published]):
			// One statement: no transaction of three round trips.
			err = r.markPublished(mctx, c, evs[:published])
		default:
			err = txOn(mctx, c, func(tx *sql.Tx) error {
				return r.markPublished(mctx, tx, evs[:published])
			})
		}
		if err != nil {
			return published, errors.Join(pubErr, err)
		}
		r.track(evs[:published])
	}
	r.reportLeft(evs, pending, published)
	return published, pubErr
}

// lock takes the relay lock on a connection of its own, waiting at most
// LockWait. Waiting for the relay holding it rather than trying and coming
// back later: its round may have read the outbox before this process's
// write committed, and polling for the lock would burn the database's CPU
// exactly when it is busiest.
func (r *Relay) lock(ctx context.Context) (*lockConn, error) {
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("outbox relay: connection for the lock: %w", err)
	}
	lk := &lockConn{conn: conn}
	// One round trip: the session's lock_timeout, the lock, and no
	// lock_timeout again.
	if _, err := conn.ExecContext(ctx, `SELECT set_config('lock_timeout', '0', false) FROM
		(SELECT pg_advisory_lock($2) FROM (SELECT set_config('lock_timeout', $1, false)) AS s) AS t`,
		strconv.FormatInt(r.opt.LockWait.Milliseconds(), 10)+"ms", relayLockID); err != nil {
		lk.drop()
		if store.IsLockTimeout(err) {
			return nil, errBusy
		}
		return nil, fmt.Errorf("outbox relay: take lock: %w", err)
	}
	return lk, nil
}

// txOn runs fn in a transaction on c.
func txOn(ctx context.Context, c dbConn, fn func(tx *sql.Tx) error) error {
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// number gives each event of evs not numbered yet its group's next offset
// in the group's epoch, in evs's order, and commits the numbers (and the
// groups' heads in group_log) at once, on c. known, if not nil, holds the
// heads of evs's groups as read with them (a group without one has no
// events yet).
func (r *Relay) number(ctx context.Context, c dbConn, evs []event, known map[string]*head) error {
	var fresh []string
	for _, e := range evs {
		if e.epoch == "" && !slices.Contains(fresh, e.group) {
			fresh = append(fresh, e.group)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	assign := func(q querier, ex execer, oneStatement bool) error {
		var heads map[string]*head
		if known != nil {
			heads = make(map[string]*head, len(fresh))
			for _, g := range fresh {
				if h := known[g]; h != nil {
					heads[g] = &head{epoch: h.epoch, last: h.last}
				}
			}
		} else {
			var err error
			if heads, err = readHeads(ctx, q, fresh); err != nil {
				return err
			}
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
		return writeNumbers(ctx, ex, evs, heads, oneStatement)
	}
	var err error
	if r.db.Dialect == store.Postgres {
		// The round holds these groups (their partition's lock, or the
		// global lock exclusively): no other relay numbers them, so their
		// heads are read, and the numbers and new heads written in one
		// statement, with no transaction around them: one or two round
		// trips to the database, not five.
		err = assign(c, c, true)
	} else {
		err = r.db.Tx(ctx, func(tx *sql.Tx) error { return assign(tx, tx, false) })
	}
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
func readHeads(ctx context.Context, tx querier, groups []string) (map[string]*head, error) {
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

// execer is *sql.Tx or *store.DB.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// writeNumbers stores the numbers evs got and the groups' new heads: in
// one statement (PostgreSQL's data-modifying WITH), or two.
func writeNumbers(ctx context.Context, tx execer, evs []event, heads map[string]*head, oneStatement bool) error {
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
	// A CTE names the columns the same way on both databases.
	update := ""
	if len(vals) > 0 {
		update = "WITH v(id, epoch, off) AS (VALUES " + strings.Join(vals, ",") + ") UPDATE outbox SET epoch = v.epoch, off = v.off FROM v WHERE outbox.id = v.id"
	}
	if update != "" && !oneStatement {
		if _, err := tx.ExecContext(ctx, update, args...); err != nil {
			return fmt.Errorf("store event numbers: %w", err)
		}
		args = args[:0]
	}
	hvals := make([]string, 0, len(heads))
	for g, h := range heads {
		n := len(args)
		hvals = append(hvals, fmt.Sprintf("($%d, $%d, $%d)", n+1, n+2, n+3))
		args = append(args, g, h.epoch, h.last)
	}
	q := "INSERT INTO group_log (grp, epoch, last) VALUES " + strings.Join(hvals, ",") +
		" ON CONFLICT (grp) DO UPDATE SET epoch = excluded.epoch, last = excluded.last"
	if update != "" && oneStatement {
		// The update runs as a data-modifying WITH of the insert.
		q = "WITH v(id, epoch, off) AS (VALUES " + strings.Join(vals, ",") + "), numbered AS (UPDATE outbox SET epoch = v.epoch, off = v.off FROM v WHERE outbox.id = v.id) " + q
	}
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("store event numbers and group heads: %w", err)
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

// round is roundOf behind the relay's recover boundary: a panic fails the
// round (its transaction rolls back as it unwinds, its locks are released)
// and the relay goes on, with want still to do.
func (r *Relay) round(ctx context.Context, want uint64, probe bool) (n int, left uint64, err error) {
	defer func() {
		if p := recover(); p != nil {
			panics.Report(r.opt.Logger, r.opt.OnPanic, panics.Relay, p)
			n, left, err = 0, want, errPanicked
		}
	}()
	return r.roundOf(ctx, want, probe)
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
//
// Two queries, each in the order of the pending rows' index: one ordered
// by an expression (numbered first) sorted the whole backlog every round,
// which made a relay that fell behind slower the further behind it was.
func readBatch(ctx context.Context, q querier, n int) ([]event, error) {
	evs, err := readPending(ctx, q, "epoch <> ''", n, nil)
	if err != nil || len(evs) == n {
		return evs, err
	}
	return readPending(ctx, q, "epoch = ''", n-len(evs), evs)
}

// readPending appends to evs up to n unpublished events matching cond, in
// commit order.
func readPending(ctx context.Context, q querier, cond string, n int, evs []event) ([]event, error) {
	rows, err := q.QueryContext(ctx, "SELECT id, grp, type, data, created_at, epoch, off FROM outbox WHERE NOT published AND "+cond+" ORDER BY id LIMIT $1", n)
	if err != nil {
		return nil, fmt.Errorf("outbox relay: read: %w", err)
	}
	defer rows.Close()
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
// another pruneStep of its window's size (one DELETE per group at most,
// up to the last such event of the round).
func (r *Relay) markPublished(ctx context.Context, tx execer, evs []event) error {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = strconv.FormatInt(e.id, 10)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE outbox SET published = TRUE WHERE id IN ("+strings.Join(ids, ",")+")"); err != nil {
		return fmt.Errorf("outbox relay: mark published: %w", err)
	}
	type cut struct {
		group, epoch string
		upTo         int64 // the last offset to prune
	}
	var cuts []cut
	at := map[string]int{} // index in cuts by group
	for _, e := range evs {
		if e.typ == layer.TypeReset {
			if _, err := tx.ExecContext(ctx, "DELETE FROM outbox WHERE grp = $1 AND epoch <> $2 AND published", e.group, e.epoch); err != nil {
				return fmt.Errorf("outbox relay: prune %s before its reset: %w", e.group, err)
			}
			if i, ok := at[e.group]; ok {
				cuts[i].upTo = 0 // that epoch is gone
			}
			continue
		}
		size, _ := r.window(e.group)
		if !prunesAt(e.offset, size) {
			continue
		}
		if i, ok := at[e.group]; ok {
			cuts[i] = cut{e.group, e.epoch, e.offset - size}
		} else {
			at[e.group] = len(cuts)
			cuts = append(cuts, cut{e.group, e.epoch, e.offset - size})
		}
	}
	for _, c := range cuts {
		if c.upTo == 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM outbox WHERE grp = $1 AND epoch = $2 AND off <= $3 AND published", c.group, c.epoch, c.upTo); err != nil {
			return fmt.Errorf("outbox relay: prune %s up to offset %d: %w", c.group, c.upTo, err)
		}
	}
	return nil
}

// prunes reports whether marking evs published prunes events too: a reset,
// or an event at which its group's oldest are pruned (markPublished).
func (r *Relay) prunes(evs []event) bool {
	for _, e := range evs {
		if e.typ == layer.TypeReset {
			return true
		}
		if size, _ := r.window(e.group); prunesAt(e.offset, size) {
			return true
		}
	}
	return false
}

// prunesAt reports whether a group with a window of size events prunes its
// oldest once it published offset.
func prunesAt(offset, size int64) bool {
	return offset > size && offset%pruneStep(size) == 0
}

// pruneStep is how many events a group with a window of size events
// records between two prunes of its oldest: a quarter of its size, at most
// pruneEvery, so it keeps up to a quarter more than its window (a window
// of under 8 events is pruned in every round that advances it).
func pruneStep(size int64) int64 {
	return min(max(size/4, 1), pruneEvery)
}

// track notes, for pruneAged, the groups of evs (just published) whose
// window is shorter than maxAge.
func (r *Relay) track(evs []event) {
	if r.aging == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range evs {
		_, age := r.window(e.group)
		if age >= r.maxAge {
			continue
		}
		g := r.aging[e.group]
		if g == nil {
			if len(r.aging) >= maxAging {
				continue // the global pass prunes it, late
			}
			g = &agingGroup{age: age, due: e.created.Add(age)}
			r.aging[e.group] = g
		}
		if e.created.After(g.newest) {
			g.newest = e.created
		}
	}
}

// prune is pruneAged behind the relay's recover boundary; a failure is
// logged and tried again at the next interval.
func (r *Relay) prune(ctx context.Context) {
	defer panics.Recover(r.opt.Logger, r.opt.OnPanic, panics.Relay)
	if _, err := r.pruneAged(ctx); err != nil {
		r.opt.Logger.Warn("outbox relay: prune", "err", err)
	}
}

// pruneEvery is the most events a group records between two prunes of
// its oldest.
const pruneEvery = 256

// Bounds of one pruneAged: pruneBatch events per statement, pruneRounds
// statements of the global pass, pruneStatements of groups pruned on
// their own, each of up to pruneGroups groups; maxAging groups tracked.
const (
	pruneBatch      = 5000
	pruneRounds     = 4
	pruneStatements = 16
	pruneGroups     = 100
	maxAging        = 1 << 17
)

// pruneAged deletes published events that left their group's window by
// age and returns how many it deleted. Its work is bounded whatever the
// backlog (what is left waits for the next turn): at most 20 statements,
// each deleting at most pruneBatch events, 100,000 in all.
//
//   - A global pass deletes the published events older than maxAge, the
//     longest window any group has (HistoryAge without a Window), oldest
//     first through the index of published events by created_at: at most
//     pruneRounds statements. Without a Window that is all.
//   - With a Window, the groups with a shorter window that this relay
//     published events of (track) are pruned on their own once due, most
//     overdue first: one statement per pruneGroups groups of one age, at
//     most pruneStatements of them (1,600 groups). Each reads at most its
//     groups' kept events, through the (grp, epoch, off) index: the size
//     pruning bounds them to 1.25 windows a group (1,250 events with the
//     default window). A pruned group is due again a quarter of its age
//     later, so its events stay up to a quarter longer than its age (plus
//     a prune interval), and is forgotten once its newest event left the
//     window.
//
// A group published only by a process that has stopped is not tracked
// here: its aged events go with the global pass, or once it is published
// again; eventlog.Log, given the same Window, does not serve them
// meanwhile.
func (r *Relay) pruneAged(ctx context.Context) (int64, error) {
	now := time.Now()
	var total int64
	for range pruneRounds {
		n, err := r.deleteAged(ctx, now.Add(-r.maxAge), nil)
		total += n
		if err != nil {
			return total, fmt.Errorf("outbox relay: prune events older than %s: %w", r.maxAge, err)
		}
		if n < pruneBatch {
			break
		}
	}
	for _, batch := range r.dueGroups(now) {
		n, err := r.deleteAged(ctx, now.Add(-batch.age), batch.groups)
		total += n
		if err != nil {
			return total, fmt.Errorf("outbox relay: prune events of %d groups older than %s: %w", len(batch.groups), batch.age, err)
		}
		if n < pruneBatch {
			r.pruned(batch.groups, now)
		} // else some may have more: they stay due
	}
	return total, nil
}

// deleteAged deletes, in one statement, up to pruneBatch published events
// created before cutoff: the oldest of all (by the created_at index), or
// any of groups (by the group index; ordering them by age could lead the
// database to walk the created_at index through every longer-lived
// group's events).
func (r *Relay) deleteAged(ctx context.Context, cutoff time.Time, groups []string) (int64, error) {
	q := "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE published AND created_at < $1 ORDER BY created_at LIMIT $2)"
	args := []any{cutoff, pruneBatch}
	if len(groups) > 0 {
		ms := make([]string, len(groups))
		for i, g := range groups {
			ms[i] = "$" + strconv.Itoa(i+3)
			args = append(args, g)
		}
		q = "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE grp IN (" + strings.Join(ms, ",") + ") AND published AND created_at < $1 LIMIT $2)"
	}
	var n int64
	err := r.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// ageBatch is groups of one window age that pruneAged prunes in one
// statement.
type ageBatch struct {
	age    time.Duration
	groups []string
}

// dueGroups returns the tracked groups due at now, most overdue first, in
// batches of one age: at most pruneStatements batches of pruneGroups.
func (r *Relay) dueGroups(now time.Time) []ageBatch {
	type due struct {
		group string
		age   time.Duration
		due   time.Time
	}
	var all []due
	r.mu.Lock()
	for g, a := range r.aging {
		if !a.due.After(now) {
			all = append(all, due{g, a.age, a.due})
		}
	}
	r.mu.Unlock()
	slices.SortFunc(all, func(a, b due) int { return a.due.Compare(b.due) })
	var out []ageBatch
	open := map[time.Duration]int{} // index in out of the batch filling up, by age
	for _, d := range all {
		i, ok := open[d.age]
		if !ok || len(out[i].groups) == pruneGroups {
			if len(out) == pruneStatements {
				continue // next time
			}
			i = len(out)
			open[d.age] = i
			out = append(out, ageBatch{age: d.age})
		}
		out[i].groups = append(out[i].groups, d.group)
	}
	return out
}

// pruned records that groups were pruned of what left their window by now:
// each is due again a quarter of its age later, or forgotten once its
// newest event left the window too.
func (r *Relay) pruned(groups []string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, g := range groups {
		a := r.aging[g]
		if a == nil {
			continue
		}
		if a.newest.Before(now.Add(-a.age)) {
			delete(r.aging, g)
			continue
		}
		a.due = now.Add(a.age / 4)
	}
}
