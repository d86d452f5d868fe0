// Package redisprefix removes the keys a run or a test left under a key
// prefix of a shared Redis.
package redisprefix

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Delete unlinks the keys under prefix, scanning rather than asking for
// them all at once (KEYS would block a shared Redis), 500 at a time.
func Delete(ctx context.Context, c *redis.Client, prefix string) {
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 500 {
			c.Unlink(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		c.Unlink(ctx, keys...)
	}
}
