// Package realtime is herald's hub: connections, the groups they are in and
// the fan-out of group events from the channel layer to each connection's
// bounded send queue. It knows nothing of HTTP routing or of what the groups
// mean; transports (package transport) move the frames, consumers decide
// which groups a connection joins.
package realtime

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/internal/panics"
	"github.com/heraldhq/herald/internal/realtime/layer"
)

// Defaults of HubOptions. A queued frame is shared by every receiver of an
// event, so the frame bound is one of lag more than of memory: 512 frames
// let a client fall ~0.7 s behind a room of 700 events/s (a burst of
// commits, or the server short of CPU for a moment) before it is cut off,
// and stay well inside the default history window (1,000 events), so a
// client cut off as a slow consumer can still resume without loss.
const (
	DefaultMaxQueueFrames = 512
	DefaultMaxQueueBytes  = 4 << 20
)

// HubOptions configures a Hub.
type HubOptions struct {
	// MaxQueueFrames bounds the frames waiting for one connection (queued
	// plus being written); a connection that would exceed it is closed with
	// CloseSlowConsumer. Default DefaultMaxQueueFrames.
	MaxQueueFrames int
	// MaxQueueBytes bounds the bytes queued for one connection the same way.
	// A single frame larger than it is still accepted into an empty queue.
	// Default DefaultMaxQueueBytes.
	MaxQueueBytes int
	// MaxReplayFrames and MaxReplayBytes bound what a resume (JoinFrom) may
	// replay into a queue at once, beyond the live bounds above; a replay
	// that does not fit is refused (recovered=false). They must exceed the
	// live bounds, so a client cut off as a slow consumer can catch up.
	// Defaults: 4× MaxQueueFrames and 4× MaxQueueBytes.
	MaxReplayFrames int
	MaxReplayBytes  int
	// Logger receives the hub's logs (default slog.Default()).
	Logger *slog.Logger
	// Observe, if set, sees every layer message this process receives
	// before the fan-out, and the messages a JoinFrom replays from history;
	// returning false keeps the message from the connections. It may see a
	// message more than once (live, then replayed to a joining connection),
	// so it must be idempotent. It runs on the delivery path: it must be
	// quick and must not call Join, Leave or Publish synchronously.
	Observe func(layer.Message) bool
	// UnsubscribeDelay keeps a group subscribed this long after its last
	// local member left (0: it is unsubscribed at once). Clients that drop
	// together and come back (a network blip, a proxy restart) then find
	// their group still subscribed: the events published while they were
	// away were received here, and a layer that keeps its latest events
	// replays them without a round trip.
	UnsubscribeDelay time.Duration
	// OnPanic, if set, is told of each panic the hub recovered
	// (panics.Hub): in Observe or the encoding of an event, which ends that
	// event's fan-out, or while queuing it to one member, which closes that
	// member with CloseInternalError and goes on with the others.
	OnPanic func(where string)
}

// LayerFactory builds the hub's channel layer around the hub's delivery
// function.
type LayerFactory func(deliver func(layer.Message)) (layer.Layer, error)

const hubShards = 64

// Hub maps groups to their local connections and fans layer messages out to
// them. All methods are safe for concurrent use.
type Hub struct {
	layer      layer.Layer
	log        *slog.Logger
	unsubDelay time.Duration
	observe    func(layer.Message) bool
	onPanic    func(string)
	maxFrames  int
	maxBytes   int
	// replay bounds of JoinFrom
	maxReplayFrames int
	maxReplayBytes  int
	seed            maphash.Seed
	shards          [hubShards]hubShard

	conns         atomic.Int64
	slowConsumers atomic.Uint64
	eventsIn      atomic.Uint64
	framesOut     atomic.Uint64
	dropped       atomic.Uint64
}

type hubShard struct {
	// subMu orders the layer subscription changes of the shard's groups, so
	// Subscribe and Unsubscribe of one group reach the layer in the order the
	// membership changed. It is taken before mu and never by the fan-out.
	subMu  sync.Mutex
	mu     sync.RWMutex
	groups map[string]*group
}

