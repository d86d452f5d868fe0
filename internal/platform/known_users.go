package platform

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"
)

// How long a user found to exist is trusted without asking the database
// again, and how many such users are remembered. A removed user's tokens
// stop working within knownUserTTL.
const (
	knownUserTTL  = 5 * time.Second
	maxKnownUsers = 10_000
)

// knownUsers remembers, briefly, which user ids exist, so that checking a
// token's user costs one lookup per user every few seconds rather than one
// per request or handshake. Only users found are remembered: an id that does
// not exist is looked up every time, as it is refused anyway.
type knownUsers struct {
	mu    sync.Mutex
	until map[int64]time.Time
}

func (k *knownUsers) fresh(id int64, now time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	t, ok := k.until[id]
	return ok && now.Before(t)
}

// add remembers id until now+knownUserTTL. Past maxKnownUsers the expired
// entries are dropped, and everything if none had expired, which keeps the
// map bounded at the cost of a few more lookups.
func (k *knownUsers) add(id int64, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.until == nil {
		k.until = make(map[int64]time.Time)
	}
	if len(k.until) >= maxKnownUsers {
		for uid, t := range k.until {
			if !now.Before(t) {
				delete(k.until, uid)
			}
		}
		if len(k.until) >= maxKnownUsers {
			clear(k.until)
		}
	}
	k.until[id] = now.Add(knownUserTTL)
}

// UserExists reports whether a user account with id exists. A token outlives
// its user when the database was reset under a kept secret; the REST API and
// the real-time endpoints ask this before they trust one. An existing user
// is remembered for a few seconds.
func (p *Platform) UserExists(ctx context.Context, id int64) (bool, error) {
	now := time.Now()
	if p.users.fresh(id, now) {
		return true, nil
	}
	var one int
	err := p.db.QueryRowContext(ctx, "SELECT 1 FROM users WHERE id = $1", id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up user %d: %w", id, err)
	}
	p.users.add(id, now)
	return true, nil
}
