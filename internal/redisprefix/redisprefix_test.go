package redisprefix_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
	"github.com/heraldhq/herald/internal/redisprefix"
)

// Delete removes every key under the prefix, more than one batch of them,
// and nothing else.
func TestDelete(t *testing.T) {
	ctx := context.Background()
	opt, err := redis.ParseURL(redistest.SharedURL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	prefix := redistest.Prefix(t)
	keep := prefix + "kept"
	gone := prefix + "gone:"
	pipe := c.Pipeline()
	for i := range 1234 {
		pipe.Set(ctx, fmt.Sprintf("%s%d", gone, i), "x", 0)
	}
	pipe.Set(ctx, keep, "x", 0)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	redisprefix.Delete(ctx, c, gone)
	if n, err := c.Exists(ctx, keep).Result(); err != nil || n != 1 {
		t.Fatalf("the key outside the prefix: exists %d, %v", n, err)
	}
	left, err := c.Keys(ctx, gone+"*").Result()
	if err != nil || len(left) != 0 {
		t.Fatalf("%d keys left under the prefix (%v)", len(left), err)
	}
}