// group is the set of local members of one group. Small groups are scanned;
// large ones get an index so that leaving stays O(1).
type group struct {
	members []*Conn
	index   map[*Conn]int
	// idle unsubscribes the group once it has stayed empty for
	// HubOptions.UnsubscribeDelay (guarded by the shard's mu).
	idle *time.Timer
}

const indexThreshold = 32

// NewHub returns a hub whose layer is built by newLayer. Close closes the
// layer.
func NewHub(opts HubOptions, newLayer LayerFactory) (*Hub, error) {
	if opts.MaxQueueFrames <= 0 {
		opts.MaxQueueFrames = DefaultMaxQueueFrames
	}
	if opts.MaxQueueBytes <= 0 {
		opts.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if opts.MaxReplayFrames <= 0 {
		opts.MaxReplayFrames = 4 * opts.MaxQueueFrames
	}
	if opts.MaxReplayBytes <= 0 {
		opts.MaxReplayBytes = 4 * opts.MaxQueueBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	// A connection's queue and a resume's credit are counted in int32
	// (Conn.queued, credit, creditBytes).
	opts.MaxQueueFrames = min(opts.MaxQueueFrames, 1<<29)
	opts.MaxReplayFrames = min(opts.MaxReplayFrames, 1<<29)
	opts.MaxReplayBytes = min(opts.MaxReplayBytes, 1<<30)
	h := &Hub{
		log:        opts.Logger,
		unsubDelay: max(opts.UnsubscribeDelay, 0),
		observe:    opts.Observe,
		onPanic:    opts.OnPanic,
		maxFrames:  opts.MaxQueueFrames,
		maxBytes:   opts.MaxQueueBytes,

		maxReplayFrames: max(opts.MaxReplayFrames, opts.MaxQueueFrames),
		maxReplayBytes:  max(opts.MaxReplayBytes, opts.MaxQueueBytes),
		seed:            maphash.MakeSeed(),
	}
	for i := range h.shards {
		h.shards[i].groups = make(map[string]*group)
	}
	l, err := newLayer(h.deliver)
	if err != nil {
		return nil, fmt.Errorf("realtime: build layer: %w", err)
	}
	h.layer = l
	return h, nil
}

// Layer returns the hub's channel layer (for History on resume).
func (h *Hub) Layer() layer.Layer { return h.layer }

// Close closes the layer. Connections are the transports' to close.
func (h *Hub) Close() error {
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		for _, g := range sh.groups {
			if g.idle != nil {
				g.idle.Stop()
			}
		}
		sh.mu.Unlock()
	}
	if err := h.layer.Close(); err != nil {
		return fmt.Errorf("realtime: close layer: %w", err)
	}
	return nil
}

// Attach registers a new connection served by t and returns the transport's
// handle on it.
func (h *Hub) Attach(cfg ConnConfig, t Transport) Link {
	c := &Conn{Value: cfg.Value, hub: h, transport: t, userID: cfg.UserID}
	switch {
	case cfg.SSE:
		c.enc = EncodingSSE
	case cfg.Version == 2:
		c.enc = EncodingWebSocketV2
	}
	h.conns.Add(1)
	return Link{c: c}
}

// Publish publishes an event to group through the layer and returns its
// offset. data is the event's JSON payload; the hub owns it afterwards.
func (h *Hub) Publish(ctx context.Context, group, typ string, data []byte) (uint64, error) {
	off, err := h.layer.Publish(ctx, layer.Message{Group: group, Type: typ, Data: data})
	if err != nil {
		return 0, fmt.Errorf("realtime: publish to %q: %w", group, err)
	}
	return off, nil
}

// PublishBatch publishes msgs in order, msgs[i] with the publish key
// keys[i] ("" for none), in one round trip when the layer can
// (layer.BatchPublisher). It returns the offsets of the messages published:
// all of them, or those before the first that failed.
func (h *Hub) PublishBatch(ctx context.Context, msgs []layer.Message, keys []string) ([]uint64, error) {
	if bp, ok := h.layer.(layer.BatchPublisher); ok {
		offs, err := bp.PublishBatch(ctx, msgs, keys)
		if err != nil {
			return offs, fmt.Errorf("realtime: publish batch: %w", err)
		}
		return offs, nil
	}
	if len(keys) != len(msgs) {
		return nil, fmt.Errorf("realtime: publish batch: %d keys for %d messages", len(keys), len(msgs))
	}
	offs := make([]uint64, 0, len(msgs))
	for i, m := range msgs {
		pctx := ctx
		if keys[i] != "" {
			pctx = layer.WithPublishKey(ctx, keys[i])
		}
		off, err := h.layer.Publish(pctx, m)
		if err != nil {
			return offs, fmt.Errorf("realtime: publish to %q: %w", m.Group, err)
		}
		offs = append(offs, off)
	}
	return offs, nil
}

func (h *Hub) shard(name string) *hubShard {
	return &h.shards[maphash.String(h.seed, name)%hubShards]
}

// Join adds c to group. The first local member subscribes this process to
// the group in the layer. Joining a group twice is a no-op.
func (h *Hub) Join(ctx context.Context, c *Conn, group string) error {
	c.joinMu.Lock()
	defer c.joinMu.Unlock()
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return ErrClosed
	}
	if slices.Contains(c.groups, group) {
		c.mu.Unlock()
		return nil
	}
	c.groups = append(c.groups, group)
	c.mu.Unlock()

	if err := h.addMember(ctx, c, group); err != nil {
		c.mu.Lock()
		c.groups = removeString(c.groups, group)
		c.mu.Unlock()
		return err
	}
	// A concurrent Finish may have taken its snapshot of c.groups before
	// the member was added; undo the membership then.
	if c.Closed() {
		h.removeMember(ctx, c, group)
	}
	return nil
}

