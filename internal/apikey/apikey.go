// Package apikey keeps the API keys other backends publish events with
// (POST /api/publish/): creating one (its secret is shown once), listing,
// revoking, and checking a key a request presents.
//
// A key reads hk_<id>_<secret>: the id finds its row without scanning, and
// only a SHA-256 of the secret is stored. A plain, fast hash is right here
// where passwords need argon2id: the secret is 256 random bits, so nobody
// can guess it from a leaked hash however fast each guess is (slow hashes
// only make up for the little entropy of what people choose), while a slow
// one would cost every publish request its CPU time.
package apikey

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/heraldhq/herald/internal/groups"
	"github.com/heraldhq/herald/internal/store"
)

const (
	// Prefix starts every key, so a key is recognised in configuration,
	// logs and secret scanners.
	Prefix = "hk_"
	idLen  = 16 // hex digits: 64 random bits
	// secretLen is the hex digits of the secret: 256 random bits.
	secretLen = 64
	// TokenLen is the length of a whole key.
	TokenLen = len(Prefix) + idLen + 1 + secretLen
	// MaxNameLen bounds a key's name, in characters.
	MaxNameLen = 100
	// MaxScopes bounds the scopes of one key.
	MaxScopes = 100
	// touchEvery is how stale last_used_at may get: a key used all the
	// time costs one write a minute, not one per request.
	touchEvery = time.Minute
)

var (
	// ErrNotValid is the one answer for a key that is malformed, unknown
	// or revoked, so a caller cannot tell which.
	ErrNotValid = errors.New("the API key is not valid")
	// ErrNotFound is Revoke's answer for an id no key has.
	ErrNotFound = errors.New("no API key with that id")
)

// Key is a stored API key, without its secret.
type Key struct {
	ID         string
	Name       string
	Scopes     []string
	CreatedAt  time.Time
	RevokedAt  *time.Time
	LastUsedAt *time.Time
}

// Store keeps API keys in herald's database.
type Store struct {
	db     *store.DB
	groups *groups.Registry
	now    func() time.Time
	// dummy is compared against when a key's id is unknown, so the answer
	// takes the time of a wrong secret.
	dummy []byte
}

// New returns a Store over db whose keys' scopes are reg's namespaces and
// groups (nil: the built-in ones); now is the clock (nil: time.Now).
func New(db *store.DB, reg *groups.Registry, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	if reg == nil {
		reg = groups.Default()
	}
	d := sha256.Sum256([]byte("herald-api-key-timing"))
	return &Store{db: db, groups: reg, now: now, dummy: d[:]}
}

func (s *Store) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// CheckName returns an error when name cannot name a key: it is printed
// by `herald apikey list`, so no control characters (a terminal would
// obey them), 1 to MaxNameLen characters.
func CheckName(name string) error {
	if name == "" || utf8.RuneCountInString(name) > MaxNameLen || !utf8.ValidString(name) {
		return fmt.Errorf("a key's name is 1 to %d characters of UTF-8", MaxNameLen)
	}
	for _, r := range name {
		if unicode.IsControl(r) || r == utf8.RuneError || unicode.In(r, unicode.Bidi_Control) {
			return errors.New("a key's name may not hold control characters")
		}
	}
	return nil
}

