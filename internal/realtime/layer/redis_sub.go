package layer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/panics"
)

// rsub is a group this process is subscribed to, and where its delivery
// stands.
type rsub struct {
	group, channel string

	ready    chan struct{} // closed once the subscription is confirmed (or failed)
	readyErr error

	// ctl serializes moving the subscription between subscriber
	// connections (sharded mode) with Unsubscribe. sb and gone are guarded
	// by it.
	ctl  sync.Mutex
	sb   *subscriber
	gone bool
	// orphan is set when the server dropped the subscription (its slot
	// moved); the keeper subscribes it again where the slot now lives.
	orphan   atomic.Bool
	orphaned atomic.Int64 // unix ns

	// mu is held while the group's events are handed to the handler: the
	// delivery state below and the order of deliveries.
	mu    sync.Mutex
	known bool   // epoch and last are established
	epoch string // "" with last 0: the group had no events yet
	last  uint64 // offset of the last event delivered (or known to precede the subscription)
	// recent holds the last events delivered, consecutive and ending at
	// last, so a client that resumes a little behind is replayed from here
	// instead of Redis (a room's clients coming back together after a
	// network blip). At most recentEvents of them (and no more than the
	// group's window, size), recentBytes of data; since answers from them
	// only while the oldest it replays is younger than the window's age
	// (0: no bound; tests make bare rsubs).
	recent      []recentEvent
	recentBytes int
	size        int
	age         time.Duration
	// redacts is RedisOptions.Redacts: such an event starts recent over.
	redacts Redacting
	// early holds, in order, the events received between Redis's first
	// confirmation of the subscription and the reading of the group's
	// position, which the confirmer does off the reader goroutine;
	// earlyOver records that more came than earlyEvents/earlyBytes, and
	// the confirmer then catches up from the history instead.
	early      []Message
	earlyBytes int
	earlyOver  bool
	// confirming is set while s waits for the confirmer; reacked records
	// that a new connection confirmed it again meanwhile, so what was
	// published between the connections is caught up once it is settled.
	confirming, reacked bool
}

// Bounds of rsub.recent and rsub.early.
const (
	recentEvents = 64
	recentBytes  = 64 << 10
	earlyEvents  = 1024
	earlyBytes   = 1 << 20
)

// recentEvent is an event of rsub.recent and when it was delivered, which
// stands for its publish time: milliseconds later when delivered live, up
// to the outage later when caught up after a reconnect.
type recentEvent struct {
	msg Message
	at  time.Time
}

// delivered records msg as the group's latest event, handed to the
// handler: it extends recent, or starts it over after a gap, an epoch
// change or an event that redacts earlier ones. s.mu is held.
func (s *rsub) delivered(msg Message) {
	if n := len(s.recent); n > 0 && (s.recent[n-1].msg.Epoch != msg.Epoch || s.recent[n-1].msg.Offset+1 != msg.Offset ||
		s.redacts != nil && s.redacts(msg)) {
		s.forget()
	}
	s.recent = append(s.recent, recentEvent{msg: msg, at: time.Now()})
	s.recentBytes += len(msg.Data)
	limit := recentEvents
	if s.size > 0 {
		limit = min(limit, s.size)
	}
	for len(s.recent) > limit || (s.recentBytes > recentBytes && len(s.recent) > 1) {
		s.recentBytes -= len(s.recent[0].msg.Data)
		s.recent[0] = recentEvent{}
		s.recent = s.recent[1:]
	}
	s.epoch, s.last = msg.Epoch, msg.Offset
}

// forget empties recent, when last moves without a delivery. s.mu is held.
func (s *rsub) forget() {
	clear(s.recent)
	s.recent, s.recentBytes = nil, 0
}

// since returns a copy of the delivered events after offset since of
// epoch when recent holds all of them; ok is false when it does not.
func (s *rsub) since(since uint64, epoch string) (msgs []Message, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.known || s.epoch != epoch || since > s.last {
		return nil, false
	}
	if since == s.last {
		return nil, true
	}
	n := len(s.recent)
	if n == 0 || s.recent[n-1].msg.Offset != s.last || s.recent[0].msg.Offset > since+1 {
		return nil, false
	}
	from := s.recent[int(since+1-s.recent[0].msg.Offset):]
	if s.age > 0 && time.Since(from[0].at) > s.age {
		// Left the window by age: Redis's window says so exactly.
		return nil, false
	}
	out := make([]Message, len(from))
	for i, e := range from {
		out[i] = e.msg
	}
	return out, true
}

