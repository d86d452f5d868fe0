// Package platform is herald's domain: users, quests and applications,
// campaigns and their contributions, updates, comments, releases and
// milestones. Every write is one method here running one transaction that
// also records, in the outbox table, the events the write causes; an event
// therefore exists exactly when its change is committed. It knows nothing of
// HTTP or WebSockets.
package platform

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald/internal/groups"
	"github.com/heraldhq/herald/internal/store"
)

// PasswordHasher hashes and checks passwords (argon2id in production).
type PasswordHasher interface {
	Hash(password string) (string, error)
	Verify(encoded, password string) (bool, error)
}

// HashGate bounds how many password hashes run at once (auth.HashGate):
// each argon2id call holds its whole memory cost while it runs. Acquire
// waits for a slot, or fails with an error that says the server is busy.
type HashGate interface {
	Acquire(ctx context.Context) (release func(), err error)
}

// Options configures a Platform.
type Options struct {
	Hasher PasswordHasher
	// HashGate, if set, is taken around every password hash and check the
	// platform runs (sign-in, the equal-time check of unknown users,
	// registration); its error is returned, wrapped.
	HashGate HashGate
	// ValidatePassword checks a new password's strength; nil accepts any
	// non-empty password.
	ValidatePassword func(string) error
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Committed is called after every write transaction commits, with the
	// outbox partitions its events went to (bit i: partition i; 0 when it
	// recorded none), so the outbox relay can publish them at once instead
	// of waiting for its next poll (relay.NotifyParts). It must not block.
	Committed func(parts uint64)
	// Parts is how many partitions the outbox is split into by group (0:
	// store.DefaultOutboxPartitions; at most store.MaxOutboxPartitions);
	// the relays must be given the same (relay.Options.Partitions).
	Parts int
	// Groups are the groups events may be recorded to from outside
	// (RecordExternal); nil is the built-in namespaces alone.
	Groups *groups.Registry
}

// Platform runs the domain's reads and writes against one database.
type Platform struct {
	db        *store.DB
	hasher    PasswordHasher
	hashGate  HashGate
	validate  func(string) error
	clock     func() time.Time
	dummyHash string // verified against when a username is unknown, so timing does not tell
	committed func(parts uint64)
	users     knownUsers // UserExists's memory
	groups    *groups.Registry
	// parts is the outbox's number of partitions; touched holds, for each
	// write transaction running, the partitions its events went to (a
	// *uint64).
	parts   int
	touched sync.Map
}

// New returns a Platform over db.
func New(db *store.DB, opts Options) (*Platform, error) {
	if opts.Hasher == nil {
		return nil, errors.New("platform: a password hasher is required")
	}
	p := &Platform{db: db, hasher: opts.Hasher, hashGate: opts.HashGate, validate: opts.ValidatePassword, clock: opts.Now, committed: opts.Committed,
		parts: store.OutboxPartitions(opts.Parts)}
	if p.clock == nil {
		p.clock = time.Now
	}
	if p.groups = opts.Groups; p.groups == nil {
		p.groups = groups.Default()
	}
	h, err := opts.Hasher.Hash("herald-timing-equalizer")
	if err != nil {
		return nil, fmt.Errorf("platform: prepare password hasher: %w", err)
	}
	p.dummyHash = h
	return p, nil
}

// DB is the database the platform writes to (the outbox relay reads it).
func (p *Platform) DB() *store.DB { return p.db }

// write runs fn as one transaction and, once it has committed, wakes the
// outbox relay. The idempotency key of ctx's request, if any, is recorded
// first in the same transaction (a *KeyUsedError if another request has
// it).
func (p *Platform) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	var parts uint64 // the outbox partitions written to (recordAt)
	if err := p.db.Tx(ctx, func(tx *sql.Tx) error {
		p.touched.Store(tx, &parts)
		defer p.touched.Delete(tx)
		if err := p.recordKey(ctx, tx); err != nil {
			return err
		}
		return fn(tx)
	}); err != nil {
		return err
	}
	keyCommitted(ctx)
	if p.committed != nil {
		p.committed(parts)
	}
	return nil
}

// now is the clock at the database's precision (microseconds), so what a
// write returns equals what a later read returns.
func (p *Platform) now() time.Time {
	return p.clock().UTC().Truncate(time.Microsecond)
}

// Event names, as the seeds' front ends expect them.
const (
	EventNewApplication    = "new_application"
	EventApplicationUpdate = "application_update"
	EventContribution      = "contribution"
	EventUpdate            = "update"
	EventComment           = "comment"
	EventRelease           = "release"
	EventMilestone         = "milestone"
	// EventQuestCreated tells the creator's connections to join the new
	// quest's group. It goes to the creator's ControlGroup, never to a
	// client.
	EventQuestCreated = "quest_created"
)

// Group names, as in the seeds.
func UserGroup(id int64) string     { return "user_" + strconv.FormatInt(id, 10) }
func QuestGroup(id int64) string    { return "quest_" + strconv.FormatInt(id, 10) }
func CampaignGroup(id int64) string { return "campaign_" + strconv.FormatInt(id, 10) }

// Kinds of group, as ParseGroup names them.
const (
	GroupUser     = "user"
	GroupQuest    = "quest"
	GroupCampaign = "campaign"
)

// ParseGroup reads a group name in the one form UserGroup, QuestGroup and
// CampaignGroup write it, returning its kind and id; any other name (a
// sign, a leading zero, another prefix) is not a group's.
func ParseGroup(g string) (kind string, id int64, ok bool) {
	kind, num, _ := strings.Cut(g, "_")
	switch kind {
	case GroupUser, GroupQuest, GroupCampaign:
		id, ok = ParseID(num)
		return kind, id, ok
	}
	return "", 0, false
}

