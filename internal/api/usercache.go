package api

import (
	"context"
	"sync"
	"time"
)

// How long a user found to exist is trusted without asking the database
// again, and how many such users are remembered. A removed user's tokens
// stop working within userCacheTTL.
const (
	userCacheTTL  = 5 * time.Second
	userCacheSize = 10_000
)

// userCache remembers which user ids exist, briefly, so an authenticated
// request costs a database lookup once per user every few seconds rather
// than once per request. Only users found are remembered: a token for an id
// that does not exist is looked up every time, as it is refused anyway.
type userCache struct {
	ttl time.Duration
	max int

	mu    sync.Mutex
	until map[int64]time.Time
}

func newUserCache(ttl time.Duration, size int) *userCache {
	return &userCache{ttl: ttl, max: size, until: make(map[int64]time.Time)}
}

// exists reports whether user id exists, asking lookup unless it was found
// within the cache's lifetime.
func (c *userCache) exists(ctx context.Context, id int64, lookup func(context.Context, int64) (bool, error)) (bool, error) {
	now := time.Now()
	c.mu.Lock()
	t, ok := c.until[id]
	c.mu.Unlock()
	if ok && now.Before(t) {
		return true, nil
	}
	found, err := lookup(ctx, id)
	if err != nil || !found {
		return false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.until) >= c.max {
		c.sweep(now)
	}
	c.until[id] = now.Add(c.ttl)
	return true, nil
}

// sweep drops expired entries, and everything if none had expired, which
// keeps the map bounded at the cost of a few more lookups.
func (c *userCache) sweep(now time.Time) {
	for id, t := range c.until {
		if !now.Before(t) {
			delete(c.until, id)
		}
	}
	if len(c.until) >= c.max {
		clear(c.until)
	}
}