func (s *rsub) setOrphan() {
	s.orphaned.Store(time.Now().UnixNano())
	s.orphan.Store(true)
}

// position returns where the delivery of s stands.
func (s *rsub) position() (known bool, epoch string, last uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.known, s.epoch, s.last
}

// await waits until s has delivered far enough (far says so of its
// position), polling for up to historyWait, and returns where s stands.
// While s is not confirmed yet (another member's Subscribe is still waiting
// for Redis) it waits for that, and fails with its error. once, if set, runs
// the first time the position is known but not far enough, and ends the
// wait by returning true. reached is false if the wait ended short of it.
// History and Sync share it.
func (s *rsub) await(ctx context.Context, far func(epoch string, last uint64) bool, once func() bool) (epoch string, last uint64, reached bool, err error) {
	deadline := time.Now().Add(historyWait)
	for {
		known, se, sl := s.position()
		switch {
		case known && far(se, sl):
			return se, sl, true, nil
		case !known:
			select {
			case <-s.ready:
				if s.readyErr != nil {
					return se, sl, false, s.readyErr
				}
			default:
			}
		case once != nil:
			stop := once()
			once = nil
			if stop {
				return se, sl, false, nil
			}
		}
		if time.Now().After(deadline) {
			return se, sl, false, nil
		}
		t := time.NewTimer(2 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return se, sl, false, ctx.Err()
		case <-t.C:
		}
	}
}

// Subscribe implements Layer. It returns once Redis confirmed the
// subscription, so every event published afterwards reaches the handler;
// it fails if Redis cannot be reached.
func (r *Redis) Subscribe(ctx context.Context, group string) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	s := r.groups[group]
	fresh := s == nil
	if fresh {
		s = &rsub{group: group, channel: r.channel(group), ready: make(chan struct{})}
		s.size, s.age = r.window(group)
		s.redacts = r.opt.Redacts
		r.groups[group] = s
	}
	r.mu.Unlock()
	if fresh {
		if err := r.attach(ctx, s); err != nil {
			r.detach(s)
			return fmt.Errorf("layer: subscribe %q: %w", group, err)
		}
	}
	timer := time.NewTimer(r.opt.SubscribeTimeout)
	defer timer.Stop()
	var err error
	select {
	case <-s.ready:
		if err = s.readyErr; err == nil {
			return nil
		}
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = errors.New("redis did not confirm the subscription in time")
	case <-r.stop:
		err = ErrClosed
	}
	if fresh {
		r.detach(s)
	}
	return fmt.Errorf("layer: subscribe %q: %w", group, err)
}

// Unsubscribe implements Layer.
func (r *Redis) Unsubscribe(ctx context.Context, group string) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	s := r.groups[group]
	r.mu.Unlock()
	if s != nil {
		r.detach(s)
	}
	return nil
}

// attach subscribes s on the connection to the node that serves its
// channel.
func (r *Redis) attach(ctx context.Context, s *rsub) error {
	s.ctl.Lock()
	defer s.ctl.Unlock()
	if s.gone {
		return ErrClosed
	}
	sb, err := r.subscriberFor(ctx, s.channel)
	if err != nil {
		return err
	}
	if err := sb.add(s); err != nil {
		return err
	}
	s.sb = sb
	return nil
}

// detach forgets s and unsubscribes its channel.
func (r *Redis) detach(s *rsub) {
	r.mu.Lock()
	if r.groups[s.group] == s {
		delete(r.groups, s.group)
	}
	r.mu.Unlock()
	s.ctl.Lock()
	s.gone = true
	if s.sb != nil {
		s.sb.remove(s)
		s.sb = nil
	}
	s.ctl.Unlock()
}

