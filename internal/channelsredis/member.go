// Package channelsredis makes herald a member of a Django Channels app's
// channel layer (channels_redis), so that the app's unchanged
// group_send calls reach herald's clients. Each message is recorded once,
// by one process of the deployment, as an event of herald's log: it gets
// its group's offset and epoch and reaches clients through the relay, with
// history, resume and Server-Sent Events like the events of herald's own
// writes.
//
// Both of channels_redis's layers are supported:
//
//   - RedisChannelLayer ("core"): group_send stores the message in a
//     sorted set per member channel of the group (<prefix><channel>, score
//     the send time, member 12 random bytes + msgpack). Herald adds the
//     channel herald.<group> to each group its clients are in (the group's
//     sorted set <prefix>:group:<group>), shared by all its processes, so
//     each message is stored once for herald, and one process, the
//     leader, pops it (ZPOPMIN is atomic: a message is popped once).
//   - RedisPubSubChannelLayer ("pubsub"): group_send publishes on
//     <prefix>__group__<group>. Every subscriber receives every message,
//     so only the leader subscribes (to the pattern of every group).
//
// The leader holds a lock in Redis (<prefix>:herald:leader), renewed while
// it lives; another process takes over when it lapses. A leader records
// one group's messages one at a time, in the order it took them, so a
// group's events keep the order of its sends.
package channelsredis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/heraldhq/herald/internal/panics"
)

// Layer is the kind of channels_redis layer the Django app is configured
// with (CHANNEL_LAYERS' BACKEND).
type Layer string

const (
	Core   Layer = "core"   // channels_redis.core.RedisChannelLayer
	PubSub Layer = "pubsub" // channels_redis.pubsub.RedisPubSubChannelLayer
)

// ErrRejected, wrapped in an error of Options.Record, says the message can
// never be recorded (it breaks a rule of the log): it is dropped, not
// retried.
var ErrRejected = errors.New("rejected")

// Reasons a message is dropped, the keys of Stats.Dropped.
const (
	DropTooLarge    = "too_large"   // longer than Options.MaxMessage
	DropUndecodable = "undecodable" // not a message a consumer could handle (Decode)
	DropGroup       = "bad_group"   // a group herald does not serve
	DropType        = "bad_type"    // a type that is no handler's name
	DropRejected    = "rejected"    // Record refused it (ErrRejected)
	DropExpired     = "expired"     // Record kept failing for Options.MaxHold
	DropOverflow    = "overflow"    // pubsub: more waiting than Options.QueueBytes
	DropShutdown    = "shutdown"    // not recorded when herald stopped
	DropNotLeader   = "not_leader"  // pubsub: received after the lease lapsed
)

// DropReasons lists the reasons a message is dropped.
func DropReasons() []string {
	return []string{DropTooLarge, DropUndecodable, DropGroup, DropType, DropRejected, DropExpired, DropOverflow,
		DropShutdown, DropNotLeader}
}

// Event is a message on its way to the log, as RecordBatch takes it.
type Event struct {
	Group, Type string
	Data        []byte
}

// Options configures a Member.
type Options struct {
	Layer Layer
	// Prefix is the layer's "prefix" setting; default "asgi", as
	// channels_redis's.
	Prefix string
	// Record records a message as an event of group (required). It is
	// called once at a time per group, in the order of the group's
	// messages. An error wrapping ErrRejected drops the message; any other
	// is retried.
	Record func(ctx context.Context, group, typ string, data []byte) error
	// RecordBatch, if set, records several messages in one call, all or
	// none, each group's in the order given (one transaction instead of
	// one each, which a group's messages at a few hundred a second need).
	// On an error wrapping ErrRejected the messages are recorded one at a
	// time with Record, so only the refused are dropped.
	RecordBatch func(ctx context.Context, events []Event) error
	// GroupKind says whether herald serves group, and its kind (required).
	GroupKind func(group string) (kind string, ok bool)
	// Groups lists the groups this process's clients are in (core layer:
	// herald joins them).
	Groups func() []string
	// Types maps layer message types to client types; nil is SeedTypes().
	Types TypeMap
	// Logger and OnPanic as elsewhere in herald.
	Logger  *slog.Logger
	OnPanic func(where string)

	// MaxMessage bounds a message read from Redis (default
	// DefaultMaxMessage).
	MaxMessage int
	// GroupExpiry is how long herald keeps a group's key alive at least
	// (the layer's group_expiry; default 24 h, channels_redis's).
	GroupExpiry time.Duration
	// Refresh is how often herald's memberships are renewed (default 1
	// min); it must be well below the layer's group_expiry.
	Refresh time.Duration
	// Linger is how long herald stays in a group after its last client
	// left (default 10 min, the history window), so a client that comes
	// back can resume what was sent meanwhile.
	Linger time.Duration
	// Scan is how often this process looks for groups new to it (default
	// 200 ms).
	Scan time.Duration
	// LockTTL is the leader's lease (default 3 s): a process that dies
	// leading is replaced after at most this long.
	LockTTL time.Duration
	// Block is how long one blocking read waits (default 1 s).
	Block time.Duration
	// MaxHold is how long a message whose recording fails is retried
	// before it is dropped (default 60 s, channels_redis's expiry).
	MaxHold time.Duration
	// Shards is how many groups' queues are read and recorded at once
	// (default 8).
	Shards int
	// QueueBytes bounds the messages the pubsub leader holds before
	// recording (default 64 MiB): Redis would cut off a subscriber that
	// reads too slowly, and lose more.
	QueueBytes int
}

