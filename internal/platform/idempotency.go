package platform

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Idempotency keys: a client that sent a write and got no answer sends it
// again with the same key, and the write is applied once. The key's row is
// inserted by write, in the write's own transaction, so it exists exactly
// when the write was committed, even if the process dies right after; the
// response is stored on it afterwards and replayed to a retry.
const (
	// IdempotencyKeyTTL is how long a key is kept at least.
	IdempotencyKeyTTL = 24 * time.Hour
	// MaxIdempotencyKeysPerUser bounds the keys kept per user; beyond it
	// the oldest go first.
	MaxIdempotencyKeysPerUser = 10_000
	// MaxStoredResponse bounds a stored response body; a larger one is not
	// kept, and a retry is told the write was applied.
	MaxStoredResponse = 1 << 20
	// keyInFlight is how long after its write a key without a stored
	// response is taken for a request still answering (a retry is asked to
	// come back) rather than one whose process died before storing it.
	keyInFlight = 30 * time.Second
	// sweepBatch bounds the rows one sweep transaction deletes.
	sweepBatch = 1000
)

// IdempotentRequest is a write request carrying an Idempotency-Key. Put in
// a write's context (WithIdempotentRequest), it makes write record the key
// in the write's transaction.
type IdempotentRequest struct {
	UserID int64
	// APIKeyID, when set, scopes the key to that API key (a publish)
	// instead of UserID.
	APIKeyID string
	Key      string
	// Hash identifies the request (its method, path and body): the same
	// key with another request is refused.
	Hash string

	committed atomic.Bool
}

// Committed reports whether a write recorded the key and committed.
func (r *IdempotentRequest) Committed() bool { return r.committed.Load() }

type idempotencyCtxKey struct{}

// WithIdempotentRequest returns ctx carrying r for the writes made with it.
func WithIdempotentRequest(ctx context.Context, r *IdempotentRequest) context.Context {
	return context.WithValue(ctx, idempotencyCtxKey{}, r)
}

func idempotentRequest(ctx context.Context) *IdempotentRequest {
	r, _ := ctx.Value(idempotencyCtxKey{}).(*IdempotentRequest)
	return r
}

// keyScope is where a request's keys are kept: per user, or per API key
// (publishes), in a table of each, so that two scopes' keys never meet.
type keyScope struct {
	table, column string
	id            any
}

func (r *IdempotentRequest) scope() keyScope {
	if r.APIKeyID != "" {
		return keyScope{"api_key_idempotency", "api_key_id", r.APIKeyID}
	}
	return keyScope{"idempotency_keys", "user_id", r.UserID}
}

// keyScopes are every scope's table and column, for the sweep.
var keyScopes = []keyScope{{"idempotency_keys", "user_id", nil}, {"api_key_idempotency", "api_key_id", nil}}

// KeyUsedError is a write's error when another request already recorded
// its idempotency key (committed, or committing while this one waited).
// Nothing of this write was committed.
type KeyUsedError struct{ Key string }

func (e *KeyUsedError) Error() string {
	return fmt.Sprintf("idempotency key %q already used", e.Key)
}