// subscriberFor returns the subscriber connection for channel, creating it
// if needed.
func (r *Redis) subscriberFor(ctx context.Context, channel string) (*subscriber, error) {
	if !r.opt.Sharded {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return nil, ErrClosed
		}
		sb := r.subscriberLocked("")
		r.mu.Unlock()
		return sb, sb.started(ctx)
	}
	node, err := r.cluster.MasterForKey(ctx, channel)
	if err != nil {
		return nil, err
	}
	addr := node.Options().Addr
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	sb := r.nodes[addr]
	if sb == nil {
		sb = r.newSubscriber(addr, func() *redis.PubSub { return node.SSubscribe(context.Background()) })
	}
	r.mu.Unlock()
	return sb, sb.started(ctx)
}

// started waits for the subscriber's first connection attempt.
func (sb *subscriber) started(ctx context.Context) error {
	select {
	case <-sb.firstTry:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// subscriberLocked returns the one subscriber of unsharded mode.
func (r *Redis) subscriberLocked(addr string) *subscriber {
	if sb := r.nodes[addr]; sb != nil {
		return sb
	}
	c := r.cmd.(*redis.Client)
	return r.newSubscriber(addr, func() *redis.PubSub { return c.Subscribe(context.Background()) })
}

func (r *Redis) newSubscriber(addr string, newPS func() *redis.PubSub) *subscriber {
	sb := &subscriber{
		r:        r,
		addr:     addr,
		sharded:  r.opt.Sharded,
		newPS:    newPS,
		subs:     make(map[string]*rsub),
		acks:     make(map[string][]*rsub),
		firstTry: make(chan struct{}),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	r.nodes[addr] = sb
	r.wg.Add(2)
	go sb.run()
	go sb.health()
	return sb
}

// rebalance (sharded mode) moves subscriptions whose slot is now served by
// another master, and closes subscriber connections nothing uses.
func (r *Redis) rebalance() {
	r.mu.Lock()
	subs := make([]*rsub, 0, len(r.groups))
	for _, s := range r.groups {
		subs = append(subs, s)
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reload := false
	for _, s := range subs {
		if s.orphan.Load() {
			reload = true
		}
	}
	if reload {
		r.cluster.ReloadState(ctx) // lazily: the next rounds see the new slots
	}
	for _, s := range subs {
		node, err := r.cluster.MasterForKey(ctx, s.channel)
		if err != nil {
			continue
		}
		addr := node.Options().Addr
		s.ctl.Lock()
		if s.orphan.Load() && s.sb != nil && s.sb.addr == addr && time.Since(time.Unix(0, s.orphaned.Load())) < 2*time.Second {
			// Dropped by its node, which the slot map still names: wait
			// for the map to catch up before subscribing there again.
			s.ctl.Unlock()
			continue
		}
		if !s.gone && (s.sb == nil || s.orphan.Load() || s.sb.addr != addr) {
			if s.sb != nil {
				s.sb.remove(s)
				s.sb = nil
			}
			s.orphan.Store(false)
			sb, err := r.subscriberFor(ctx, s.channel)
			if err == nil {
				err = sb.add(s)
			}
			if err != nil {
				s.setOrphan() // try again next time
				r.log.Warn("channel layer: move subscription", "group", s.group, "node", addr, "err", err)
			} else {
				s.sb = sb
				r.log.Info("channel layer: subscription moved", "group", s.group, "node", addr)
			}
		}
		s.ctl.Unlock()
	}
	var idle []*subscriber
	r.mu.Lock()
	for addr, sb := range r.nodes {
		if sb.idle() {
			delete(r.nodes, addr)
			idle = append(idle, sb)
		}
	}
	r.mu.Unlock()
	for _, sb := range idle {
		sb.close()
	}
}

// subscriber is one pub/sub connection (unsharded: the only one; sharded:
// one per master node) and the goroutine that reads it. It is made again,
// with every subscription, whenever it fails.
type subscriber struct {
	r       *Redis
	addr    string
	sharded bool
	newPS   func() *redis.PubSub

	mu   sync.Mutex
	ps   *redis.PubSub // nil while disconnected
	gen  uint64        // incremented with each connection
	subs map[string]*rsub
	// acks lists, per channel, the confirmations expected on the current
	// connection in the order the commands were sent: a subscription's rsub
	// for SUBSCRIBE, nil for UNSUBSCRIBE. Redis answers in order, so the
	// front entry says what a confirmation is for.
	acks    map[string][]*rsub
	closing bool
	wasUp   bool
	downLog bool

	waiting  atomic.Bool  // the reader is blocked in Receive
	lastRecv atomic.Int64 // unix ns of the last thing read (or of connecting)
	pingSent atomic.Int64 // unix ns of an unanswered ping, 0 if none

	firstTry chan struct{} // closed after the first connection attempt
	stop     chan struct{}
	done     chan struct{}
}

func (sb *subscriber) up() bool {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return sb.ps != nil
}

// down reports a subscriber whose connection failed or dropped and is not
// back yet; one still making its first attempt is not down (a Subscribe
// waits for that attempt).
func (sb *subscriber) down() bool {
	select {
	case <-sb.firstTry:
	default:
		return false
	}
	return !sb.up()
}

func (sb *subscriber) idle() bool {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return len(sb.subs) == 0
}

func (sb *subscriber) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 3*time.Second)
}

func (sb *subscriber) subscribeCmd(ps *redis.PubSub, channels ...string) error {
	ctx, cancel := sb.ctx()
	defer cancel()
	if sb.sharded {
		return ps.SSubscribe(ctx, channels...)
	}
	return ps.Subscribe(ctx, channels...)
}

func (sb *subscriber) unsubscribeCmd(ps *redis.PubSub, channel string) error {
	ctx, cancel := sb.ctx()
	defer cancel()
	if sb.sharded {
		return ps.SUnsubscribe(ctx, channel)
	}
	return ps.Unsubscribe(ctx, channel)
}

// add subscribes s's channel on this connection; the reader confirms it
// when Redis does.
func (sb *subscriber) add(s *rsub) error {
	sb.mu.Lock()
	if sb.closing {
		sb.mu.Unlock()
		return ErrClosed
	}
	if sb.ps == nil {
		sb.mu.Unlock()
		return errors.New("redis is not reachable")
	}
	sb.subs[s.channel] = s
	sb.acks[s.channel] = append(sb.acks[s.channel], s)
	err := sb.subscribeCmd(sb.ps, s.channel)
	var broken *redis.PubSub
	if err != nil {
		delete(sb.subs, s.channel)
		broken = sb.dropLocked(sb.gen)
	}
	sb.mu.Unlock()
	if broken != nil {
		_ = broken.Close()
	}
	return err
}

// remove unsubscribes s's channel.
func (sb *subscriber) remove(s *rsub) {
	sb.mu.Lock()
	if sb.subs[s.channel] != s {
		sb.mu.Unlock()
		return
	}
	delete(sb.subs, s.channel)
	var broken *redis.PubSub
	if sb.ps != nil {
		sb.acks[s.channel] = append(sb.acks[s.channel], nil)
		if err := sb.unsubscribeCmd(sb.ps, s.channel); err != nil {
			broken = sb.dropLocked(sb.gen)
		}
	}
	sb.mu.Unlock()
	if broken != nil {
		_ = broken.Close()
	}
}

// dropLocked marks the connection of generation gen as gone and returns it
// for the caller to close (outside the lock); the reader then makes a new
// one.
func (sb *subscriber) dropLocked(gen uint64) *redis.PubSub {
	if sb.gen != gen || sb.ps == nil {
		return nil
	}
	ps := sb.ps
	sb.ps = nil
	return ps
}

func (sb *subscriber) drop(gen uint64) {
	sb.mu.Lock()
	ps := sb.dropLocked(gen)
	sb.mu.Unlock()
	if ps != nil {
		_ = ps.Close()
	}
}

func (sb *subscriber) close() {
	sb.mu.Lock()
	if sb.closing {
		sb.mu.Unlock()
		<-sb.done
		return
	}
	sb.closing = true
	close(sb.stop)
	ps := sb.ps
	sb.ps = nil
	sb.mu.Unlock()
	if ps != nil {
		_ = ps.Close()
	}
	<-sb.done
}

// connect makes a new connection and subscribes every channel of the
// subscriber on it.
func (sb *subscriber) connect() bool {
	ps := sb.newPS()
	sb.mu.Lock()
	if sb.closing {
		sb.mu.Unlock()
		_ = ps.Close()
		return false
	}
	sb.gen++
	if sb.sharded {
		// Groups whose slot another master serves now are the keeper's
		// to move.
		for ch, s := range sb.subs {
			if node, err := sb.r.cluster.MasterForKey(context.Background(), ch); err == nil && node.Options().Addr != sb.addr {
				delete(sb.subs, ch)
				s.setOrphan()
			}
		}
	}
	channels := make([]string, 0, len(sb.subs))
	clear(sb.acks)
	for ch, s := range sb.subs {
		channels = append(channels, ch)
		sb.acks[ch] = []*rsub{s}
	}
	var err error
	switch {
	case sb.sharded:
		// SSUBSCRIBE takes channels of one slot only.
		for _, ch := range channels {
			if err = sb.subscribeCmd(ps, ch); err != nil {
				break
			}
		}
	case len(channels) > 0:
		err = sb.subscribeCmd(ps, channels...)
	default:
		ctx, cancel := sb.ctx()
		err = ps.Ping(ctx) // connects
		cancel()
	}
	if err != nil {
		logIt := !sb.downLog
		sb.downLog = true
		sb.mu.Unlock()
		_ = ps.Close()
		if logIt {
			sb.r.log.Warn("channel layer: cannot reach redis; retrying with backoff", "node", sb.addr, "err", err)
		}
		return false
	}
	sb.ps = ps
	again := sb.wasUp
	sb.wasUp = true
	sb.downLog = false
	sb.lastRecv.Store(time.Now().UnixNano())
	sb.pingSent.Store(0)
	sb.mu.Unlock()
	if again {
		sb.r.stats.reconnects.Add(1)
		sb.r.log.Info("channel layer: redis subscriber reconnected", "node", sb.addr, "groups", len(channels))
	}
	return true
}

// run reads the connection, reconnecting with backoff when it fails.
func (sb *subscriber) run() {
	defer sb.r.wg.Done()
	defer close(sb.done)
	const minBackoff = 100 * time.Millisecond
	backoff := minBackoff
	tried := false
	defer func() {
		if !tried {
			close(sb.firstTry)
		}
	}()
	// A connection that fails soon after it was made waits before the
	// next attempt, so a server that keeps refusing is not hammered.
	var upSince time.Time
	wait := false
	for {
		sb.mu.Lock()
		closing, ps, gen := sb.closing, sb.ps, sb.gen
		sb.mu.Unlock()
		if closing {
			return
		}
		if ps == nil {
			if wait {
				// Full jitter keeps many processes from reconnecting in step.
				d := backoff/2 + rand.N(backoff/2+1)
				backoff = min(2*backoff, sb.r.opt.MaxBackoff)
				select {
				case <-sb.stop:
					return
				case <-time.After(d):
				}
			}
			ok := sb.connect()
			if !tried {
				tried = true
				close(sb.firstTry)
			}
			if ok {
				upSince = time.Now()
			}
			wait = !ok
			continue
		}
		sb.waiting.Store(true)
		v, err := ps.Receive(context.Background())
		sb.waiting.Store(false)
		if err != nil {
			sb.mu.Lock()
			closing = sb.closing
			broken := sb.dropLocked(gen)
			sb.mu.Unlock()
			if broken != nil {
				_ = broken.Close()
			}
			if closing || broken == nil {
				continue
			}
			var rerr redis.Error
			if errors.As(err, &rerr) {
				// Redis refused a command on the connection (a MOVED for a
				// slot that moved, say): make it again from fresh slots.
				sb.r.log.Warn("channel layer: redis refused a subscription; reconnecting", "node", sb.addr, "err", err)
				if sb.r.cluster != nil {
					sb.r.cluster.ReloadState(context.Background())
				}
			} else {
				sb.r.log.Warn("channel layer: redis subscriber connection lost", "node", sb.addr, "err", err)
			}
			if time.Since(upSince) < 5*time.Second {
				wait = true
			} else {
				backoff, wait = minBackoff, false
			}
			continue
		}
		sb.lastRecv.Store(time.Now().UnixNano())
		sb.pingSent.Store(0)
		sb.handle(gen, v)
	}
}

// handle processes what the connection of generation gen delivered. After
// a panic the reader goes on with the next message.
func (sb *subscriber) handle(gen uint64, v any) {
	defer panics.Recover(sb.r.log, sb.r.opt.OnPanic, panics.Layer)
	switch m := v.(type) {
	case *redis.Message:
		sb.onMessage(m)
	case *redis.Subscription:
		sb.onAck(gen, m.Kind, m.Channel)
	}
}

// health pings a silent connection and drops it when the answer does not
// come, which a half-open TCP connection would otherwise hide.
func (sb *subscriber) health() {
	defer sb.r.wg.Done()
	every := sb.r.opt.PingInterval
	t := time.NewTicker(max(every/2, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-sb.stop:
			return
		case <-t.C:
		}
		sb.r.guarded(sb.check)
	}
}

// check pings the connection if it has been silent for a ping interval,
// and drops it if an earlier ping was not answered in time.
func (sb *subscriber) check() {
	if !sb.waiting.Load() {
		return // busy delivering, or reconnecting
	}
	sb.mu.Lock()
	ps, gen := sb.ps, sb.gen
	sb.mu.Unlock()
	if ps == nil {
		return
	}
	now := time.Now().UnixNano()
	if time.Duration(now-sb.lastRecv.Load()) < sb.r.opt.PingInterval {
		return
	}
	sent := sb.pingSent.Load()
	if sent == 0 {
		sb.pingSent.Store(now)
		ctx, cancel := sb.ctx()
		err := ps.Ping(ctx)
		cancel()
		if err != nil {
			sb.drop(gen)
		}
		return
	}
	if time.Duration(now-sent) > sb.r.opt.PingTimeout {
		sb.r.log.Warn("channel layer: redis subscriber connection does not answer; reconnecting", "node", sb.addr)
		sb.drop(gen)
	}
}

// onAck handles Redis's confirmation of a (un)subscription.
func (sb *subscriber) onAck(gen uint64, kind, channel string) {
	subscribe := kind == "subscribe" || kind == "ssubscribe"
	sb.mu.Lock()
	if gen != sb.gen {
		sb.mu.Unlock()
		return
	}
	q := sb.acks[channel]
	var confirmed *rsub
	switch {
	case len(q) > 0 && (q[0] != nil) == subscribe:
		if subscribe && sb.subs[channel] == q[0] {
			confirmed = q[0]
		}
		if len(q) == 1 {
			delete(sb.acks, channel)
		} else {
			sb.acks[channel] = q[1:]
		}
	case !subscribe && sb.subs[channel] != nil && sb.sharded:
		// Not asked for: the server dropped the subscription, as Redis
		// Cluster does when the channel's slot moves. The keeper
		// subscribes it again where the slot is now served.
		s := sb.subs[channel]
		delete(sb.subs, channel)
		s.setOrphan()
		sb.r.log.Info("channel layer: redis dropped a subscription; moving it", "group", s.group, "node", sb.addr)
	default:
		// A confirmation nothing was waiting for: the connection's state is
		// no longer what this side believes; make it again.
		sb.r.log.Warn("channel layer: unexpected subscription confirmation; reconnecting", "kind", kind, "channel", channel)
		broken := sb.dropLocked(gen)
		sb.mu.Unlock()
		if broken != nil {
			_ = broken.Close()
		}
		return
	}
	sb.mu.Unlock()
	if confirmed != nil {
		sb.r.confirmed(confirmed)
	}
}

func (sb *subscriber) onMessage(m *redis.Message) {
	sb.mu.Lock()
	s := sb.subs[m.Channel]
	sb.mu.Unlock()
	if s == nil {
		return // unsubscribed meanwhile
	}
	msg, err := decodePayload(s.group, m.Payload)
	if err != nil {
		sb.r.log.Error("channel layer: malformed event on redis channel", "channel", m.Channel, "err", err)
		return
	}
	sb.r.deliver(s, msg)
}

// confirmed runs on the reader goroutine when Redis confirmed s's
// subscription on a connection. After a reconnect it catches up on what the
// connection missed. The first time, where the group stands must be read
// (everything published from now on arrives on the channel; what came
// before is the joining members' to read from the history): that read is
// the confirmer's, so that a burst of new groups (every user joining their
// own) costs one pipelined round trip per batch instead of one round trip
// each on the goroutine every group's events wait behind.
func (r *Redis) confirmed(s *rsub) {
	if !r.confirm(s) {
		return
	}
	r.confirmMu.Lock()
	r.confirming = append(r.confirming, s)
	r.confirmMu.Unlock()
	select {
	case r.confirmWake <- struct{}{}:
	default:
	}
}

// confirm records a confirmation of s under s.mu (released even if the
// catch-up panics) and reports whether s is new to the confirmer.
func (r *Redis) confirm(s *rsub) (fresh bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.known:
		r.catchUpLocked(s)
	case s.confirming:
		s.reacked = true
	default:
		s.confirming = true
		return true
	}
	return false
}

// confirmer reads the positions of newly confirmed subscriptions, in
// batches, until the layer closes.
func (r *Redis) confirmer() {
	defer r.wg.Done()
	for {
		select {
		case <-r.stop:
			return
		case <-r.confirmWake:
		}
		r.confirmMu.Lock()
		batch := r.confirming
		r.confirming = nil
		r.confirmMu.Unlock()
		for len(batch) > 0 {
			n := min(len(batch), maxConfirmBatch)
			r.confirmGuarded(batch[:n])
			batch = batch[n:]
		}
	}
}

// confirmGuarded is confirmBatch behind the confirmer's recover boundary:
// after a panic, the subscriptions of the batch it had not settled fail
// (their Subscribe returns the error) rather than wait for a position that
// would never be read, and the confirmer goes on.
func (r *Redis) confirmGuarded(subs []*rsub) {
	defer func() {
		if p := recover(); p != nil {
			r.panicked(p)
			err := fmt.Errorf("layer: reading the positions of new subscriptions failed: %v", p)
			for _, s := range subs {
				r.guarded(func() { r.settle(s, Position{}, err) })
			}
		}
	}()
	r.confirmBatch(subs)
}

// maxConfirmBatch is how many positions one pipeline reads at most.
const maxConfirmBatch = 512

// confirmBatch reads the positions of subs in one pipeline (retried twice
// on failure) and settles each.
func (r *Redis) confirmBatch(subs []*rsub) {
	if r.testBeforeConfirm != nil {
		r.testBeforeConfirm(subs)
	}
	groups := make([]string, len(subs))
	for i, s := range subs {
		groups[i] = s.group
	}
	var (
		ps   []Position
		errs []error
		err  error
	)
	for attempt := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		ps, errs, err = r.readPositions(ctx, groups)
		cancel()
		if err == nil || attempt == 2 || r.isClosed() {
			break
		}
		select {
		case <-r.stop:
		case <-time.After(50 * time.Millisecond):
		}
	}
	if r.testAfterPositions != nil {
		r.testAfterPositions(subs)
	}
	for i, s := range subs {
		if err != nil {
			r.settle(s, Position{}, err)
		} else {
			r.settle(s, ps[i], errs[i])
		}
	}
}