func (o *Options) defaults() error {
	switch o.Layer {
	case Core, PubSub:
	default:
		return fmt.Errorf("channelsredis: layer %q: want core or pubsub", o.Layer)
	}
	if o.Record == nil || o.GroupKind == nil {
		return errors.New("channelsredis: Record and GroupKind are required")
	}
	if o.Layer == Core && o.Groups == nil {
		return errors.New("channelsredis: the core layer needs Groups")
	}
	if o.Prefix == "" {
		o.Prefix = "asgi"
	}
	if o.Types == nil {
		o.Types = SeedTypes()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.GroupExpiry, 24*time.Hour)
	def(&o.Refresh, time.Minute)
	def(&o.Linger, 10*time.Minute)
	def(&o.Scan, 200*time.Millisecond)
	def(&o.LockTTL, 3*time.Second)
	def(&o.Block, time.Second)
	def(&o.MaxHold, 60*time.Second)
	if o.MaxMessage <= 0 {
		o.MaxMessage = DefaultMaxMessage
	}
	if o.Shards <= 0 {
		o.Shards = 8
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 64 << 20
	}
	return nil
}

// Member is one herald process's part in the Django app's layer.
type Member struct {
	opt   Options
	rdb   *redis.Client
	log   *slog.Logger
	token string // this process's lock value

	// leaseUntil is when this process stops taking messages as the leader
	// (unix ns), a margin before its lock can lapse in Redis.
	leaseUntil atomic.Int64
	shardKeys  []atomic.Pointer[[]string] // core: the keys each shard pops

	received, recorded, returned atomic.Uint64
	dropMu                       sync.Mutex
	dropped                      map[string]uint64
	logs                         logLimit
	queued                       atomic.Int64 // pubsub: bytes waiting
	queues                       []chan item  // pubsub: per shard
}

// New connects to the layer's Redis (a redis:// or rediss:// URL; one
// host: channels_redis's sharding over several is not supported) and
// checks that it answers.
func New(ctx context.Context, url string, opt Options) (*Member, error) {
	if err := opt.defaults(); err != nil {
		return nil, err
	}
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("channelsredis: %w", err)
	}
	if o.Protocol == 0 {
		o.Protocol = 2
	}
	o.DisableIdentity = true
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	o.DialTimeout = 2 * time.Second
	o.ReadTimeout = 3*time.Second + opt.Block // blocking pops wait Block
	o.WriteTimeout = 3 * time.Second
	// Each shard blocks a connection of its own.
	o.PoolSize = opt.Shards + 8
	var b [12]byte
	_, _ = rand.Read(b[:])
	m := &Member{
		opt: opt, rdb: redis.NewClient(o), log: opt.Logger, token: hex.EncodeToString(b[:]),
		shardKeys: make([]atomic.Pointer[[]string], opt.Shards),
		dropped:   map[string]uint64{},
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := m.rdb.Ping(pctx).Err(); err != nil {
		m.rdb.Close()
		return nil, fmt.Errorf("channelsredis: Redis at %s: %w", o.Addr, err)
	}
	return m, nil
}

// Close closes the Redis client; call it after Run returned.
func (m *Member) Close() error { return m.rdb.Close() }

