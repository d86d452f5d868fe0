package relay

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"math/bits"
	"strconv"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// Partitions of the outbox (PostgreSQL).
//
// A writer puts each event in the partition of its group
// (store.OutboxPartition: FNV-1a of the name modulo its count of
// partitions P) and stores both in the row (part, parts). Each partition
// has an advisory lock of its own; a round takes, without waiting, the
// locks of the partitions it wants (its process's writes hinted them, or
// they have events waiting) that no other relay holds, plus the global
// lock shared, and publishes only those partitions' events. So relays of
// several processes publish different partitions at once, and each
// group, whose events are all in one partition, has one relay at a time
// numbering and publishing it: in the order its events became visible,
// as with a single lock. Concurrent rounds touch disjoint groups, so
// their numbering (group_log heads, outbox offsets) and their pruning
// never meet.
//
// A row of another count (written before P changed while it waited, or
// by a herald from before partitions: parts 0) is drained, not published
// by partition: a round that sees one, in the same snapshot as its batch,
// publishes nothing, and the relay runs drain rounds instead, which hold
// the global lock exclusively (so no round of partitions runs) and
// publish the oldest events of every partition in id order, as the single
// relay did, until a round finds fewer than a batch waiting. Two rounds
// of partitions of different counts P and P' never publish one group at
// once either: each saw no row of the other count waiting in its
// snapshot, and each reads only rows committed before its snapshot, so
// if both had a row of the group, the one committed later would have
// been waiting in the later snapshot. A process whose count differs from
// the others' keeps its cluster correct and drains (a single lock's
// speed) while their rows wait.

// partLockNS is the first key of the partitions' advisory locks
// (pg_advisory_lock(partLockNS, partition)); the two-key space is apart
// from relayLockID's.
const partLockNS = 0x68657270 // "herp"

// partRound publishes one batch of the partitions in want and, with
// probe, of every partition with events waiting, of those no other relay
// holds; if another holds all of them, it waits for the first (up to
// LockWait, then errBusy). It returns the partitions left for the next
// round: those another relay held, and all of a full batch.
func (r *Relay) partRound(ctx context.Context, want uint64, probe bool) (n int, left uint64, err error) {
	if r.draining.Load() {
		return r.drainRound(ctx, want)
	}
	if probe {
		waiting, foreign, err := r.waiting(ctx)
		if err != nil {
			return 0, want, err
		}
		if foreign {
			r.startDrain()
			return r.drainRound(ctx, want)
		}
		want |= waiting
		if want == 0 {
			// Nothing waits anywhere: said as a round that read nothing.
			n, err := r.publishRound(ctx, r.db, nil, false, nil)
			return n, 0, err
		}
	}
	want &= r.allParts()
	if want == 0 {
		return 0, 0, nil
	}
	lk, got, err := r.lockParts(ctx, want)
	if err != nil {
		return 0, want, err
	}
	defer lk.unlock(ctx)
	// The round's statements run on the connection holding its locks: one
	// connection of the pool per round.
	evs, heads, foreign, err := readParts(ctx, lk.conn, r.parts, got, r.opt.Batch)
	if err != nil {
		return 0, want, err
	}
	if foreign {
		lk.unlock(ctx)
		r.startDrain()
		return r.drainRound(ctx, want)
	}
	n, err = r.publishRound(ctx, lk.conn, evs, true, heads)
	left = want &^ got
	if len(evs) == r.opt.Batch || err != nil {
		left |= got
	}
	return n, left, err
}

// allParts has a bit for each of the relay's partitions.
func (r *Relay) allParts() uint64 {
	if r.parts >= 64 {
		return ^uint64(0)
	}
	return 1<<r.parts - 1
}

func (r *Relay) startDrain() {
	if !r.draining.Swap(true) {
		r.opt.Logger.Info("outbox relay: events of another partition count wait; publishing every partition under the global lock until they are out",
			"partitions", r.parts)
	}
}