// settle establishes s's position (or its failure), delivers what arrived
// meanwhile after it, and releases the subscribers waiting for it.
func (r *Redis) settle(s *rsub, p Position, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.ready:
		return // settled by an earlier confirmation
	default:
	}
	early, over, reacked := s.early, s.earlyOver, s.reacked
	s.early, s.earlyBytes, s.earlyOver = nil, 0, false
	s.confirming, s.reacked = false, false
	if err != nil {
		s.readyErr = err
		close(s.ready)
		return
	}
	s.known, s.epoch, s.last = true, p.Epoch, p.Offset
	s.forget()
	if !over {
		for _, m := range early {
			if m.Epoch == s.epoch && m.Offset <= s.last {
				continue // published before the position was read
			}
			r.deliverLocked(s, m)
		}
	}
	if over || reacked {
		// Too much arrived to keep, or the connection was made again
		// since the position was read: what it missed is in the history.
		r.catchUpLocked(s)
	}
	close(s.ready)
}

// deliver hands msg, received on s's channel, to the handler if it is the
// next event of the group; a gap is filled from the history first, an
// event already delivered is dropped.
func (r *Redis) deliver(s *rsub, msg Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.known {
		// Confirmed, its position still being read: the confirmer
		// delivers it after that.
		if s.earlyOver || len(s.early) == earlyEvents || s.earlyBytes+len(msg.Data) > earlyBytes {
			s.earlyOver = true
			s.early, s.earlyBytes = nil, 0
			return
		}
		s.early = append(s.early, msg)
		s.earlyBytes += len(msg.Data)
		return
	}
	r.deliverLocked(s, msg)
}

