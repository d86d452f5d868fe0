package layer

import (
	"context"
	"testing"

	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
)

// Presence counts are summed over processes (layers), and a process whose
// count drops to zero stops counting.
func TestRedisPresenceSumsProcesses(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	a := newTestRedis(t, redistest.SharedURL(), newSink(), RedisOptions{Prefix: prefix})
	b := newTestRedis(t, redistest.SharedURL(), newSink(), RedisOptions{Prefix: prefix})
	var _ PresenceCounter = a
	if n, err := a.Presence(ctx, "campaign_1", 3); err != nil || n != 3 {
		t.Fatalf("a alone: %d, %v", n, err)
	}
	if n, err := b.Presence(ctx, "campaign_1", 4); err != nil || n != 7 {
		t.Fatalf("a and b: %d, %v; want 7", n, err)
	}
	if n, _ := b.Presence(ctx, "campaign_2", 1); n != 1 {
		t.Fatalf("another group: %d", n)
	}
	if n, _ := a.Presence(ctx, "campaign_1", 0); n != 4 {
		t.Fatalf("after a left: %d; want 4", n)
	}
	if n, _ := b.Presence(ctx, "campaign_1", 4); n != 4 {
		t.Fatalf("b renewing: %d; want 4", n)
	}
}