// drainRound publishes one batch of the oldest events of every partition
// under the global lock held exclusively (lock), and goes back to rounds
// of partitions once fewer than a batch waited. want is kept for them
// (events committed after the batch was read may wait there).
func (r *Relay) drainRound(ctx context.Context, want uint64) (int, uint64, error) {
	lk, err := r.lock(ctx)
	if err != nil {
		return 0, want, err
	}
	defer lk.unlock(ctx)
	evs, err := readBatch(ctx, r.db, r.opt.Batch)
	if err != nil {
		return 0, want, err
	}
	n, err := r.publishRound(ctx, r.db, evs, false, nil)
	if err == nil && len(evs) < r.opt.Batch {
		r.draining.Store(false)
	}
	return n, want, err
}

// waiting returns the relay's partitions with events waiting, and whether
// events of another partition count wait: one statement of an index probe
// per partition.
func (r *Relay) waiting(ctx context.Context) (parts uint64, foreign bool, err error) {
	var mask int64
	err = r.db.QueryRowContext(ctx, `SELECT
	COALESCE((SELECT bit_or(CAST(1 AS BIGINT) << p) FROM generate_series(0, CAST($2 AS INT) - 1) AS p
		WHERE EXISTS (SELECT 1 FROM outbox WHERE NOT published AND parts = $1 AND part = p)), 0),
	EXISTS (SELECT 1 FROM outbox WHERE NOT published AND parts < $1) OR EXISTS (SELECT 1 FROM outbox WHERE NOT published AND parts > $1)`,
		r.parts, r.parts).Scan(&mask, &foreign)
	if err != nil {
		return 0, false, fmt.Errorf("outbox relay: look for waiting events: %w", err)
	}
	return uint64(mask), foreign, nil
}

// lockConn is a connection of its own holding a round's advisory locks:
// the global lock exclusively (lock), or its partitions' and the global
// lock shared (lockParts).
type lockConn struct {
	conn *sql.Conn
}

// lockParts takes the locks of the partitions in want that no other relay
// holds, and the global lock shared, without waiting; when it gets none,
// it waits for the first of want, at most LockWait (errBusy). Waiting
// rather than coming back later: the relay holding it may have read the
// outbox before this process's write committed, and polling for a lock
// would burn the database's CPU exactly when it is busiest.
func (r *Relay) lockParts(ctx context.Context, want uint64) (*lockConn, uint64, error) {
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("outbox relay: connection for the lock: %w", err)
	}
	lk := &lockConn{conn: conn}
	var global bool
	var got int64
	// CASE keeps the order: no partition is locked without the global
	// lock, and none but those wanted.
	if err := conn.QueryRowContext(ctx, `SELECT t.g, COALESCE((SELECT bit_or(CAST(1 AS BIGINT) << p) FROM generate_series(0, 63) AS p
		WHERE CASE WHEN t.g AND (CAST($3 AS BIGINT) >> p) & 1 = 1 THEN pg_try_advisory_lock($2, p) ELSE FALSE END), 0)
	FROM (SELECT pg_try_advisory_lock_shared($1) AS g) AS t`, relayLockID, partLockNS, int64(want)).Scan(&global, &got); err != nil {
		lk.drop()
		return nil, 0, fmt.Errorf("outbox relay: take partition locks: %w", err)
	}
	if got != 0 {
		return lk, uint64(got), nil
	}
	if global {
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock_shared($1)", relayLockID); err != nil {
			lk.drop()
			return nil, 0, fmt.Errorf("outbox relay: release the global lock: %w", err)
		}
	}
	first := bits.TrailingZeros64(want)
	// One round trip: the session's lock_timeout, the global lock shared,
	// then the partition's (the order every round takes them in), and no
	// lock_timeout again for the round's statements.
	if _, err := conn.ExecContext(ctx, `SELECT set_config('lock_timeout', '0', false) FROM (SELECT pg_advisory_lock($2, $3) FROM
		(SELECT pg_advisory_lock_shared($1) FROM (SELECT set_config('lock_timeout', $4, false)) AS s) AS t) AS u`,
		relayLockID, partLockNS, first, strconv.FormatInt(r.opt.LockWait.Milliseconds(), 10)+"ms"); err != nil {
		lk.drop()
		if store.IsLockTimeout(err) {
			return nil, 0, errBusy
		}
		return nil, 0, fmt.Errorf("outbox relay: wait for partition %d: %w", first, err)
	}
	return lk, 1 << first, nil
}

