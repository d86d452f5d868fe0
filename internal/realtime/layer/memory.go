package layer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/internal/panics"
)

// Defaults of MemoryOptions.
const (
	DefaultHistorySize = 1000
	DefaultHistoryAge  = 10 * time.Minute
)

// MemoryOptions configures NewMemory.
type MemoryOptions struct {
	// HistorySize is the number of events kept per group for resume
	// (default DefaultHistorySize). A negative value keeps none.
	HistorySize int
	// HistoryAge is how long an event stays in its group's window (default
	// DefaultHistoryAge).
	HistoryAge time.Duration
	// Window, if set, gives each group's history window (its latest size events, none older than age); nil uses HistorySize and HistoryAge for every group.
	Window func(group string) (size int, age time.Duration)
	// SweepInterval is how often expired events and idle groups are dropped
	// (default HistoryAge/10, at least one second).
	SweepInterval time.Duration
	// Now returns the current time; tests replace it (default time.Now).
	Now func() time.Time
	// OnPanic, if set, is told of a panic recovered in the sweeper
	// (panics.Layer), which goes on; Logger logs it (default slog.Default()).
	OnPanic func(where string)
	Logger  *slog.Logger
	// Log, if set, is the durable record behind the window: History reads
	// from it what the window does not hold (older events, or everything
	// before this process started), and Position answers from it for a
	// group this layer has no state of.
	Log Log
	// Redacts, if set, says which messages drop their group's window as
	// they are published (Redacting).
	Redacts Redacting
}

const memShards = 32

// groupWindow is group's window: window's answer, or size and age for
// every group when window is nil. window's values are trusted (the group
// registry checked them) but a window keeps at least one event, and a
// non-positive age is taken as age.
func groupWindow(window func(string) (int, time.Duration), group string, size int, age time.Duration) (int, time.Duration) {
	if window == nil {
		return size, age
	}
	s, a := window(group)
	if a <= 0 {
		a = age
	}
	return max(s, 1), a
}

// Memory is a single-process Layer. Events published with their positions
// (from a Log) keep them, so a restarted process goes on where the log
// stands; events published without are numbered here, in a new epoch for
// every group of every new Memory.
type Memory struct {
	handler  func(Message)
	size     int           // every group's window when windowOf is nil
	age      time.Duration // (HistorySize and HistoryAge)
	windowOf func(string) (int, time.Duration)
	now      func() time.Time
	onPanic  func(string)
	log      *slog.Logger
	backlog  Log
	redacts  Redacting

	id          string // random, makes epochs of different layers distinct
	incarnation atomic.Uint64
	seed        maphash.Seed
	shards      [memShards]memShard

	closed atomic.Bool
	stop   chan struct{}
	done   chan struct{}
}

type memShard struct {
	mu     sync.Mutex
	groups map[string]*memGroup
}

type memGroup struct {
	mu         sync.Mutex
	epoch      string
	last       uint64 // last assigned offset
	subscribed bool
	dead       bool // removed from its shard; callers holding it must look up again
	// known is set once epoch and last say where the group stands: after
	// its first event or reset here. Until then Position and History
	// answer from the Log.
	known bool

	// size and age are the group's window, read once when its state is
	// made (a group's window never changes while the process runs).
	size int
	age  int64 // nanoseconds
	// ring holds the window: n entries starting at head. It grows lazily up
	// to size, so quiet groups cost little.
	ring []memEntry
	head int
	n    int
}

type memEntry struct {
	msg Message
	at  int64 // unix nanoseconds of publish
}

var _ Layer = (*Memory)(nil)