// JoinFrom joins c to group and first replays the group's events after
// offset since of epoch, so the client misses nothing and sees nothing twice:
// events published meanwhile are held back and queued after the replay,
// without the ones the replay already carried. recovered is false when the
// position is outside the layer's window (or the epoch changed, or the
// replay would not fit the send queue's frame or byte bound): the client must reload its state
// (through REST) and only gets the live events. If c is in group, or a
// JoinFrom of it is under way on c, it returns ErrAlreadyJoined and
// sends nothing. JoinFromWith also lets the caller send what belongs between the
// replay and the live events.
func (h *Hub) JoinFrom(ctx context.Context, c *Conn, group string, since uint64, epoch string) (recovered bool, err error) {
	return h.JoinFromWith(ctx, c, group, layer.Position{Offset: since, Epoch: epoch}, Catchup{})
}

// Catchup is what JoinFromWith does while it still holds the group's live
// events back, so that what it sends comes after the replay (if any) and
// before every live event.
type Catchup struct {
	// Joined, if set, is called once the connection is a member of the
	// group, so every event published from then on reaches it (held back),
	// and before the missed events are read: what it checks of the group
	// holds from where the connection starts, or the connection is told by
	// an event. If it fails, the held events are dropped and its error
	// returned: the caller closes the connection.
	Joined func(ctx context.Context) error
	// Replayed, if set, is called once the missed events are queued
	// (recovered): at is where the connection then stands, the last event
	// replayed or else the position it joined from.
	Replayed func(at layer.Position)
	// Fresh, if set, is called when the join cannot replay (recovered is
	// false). It reads the connection's state afresh, sends it (or only the
	// news that events were lost) and returns the group's position it read
	// it at: the held events up to that position are dropped, the later ones
	// queued after what it sent. Without it every held event is queued. If
	// it fails, the held events are dropped and its error returned: the
	// caller closes the connection.
	Fresh func(ctx context.Context) (layer.Position, error)
}

