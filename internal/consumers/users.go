package consumers

import (
	"context"
	"sync"
	"time"
)

// How long a user found to exist is trusted without asking the database
// again, and how many are remembered: a reconnecting client (and a room of
// one user's tabs) costs one lookup every few seconds, not one per
// handshake.
const (
	knownUserTTL  = 5 * time.Second
	maxKnownUsers = 10_000
)

// knownUsers remembers, briefly, which user ids exist. Only users found are
// remembered: a token of an id that does not exist is looked up every time,
// as it is refused anyway.
type knownUsers struct {
	mu    sync.Mutex
	until map[int64]time.Time
}

// userExists reports whether user id exists.
func (c *Consumers) userExists(ctx context.Context, id int64) (bool, error) {
	now := time.Now()
	k := &c.users
	k.mu.Lock()
	t, ok := k.until[id]
	k.mu.Unlock()
	if ok && now.Before(t) {
		return true, nil
	}
	found, err := c.p.UserExists(ctx, id)
	if err != nil || !found {
		return false, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.until == nil {
		k.until = make(map[int64]time.Time)
	}
	if len(k.until) >= maxKnownUsers {
		// Expired entries first; all of them if none had expired.
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
	return true, nil
}