// deliverLocked is deliver with s.mu held and s's position known.
func (r *Redis) deliverLocked(s *rsub, msg Message) {
	if msg.Type == TypeReset {
		r.resetLocked(s, msg)
		return
	}
	switch {
	case msg.Epoch == s.epoch:
		if msg.Offset <= s.last {
			r.stats.duplicates.Add(1)
			return
		}
	case s.epoch == "" && s.last == 0:
		// The group had no events when this process subscribed.
	default:
		// The group's history started over: what this process had not yet
		// received of the old epoch is gone.
		r.lostLocked(s, "epoch changed")
		s.epoch, s.last = msg.Epoch, 0
		s.forget()
	}
	if msg.Offset == s.last+1 {
		s.delivered(msg)
		r.stats.delivered.Add(1)
		r.handler(msg)
		return
	}
	r.fillLocked(s, &msg)
}

// resetLocked delivers a reset of s's group: the group's history started
// over in msg's epoch, as it was meant to, so nothing was lost. A reset
// already known (the position was read after it) is dropped.
func (r *Redis) resetLocked(s *rsub, msg Message) {
	if msg.Epoch == s.epoch {
		r.stats.duplicates.Add(1)
		return
	}
	s.epoch, s.last = msg.Epoch, 0
	s.forget()
	r.stats.delivered.Add(1)
	r.handler(msg)
}