// JoinFromWith is JoinFrom from position from, with cu run while the live
// events are held. On an error c is not in group and no event of it was
// queued: the caller closes the connection, and the client resumes from
// where it stood.
func (h *Hub) JoinFromWith(ctx context.Context, c *Conn, group string, from layer.Position, cu Catchup) (recovered bool, err error) {
	// A join under way counts as joined, checked with its hold taken: of
	// two joins at once (a quest announced while its connection joins it
	// at connect), one replays the history and tells the client where it
	// stands; the other would do both again.
	hd := &hold{group: group}
	c.mu.Lock()
	if slices.Contains(c.groups, group) || c.joiningLocked(group) {
		c.mu.Unlock()
		return false, fmt.Errorf("realtime: resume %q: %w", group, ErrAlreadyJoined)
	}
	j := c.joinState()
	j.holds = append(j.holds, hd)
	c.mu.Unlock()
	if err := h.Join(ctx, c, group); err != nil {
		h.unhold(c, hd, keepNone, layer.Position{})
		return false, err
	}
	if cu.Joined != nil {
		if err := cu.Joined(ctx); err != nil {
			h.abandon(ctx, c, hd)
			return false, fmt.Errorf("realtime: join %q: %w", group, err)
		}
	}
	msgs, ok, err := h.layer.History(ctx, group, from.Offset, from.Epoch)
	if err != nil {
		h.abandon(ctx, c, hd)
		return false, fmt.Errorf("realtime: history of %q: %w", group, err)
	}
	if ok && h.observe != nil {
		// A replayed event may never have reached this process live (it
		// was published before the group was subscribed here), so Observe
		// sees it now; what Observe keeps from connections stays out of
		// the replay too.
		msgs = slices.DeleteFunc(msgs, func(m layer.Message) bool { return !h.observe(m) })
	}
	at := from
	if ok {
		ok, at = h.replay(c, hd, msgs, from)
	}
	switch {
	case ok:
		if cu.Replayed != nil {
			cu.Replayed(at)
		}
		h.unhold(c, hd, keepNewer, at)
	case cu.Fresh != nil:
		p, err := cu.Fresh(ctx)
		if err != nil {
			h.abandon(ctx, c, hd)
			return false, fmt.Errorf("realtime: fresh state for %q: %w", group, err)
		}
		h.unhold(c, hd, keepNewer, p)
	default:
		h.unhold(c, hd, keepAll, layer.Position{})
	}
	return ok, nil
}

// abandon ends a join that failed after c became a member of hd's group:
// c leaves the group, then what was held is dropped. Every live event
// comes after the gap the join was to fill, so none may reach the client:
// it would resume from past the gap once its caller closes it. ctx may be
// the one that expired; leaving has a bound of its own.
func (h *Hub) abandon(ctx context.Context, c *Conn, hd *hold) {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := h.Leave(lctx, c, hd.group); err != nil {
		h.log.Warn("realtime: leave a group after a failed join", "group", hd.group, "err", err)
	}
	h.unhold(c, hd, keepNone, layer.Position{})
}

// replay queues history, the events of hd's group after from, ahead of what
// is held, unless it would not fit the replay bounds. It returns whether
// it did and where the connection then stands.
func (h *Hub) replay(c *Conn, hd *hold, history []layer.Message, from layer.Position) (bool, layer.Position) {
	c.mu.Lock()
	pending := int(c.queued+c.inflight) + len(hd.msgs)
	if pending+len(history) > h.maxReplayFrames {
		c.mu.Unlock()
		return false, from // too far behind to catch up through the queue
	}
	at := from
	var replay [][]byte
	size := 0
	for i := range history {
		if m := &history[i]; m.Offset > at.Offset || m.Epoch != at.Epoch {
			f := c.enc.Encode(m)
			replay = append(replay, f)
			size += len(f)
			at = layer.Position{Offset: m.Offset, Epoch: m.Epoch}
		}
	}
	if c.qBytes+size > h.maxReplayBytes {
		// Too much to catch up on through the queue: better tell the
		// client to reload.
		c.mu.Unlock()
		return false, from
	}
	j := c.joinState()
	j.credit += int32(len(replay))
	j.creditBytes += int32(size)
	var wake bool
	var perr error
	for _, f := range replay {
		var w bool
		if w, perr = c.pushLocked(f); perr != nil {
			break
		}
		wake = wake || w
	}
	c.mu.Unlock()
	h.afterPush(c, wake, perr)
	return true, at
}