// CheckScopes returns the scopes deduplicated, in their order, or an error
// naming the first that cannot be granted (Registry.ValidScope).
func CheckScopes(reg *groups.Registry, scopes []string) ([]string, error) {
	var out []string
	for _, sc := range scopes {
		if err := reg.ValidScope(sc); err != nil {
			return nil, fmt.Errorf("scope %q: %w", sc, err)
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	if len(out) == 0 || len(out) > MaxScopes {
		return nil, fmt.Errorf("a key has 1 to %d scopes", MaxScopes)
	}
	return out, nil
}

// Create stores a new key and returns it with its whole token, which is
// shown this once: only a hash of its secret is kept.
func (s *Store) Create(ctx context.Context, name string, scopes []string) (Key, string, error) {
	if err := CheckName(name); err != nil {
		return Key{}, "", err
	}
	scopes, err := CheckScopes(s.groups, scopes)
	if err != nil {
		return Key{}, "", err
	}
	var id [idLen / 2]byte
	var secret [secretLen / 2]byte
	_, _ = rand.Read(id[:]) // never fails on supported platforms
	_, _ = rand.Read(secret[:])
	k := Key{ID: hex.EncodeToString(id[:]), Name: name, Scopes: scopes, CreatedAt: s.clock()}
	sec := hex.EncodeToString(secret[:])
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO api_keys (id, name, secret_hash, scopes, created_at) VALUES ($1, $2, $3, $4, $5)`,
			k.ID, k.Name, hashSecret(sec), strings.Join(k.Scopes, ","), k.CreatedAt)
		return err
	})
	if err != nil {
		return Key{}, "", fmt.Errorf("create API key: %w", err)
	}
	return k, Prefix + k.ID + "_" + sec, nil
}

func hashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// ParseToken splits a key into its id and secret, and refuses anything not
// in the exact form Create writes (lower-case hex of the exact lengths).
func ParseToken(token string) (id, secret string, ok bool) {
	if len(token) != TokenLen || !strings.HasPrefix(token, Prefix) || token[len(Prefix)+idLen] != '_' {
		return "", "", false
	}
	id, secret = token[len(Prefix):len(Prefix)+idLen], token[len(Prefix)+idLen+1:]
	if !lowerHex(id) || !lowerHex(secret) {
		return "", "", false
	}
	return id, secret, true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Authenticate returns the key token is, if it is a key that exists and is
// not revoked; ErrNotValid otherwise. The secret is compared in constant
// time, and against a dummy when the id is unknown, so neither the answer
// nor its time tells an unknown key from a wrong or revoked one. It keeps
// the key's last_used_at within a minute.
func (s *Store) Authenticate(ctx context.Context, token string) (Key, error) {
	id, secret, ok := ParseToken(token)
	if !ok {
		return Key{}, ErrNotValid
	}
	k, stored, err := s.read(ctx, id)
	found := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Key{}, err
	}
	want := s.dummy
	if found {
		if want, err = hex.DecodeString(stored); err != nil || len(want) != sha256.Size {
			return Key{}, fmt.Errorf("API key %s: stored hash is malformed", id)
		}
	}
	got := sha256.Sum256([]byte(secret))
	match := subtle.ConstantTimeCompare(got[:], want) == 1
	if !found || !match || k.RevokedAt != nil {
		return Key{}, ErrNotValid
	}
	if err := s.touch(ctx, &k); err != nil {
		return Key{}, err
	}
	return k, nil
}

// touch records that k was used, unless it was within touchEvery. The
// condition is repeated in the UPDATE, so processes racing at the minute
// write once.
func (s *Store) touch(ctx context.Context, k *Key) error {
	now := s.clock()
	if k.LastUsedAt != nil && now.Sub(*k.LastUsedAt) < touchEvery {
		return nil
	}
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE api_keys SET last_used_at = $2
			WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)`, k.ID, now, now.Add(-touchEvery))
		return err
	})
	if err != nil {
		return fmt.Errorf("API key %s: record its use: %w", k.ID, err)
	}
	k.LastUsedAt = &now
	return nil
}

const keyColumns = "id, name, scopes, created_at, revoked_at, last_used_at"

type scanner interface{ Scan(...any) error }

func scanKey(sc scanner, extra ...any) (Key, error) {
	var (
		k              Key
		scopes         string
		revoked, usedT sql.NullTime
	)
	if err := sc.Scan(append([]any{&k.ID, &k.Name, &scopes, &k.CreatedAt, &revoked, &usedT}, extra...)...); err != nil {
		return Key{}, err
	}
	k.Scopes = strings.Split(scopes, ",")
	k.CreatedAt = k.CreatedAt.UTC()
	if revoked.Valid {
		t := revoked.Time.UTC()
		k.RevokedAt = &t
	}
	if usedT.Valid {
		t := usedT.Time.UTC()
		k.LastUsedAt = &t
	}
	return k, nil
}

// read returns the key with id and its stored secret hash, or
// sql.ErrNoRows.
func (s *Store) read(ctx context.Context, id string) (Key, string, error) {
	var hash string
	k, err := scanKey(s.db.QueryRowContext(ctx, "SELECT "+keyColumns+", secret_hash FROM api_keys WHERE id = $1", id), &hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		err = fmt.Errorf("read API key %s: %w", id, err)
	}
	return k, hash, err
}

// Get returns the key with id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (Key, error) {
	k, _, err := s.read(ctx, id)
	if errors.Is(err, sql.ErrNoRows) {
		return Key{}, ErrNotFound
	}
	return k, err
}

// List returns every key, revoked ones included, oldest first.
func (s *Store) List(ctx context.Context) ([]Key, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+keyColumns+" FROM api_keys ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	defer rows.Close()
	var out []Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list API keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	return out, nil
}

// Revoke makes the key with id unusable from now on, and returns it; a key
// revoked before keeps its first revocation time. ErrNotFound when no key
// has id.
func (s *Store) Revoke(ctx context.Context, id string) (Key, error) {
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL", id, s.clock())
		return err
	})
	if err != nil {
		return Key{}, fmt.Errorf("revoke API key %s: %w", id, err)
	}
	return s.Get(ctx, id)
}
