package consumers

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/panics"
	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/layer"
)

// presenceInterval is the most often a room's count is sent.
const presenceInterval = time.Second

// presence tells v2 members of campaign rooms how many are watching, over
// every process when the layer counts across them: once a second at most,
// and only when the count changed.
type presence struct {
	mu    sync.Mutex
	rooms map[string]int // room → count last sent (-1: never)
}

// watch notes a room whose membership may have changed.
func (p *presence) watch(group string) {
	p.mu.Lock()
	if p.rooms == nil {
		p.rooms = make(map[string]int)
	}
	if _, ok := p.rooms[group]; !ok {
		p.rooms[group] = -1
	}
	p.mu.Unlock()
}

// Run sends presence counts until ctx ends.
func (c *Consumers) Run(ctx context.Context) {
	t := time.NewTicker(presenceInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.sendPresence()
		}
	}
}

// sendPresence sends each room whose count changed its new count, and
// forgets rooms that emptied. It is one turn of Run: after a panic the next
// tick sends the counts again.
func (c *Consumers) sendPresence() {
	defer panics.Recover(c.log, c.onPanic, panics.Presence)
	type change struct {
		group string
		count int
	}
	var changes []change
	// With a layer spanning several processes every room is counted there
	// each tick (that also renews this process's share); otherwise locally.
	counter, _ := c.hub.Layer().(layer.PresenceCounter)
	c.presence.mu.Lock()
	rooms := make([]string, 0, len(c.presence.rooms))
	for g := range c.presence.rooms {
		rooms = append(rooms, g)
	}
	c.presence.mu.Unlock()
	counts := make(map[string]int, len(rooms))
	for _, g := range rooms {
		n := c.hub.GroupSize(g)
		if counter != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			total, err := counter.Presence(ctx, g, n)
			cancel()
			if err != nil {
				continue // keep the last count; the next tick tries again
			}
			if n > 0 {
				n = total
			}
		}
		counts[g] = n
	}
	c.presence.mu.Lock()
	for g, n := range counts {
		last, ok := c.presence.rooms[g]
		if !ok || n == last {
			continue
		}
		if n == 0 {
			delete(c.presence.rooms, g)
		} else {
			c.presence.rooms[g] = n
		}
		changes = append(changes, change{g, n})
	}
	c.presence.mu.Unlock()
	for _, ch := range changes {
		if ch.count == 0 {
			continue
		}
		payload, _ := json.Marshal(struct {
			Type string `json:"type"`
			Data struct {
				Group string `json:"group"`
				Count int    `json:"count"`
			} `json:"data"`
		}{Type: "presence", Data: struct {
			Group string `json:"group"`
			Count int    `json:"count"`
		}{ch.group, ch.count}})
		// One frame per wire format, shared by every receiver.
		ws, sse := realtime.NewTextFrame(payload), realtime.NewSSEMessage(payload)
		for _, conn := range c.hub.Members(ch.group) {
			switch conn.Encoding() {
			case realtime.EncodingWebSocketV2:
				_ = conn.Send(ws)
			case realtime.EncodingSSE:
				_ = conn.Send(sse)
			}
		}
	}
}