// keep says which of the events a join held unhold queues.
type keep uint8

const (
	keepAll   keep = iota // every one
	keepNone              // none: the join failed, its caller closes the connection
	keepNewer             // those after the position given
)

// unhold ends hd and queues the events it held, as keep says.
func (h *Hub) unhold(c *Conn, hd *hold, keep keep, after layer.Position) {
	c.mu.Lock()
	if j := c.join; j != nil {
		j.holds = slices.DeleteFunc(j.holds, func(x *hold) bool { return x == hd })
		if len(j.holds) == 0 {
			j.holds = nil
		}
	}
	var wake bool
	var perr error
	switch {
	case hd.overflow && keep != keepNone && c.state == stateOpen:
		// More arrived while joining than a replay may queue: the
		// connection cannot catch up without a gap.
		wake, perr = c.overflowLocked(), ErrSlowConsumer
	case keep == keepAll:
		for i := 0; i < len(hd.msgs) && perr == nil; i++ {
			var w bool
			w, perr = c.pushLocked(c.enc.Encode(&hd.msgs[i]))
			wake = wake || w
		}
	case keep == keepNewer:
		// Events of the position's epoch are newer past its offset. Those
		// of another epoch are older if an event of the position's epoch
		// was delivered after them (a group's events arrive in order), and
		// otherwise taken as newer: a repeat is harmless, a gap is not.
		lastAt := -1
		for i := range hd.msgs {
			if hd.msgs[i].Epoch == after.Epoch {
				lastAt = i
			}
		}
		for i := 0; i < len(hd.msgs) && perr == nil; i++ {
			m := &hd.msgs[i]
			if m.Epoch == after.Epoch && m.Offset <= after.Offset || m.Epoch != after.Epoch && i < lastAt {
				continue
			}
			var w bool
			w, perr = c.pushLocked(c.enc.Encode(m))
			wake = wake || w
		}
	}
	hd.msgs = nil
	c.joinDone()
	c.mu.Unlock()
	h.afterPush(c, wake, perr)
}

// afterPush does what queuing under c.mu left for after it: report a slow
// consumer, wake the transport.
func (h *Hub) afterPush(c *Conn, wake bool, err error) {
	if err == ErrSlowConsumer {
		h.reportSlow(c, "send queue full", h.maxFrames)
	}
	if wake {
		c.transport.Wake()
	}
}

// Leave removes c from group. The last local member unsubscribes this
// process from the group (after UnsubscribeDelay, if nobody joined again).
func (h *Hub) Leave(ctx context.Context, c *Conn, group string) error {
	c.joinMu.Lock()
	defer c.joinMu.Unlock()
	c.mu.Lock()
	in := slices.Contains(c.groups, group)
	c.groups = removeString(c.groups, group)
	c.mu.Unlock()
	if !in {
		return nil
	}
	return h.removeMember(ctx, c, group)
}

// LeaveAll removes c from all its groups; transports call it (through
// Link.Finish) when the connection ends. Layer errors are logged.
func (h *Hub) LeaveAll(c *Conn) {
	c.joinMu.Lock()
	defer c.joinMu.Unlock()
	c.mu.Lock()
	groups := c.groups
	c.groups = nil
	c.mu.Unlock()
	for _, g := range groups {
		if err := h.removeMember(context.Background(), c, g); err != nil {
			h.log.Warn("realtime: leave group", "group", g, "err", err)
		}
	}
}

func (h *Hub) addMember(ctx context.Context, c *Conn, name string) error {
	sh := h.shard(name)
	sh.mu.Lock()
	if g := sh.groups[name]; g != nil {
		g.add(c)
		sh.mu.Unlock()
		return nil
	}
	sh.mu.Unlock()

	sh.subMu.Lock()
	defer sh.subMu.Unlock()
	sh.mu.Lock()
	g := sh.groups[name]
	if g != nil {
		// Created (or kept) meanwhile; it is subscribed.
		g.add(c)
		sh.mu.Unlock()
		return nil
	}
	g = &group{}
	g.add(c)
	sh.groups[name] = g
	sh.mu.Unlock()
	if err := h.layer.Subscribe(ctx, name); err != nil {
		sh.mu.Lock()
		g.remove(c)
		if len(g.members) == 0 && sh.groups[name] == g {
			delete(sh.groups, name)
		}
		sh.mu.Unlock()
		return fmt.Errorf("realtime: join %q: %w", name, err)
	}
	return nil
}

