package consumers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/realtime/layer"
)

// Visibility on replay. A campaign room's history may hold what only its
// owner could see: events published while it was a draft, and versions of
// objects edited since. Every change of who may see a campaign (a draft
// made public, a campaign back to draft) records a reset
// (platform.EventRoomReset) in the room's commit order, which starts the
// room's history over in a new epoch; so a viewer other than the owner is
// joined only at a position in an epoch that began after the campaign was
// last made public (publicPosition), and nothing from before can be
// replayed or delivered to them. Such an epoch ends with the campaign's
// event saying it is a draft again, which closes those viewers (Observe),
// and then its reset. Members of the room when a reset arrives are closed
// to reconnect (Observe).

// errResetPending refuses a viewer while the room's reset is committed but
// not yet published: the room still holds its history from before.
var errResetPending = errors.New("the campaign was just published; try again in a moment")

// resetWait bounds how long a viewer waits for a pending reset to be
// published before being refused with errResetPending (the relay publishes
// within milliseconds unless it is stuck).
const resetWait = 3 * time.Second

// maxRestarts bounds how many times publicPosition finds the room started
// over while it looks for a public position (its owner hiding and
// publishing the campaign again and again) before refusing with
// errResetPending.
const maxRestarts = 8

// publicPosition returns a position of campaign id's room group from which
// a viewer who is not its owner may be joined, given at, where the room
// stood: at itself when its epoch is known to have begun after the
// campaign was made public, otherwise the room's position once the reset
// that made it public (if any) has been published and delivered to this
// process, or a not-found error if the campaign is no longer public.
// checked says the caller found the campaign public, and no reset waiting,
// after it took at; otherwise this reads it.
//
// Positions are checked by epoch: an epoch that began after the reset that
// made the campaign public holds only what was published while it was
// public, since any later change of who may see it resets the room again.
// It is known so when the room was in it before the campaign was found
// public with no reset waiting, and still is after: every reset of a
// change before that read was then published before the epoch began.
func (c *Consumers) publicPosition(ctx context.Context, id int64, group string, at position, checked bool) (position, error) {
	for range maxRestarts {
		if at.Epoch != "" && c.public.has(group, at.Epoch) {
			return at, nil
		}
		if !checked {
			if _, err := c.p.Campaign(ctx, 0, id); err != nil {
				return position{}, err
			}
			if err := c.awaitReset(ctx, group); err != nil {
				return position{}, err
			}
		}
		p, err := c.syncPosition(ctx, group)
		if err != nil {
			return position{}, err
		}
		if p.Epoch == at.Epoch {
			if p.Epoch != "" {
				c.public.add(group, p.Epoch)
			}
			return p, nil
		}
		// The room started over since at: who may see it may have
		// changed with it.
		at, checked = p, false
	}
	return position{}, errResetPending
}

// awaitReset waits until no reset of group is waiting in the outbox, up to
// resetWait or ctx's deadline if sooner.
func (c *Consumers) awaitReset(ctx context.Context, group string) error {
	deadline := time.Now().Add(resetWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	pause := 5 * time.Millisecond
	for {
		pending, err := c.p.RoomResetPending(ctx, group)
		if err != nil || !pending {
			return err
		}
		if time.Now().Add(pause).After(deadline) {
			return errResetPending
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for the reset of %s: %w", group, ctx.Err())
		case <-t.C:
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// syncPosition is where group stands once this process has delivered
// everything published so far.
func (c *Consumers) syncPosition(ctx context.Context, group string) (position, error) {
	if s, ok := c.hub.Layer().(layer.Syncer); ok {
		p, err := s.Sync(ctx, group)
		if err != nil {
			return position{}, fmt.Errorf("position of %s: %w", group, layerError{err})
		}
		return p, nil
	}
	return c.positionNow(ctx, group)
}

// publicEpochs remembers, per campaign room, the epoch this process found
// to have begun after the campaign was made public. It is bounded: past
// maxPublicEpochs entries, arbitrary ones are forgotten (and found again by
// the next viewer).
type publicEpochs struct {
	mu sync.Mutex
	m  map[string]string
}

const maxPublicEpochs = 100_000

func (p *publicEpochs) has(group, epoch string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.m[group]
	return ok && e == epoch
}

func (p *publicEpochs) add(group, epoch string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = make(map[string]string)
	}
	if _, ok := p.m[group]; !ok && len(p.m) >= maxPublicEpochs {
		n := 0
		for k := range p.m {
			delete(p.m, k)
			if n++; n >= maxPublicEpochs/10 {
				break
			}
		}
	}
	// Copies: a layer's epoch may be a substring of a whole event it read.
	p.m[strings.Clone(group)] = strings.Clone(epoch)
}