// ParseID reads an id written the one way herald writes it: decimal digits
// with no sign and no leading zero, from 1 to the largest int64. "+1" and
// "01" are not object 1, so one object has one URL and one group.
func ParseID(s string) (int64, bool) {
	if s == "" || len(s) > 19 || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// ControlGroup carries a user's internal events (quest_created). It is kept
// apart from UserGroup so that the user group's offsets count only what
// clients receive, and a replay of it never carries internal events.
func ControlGroup(id int64) string { return "ctl_user_" + strconv.FormatInt(id, 10) }

// record adds an event to the outbox inside tx. data is marshalled here,
// once; the relay publishes these exact bytes.
//
// On PostgreSQL the relay numbers the event before it publishes it: its
// group's next offset, in the group's epoch (group_log), durable in the
// database before any client can see it. Numbering it here instead would
// hold the group's row locked through every write's commit: one commit,
// and one flush of the log to disk, at a time per group (on PostgreSQL
// here ~325 a second at most), where the relay numbers a whole round of
// events in one. On SQLite it is numbered here.
func (p *Platform) record(ctx context.Context, tx *sql.Tx, group, typ string, data any) error {
	_, err := p.recordAt(ctx, tx, group, typ, data)
	return err
}

// Recorded is an event in the outbox: its group and its id there, which
// orders the group's events until the relay numbers them.
type Recorded struct {
	Group string `json:"group"`
	ID    int64  `json:"id"`
	// Epoch and Offset are the event's position when its write numbered
	// it (SQLite); on PostgreSQL the relay does, and Offset is 0.
	Epoch  string `json:"-"`
	Offset int64  `json:"-"`
}

// recordAt is record, returning the event's id.
func (p *Platform) recordAt(ctx context.Context, tx *sql.Tx, group, typ string, data any) (Recorded, error) {
	rec := Recorded{Group: group}
	b, err := json.Marshal(data)
	if err != nil {
		return rec, fmt.Errorf("record %s event: encode: %w", typ, err)
	}
	var epoch string
	var off int64
	if p.db.Dialect != store.Postgres {
		// SQLite runs one write at a time anyway: numbering the event here
		// makes no write wait, and spares the relay a transaction before
		// every round it publishes.
		first, onConflict := "1", "last = group_log.last + 1"
		if typ == EventRoomReset {
			first, onConflict = "0", "epoch = excluded.epoch, last = 0"
		}
		if err := tx.QueryRowContext(ctx, "INSERT INTO group_log (grp, epoch, last) VALUES ($1, $2, "+first+
			") ON CONFLICT (grp) DO UPDATE SET "+onConflict+" RETURNING epoch, last", group, newEpoch()).Scan(&epoch, &off); err != nil {
			return rec, fmt.Errorf("number %s event for %s: %w", typ, group, err)
		}
	}
	// The event's partition of the outbox, and how many there are: the
	// relays drain it by what the row says, whatever their own count.
	part := store.OutboxPartition(group, p.parts)
	if err := tx.QueryRowContext(ctx, "INSERT INTO outbox (grp, type, data, created_at, epoch, off, parts, part) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
		group, typ, string(b), p.now(), epoch, off, p.parts, part).Scan(&rec.ID); err != nil {
		return rec, fmt.Errorf("record %s event for %s: %w", typ, group, err)
	}
	if m, ok := p.touched.Load(tx); ok {
		*m.(*uint64) |= 1 << part
	}
	rec.Epoch, rec.Offset = epoch, off
	return rec, nil
}

// newEpoch mints a group's epoch, as the relay does: random, so that a
// position is never ambiguous across a database that was replaced.
func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// OutboxEvent is an event recorded by a committed write, not yet published.
type OutboxEvent struct {
	ID        int64
	Group     string
	Type      string
	Data      []byte
	CreatedAt time.Time
}

// PendingEvents returns up to limit events not yet published, oldest
// first.
func (p *Platform) PendingEvents(ctx context.Context, limit int) ([]OutboxEvent, error) {
	rows, err := p.db.QueryContext(ctx, "SELECT id, grp, type, data, created_at FROM outbox WHERE NOT published ORDER BY id LIMIT $1", limit)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []OutboxEvent
	for rows.Next() {
		var e OutboxEvent
		var data string
		if err := rows.Scan(&e.ID, &e.Group, &e.Type, &data, &e.CreatedAt); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		e.Data = []byte(data)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return out, nil
}

// text validates a required or optional string field's length in runes and
// returns it trimmed.
func text(f fieldErrors, field, v string, required bool, max int) string {
	v = strings.TrimSpace(v)
	switch {
	case !utf8.ValidString(v):
		f.add(field, "must be valid UTF-8")
	case required && v == "":
		f.add(field, "this field may not be blank")
	case utf8.RuneCountInString(v) > max:
		f.add(field, "ensure this field has no more than %d characters", max)
	case strings.ContainsRune(v, 0):
		f.add(field, "must not contain NUL characters")
	}
	return v
}

func requireUser(userID int64) error {
	if userID <= 0 {
		return &Error{Kind: KindUnauthorized, Message: "authentication credentials were not provided"}
	}
	return nil
}

func normPage(p PageRequest) PageRequest {
	if p.Number < 1 {
		p.Number = 1
	}
	if p.Size < 1 {
		p.Size = 20
	}
	if p.Size > 100 {
		p.Size = 100
	}
	return p
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// querier is *sql.DB, *sql.Tx or *store.DB.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// collect runs a query and scans every row with scan.
func collect[T any](ctx context.Context, q querier, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func count(ctx context.Context, q querier, query string, args ...any) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, query, args...).Scan(&n)
	return n, err
}