// recordKey inserts the key of ctx's request, if any, in tx. A request's
// key is recorded by its first committed write only. The insert waits for
// a concurrent transaction holding the same key (PostgreSQL) and fails if
// that one commits.
func (p *Platform) recordKey(ctx context.Context, tx *sql.Tx) error {
	r := idempotentRequest(ctx)
	if r == nil || r.committed.Load() {
		return nil
	}
	sc := r.scope()
	res, err := tx.ExecContext(ctx, `INSERT INTO `+sc.table+` (`+sc.column+`, idem_key, request_hash, created_at)
		VALUES ($1, $2, $3, $4) ON CONFLICT (`+sc.column+`, idem_key) DO NOTHING`, sc.id, r.Key, r.Hash, p.now())
	if err != nil {
		return fmt.Errorf("record idempotency key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("record idempotency key: %w", err)
	} else if n == 0 {
		return &KeyUsedError{Key: r.Key}
	}
	return nil
}

// keyCommitted marks ctx's request, if any, as committed: write calls it
// after the commit of the transaction recordKey ran in.
func keyCommitted(ctx context.Context) {
	if r := idempotentRequest(ctx); r != nil {
		r.committed.Store(true)
	}
}

// StoredResponse is the answer to a write, kept on its key for retries.
type StoredResponse struct {
	Status      int
	ContentType string
	Location    string
	// Body is nil when the answer could not be kept (too large, or an
	// error after the commit): a retry is then told the write was applied.
	Body []byte
}

// KeyRecord is what is known of an idempotency key.
type KeyRecord struct {
	Hash string
	// Response is nil until the first request's answer is stored.
	Response *StoredResponse
	// InFlight: no answer yet, and the write committed so recently that
	// its request is probably still answering.
	InFlight bool
}

// IdempotencyKey returns what is recorded of userID's key, and false when
// nothing is (never used, or its write was not committed).
func (p *Platform) IdempotencyKey(ctx context.Context, userID int64, key string) (KeyRecord, bool, error) {
	return p.KeyRecordOf(ctx, &IdempotentRequest{UserID: userID, Key: key})
}

// KeyRecordOf returns what is recorded of r's key in r's scope (its user
// or its API key), and false when nothing is.
func (p *Platform) KeyRecordOf(ctx context.Context, r *IdempotentRequest) (KeyRecord, bool, error) {
	sc := r.scope()
	var (
		rec        KeyRecord
		created    time.Time
		status     sql.NullInt64
		ctype, loc sql.NullString
		body       []byte
		kept       bool // SQLite reads an empty body (a 204's) as nil, like NULL
	)
	err := p.db.QueryRowContext(ctx, `SELECT request_hash, created_at, status, content_type, location, body, body IS NOT NULL
		FROM `+sc.table+` WHERE `+sc.column+` = $1 AND idem_key = $2`, sc.id, r.Key).
		Scan(&rec.Hash, &created, &status, &ctype, &loc, &body, &kept)
	if kept && body == nil {
		body = []byte{}
	}
	if errors.Is(err, sql.ErrNoRows) {
		return KeyRecord{}, false, nil
	}
	if err != nil {
		return KeyRecord{}, false, fmt.Errorf("read idempotency key: %w", err)
	}
	if status.Valid {
		rec.Response = &StoredResponse{Status: int(status.Int64), ContentType: ctype.String, Location: loc.String, Body: body}
	} else {
		rec.InFlight = p.now().Sub(created) < keyInFlight
	}
	return rec, true, nil
}

// StoreResponse keeps the answer of r, whose write committed, for its
// retries, and drops the oldest keys of r's user (or API key) beyond the
// per-user bound.
func (p *Platform) StoreResponse(ctx context.Context, r *IdempotentRequest, resp StoredResponse) error {
	if len(resp.Body) > MaxStoredResponse {
		resp.Body = nil
	}
	var body any // NULL, not an empty value, when nothing is kept
	if resp.Body != nil {
		body = resp.Body
	}
	sc := r.scope()
	return p.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE `+sc.table+` SET status = $3, content_type = $4, location = $5, body = $6
			WHERE `+sc.column+` = $1 AND idem_key = $2`, sc.id, r.Key, resp.Status, resp.ContentType, resp.Location, body); err != nil {
			return fmt.Errorf("store idempotent response: %w", err)
		}
		// Cheap while the user has fewer keys than the bound: the
		// subquery finds no row and nothing is compared.
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+sc.table+` WHERE `+sc.column+` = $1 AND created_at <
			(SELECT created_at FROM `+sc.table+` WHERE `+sc.column+` = $1 ORDER BY created_at DESC LIMIT 1 OFFSET $2)`,
			sc.id, MaxIdempotencyKeysPerUser-1); err != nil {
			return fmt.Errorf("drop old idempotency keys: %w", err)
		}
		return nil
	})
}

// SweepIdempotencyKeys deletes the keys older than IdempotencyKeyTTL, a
// bounded batch per transaction so writers wait little, and returns how
// many it deleted.
func (p *Platform) SweepIdempotencyKeys(ctx context.Context) (int64, error) {
	before := p.now().Add(-IdempotencyKeyTTL)
	var total int64
	for _, sc := range keyScopes {
		for {
			var n int64
			err := p.db.Tx(ctx, func(tx *sql.Tx) error {
				res, err := tx.ExecContext(ctx, `DELETE FROM `+sc.table+` WHERE (`+sc.column+`, idem_key) IN
					(SELECT `+sc.column+`, idem_key FROM `+sc.table+` WHERE created_at < $1 ORDER BY created_at LIMIT $2)`,
					before, sweepBatch)
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return total, fmt.Errorf("sweep idempotency keys (%s): %w", sc.table, err)
			}
			total += n
			if n < sweepBatch {
				break
			}
		}
	}
	return total, nil
}
