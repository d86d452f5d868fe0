package consumers

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/platform"
)

// snapshotTTL bounds how long an encoded campaign_data is reused. Every
// change with an event moves the room's position and so retires the cached
// snapshot at once; the TTL bounds the staleness of the few changes without
// one (a campaign's own title or status).
const snapshotTTL = time.Second

// maxSnapshots bounds the cache; past it, arbitrary entries are dropped.
const maxSnapshots = 10_000

// snapshots caches the encoded campaign_data of public campaigns, keyed by
// the room's position when it was read: a burst of clients joining one room
// (a campaign going live, every client reconnecting after a restart) reads
// the database once instead of once per client.
type snapshots struct {
	mu sync.Mutex
	m  map[int64]snapshotEntry
}

type snapshotEntry struct {
	at   position
	read time.Time
	json []byte
}

// snapshot returns the encoded campaign_data of campaign id as viewerID
// sees it, taken after the room was at position at.
func (c *Consumers) snapshot(ctx context.Context, viewerID, id int64, at position) ([]byte, error) {
	c.snaps.mu.Lock()
	e, ok := c.snaps.m[id]
	c.snaps.mu.Unlock()
	if ok && e.at == at && time.Since(e.read) < snapshotTTL {
		return e.json, nil
	}
	read := time.Now()
	detail, err := c.p.CampaignDetail(ctx, viewerID, id)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(struct {
		Type string                  `json:"type"`
		Data platform.CampaignDetail `json:"data"`
	}{"campaign_data", detail})
	if err != nil {
		return nil, fmt.Errorf("encode campaign %d: %w", id, err)
	}
	// Drafts look different to their owner and to everyone else: only what
	// every viewer sees alike is shared.
	if detail.Status != platform.CampaignDraft {
		c.snaps.mu.Lock()
		if c.snaps.m == nil {
			c.snaps.m = make(map[int64]snapshotEntry)
		}
		if len(c.snaps.m) >= maxSnapshots {
			for k := range c.snaps.m {
				delete(c.snaps.m, k)
				if len(c.snaps.m) < maxSnapshots*9/10 {
					break
				}
			}
		}
		c.snaps.m[id] = snapshotEntry{at: at, read: read, json: b}
		c.snaps.mu.Unlock()
	}
	return b, nil
}