// fillLocked delivers the events after s.last from the history (Redis's
// window, else the Log), and msg (which should be among them) if the
// history cannot be read.
func (r *Redis) fillLocked(s *rsub, msg *Message) {
	r.stats.gapFills.Add(1)
	// With msg, the events before it are all committed: the Log has them
	// even if no relay marked them published yet. Without, a catch-up goes
	// as far as what is published.
	var upTo uint64
	if msg != nil && msg.Offset > 0 && (msg.Epoch == s.epoch || (s.epoch == "" && s.last == 0)) {
		upTo = msg.Offset - 1
	}
	var msgs []Message
	var ok bool
	var err error
	for attempt := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		if s.epoch == "" && s.last == 0 && msg != nil {
			// The group had no events when subscribed: its first ones come
			// from the start of msg's epoch.
			msgs, ok, err = r.windowOrLog(ctx, s.group, 0, msg.Epoch, upTo)
		} else {
			msgs, ok, err = r.windowOrLog(ctx, s.group, s.last, s.epoch, upTo)
		}
		cancel()
		if err == nil || attempt == 2 || r.isClosed() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err == nil && ok {
		for _, m := range msgs {
			if m.Offset > s.last || m.Epoch != s.epoch {
				s.delivered(m)
				r.stats.delivered.Add(1)
				r.handler(m)
			}
		}
	} else {
		why := "missed events are no longer in the history"
		if err != nil {
			why = "history unreadable: " + err.Error()
		}
		r.lostLocked(s, why)
		if msg == nil {
			// A catch-up: continue from where the group stands now.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			off, epoch, perr := r.readPosition(ctx, s.group)
			cancel()
			if perr == nil {
				s.epoch, s.last = epoch, off
				s.forget()
			}
			return
		}
	}
	if msg != nil && (msg.Epoch != s.epoch || msg.Offset > s.last) {
		s.delivered(*msg)
		r.stats.delivered.Add(1)
		r.handler(*msg)
	}
}

// catchUpLocked delivers what s's group published while the subscription
// was down.
func (r *Redis) catchUpLocked(s *rsub) {
	r.fillLocked(s, nil)
}

func (r *Redis) lostLocked(s *rsub, why string) {
	r.stats.lost.Add(1)
	r.log.Warn("channel layer: events of a group could not be delivered; its members must resume", "group", s.group, "reason", why)
	if r.opt.OnLost != nil {
		r.opt.OnLost(s.group)
	}
}