func (h *Hub) removeMember(ctx context.Context, c *Conn, name string) error {
	sh := h.shard(name)
	sh.mu.Lock()
	g := sh.groups[name]
	if g == nil {
		sh.mu.Unlock()
		return nil
	}
	g.remove(c)
	empty := len(g.members) == 0
	sh.mu.Unlock()
	if !empty {
		return nil
	}
	// The group stays in the map, empty, until it is unsubscribed under
	// subMu; a Join meanwhile simply reuses it.
	if h.unsubDelay > 0 {
		sh.mu.Lock()
		if sh.groups[name] == g && len(g.members) == 0 {
			if g.idle == nil {
				g.idle = time.AfterFunc(h.unsubDelay, func() { h.unsubscribeIdle(name, g) })
			} else {
				g.idle.Reset(h.unsubDelay)
			}
		}
		sh.mu.Unlock()
		return nil
	}
	sh.subMu.Lock()
	defer sh.subMu.Unlock()
	sh.mu.Lock()
	if sh.groups[name] != g || len(g.members) != 0 {
		sh.mu.Unlock()
		return nil
	}
	delete(sh.groups, name)
	sh.mu.Unlock()
	if err := h.layer.Unsubscribe(ctx, name); err != nil {
		return fmt.Errorf("realtime: leave %q: %w", name, err)
	}
	return nil
}

// unsubscribeIdle unsubscribes group g of name if it is still empty. It
// runs on a timer's goroutine.
func (h *Hub) unsubscribeIdle(name string, g *group) {
	defer panics.Recover(h.log, h.onPanic, panics.Hub)
	sh := h.shard(name)
	sh.subMu.Lock()
	defer sh.subMu.Unlock()
	sh.mu.Lock()
	if sh.groups[name] != g || len(g.members) != 0 {
		sh.mu.Unlock()
		return // joined again; its next last leave schedules this anew
	}
	delete(sh.groups, name)
	sh.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.layer.Unsubscribe(ctx, name); err != nil && !errors.Is(err, layer.ErrClosed) {
		h.log.Warn("realtime: unsubscribe idle group", "group", name, "err", err)
	}
}

// deliver fans a layer message out to the group's local members. Each
// encoding's frame is built at most once, on first need, and shared. It
// runs on the layer's delivery path (a publisher's or a Redis reader's
// goroutine), which a panic here must not end.
func (h *Hub) deliver(msg layer.Message) {
	defer panics.Recover(h.log, h.onPanic, panics.Hub)
	h.eventsIn.Add(1)
	if h.observe != nil && !h.observe(msg) {
		return
	}
	sh := h.shard(msg.Group)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	g := sh.groups[msg.Group]
	if g == nil {
		return
	}
	var f fanOut
	for i := 0; i < len(g.members); {
		i = h.fanOut(&f, g.members, i, &msg)
	}
	h.framesOut.Add(f.sent)
	if f.dropped > 0 {
		h.dropped.Add(f.dropped)
	}
}

// fanOut is one event's fan-out: its frame per encoding and its counts.
type fanOut struct {
	frames        [encodingCount][]byte
	sent, dropped uint64
}

// fanOut queues msg to members[i:] and returns where it stopped: at the end,
// or after a member whose queuing panicked (that member is closed and the
// caller goes on with the next). A panic while encoding ends the fan-out:
// every member would meet it again.
func (h *Hub) fanOut(f *fanOut, members []*Conn, i int, msg *layer.Message) (next int) {
	encoding := false
	defer func() {
		if p := recover(); p != nil {
			panics.Report(h.log, h.onPanic, panics.Hub, p)
			next = len(members)
			if !encoding {
				next = i + 1
				members[i].abandon()
			}
		}
	}()
	for ; i < len(members); i++ {
		c := members[i]
		fr := f.frames[c.enc]
		if fr == nil {
			encoding = true
			fr = c.enc.Encode(msg)
			encoding = false
			f.frames[c.enc] = fr
		}
		if c.pushEvent(fr, msg) == nil {
			f.sent++
		} else {
			f.dropped++
		}
	}
	return i
}