// NewMemory returns an in-memory layer that delivers the messages of
// subscribed groups to handler, synchronously from Publish and in publish
// order per group. Close stops its background sweeper.
func NewMemory(handler func(Message), opts MemoryOptions) *Memory {
	if opts.HistorySize == 0 {
		opts.HistorySize = DefaultHistorySize
	}
	if opts.HistorySize < 0 {
		opts.HistorySize = 0
	}
	if opts.HistoryAge <= 0 {
		opts.HistoryAge = DefaultHistoryAge
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = max(opts.HistoryAge/10, time.Second)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms
	m := &Memory{
		handler:  handler,
		size:     opts.HistorySize,
		age:      opts.HistoryAge,
		windowOf: opts.Window,
		now:      opts.Now,
		onPanic:  opts.OnPanic,
		log:      opts.Logger,
		backlog:  opts.Log,
		redacts:  opts.Redacts,
		id:       hex.EncodeToString(b[:]),
		seed:     maphash.MakeSeed(),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	for i := range m.shards {
		m.shards[i].groups = make(map[string]*memGroup)
	}
	go m.sweeper(opts.SweepInterval)
	return m
}

func (m *Memory) shard(group string) *memShard {
	return &m.shards[maphash.String(m.seed, group)%memShards]
}

// group returns the locked state of group, creating it when create is set.
// It returns nil (nothing locked) when the group has no state and create is
// false.
func (m *Memory) group(name string, create bool) *memGroup {
	sh := m.shard(name)
	for {
		sh.mu.Lock()
		g := sh.groups[name]
		if g == nil {
			if !create {
				sh.mu.Unlock()
				return nil
			}
			g = &memGroup{}
			size, age := groupWindow(m.windowOf, name, m.size, m.age)
			g.size, g.age = size, int64(age)
			sh.groups[name] = g
		}
		sh.mu.Unlock()
		g.mu.Lock()
		if !g.dead {
			return g
		}
		g.mu.Unlock()
	}
}

// Publish implements Layer. A message with its position (Offset > 0, or a
// reset with its Epoch) keeps it: one this layer already has is a
// duplicate, dropped; one that does not follow the last it has starts the
// window afresh from it (the events in between are the Log's). Other
// messages get the group's next offset here.
func (m *Memory) Publish(ctx context.Context, msg Message) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("layer: publish to %q: %w", msg.Group, err)
	}
	if m.closed.Load() {
		return 0, ErrClosed
	}
	g := m.group(msg.Group, true)
	defer g.mu.Unlock()
	if msg.Type == TypeReset {
		if msg.Epoch != "" && g.known && g.epoch == msg.Epoch {
			return 0, nil // published again
		}
		m.reset(g, msg)
		return 0, nil
	}
	switch {
	case msg.Offset == 0:
		if !g.known {
			g.epoch, g.last, g.known = m.newEpoch(), 0, true
		}
		msg.Offset, msg.Epoch = g.last+1, g.epoch
	case g.known && g.epoch == msg.Epoch && msg.Offset <= g.last:
		return msg.Offset, nil // published again
	case !g.known || g.epoch != msg.Epoch || msg.Offset != g.last+1:
		g.clearWindow()
		g.epoch, g.known = msg.Epoch, true
	}
	g.last = msg.Offset
	if m.redacts != nil && m.redacts(msg) {
		// The events it withdraws are rewritten in the Log: History
		// reads what came before it from there.
		g.clearWindow()
	}
	if g.size > 0 {
		now := m.now().UnixNano()
		g.expire(now - g.age)
		g.push(memEntry{msg: msg, at: now}, g.size)
	}
	if g.subscribed {
		// Delivering under the group lock is what keeps per-group order.
		m.handler(msg)
	}
	return msg.Offset, nil
}

func (m *Memory) newEpoch() string {
	return m.id + "." + strconv.FormatUint(m.incarnation.Add(1), 10)
}

// reset starts g's history over in msg's epoch (a new one of this layer's
// if it has none) and delivers msg, the reset, at its offset 0. g is
// locked.
func (m *Memory) reset(g *memGroup, msg Message) {
	if msg.Epoch == "" {
		msg.Epoch = m.newEpoch()
	}
	g.epoch, g.last, g.known = msg.Epoch, 0, true
	g.clearWindow()
	msg.Offset = 0
	if g.subscribed {
		m.handler(msg)
	}
}

// clearWindow drops g's window. g is locked.
func (g *memGroup) clearWindow() {
	clear(g.ring)
	g.ring, g.head, g.n = nil, 0, 0
}

// Subscribe implements Layer.
func (m *Memory) Subscribe(ctx context.Context, group string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("layer: subscribe %q: %w", group, err)
	}
	if m.closed.Load() {
		return ErrClosed
	}
	g := m.group(group, true)
	g.subscribed = true
	g.mu.Unlock()
	return nil
}

// Unsubscribe implements Layer.
func (m *Memory) Unsubscribe(ctx context.Context, group string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("layer: unsubscribe %q: %w", group, err)
	}
	if m.closed.Load() {
		return ErrClosed
	}
	if g := m.group(group, false); g != nil {
		g.subscribed = false
		g.mu.Unlock()
	}
	return nil
}

// History implements Layer. An empty epoch with since == 0 stands for "from
// the very beginning" and succeeds while the group's first event is still in
// the window (or nothing was ever published). What the window does not hold
// is read from the Log, up to the last event this layer delivered (those
// after it still come through the handler).
func (m *Memory) History(ctx context.Context, group string, since uint64, epoch string) ([]Message, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("layer: history of %q: %w", group, err)
	}
	if m.closed.Load() {
		return nil, false, ErrClosed
	}
	g := m.group(group, false)
	if g == nil || !g.known {
		if g != nil {
			g.mu.Unlock()
		}
		if m.backlog != nil {
			// Nothing published here yet: all the Log has published came
			// before, and what comes next reaches the handler.
			return m.backlog.Read(ctx, group, epoch, since, 0)
		}
		return nil, epoch == "" && since == 0, nil
	}
	msgs, ok, miss := m.window(g, since, epoch)
	g.mu.Unlock()
	if ok || !miss.valid || m.backlog == nil {
		return msgs, ok, nil
	}
	return m.backlog.Read(ctx, group, miss.epoch, since, miss.upTo)
}

