package consumers

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime"
)

// maxSnapshots bounds the cache; past it, arbitrary entries are dropped.
const maxSnapshots = 10_000

// snapshots caches the encoded campaign_data of public campaigns, keyed by
// the room's position when it was read: a burst of clients joining one room
// (a campaign going live, every client reconnecting after a restart) reads
// the database once instead of once per client. Concurrent misses of one
// room and position share one read (flight), so a burst arriving just as
// an event retired the entry does not send every handshake to the database
// at once.
//
// Every change to what campaign_data holds records an event in the room
// (the campaign's own fields too: platform.EventCampaign), so an entry is
// good exactly as long as the room has not moved past its position: it is
// used only at that position, and dropped as soon as this process sees an
// event after it (passed). A snapshot was read after the room stood at its
// position, so it holds every change whose event a client joining from
// there could already have; the events after it follow it on the
// connection.
type snapshots struct {
	mu     sync.Mutex
	m      map[int64]snapshotEntry
	flight singleflight.Group
	loads  atomic.Uint64 // database reads, for tests
}

type snapshotEntry struct {
	at   position
	snap snapshot
}

// snapshot is campaign_data, encoded once for every connection that is sent
// it: the JSON message and its WebSocket frame, and the campaign's owner.
// resetOut is set for a public campaign whose room had no reset waiting in
// the outbox after the campaign was read (publicPosition).
type snapshot struct {
	json     []byte
	frame    realtime.Frame
	owner    int64
	resetOut bool
}

// send queues the snapshot on conn and reports whether conn took it.
func (s snapshot) send(conn *realtime.Conn) bool {
	if conn.Encoding() == realtime.EncodingSSE {
		return conn.SendJSON(s.json) == nil
	}
	return conn.Send(s.frame) == nil
}

// snapshotLoadTimeout bounds a shared read, which outlives the handshake
// that started it when other handshakes wait for it too.
const snapshotLoadTimeout = 10 * time.Second

// snapshot returns the encoded campaign_data of campaign id as viewerID
// sees it, taken after the room was at position at.
func (c *Consumers) snapshot(ctx context.Context, viewerID, id int64, at position) (snapshot, error) {
	c.snaps.mu.Lock()
	e, ok := c.snaps.m[id]
	c.snaps.mu.Unlock()
	if ok && e.at == at {
		return e.snap, nil
	}
	// The shared read is the anonymous view, which every viewer of a public
	// campaign sees alike.
	key := strconv.FormatInt(id, 10) + "@" + at.Epoch + ":" + strconv.FormatUint(at.Offset, 10)
	v, err, _ := c.snaps.flight.Do(key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), snapshotLoadTimeout)
		defer cancel()
		s, public, err := c.loadSnapshot(ctx, 0, id)
		if err != nil {
			return snapshot{}, err
		}
		if public {
			c.snaps.put(id, snapshotEntry{at: at, snap: s})
		}
		return s, nil
	})
	if err == nil {
		return v.(snapshot), nil
	}
	if viewerID == 0 || platform.KindOf(err) != platform.KindNotFound {
		return snapshot{}, err
	}
	// Hidden from anonymous viewers (a draft): perhaps not from this one.
	s, _, err := c.loadSnapshot(ctx, viewerID, id)
	return s, err
}

// loadSnapshot reads and encodes campaign_data as viewerID sees it; public
// tells whether every viewer sees it alike (drafts look different to their
// owner and to everyone else).
func (c *Consumers) loadSnapshot(ctx context.Context, viewerID, id int64) (s snapshot, public bool, err error) {
	c.snaps.loads.Add(1)
	detail, err := c.p.CampaignDetail(ctx, viewerID, id)
	if err != nil {
		return snapshot{}, false, err
	}
	b, err := json.Marshal(struct {
		Type string                  `json:"type"`
		Data platform.CampaignDetail `json:"data"`
	}{"campaign_data", detail})
	if err != nil {
		return snapshot{}, false, fmt.Errorf("encode campaign %d: %w", id, err)
	}
	s = snapshot{json: b, frame: realtime.NewTextFrame(b), owner: detail.Owner.ID}
	if public = detail.Status != platform.CampaignDraft; public {
		// Read after the campaign: a reset committed with its publication
		// is waiting or already out.
		pending, err := c.p.RoomResetPending(ctx, platform.CampaignGroup(id))
		if err != nil {
			return snapshot{}, false, err
		}
		s.resetOut = !pending
	}
	return s, public, nil
}

// put caches e as campaign id's snapshot; past maxSnapshots, arbitrary
// entries are dropped.
func (s *snapshots) put(id int64, e snapshotEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[int64]snapshotEntry)
	}
	if len(s.m) >= maxSnapshots {
		for k := range s.m {
			delete(s.m, k)
			if len(s.m) < maxSnapshots*9/10 {
				break
			}
		}
	}
	// A slower read of an older position must not replace a newer one.
	if old, ok := s.m[id]; ok && old.at.Epoch == e.at.Epoch && old.at.Offset > e.at.Offset {
		return
	}
	// A copy: a layer's epoch may be a substring of a whole event it read.
	e.at.Epoch = strings.Clone(e.at.Epoch)
	s.m[id] = e
}

// passed retires campaign id's snapshot if it was read before the room
// reached at, where an event this process received stands: a later event
// of the same epoch, or any of another (the room started over).
func (s *snapshots) passed(id int64, at position) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[id]; ok && (e.at.Epoch != at.Epoch || e.at.Offset < at.Offset) {
		delete(s.m, id)
	}
}