// Stats are a Member's counts since it started.
type Stats struct {
	Received uint64            // messages taken from the layer
	Recorded uint64            // messages recorded as events
	Returned uint64            // core: messages given back to the layer unrecorded (at shutdown, or when the lease ran out)
	Dropped  map[string]uint64 // by reason (Drop*)
	Leader   bool              // whether this process takes the messages now
}

// Stats returns the member's counts.
func (m *Member) Stats() Stats {
	s := Stats{Received: m.received.Load(), Recorded: m.recorded.Load(), Returned: m.returned.Load(), Leader: m.leading()}
	m.dropMu.Lock()
	s.Dropped = make(map[string]uint64, len(m.dropped))
	for k, v := range m.dropped {
		s.Dropped[k] = v
	}
	m.dropMu.Unlock()
	return s
}

// Key names, as channels_redis writes them, and herald's own beside them.
func (m *Member) groupKey(group string) string { return m.opt.Prefix + ":group:" + group }
func (m *Member) channel(group string) string  { return channelPrefix + group }
func (m *Member) channelKey(group string) string {
	return m.opt.Prefix + m.channel(group) // RedisChannelLayer: prefix + channel name, no separator
}
func (m *Member) registryKey() string { return m.opt.Prefix + ":herald:groups" }
func (m *Member) lockKey() string     { return m.opt.Prefix + ":herald:leader" }
func (m *Member) pubsubPattern() string {
	return globEscape(m.opt.Prefix) + "__group__*"
}

// channelPrefix starts the channel herald joins a group with: one channel
// per group, because a stored message does not say which group it was
// sent to, only to which channels.
const channelPrefix = "herald."

// groupOfKey returns the group of a channel key of herald's.
func (m *Member) groupOfKey(key string) string {
	return strings.TrimPrefix(key, m.opt.Prefix+channelPrefix)
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Run takes part in the layer until ctx ends: it keeps this process's
// groups joined (core), and leads when no other process does. Every
// goroutine it starts has ended when it returns.
func (m *Member) Run(ctx context.Context) {
	var wg sync.WaitGroup
	spawn := func(f func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx)
		}()
	}
	if m.opt.Layer == Core {
		spawn(m.joinLoop)
	} else {
		m.queues = make([]chan item, m.opt.Shards)
		for i := range m.queues {
			m.queues[i] = make(chan item, 1024)
			q := m.queues[i]
			spawn(func(ctx context.Context) { m.recordQueue(ctx, q) })
		}
	}
	spawn(m.leadLoop)
	wg.Wait()
}