func (h *Hub) reportSlow(c *Conn, why string, pending int) {
	c.mu.Lock()
	logged := c.slowLogged
	c.slowLogged = true
	c.mu.Unlock()
	if logged {
		return
	}
	h.slowConsumers.Add(1)
	h.log.Info("realtime: closing slow consumer", "user_id", c.userID, "reason", why, "pending_frames", pending)
}

// Stats is a snapshot of the hub's counters.
type Stats struct {
	Conns         int64  // attached, not yet finished connections
	Groups        int    // groups with local members
	SlowConsumers uint64 // connections closed as slow consumers
	EventsIn      uint64 // layer messages received for local groups
	FramesOut     uint64 // event frames queued to connections
	Dropped       uint64 // event frames not queued (closing or overflowing connections)
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	s := Stats{
		Conns:         h.conns.Load(),
		SlowConsumers: h.slowConsumers.Load(),
		EventsIn:      h.eventsIn.Load(),
		FramesOut:     h.framesOut.Load(),
		Dropped:       h.dropped.Load(),
	}
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for _, g := range sh.groups {
			if len(g.members) > 0 {
				s.Groups++ // not the empty ones kept for UnsubscribeDelay
			}
		}
		sh.mu.RUnlock()
	}
	return s
}

// SlowConsumers returns the number of connections closed because they did
// not read fast enough.
func (h *Hub) SlowConsumers() uint64 { return h.slowConsumers.Load() }

// Members returns the local members of group (a copy).
func (h *Hub) Members(name string) []*Conn {
	sh := h.shard(name)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if g := sh.groups[name]; g != nil {
		return slices.Clone(g.members)
	}
	return nil
}

// Groups returns the names of the groups this process is subscribed to:
// those with local members, and the empty ones kept for
// UnsubscribeDelay.
func (h *Hub) Groups() []string {
	var out []string
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for name := range sh.groups {
			out = append(out, name)
		}
		sh.mu.RUnlock()
	}
	return out
}

// GroupSize returns the number of local members of group.
func (h *Hub) GroupSize(name string) int {
	sh := h.shard(name)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if g := sh.groups[name]; g != nil {
		return len(g.members)
	}
	return 0
}

func (g *group) add(c *Conn) {
	if g.index != nil {
		if _, ok := g.index[c]; ok {
			return
		}
		g.index[c] = len(g.members)
	} else if slices.Contains(g.members, c) {
		return
	}
	g.members = append(g.members, c)
	if g.index == nil && len(g.members) > indexThreshold {
		g.index = make(map[*Conn]int, len(g.members))
		for i, m := range g.members {
			g.index[m] = i
		}
	}
}

func (g *group) remove(c *Conn) {
	i := -1
	if g.index != nil {
		if j, ok := g.index[c]; ok {
			i = j
			delete(g.index, c)
		}
	} else {
		i = slices.Index(g.members, c)
	}
	if i < 0 {
		return
	}
	last := len(g.members) - 1
	if i != last {
		moved := g.members[last]
		g.members[i] = moved
		if g.index != nil {
			g.index[moved] = i
		}
	}
	g.members[last] = nil
	g.members = g.members[:last]
	if g.index != nil && len(g.members) <= indexThreshold/2 {
		g.index = nil
	}
	if cap(g.members) > 64 && len(g.members) < cap(g.members)/4 {
		g.members = slices.Clip(slices.Clone(g.members))
	}
}

func removeString(s []string, v string) []string {
	if i := slices.Index(s, v); i >= 0 {
		s = slices.Delete(s, i, i+1)
	}
	if len(s) == 0 {
		return nil
	}
	return s
}