// unlock releases every lock of lk and hands its connection back; a
// connection whose unlock fails is dropped, which releases them with the
// session. It may be called again.
func (lk *lockConn) unlock(ctx context.Context) {
	if lk.conn == nil {
		return
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := lk.conn.ExecContext(uctx, "SELECT pg_advisory_unlock_all()"); err != nil {
		lk.drop()
		return
	}
	_ = lk.conn.Close()
	lk.conn = nil
}

// drop closes lk's connection for good, releasing its locks.
func (lk *lockConn) drop() {
	_ = lk.conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = lk.conn.Close()
	lk.conn = nil
}

// readParts reads up to n of the oldest waiting events of the partitions
// in got (of parts partitions): those numbered already first, then the
// others, in commit order per group, through outbox_part_pending in its
// order, at most n per partition; and the heads of their groups, which
// only the holder of their partition changes. foreign reports, from the
// same statement and so the same snapshot, that events of another
// partition count wait; the batch must then not be published (see above).
func readParts(ctx context.Context, q querier, parts int, got uint64, n int) (evs []event, heads map[string]*head, foreign bool, err error) {
	rows, err := q.QueryContext(ctx, `SELECT t.id, t.grp, t.type, t.data, t.created_at, t.epoch, t.off, t.parts, g.epoch, g.last FROM (
		SELECT id, grp, type, data, created_at, epoch, off, parts FROM (
			SELECT o.* FROM (SELECT p FROM generate_series(0, 63) AS p WHERE (CAST($2 AS BIGINT) >> p) & 1 = 1) AS ps, LATERAL (
				SELECT id, grp, type, data, created_at, epoch, off, parts FROM outbox
				WHERE NOT published AND parts = $1 AND part = ps.p ORDER BY (epoch = ''), id LIMIT $3) AS o
			UNION ALL
			(SELECT id, grp, type, data, created_at, epoch, off, parts FROM outbox WHERE NOT published AND parts < $1 LIMIT 1)
			UNION ALL
			(SELECT id, grp, type, data, created_at, epoch, off, parts FROM outbox WHERE NOT published AND parts > $1 LIMIT 1)
		) AS u ORDER BY parts = $1, (epoch = ''), id LIMIT $3
	) AS t LEFT JOIN group_log AS g ON g.grp = t.grp ORDER BY t.parts = $1, (t.epoch = ''), t.id`, parts, int64(got), n)
	if err != nil {
		return nil, nil, false, fmt.Errorf("outbox relay: read: %w", err)
	}
	defer rows.Close()
	heads = map[string]*head{}
	for rows.Next() {
		var e event
		var p int
		var epoch sql.NullString
		var last sql.NullInt64
		if err := rows.Scan(&e.id, &e.group, &e.typ, &e.data, &e.created, &e.epoch, &e.offset, &p, &epoch, &last); err != nil {
			return nil, nil, false, fmt.Errorf("outbox relay: read: %w", err)
		}
		if p != parts {
			foreign = true
			continue
		}
		e.numbered = e.epoch != ""
		evs = append(evs, e)
		if epoch.Valid {
			heads[e.group] = &head{epoch: epoch.String, last: last.Int64}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, false, fmt.Errorf("outbox relay: read: %w", err)
	}
	if foreign {
		return nil, nil, true, nil
	}
	return evs, heads, false, nil
}