// guard runs f until ctx ends, again after a panic (which it reports),
// pausing a moment after one so a panic on every turn does not spin.
func (m *Member) guard(ctx context.Context, f func(context.Context)) {
	for ctx.Err() == nil {
		func() {
			defer panics.Recover(m.log, m.opt.OnPanic, panics.ChannelsRedis)
			f(ctx)
		}()
		if !sleep(ctx, m.opt.Block) {
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// item is a decoded message on its way to the log.
type item struct {
	group, typ string
	data       []byte
	taken      time.Time
	// core: where it came from, to give it back unrecorded at shutdown
	key    string
	member string
	score  float64
}

// take counts and decodes a message read from the layer; it reports
// false, after counting and logging why, for one that is dropped.
func (m *Member) take(group string, raw string, core bool) (item, bool) {
	m.received.Add(1)
	limit := m.opt.MaxMessage
	if core {
		limit += randomPrefix
	}
	if len(raw) > limit {
		m.drop(DropTooLarge, group, fmt.Errorf("%d bytes, more than %d", len(raw), limit))
		return item{}, false
	}
	kind, ok := m.opt.GroupKind(group)
	if !ok {
		m.drop(DropGroup, group, errors.New("not a group herald serves"))
		return item{}, false
	}
	var msg Message
	var err error
	if core {
		msg, err = DecodeCore([]byte(raw), m.opt.MaxMessage)
	} else {
		msg, err = Decode([]byte(raw), m.opt.MaxMessage)
	}
	if err != nil {
		m.drop(DropUndecodable, group, err)
		return item{}, false
	}
	typ, err := m.opt.Types.ClientType(kind, msg.Type)
	if err != nil {
		m.drop(DropType, group, err)
		return item{}, false
	}
	return item{group: group, typ: typ, data: msg.Data, taken: time.Now()}, true
}

func (m *Member) drop(reason, group string, err error) {
	m.dropMu.Lock()
	m.dropped[reason]++
	m.dropMu.Unlock()
	m.warn("channels_redis: message dropped", "reason", reason, "group", truncate(group, 120), "err", err)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// record hands it to Options.Record until it is recorded, refused, held
// for MaxHold, or ctx ends (then a core message goes back to the layer,
// for the next leader).
func (m *Member) record(ctx context.Context, it item) {
	backoff := 50 * time.Millisecond
	for {
		// A recording under way finishes even at shutdown: cut short, it
		// might commit unknown to us and be given back and recorded twice.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err := m.opt.Record(rctx, it.group, it.typ, it.data)
		cancel()
		switch {
		case err == nil:
			m.recorded.Add(1)
			return
		case errors.Is(err, ErrRejected):
			m.drop(DropRejected, it.group, err)
			return
		case time.Since(it.taken) > m.opt.MaxHold:
			m.drop(DropExpired, it.group, err)
			return
		}
		m.warn("channels_redis: recording a message failed; retrying", "group", it.group, "type", it.typ, "err", err)
		if !sleep(ctx, backoff) {
			m.giveBack(it)
			return
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// maxBatch bounds what one RecordBatch call records.
const maxBatch = 64

// recordAll records items, a shard's in the order taken: in one
// RecordBatch call when there is one, retried as record retries one
// message; one at a time otherwise, or when the batch was refused.
func (m *Member) recordAll(ctx context.Context, items []item) {
	if m.opt.RecordBatch == nil || len(items) < 2 {
		for _, it := range items {
			m.record(ctx, it)
		}
		return
	}
	evs := make([]Event, len(items))
	for i, it := range items {
		evs[i] = Event{Group: it.group, Type: it.typ, Data: it.data}
	}
	backoff := 50 * time.Millisecond
	for {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err := m.opt.RecordBatch(rctx, evs)
		cancel()
		switch {
		case err == nil:
			m.recorded.Add(uint64(len(items)))
			return
		case errors.Is(err, ErrRejected):
			for _, it := range items {
				m.record(ctx, it)
			}
			return
		case time.Since(items[0].taken) > m.opt.MaxHold:
			for _, it := range items {
				m.drop(DropExpired, it.group, err)
			}
			return
		}
		m.warn("channels_redis: recording messages failed; retrying", "messages", len(items), "err", err)
		if !sleep(ctx, backoff) {
			for _, it := range items {
				m.giveBack(it)
			}
			return
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// giveBack returns a core message to its channel with its score, where the
// next leader takes it in order; anything else is dropped.
func (m *Member) giveBack(it item) {
	if it.key == "" {
		m.drop(DropShutdown, it.group, errors.New("not recorded before shutdown"))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := giveBackScript.Run(ctx, m.rdb, []string{it.key}, it.score, it.member, 60).Err(); err != nil {
		m.drop(DropShutdown, it.group, fmt.Errorf("give back: %w", err))
		return
	}
	m.returned.Add(1)
}

var giveBackScript = redis.NewScript(`
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return 1`)

// shard spreads groups over the shards, the same group always to the same
// shard: one shard records a group's messages one at a time, in order.
func (m *Member) shard(group string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(group))
	return int(h.Sum32() % uint32(m.opt.Shards))
}

// ---- leadership ----

// claimScript takes the lock if it is free or ours, for ARGV[2] ms.
var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

func (m *Member) leading() bool { return time.Now().UnixNano() < m.leaseUntil.Load() }

// claim takes or renews the lock. held says whether this process holds it
// now; on success the lease runs to a fifth of the TTL before the lock
// can lapse, counted from before the call. An error leaves the lease as
// it was.
func (m *Member) claim(ctx context.Context) (held bool, err error) {
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, m.opt.LockTTL/3)
	defer cancel()
	n, err := claimScript.Run(cctx, m.rdb, []string{m.lockKey()}, m.token, m.opt.LockTTL.Milliseconds()).Int()
	if err != nil {
		if ctx.Err() == nil {
			m.warn("channels_redis: leader lock", "err", err)
		}
		return false, err
	}
	if n != 1 {
		return false, nil
	}
	m.leaseUntil.Store(start.Add(m.opt.LockTTL * 4 / 5).UnixNano())
	return true, nil
}

// leadLoop claims the lock whenever it is free and, holding it, takes the
// layer's messages until the lease cannot be renewed or ctx ends.
func (m *Member) leadLoop(ctx context.Context) {
	m.guard(ctx, func(ctx context.Context) {
		for {
			if held, _ := m.claim(ctx); held {
				m.lead(ctx)
			}
			if !sleep(ctx, m.opt.LockTTL/3) {
				return
			}
		}
	})
}

func (m *Member) lead(ctx context.Context) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.log.Info("channels_redis: this process takes the layer's messages", "layer", m.opt.Layer, "prefix", m.opt.Prefix)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		m.guard(lctx, m.ingest)
	}()
	// Renew at a third of the TTL; give up as soon as another process
	// holds the lock or the lease lapsed unrenewed.
	t := time.NewTicker(m.opt.LockTTL / 3)
	defer t.Stop()
renew:
	for {
		select {
		case <-lctx.Done():
			break renew
		case <-t.C:
			held, err := m.claim(lctx)
			if held || err != nil && m.leading() {
				continue
			}
			if lctx.Err() == nil {
				m.log.Warn("channels_redis: lost the leader lock; another process takes the messages", "err", err)
			}
			break renew
		}
	}
	cancel()
	<-done
	m.leaseUntil.Store(0)
	if ctx.Err() != nil {
		// Stopping: let another process lead at once.
		rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
		_ = releaseScript.Run(rctx, m.rdb, []string{m.lockKey()}, m.token).Err()
		rcancel()
	}
}

func (m *Member) ingest(ctx context.Context) {
	if m.opt.Layer == Core {
		m.ingestCore(ctx)
	} else {
		m.ingestPubSub(ctx)
	}
}

// ---- RedisChannelLayer ----

// joinScript is group_add of herald's channel to a group, plus its entry in
// herald's registry of joined groups. Unlike group_add it never shortens
// the group key's expiry, which Django's group_add may have set longer.
var joinScript = redis.NewScript(`
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
if redis.call('TTL', KEYS[2]) < tonumber(ARGV[3]) then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
return 1`)

// leaveScript is group_discard of herald's channel from a group whose
// registry entry is still older than ARGV[3] (no process renewed it).
var leaveScript = redis.NewScript(`
local s = redis.call('ZSCORE', KEYS[2], ARGV[2])
if s and tonumber(s) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1`)

func unixSeconds(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }

// joinLoop keeps herald's channel in every group this process's clients
// are in, and were in within Linger: at once for a group new to it, and
// every Refresh for all, before channels_redis's group_expiry drops the
// membership.
func (m *Member) joinLoop(ctx context.Context) {
	seen := map[string]time.Time{} // group → when it last had local clients
	var refreshed time.Time
	m.guard(ctx, func(ctx context.Context) {
		for {
			now := time.Now()
			var fresh []string
			for _, g := range m.opt.Groups() {
				if _, ok := m.opt.GroupKind(g); !ok {
					continue // herald's internal groups
				}
				if _, ok := seen[g]; !ok {
					fresh = append(fresh, g)
				}
				seen[g] = now
			}
			if now.Sub(refreshed) >= m.opt.Refresh {
				all := make([]string, 0, len(seen))
				for g, t := range seen {
					if now.Sub(t) > m.opt.Linger {
						delete(seen, g)
						continue
					}
					all = append(all, g)
				}
				if err := m.join(ctx, all); err != nil {
					m.warn("channels_redis: renewing group memberships", "groups", len(all), "err", err)
				} else {
					refreshed = now
				}
			} else if len(fresh) > 0 {
				if err := m.join(ctx, fresh); err != nil {
					m.warn("channels_redis: joining groups", "groups", len(fresh), "err", err)
					for _, g := range fresh {
						delete(seen, g) // tried again on the next scan
					}
				}
			}
			if !sleep(ctx, m.opt.Scan) {
				return
			}
		}
	})
}

// join adds herald's channel to groups, 500 to a round trip.
func (m *Member) join(ctx context.Context, groups []string) error {
	if len(groups) == 0 {
		return nil
	}
	if err := joinScript.Load(ctx, m.rdb).Err(); err != nil {
		return fmt.Errorf("load script: %w", err)
	}
	expiry := int64(m.opt.GroupExpiry / time.Second)
	for len(groups) > 0 {
		n := min(len(groups), 500)
		now := unixSeconds(time.Now())
		pipe := m.rdb.Pipeline()
		for _, g := range groups[:n] {
			joinScript.EvalSha(ctx, pipe, []string{m.groupKey(g), m.registryKey()}, m.channel(g), now, expiry, g)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("group_add: %w", err)
		}
		groups = groups[n:]
	}
	return nil
}

// ingestCore reads herald's registry of joined groups (every Block) and
// pops their channels, each shard its own groups.
func (m *Member) ingestCore(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	m.readRegistry(ctx)
	for i := range m.opt.Shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.guard(ctx, func(ctx context.Context) { m.popShard(ctx, i) })
		}()
	}
	for sleep(ctx, m.opt.Block) {
		m.readRegistry(ctx)
	}
}

// readRegistry sets the keys each shard pops from the registry, and leaves
// the groups no process renewed for two Refresh periods.
func (m *Member) readRegistry(ctx context.Context) {
	entries, err := m.rdb.ZRangeWithScores(ctx, m.registryKey(), 0, -1).Result()
	if err != nil {
		if ctx.Err() == nil {
			m.warn("channels_redis: reading herald's groups", "err", err)
		}
		return
	}
	stale := unixSeconds(time.Now().Add(-2*m.opt.Refresh - m.opt.Block))
	keys := make([][]string, m.opt.Shards)
	for _, z := range entries {
		g, _ := z.Member.(string)
		if _, ok := m.opt.GroupKind(g); !ok {
			m.rdb.ZRem(ctx, m.registryKey(), g) // not one of ours
			continue
		}
		if z.Score < stale {
			if err := leaveScript.Run(ctx, m.rdb, []string{m.groupKey(g), m.registryKey()}, m.channel(g), g, stale).Err(); err != nil {
				m.warn("channels_redis: leaving a group", "group", g, "err", err)
			}
			// Its channel is still popped this once: what was sent
			// before the leave is taken.
		}
		i := m.shard(g)
		keys[i] = append(keys[i], m.channelKey(g))
	}
	for i := range keys {
		m.shardKeys[i].Store(&keys[i])
	}
}

// popBatch is how many messages of one group are taken in one round trip
// once one arrived, and recorded together.
const popBatch = maxBatch

// popShard pops the messages of one shard's groups and records them, one
// at a time. It checks the lease between pops and never abandons a
// blocking pop midway, which could lose a message Redis popped for it.
func (m *Member) popShard(ctx context.Context, i int) {
	for ctx.Err() == nil && m.leading() {
		var keys []string
		if p := m.shardKeys[i].Load(); p != nil {
			keys = *p
		}
		if len(keys) == 0 {
			if !sleep(ctx, m.opt.Block) {
				return
			}
			continue
		}
		pctx := context.WithoutCancel(ctx)
		first, err := m.bzpopmin(pctx, keys)
		if errors.Is(err, redis.Nil) {
			continue // nothing within Block
		}
		if err != nil {
			m.warn("channels_redis: popping messages", "err", err)
			if !sleep(ctx, m.opt.Block) {
				return
			}
			continue
		}
		batch := []redis.Z{first.Z}
		if more, err := m.rdb.ZPopMin(pctx, first.Key, popBatch-1).Result(); err == nil {
			batch = append(batch, more...)
		}
		group := m.groupOfKey(first.Key)
		if !m.leading() {
			// The lease ran out during the pop: another process may be
			// popping this group already, and the next leader takes these
			// first, in order.
			for _, z := range batch {
				raw, _ := z.Member.(string)
				m.giveBack(item{group: group, key: first.Key, member: raw, score: z.Score})
			}
			continue
		}
		items := make([]item, 0, len(batch))
		for _, z := range batch {
			raw, _ := z.Member.(string)
			it, ok := m.take(group, raw, true)
			if !ok {
				continue
			}
			it.key, it.member, it.score = first.Key, raw, z.Score
			items = append(items, it)
		}
		m.recordAll(ctx, items)
	}
}

// bzpopmin is BZPOPMIN keys… Block; the client's own rounds a timeout up
// to whole seconds.
func (m *Member) bzpopmin(ctx context.Context, keys []string) (*redis.ZWithKey, error) {
	args := make([]any, 0, len(keys)+2)
	args = append(args, "BZPOPMIN")
	for _, k := range keys {
		args = append(args, k)
	}
	args = append(args, strconv.FormatFloat(m.opt.Block.Seconds(), 'f', 3, 64))
	v, err := m.rdb.Do(ctx, args...).Slice()
	if err != nil {
		return nil, err
	}
	if len(v) != 3 {
		return nil, fmt.Errorf("BZPOPMIN: %d values in its reply", len(v))
	}
	key, _ := v[0].(string)
	member, _ := v[1].(string)
	score, _ := v[2].(string)
	f, err := strconv.ParseFloat(score, 64)
	if err != nil {
		return nil, fmt.Errorf("BZPOPMIN: score %q: %w", score, err)
	}
	return &redis.ZWithKey{Key: key, Z: redis.Z{Score: f, Member: member}}, nil
}

// ---- RedisPubSubChannelLayer ----

// ingestPubSub subscribes to every group's channel and queues what it
// receives for the shards' recorders. A message published while no
// process is subscribed (a failover, a lost connection) is lost: that is
// pub/sub.
func (m *Member) ingestPubSub(ctx context.Context) {
	ps := m.rdb.PSubscribe(ctx, m.pubsubPattern())
	defer ps.Close()
	groupPrefix := m.opt.Prefix + "__group__"
	for ctx.Err() == nil {
		v, err := ps.ReceiveTimeout(ctx, m.opt.Block)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || ctx.Err() != nil {
				continue
			}
			m.warn("channels_redis: pub/sub; what is published until it is back is lost", "err", err)
			if !sleep(ctx, m.opt.Block) {
				return
			}
			continue
		}
		msg, ok := v.(*redis.Message)
		if !ok {
			continue // subscription confirmations, pongs
		}
		group, ok := strings.CutPrefix(msg.Channel, groupPrefix)
		if !ok {
			continue
		}
		if !m.leading() {
			// Past the lease another process may be subscribed too.
			m.received.Add(1)
			m.drop(DropNotLeader, group, errors.New("received after the lease lapsed"))
			continue
		}
		it, ok := m.take(group, msg.Payload, false)
		if !ok {
			continue
		}
		m.enqueue(it)
	}
}

func (m *Member) enqueue(it item) {
	size := int64(len(it.data) + len(it.group) + len(it.typ))
	if m.queued.Add(size) > int64(m.opt.QueueBytes) {
		m.queued.Add(-size)
		m.drop(DropOverflow, it.group, errors.New("too much waiting to be recorded"))
		return
	}
	select {
	case m.queues[m.shard(it.group)] <- it:
	default:
		m.queued.Add(-size)
		m.drop(DropOverflow, it.group, errors.New("too many waiting to be recorded"))
	}
}

// recordQueue records one shard's queued messages in order, what is
// waiting (up to maxBatch) at once. At shutdown each one left gets one
// more try.
func (m *Member) recordQueue(ctx context.Context, q chan item) {
	batch := make([]item, 0, maxBatch)
	flush := func() {
		defer panics.Recover(m.log, m.opt.OnPanic, panics.ChannelsRedis)
		defer func() {
			for _, it := range batch {
				m.queued.Add(-int64(len(it.data) + len(it.group) + len(it.typ)))
			}
			clear(batch)
			batch = batch[:0]
		}()
		m.recordAll(ctx, batch)
	}
	// fill adds what is waiting, without waiting.
	fill := func() {
		for len(batch) < maxBatch {
			select {
			case it := <-q:
				batch = append(batch, it)
			default:
				return
			}
		}
	}
	for {
		select {
		case it := <-q:
			batch = append(batch, it)
			fill()
			flush()
		case <-ctx.Done():
			for {
				fill()
				if len(batch) == 0 {
					return
				}
				flush()
			}
		}
	}
}

// ---- logs ----

// warn logs at WARN within the member's log limit.
func (m *Member) warn(msg string, args ...any) {
	if ok, suppressed := m.logs.allow(time.Now()); ok {
		m.log.Warn(msg, append(args, "suppressed", suppressed)...)
	}
}

// logLimit lets through at most 20 lines a second of one kind of trouble,
// and tells how many it held back.
type logLimit struct {
	mu         sync.Mutex
	window     time.Time
	n          int
	suppressed int
}

func (l *logLimit) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.window) >= time.Second {
		l.window, l.n = now, 0
	}
	if l.n >= 20 {
		l.suppressed++
		return false, 0
	}
	l.n++
	s := l.suppressed
	l.suppressed = 0
	return true, s
}

// String names the member in logs.
func (m *Member) String() string {
	return "channels_redis " + string(m.opt.Layer) + " layer, prefix " + strconv.Quote(m.opt.Prefix)
}