// logRead is a read of the Log that answers a History call the window
// could not: offsets (since, upTo] of epoch.
type logRead struct {
	valid bool
	epoch string
	upTo  uint64
}

// window answers History from g's window (g locked and known). When the
// position is in g's epoch but older than the window, miss says what to
// read from the Log instead.
func (m *Memory) window(g *memGroup, since uint64, epoch string) ([]Message, bool, logRead) {
	g.expire(m.now().UnixNano() - g.age)
	first := g.last + 1 // oldest offset still in the window
	if g.n > 0 {
		first = g.ring[g.head].msg.Offset
	}
	older := logRead{valid: true, epoch: g.epoch, upTo: g.last}
	switch {
	case epoch == "" && since == 0:
		if first != 1 {
			return nil, false, older
		}
	case epoch != g.epoch:
		return nil, false, logRead{}
	}
	if since > g.last {
		return nil, false, logRead{}
	}
	if since+1 < first {
		return nil, false, older
	}
	count := int(g.last - since)
	if count == 0 {
		return nil, true, logRead{}
	}
	out := make([]Message, 0, count)
	for i := g.n - count; i < g.n; i++ {
		out = append(out, g.ring[(g.head+i)%len(g.ring)].msg)
	}
	return out, true, logRead{}
}

// Position implements Layer.
func (m *Memory) Position(ctx context.Context, group string) (uint64, string, error) {
	if err := ctx.Err(); err != nil {
		return 0, "", fmt.Errorf("layer: position of %q: %w", group, err)
	}
	if m.closed.Load() {
		return 0, "", ErrClosed
	}
	g := m.group(group, false)
	if g != nil {
		known, last, epoch := g.known, g.last, g.epoch
		g.mu.Unlock()
		if known {
			return last, epoch, nil
		}
	}
	if m.backlog != nil {
		ps, err := m.backlog.Positions(ctx, []string{group})
		if err != nil {
			return 0, "", fmt.Errorf("layer: position of %q: %w", group, err)
		}
		return ps[0].Offset, ps[0].Epoch, nil
	}
	return 0, "", nil
}

// Close implements Layer. It stops the sweeper and waits for it.
func (m *Memory) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	close(m.stop)
	<-m.done
	return nil
}

func (m *Memory) sweeper(every time.Duration) {
	defer close(m.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.sweep()
		}
	}
}

// sweep drops expired events and forgets groups that have neither
// subscribers nor events in their window, so the number of groups a
// long-running process tracks stays bounded. A forgotten group gets a new
// epoch if it is used again, which is correct: its history is gone.
func (m *Memory) sweep() {
	// The sweeper goes on after a panic here.
	defer panics.Recover(m.log, m.onPanic, panics.Layer)
	now := m.now().UnixNano()
	for i := range m.shards {
		m.shards[i].sweep(now)
	}
}

// sweep is Memory.sweep for one shard; its locks are released even if it
// panics.
func (sh *memShard) sweep(now int64) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for name, g := range sh.groups {
		if g.sweep(now) {
			delete(sh.groups, name)
		}
	}
}

// sweep drops g's expired events and reports whether g is to be forgotten.
func (g *memGroup) sweep(now int64) (dead bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expire(now - g.age)
	g.dead = !g.subscribed && g.n == 0
	return g.dead
}

// groupCount reports the number of groups with state, for tests.
func (m *Memory) groupCount() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += len(sh.groups)
		sh.mu.Unlock()
	}
	return n
}

func (g *memGroup) push(e memEntry, size int) {
	if g.n == size {
		// Full: overwrite the oldest.
		g.ring[g.head] = e
		g.head = (g.head + 1) % len(g.ring)
		return
	}
	if g.n == len(g.ring) {
		grown := make([]memEntry, min(max(2*len(g.ring), 8), size))
		for i := 0; i < g.n; i++ {
			grown[i] = g.ring[(g.head+i)%len(g.ring)]
		}
		g.ring, g.head = grown, 0
	}
	g.ring[(g.head+g.n)%len(g.ring)] = e
	g.n++
}

// expire drops entries published before cutoff and releases the ring once
// it is empty.
func (g *memGroup) expire(cutoff int64) {
	for g.n > 0 && g.ring[g.head].at < cutoff {
		g.ring[g.head] = memEntry{}
		g.head = (g.head + 1) % len(g.ring)
		g.n--
	}
	if g.n == 0 {
		g.ring, g.head = nil, 0
	}
}
