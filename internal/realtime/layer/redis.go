package layer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"golang.org/x/sync/singleflight"

	"github.com/heraldhq/herald/internal/panics"
)

// RedisOptions configures NewRedis.
type RedisOptions struct {
	// Prefix starts every key and channel name the layer uses (default
	// "herald:"). Deployments (or tests) sharing one Redis use distinct
	// prefixes; channels ignore the database number, so the prefix is what
	// keeps them apart.
	Prefix string
	// Sharded uses Redis Cluster: the URL names one or more seed nodes
	// (redis://host:port?addr=host2:port2), events go out with SPUBLISH and
	// each process keeps one SSUBSCRIBE connection per master node that owns
	// a group it has members in.
	Sharded bool
	// HistorySize and HistoryAge bound the window of each group's events
	// kept for resume, as in MemoryOptions (defaults DefaultHistorySize and
	// DefaultHistoryAge). A negative HistorySize keeps none.
	HistorySize int
	HistoryAge  time.Duration
	// Window, if set, gives each group's history window (its latest size events, none older than age); nil uses HistorySize and HistoryAge for every group.
	Window func(group string) (size int, age time.Duration)
	// StateTTL is how long a group's offset counter and epoch outlive its
	// last event (default 24h, and never less than the group's window's
	// age). Processes with members in the group keep it alive meanwhile. A
	// group whose state expired starts a new epoch.
	StateTTL time.Duration
	// SubscribeTimeout bounds how long Subscribe waits for Redis to confirm
	// a subscription (default 5s).
	SubscribeTimeout time.Duration
	// PingInterval is how long a subscriber connection may stay silent
	// before it is pinged, and PingTimeout how long the answer may take
	// before the connection is dropped and made again (defaults 1s, 3s).
	PingInterval time.Duration
	PingTimeout  time.Duration
	// MaxBackoff caps the delay between attempts to reconnect a subscriber
	// connection (default 5s; attempts start at 100ms and double).
	MaxBackoff time.Duration
	// OnLost, if set, is called with a subscribed group when this process
	// finds it cannot deliver some of the group's events: its history was
	// reset (Redis lost its data) or the events it missed while cut off
	// from Redis are no longer in the window. Local members should then
	// reconnect and resume, which tells them recovered=false. It is called
	// on the delivery path before any later event of the group is handed to
	// the handler; it must be quick and must not call Subscribe,
	// Unsubscribe or Publish synchronously.
	OnLost func(group string)
	// Log, if set, is the durable record behind Redis: History, the
	// subscriptions' gap fills and catch-ups read from it what Redis does
	// not hold (older than its window, or lost with its data), and the
	// position of a group Redis has no state of is the Log's. Events
	// published with their positions keep them, so an emptied Redis costs
	// no client a reload.
	Log Log
	// Redacts, if set, says which messages drop their group's window in
	// Redis as they are published, and a subscription's recent events as
	// they are received (Redacting). Every process of a deployment must
	// say the same.
	Redacts Redacting
	// Logger receives connection state changes (default slog.Default()).
	Logger *slog.Logger
	// OnPanic, if set, is told of each panic the layer recovered
	// (panics.Layer): while handling what a subscriber connection read
	// (the reader goes on with the next), in a turn of a background loop
	// (it goes on with the next turn), or while reading new subscriptions'
	// positions (their Subscribe fails).
	OnPanic func(where string)
}

// Redis is a channel layer shared by every herald process connected to the
// same Redis (or Redis Cluster). Offsets, epochs and history live in Redis,
// so a client can resume on any process.
//
// Per group, three keys and one channel share the hash tag {group}, so they
// live in one cluster slot:
//
//	<prefix>{<group>}:m  hash: epoch, last (the last assigned offset)
//	<prefix>{<group>}:h  list: the window, oldest first, "ms\noffset\nepoch\ntype\ndata"
//	<prefix>{<group>}:d  sorted set: publish keys (WithPublishKey) → offset, for deduplication
//	<prefix>{<group>}:c  the channel, carrying "offset\nepoch\ntype\ndata"
//
// Publish runs one Lua script that mints the epoch if the group has none,
// assigns the next offset, appends to and trims the window and publishes,
// so offsets are gap-free across processes and the channel carries each
// group's events in offset order.
//
// A process subscribes to a group's channel only while it has local
// members. Each subscriber connection is read by one goroutine that hands
// events to the handler in order; it drops an event it already delivered
// and fills a gap (an offset beyond the next expected one) from the history
// before delivering. After a reconnect every subscribed group is caught up
// from the history the same way, and if that is impossible (the window was
// exceeded, or the epoch changed because Redis lost its data) OnLost is
// called.
type Redis struct {
	handler func(Message)
	opt     RedisOptions
	log     *slog.Logger

	// cmd runs reads and bookkeeping (retries on network errors); pub runs
	// the publish script without retries, since a retried script could
	// publish an event twice.
	cmd     redis.UniversalClient
	pub     redis.UniversalClient
	cluster *redis.ClusterClient // cmd, in sharded mode

	id      string // random; with seq it makes the epochs this process mints unique
	seq     atomic.Uint64
	publish *redis.Script
	history *redis.Script
	// histFlight lets concurrent reads of one group's window from one
	// position share a round trip (sharedHistory).
	histFlight singleflight.Group

	// confirming are the subscriptions Redis confirmed for the first time,
	// whose position the confirmer reads next; confirmWake wakes it.
	confirmMu   sync.Mutex
	confirming  []*rsub
	confirmWake chan struct{}
	// Tests pause the confirmer here: before it reads the positions of a
	// batch, and after.
	testBeforeConfirm, testAfterPositions func([]*rsub)

	mu     sync.Mutex
	groups map[string]*rsub       // subscribed groups
	nodes  map[string]*subscriber // subscriber connections by node address ("" unsharded)
	closed bool

	stop chan struct{}
	wg   sync.WaitGroup

	stats redisCounters
}

type redisCounters struct {
	published, delivered, duplicates, gapFills, lost, reconnects atomic.Uint64
	localPositions, localHistory, sharedHistory                  atomic.Uint64
	logHistory, logPositions                                     atomic.Uint64
}

// RedisStats are the layer's counters.
type RedisStats struct {
	Published  uint64 // events this process published
	Delivered  uint64 // events handed to the handler
	Duplicates uint64 // events received again and dropped (after a catch-up)
	GapFills   uint64 // reads of the history to fill a gap or catch up
	Lost       uint64 // OnLost calls
	Reconnects uint64 // subscriber connections made again after a failure
	Groups     int    // subscribed groups
	// LocalPositions and LocalHistory count Position and History calls
	// answered from a subscription's own delivery state, without Redis.
	LocalPositions uint64
	LocalHistory   uint64
	// SharedHistory counts History calls whose read of the window was
	// shared with concurrent calls.
	SharedHistory uint64
	// LogHistory counts reads of events from the Log (History, gap fills
	// and catch-ups Redis could not serve), LogPositions positions read
	// from it for groups Redis had no state of.
	LogHistory   uint64
	LogPositions uint64
}

var _ Layer = (*Redis)(nil)

type publishKey struct{}

// WithPublishKey returns a context under which a Redis layer's Publish
// publishes an event at most once per key while the event is in its
// group's window: publishing again with the same key returns the offset the
// event got the first time and publishes nothing. The outbox relay uses the
// outbox row's identity, so a row published again after a failed commit
// does not reach clients twice. Other layers ignore it.
func WithPublishKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, publishKey{}, key)
}

// PublishKey returns the key set by WithPublishKey, or "".
func PublishKey(ctx context.Context) string {
	k, _ := ctx.Value(publishKey{}).(string)
	return k
}

// NewRedis returns a layer on the Redis at url (redis://[user:pass@]host:port/db,
// or rediss:// for TLS) that delivers the events of subscribed groups to
// handler. A Redis that is not reachable yet is not an error: the layer
// connects when it can (Ping reports it meanwhile); a URL or option that
// cannot work is. Close releases the connections.
func NewRedis(ctx context.Context, url string, handler func(Message), opts RedisOptions) (*Redis, error) {
	if opts.Prefix == "" {
		opts.Prefix = "herald:"
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("layer: redis prefix %q must not contain braces", opts.Prefix)
	}
	if opts.HistorySize == 0 {
		opts.HistorySize = DefaultHistorySize
	}
	if opts.HistorySize < 0 {
		opts.HistorySize = 0
	}
	if opts.HistoryAge <= 0 {
		opts.HistoryAge = DefaultHistoryAge
	}
	if opts.StateTTL <= 0 {
		opts.StateTTL = 24 * time.Hour
	}
	opts.StateTTL = max(opts.StateTTL, opts.HistoryAge)
	if opts.SubscribeTimeout <= 0 {
		opts.SubscribeTimeout = 5 * time.Second
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = time.Second
	}
	if opts.PingTimeout <= 0 {
		opts.PingTimeout = 3 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	clientLogOnce.Do(func() { redis.SetLogger(clientLog{opts.Logger}) })
	var b [8]byte
	_, _ = rand.Read(b[:])
	r := &Redis{
		handler:     handler,
		opt:         opts,
		log:         opts.Logger,
		id:          hex.EncodeToString(b[:]),
		publish:     redis.NewScript(publishScript),
		history:     redis.NewScript(historyScript),
		groups:      make(map[string]*rsub),
		nodes:       make(map[string]*subscriber),
		stop:        make(chan struct{}),
		confirmWake: make(chan struct{}, 1),
	}
	if opts.Sharded {
		co, err := redis.ParseClusterURL(url)
		if err != nil {
			return nil, fmt.Errorf("layer: redis cluster URL: %w", err)
		}
		tuneCluster(co)
		r.cluster = redis.NewClusterClient(co)
		r.cmd = r.cluster
		po := *co
		po.MaxRetries = -1
		r.pub = redis.NewClusterClient(&po)
	} else {
		o, err := redis.ParseURL(url)
		if err != nil {
			return nil, fmt.Errorf("layer: redis URL: %w", err)
		}
		tune(o)
		r.cmd = redis.NewClient(o)
		po := *o
		po.MaxRetries = -1
		r.pub = redis.NewClient(&po)
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	err := r.cmd.Ping(pctx).Err()
	cancel()
	if err != nil {
		r.log.Warn("channel layer: redis not reachable yet; will keep trying", "err", err)
	}
	if !opts.Sharded {
		// One subscriber connection for every group, made now so that the
		// first Subscribe does not wait for it.
		r.mu.Lock()
		r.subscriberLocked("")
		r.mu.Unlock()
	}
	r.wg.Add(2)
	go r.keeper()
	go r.confirmer()
	return r, nil
}

// clientLog sends the Redis client's own messages (every failed dial while
// Redis is down, for one) to debug level: the layer logs the state changes
// that matter once each.
type clientLog struct{ log *slog.Logger }

func (l clientLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis client: "+fmt.Sprintf(format, v...))
}

// The client's logger is global to the process; the first layer sets it.
var clientLogOnce sync.Once

func tune(o *redis.Options) {
	if o.Protocol == 0 {
		o.Protocol = 2 // plain RESP2: pub/sub replies are ordinary arrays
	}
	o.DisableIdentity = true
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	if o.DialTimeout == 0 {
		o.DialTimeout = 2 * time.Second
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = 3 * time.Second
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 3 * time.Second
	}
	if o.DialerRetries == 0 {
		o.DialerRetries = 1
	}
}

func tuneCluster(o *redis.ClusterOptions) {
	if o.Protocol == 0 {
		o.Protocol = 2
	}
	o.DisableIdentity = true
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	if o.DialTimeout == 0 {
		o.DialTimeout = 2 * time.Second
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = 3 * time.Second
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 3 * time.Second
	}
	if o.DialerRetries == 0 {
		o.DialerRetries = 1
	}
}

// Key names; all of a group's share the hash tag {group}.
func (r *Redis) key(group, kind string) string {
	return r.opt.Prefix + "{" + group + "}:" + kind
}

func (r *Redis) channel(group string) string { return r.key(group, "c") }

// publishScript keeps an event in its group's window and publishes it,
// atomically, at the next offset of the group or at the offset it brings.
//
// KEYS: state hash, history list, publish-key set.
// ARGV: channel, type, data, the group's history size and age (ms), state TTL (ms),
// epoch (the event's own, or one to mint if the group has none), publish key
// or "", publish command, "1" for a reset (TypeReset), the event's offset
// ("0": assign the next), "1" for an event that drops the window before it
// joins it (RedisOptions.Redacts).
// Returns {offset, epoch, 1 if the event was published before (nothing
// published now)}.
//
// A reset takes its epoch with last 0 and drops the window and the publish
// keys; its own key is kept in the state hash, so publishing it again does
// not start the group over a second time. An event with its own offset is
// a duplicate if the group is at that offset or past it in its epoch; if it
// does not follow the group's last (Redis lost its data, or the event's
// epoch is new here), the window starts over with it.
const publishScript = `
local meta, hist, seen = KEYS[1], KEYS[2], KEYS[3]
local size, age = tonumber(ARGV[4]), tonumber(ARGV[5])
local key = ARGV[8]
local given = tonumber(ARGV[11])
if ARGV[10] == '1' then
  local m = redis.call('HMGET', meta, 'epoch', 'reset')
  if m[1] and ((key ~= '' and m[2] == key) or m[1] == ARGV[7]) then
    return {0, m[1], 1}
  end
  redis.call('DEL', hist, seen)
  redis.call('HSET', meta, 'epoch', ARGV[7], 'last', 0, 'reset', key)
  redis.call('PEXPIRE', meta, ARGV[6])
  redis.call(ARGV[9], ARGV[1], '0\n' .. ARGV[7] .. '\n' .. ARGV[2] .. '\n' .. ARGV[3])
  return {0, ARGV[7], 0}
end
local off
local m = redis.call('HMGET', meta, 'epoch', 'last')
local epoch = m[1]
if given > 0 then
  local last = tonumber(m[2] or '0')
  if epoch == ARGV[7] and last >= given then
    return {given, epoch, 1}
  end
  if epoch ~= ARGV[7] or last ~= given - 1 then
    epoch = ARGV[7]
    redis.call('DEL', hist, seen)
    redis.call('HSET', meta, 'epoch', epoch)
  end
  redis.call('HSET', meta, 'last', given)
  off = given
else
  if not epoch then
    epoch = ARGV[7]
    redis.call('DEL', hist, seen)
    redis.call('HSET', meta, 'epoch', epoch, 'last', 0)
  end
  if key ~= '' then
    local prev = redis.call('ZSCORE', seen, key)
    if prev then
      return {tonumber(prev), epoch, 1}
    end
  end
  off = redis.call('HINCRBY', meta, 'last', 1)
end
local payload = off .. '\n' .. epoch .. '\n' .. ARGV[2] .. '\n' .. ARGV[3]
if size > 0 then
  if ARGV[12] == '1' then
    redis.call('DEL', hist)
  end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('RPUSH', hist, now .. '\n' .. payload)
  redis.call('LTRIM', hist, -size, -1)
  local cutoff = now - age
  for _ = 1, 64 do
    local e = redis.call('LINDEX', hist, 0)
    if (not e) or tonumber(string.match(e, '^%d+')) >= cutoff then break end
    redis.call('LPOP', hist)
  end
  redis.call('PEXPIRE', hist, age)
  if key ~= '' then
    redis.call('ZADD', seen, off, key)
    redis.call('ZREMRANGEBYSCORE', seen, '-inf', '(' .. (off - redis.call('LLEN', hist) + 1))
    redis.call('PEXPIRE', seen, age)
  end
end
redis.call('PEXPIRE', meta, ARGV[6])
redis.call(ARGV[9], ARGV[1], payload)
return {off, epoch, 0}
`

// historyScript reads the events of a group after an offset, if they are all
// in the window.
//
// KEYS: state hash, history list. ARGV: since, epoch ("" with since 0 = from
// the start), history age (ms).
// Returns {1, entries...} or {0} when the position is outside the window.
const historyScript = `
local m = redis.call('HMGET', KEYS[1], 'epoch', 'last')
local since = tonumber(ARGV[1])
if not m[1] then
  if ARGV[2] == '' and since == 0 then return {1} end
  return {0}
end
local last = tonumber(m[2])
if ARGV[2] == '' then
  if since ~= 0 then return {0} end
elseif ARGV[2] ~= m[1] then
  return {0}
end
if since > last then return {0} end
if since == last then return {1} end
local first = last - redis.call('LLEN', KEYS[2]) + 1
if since + 1 < first then return {0} end
local entries = redis.call('LRANGE', KEYS[2], since + 1 - first, -1)
if #entries == 0 then return {0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(string.match(entries[1], '^%d+')) < now - tonumber(ARGV[3]) then return {0} end
table.insert(entries, 1, 1)
return entries
`

// Publish implements Layer. It returns an error when Redis cannot be reached
// or did not answer; the event may or may not have been published then
// (publish it again with the same WithPublishKey to be sure it is published
// once).
func (r *Redis) Publish(ctx context.Context, msg Message) (uint64, error) {
	offs, err := r.PublishBatch(ctx, []Message{msg}, []string{PublishKey(ctx)})
	if err != nil {
		return 0, err
	}
	return offs[0], nil
}

// PublishBatch implements BatchPublisher: one pipeline of publish scripts,
// which Redis runs in order, so the outbox relay's round of events costs one
// round trip instead of one per event. Publish is a batch of one.
func (r *Redis) PublishBatch(ctx context.Context, msgs []Message, keys []string) ([]uint64, error) {
	if r.isClosed() {
		return nil, ErrClosed
	}
	if len(keys) != len(msgs) {
		return nil, fmt.Errorf("layer: publish batch: %d keys for %d messages", len(keys), len(msgs))
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	for _, m := range msgs {
		if strings.IndexByte(m.Type, '\n') >= 0 {
			return nil, fmt.Errorf("layer: publish to %q: type %q contains a newline", m.Group, m.Type)
		}
	}
	offs, err := r.publishPipeline(ctx, msgs, keys)
	if len(offs) == 0 && err != nil && strings.Contains(err.Error(), "NOSCRIPT") {
		// A restarted or flushed Redis forgot the script; EVALSHA in a
		// pipeline cannot fall back to EVAL by itself. Nothing ran.
		if lerr := r.publish.Load(ctx, r.pub).Err(); lerr != nil {
			return nil, fmt.Errorf("layer: load the publish script: %w", lerr)
		}
		offs, err = r.publishPipeline(ctx, msgs, keys)
	}
	return offs, err
}

func (r *Redis) publishPipeline(ctx context.Context, msgs []Message, keys []string) ([]uint64, error) {
	cmd := "PUBLISH"
	if r.opt.Sharded {
		cmd = "SPUBLISH"
	}
	cmds := make([]*redis.Cmd, len(msgs))
	// The pipeline's own error repeats the first command error, read below
	// per command.
	_, _ = r.pub.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range msgs {
			epoch := m.Epoch
			if epoch == "" || (m.Offset == 0 && m.Type != TypeReset) {
				epoch = r.id + "." + strconv.FormatUint(r.seq.Add(1), 36)
			}
			reset, redact := "0", "0"
			if m.Type == TypeReset {
				reset = "1"
			} else if r.opt.Redacts != nil && r.opt.Redacts(m) {
				redact = "1"
			}
			size, age := r.window(m.Group)
			cmds[i] = r.publish.EvalSha(ctx, p,
				[]string{r.key(m.Group, "m"), r.key(m.Group, "h"), r.key(m.Group, "d")},
				r.channel(m.Group), m.Type, m.Data, size, age.Milliseconds(),
				max(r.opt.StateTTL, age).Milliseconds(), epoch, keys[i], cmd, reset, m.Offset, redact)
		}
		return nil
	})
	offs := make([]uint64, 0, len(msgs))
	for i, c := range cmds {
		res, err := c.Slice()
		if err != nil {
			return offs, fmt.Errorf("layer: publish to %q: %w", msgs[i].Group, err)
		}
		if len(res) != 3 {
			return offs, fmt.Errorf("layer: publish to %q: unexpected reply %v", msgs[i].Group, res)
		}
		off, _ := res[0].(int64)
		if dup, _ := res[2].(int64); dup == 0 {
			r.stats.published.Add(1)
		}
		offs = append(offs, uint64(off))
	}
	return offs, nil
}

var _ BatchPublisher = (*Redis)(nil)

// History implements Layer, with the semantics of Memory.History. For a
// group this process is subscribed to, it is consistent with what the
// handler received, as the memory layer's is: it waits (up to
// historyWait) until the subscription has delivered the event at since,
// and returns nothing beyond the last event delivered so far, since those
// still reach the handler. Hub.JoinFrom relies on that to replay each event
// exactly once. If the subscription does not get there in time, ok is
// false.
func (r *Redis) History(ctx context.Context, group string, since uint64, epoch string) ([]Message, bool, error) {
	if r.isClosed() {
		return nil, false, ErrClosed
	}
	r.mu.Lock()
	s := r.groups[group]
	r.mu.Unlock()
	if s == nil {
		if err := r.Subscribing(); err != nil {
			return nil, false, fmt.Errorf("layer: history of %q: %w", group, err)
		}
		return r.windowOrLog(ctx, group, since, epoch, 0)
	}
	fromStart := epoch == "" && since == 0
	var unserved bool
	var readErr error
	_, sl, reached, err := s.await(ctx, func(se string, sl uint64) bool {
		return fromStart || (se == epoch && sl >= since)
	}, func() bool {
		// Not worth waiting for a position neither Redis nor the log can
		// serve.
		_, ok, err := r.windowOrLog(ctx, group, since, epoch, 0)
		unserved, readErr = !ok, err
		return unserved || err != nil
	})
	switch {
	case readErr != nil || unserved:
		return nil, false, readErr
	case err != nil:
		return nil, false, fmt.Errorf("layer: history of %q: %w", group, err)
	case !reached:
		r.log.Warn("channel layer: subscription did not reach a resumed position in time", "group", group, "since", since, "delivered", sl)
		return nil, false, nil
	}
	// A client where this process's delivery stands (a join, Hub.JoinFrom
	// from Position) or a little behind is replayed from the events this
	// process delivered last, without a round trip.
	if msgs, ok := s.since(since, epoch); ok {
		r.stats.localHistory.Add(1)
		return msgs, true, nil
	}
	// The read must hold every event delivered here by now; those after
	// it still reach the handler.
	_, de, delivered := s.position()
	msgs, ok, err := r.sharedHistory(ctx, group, since, epoch, delivered)
	if err != nil {
		return msgs, ok, err
	}
	if !ok {
		if r.opt.Log == nil || (de != epoch && !fromStart) {
			return nil, false, nil
		}
		// Older than Redis's window, or lost with its data: the log has
		// it, up to what was delivered here.
		if delivered == 0 {
			return nil, true, nil // nothing delivered yet: all of it comes through the handler
		}
		r.stats.logHistory.Add(1)
		if fromStart {
			return r.opt.Log.Read(ctx, group, de, 0, delivered)
		}
		return r.opt.Log.Read(ctx, group, epoch, since, delivered)
	}
	_, se, sl := s.position()
	if se == "" && sl == 0 {
		// Nothing delivered yet: all of it still comes through the handler.
		return nil, true, nil
	}
	for i, m := range msgs {
		if m.Epoch != se {
			// The group's history started over and this process has not
			// caught up with that yet (it will call OnLost when it does).
			return nil, false, nil
		}
		if m.Offset > sl {
			return msgs[:i], true, nil
		}
	}
	return msgs, true, nil
}

// windowOrLog reads the group's events after since from Redis's window,
// or from the Log, up to upTo (0: its last published), when Redis does not
// hold them all.
func (r *Redis) windowOrLog(ctx context.Context, group string, since uint64, epoch string, upTo uint64) ([]Message, bool, error) {
	msgs, ok, err := r.readHistory(ctx, group, since, epoch)
	if ok || r.opt.Log == nil {
		return msgs, ok, err
	}
	if err != nil {
		r.log.Debug("channel layer: history unreadable in redis; reading the log", "group", group, "err", err)
	} else if upTo == 0 && epoch != "" {
		// Events Redis has are committed, even those no relay has marked
		// published in the log yet: read up to them.
		if vals, herr := r.cmd.HMGet(ctx, r.key(group, "m"), "epoch", "last").Result(); herr == nil {
			if last, e, perr := parsePosition(vals); perr == nil && e == epoch {
				upTo = last
			}
		}
	}
	r.stats.logHistory.Add(1)
	return r.opt.Log.Read(ctx, group, epoch, since, upTo)
}

// historyWait bounds how long History waits for a subscription to deliver
// the event a client resumes from.
const historyWait = 3 * time.Second

// sharedHistory reads the group's window from Redis like readHistory, but
// concurrent reads from one position share a round trip: the clients of a
// room that resume together after a network blip all stand at the same
// offset. A shared read that began too early to hold the event at covered
// is not used; this call then reads on its own. Each caller gets its own
// copy of the slice (Hub.JoinFrom filters it in place).
func (r *Redis) sharedHistory(ctx context.Context, group string, since uint64, epoch string, covered uint64) ([]Message, bool, error) {
	key := group + "\x00" + epoch + "\x00" + strconv.FormatUint(since, 10)
	v, err, shared := r.histFlight.Do(key, func() (any, error) {
		// The read outlives a caller that gives up when others wait too.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), historyWait)
		defer cancel()
		msgs, ok, err := r.readHistory(ctx, group, since, epoch)
		return historyRead{msgs, ok}, err
	})
	if err != nil {
		return nil, false, err
	}
	res := v.(historyRead)
	last := since
	if n := len(res.msgs); n > 0 {
		last = res.msgs[n-1].Offset
	}
	if res.ok && last < covered {
		return r.readHistory(ctx, group, since, epoch)
	}
	if shared {
		r.stats.sharedHistory.Add(1)
	}
	return slices.Clone(res.msgs), res.ok, nil
}

type historyRead struct {
	msgs []Message
	ok   bool
}

// window is group's history window.
func (r *Redis) window(group string) (size int, age time.Duration) {
	return groupWindow(r.opt.Window, group, r.opt.HistorySize, r.opt.HistoryAge)
}

// readHistory reads the group's window from Redis.
func (r *Redis) readHistory(ctx context.Context, group string, since uint64, epoch string) ([]Message, bool, error) {
	_, age := r.window(group)
	res, err := r.history.Run(ctx, r.cmd, []string{r.key(group, "m"), r.key(group, "h")},
		since, epoch, age.Milliseconds()).Slice()
	if err != nil {
		return nil, false, fmt.Errorf("layer: history of %q: %w", group, err)
	}
	msgs, ok, err := decodeHistory(group, since, res)
	if err != nil {
		return nil, false, fmt.Errorf("layer: history of %q: %w", group, err)
	}
	return msgs, ok, nil
}

// decodeHistory reads historyScript's reply: {1, entries...} with the
// events after since, or {0} when they are not all in the window.
func decodeHistory(group string, since uint64, res []any) ([]Message, bool, error) {
	if len(res) == 0 {
		return nil, false, errors.New("empty reply")
	}
	if ok, _ := res[0].(int64); ok != 1 {
		return nil, false, nil
	}
	if len(res) == 1 {
		return nil, true, nil
	}
	out := make([]Message, 0, len(res)-1)
	want := since + 1
	for _, v := range res[1:] {
		s, _ := v.(string)
		_, rest, found := strings.Cut(s, "\n") // publish time
		m, perr := decodePayload(group, rest)
		if !found || perr != nil {
			return nil, false, fmt.Errorf("bad entry %.60q", s)
		}
		if m.Offset != want {
			return nil, false, fmt.Errorf("offset %d where %d was expected", m.Offset, want)
		}
		want++
		out = append(out, m)
	}
	return out, true, nil
}

// Position implements Layer. For a group this process is subscribed to, it
// is where the subscription's delivery stands, as History sees it: the last
// event handed to the handler, the events after it still to come. That is
// at most a few in-flight events behind Redis, which is all a joining client
// needs (it reads its snapshot afterwards and is replayed what follows), and
// costs no round trip, so a burst of clients joining a busy room does not
// queue on Redis.
func (r *Redis) Position(ctx context.Context, group string) (uint64, string, error) {
	if r.isClosed() {
		return 0, "", ErrClosed
	}
	if p, ok := r.localPosition(group); ok {
		return p.Offset, p.Epoch, nil
	}
	if err := r.Subscribing(); err != nil {
		return 0, "", fmt.Errorf("layer: position of %q: %w", group, err)
	}
	return r.readPosition(ctx, group)
}

// localPosition answers Position from the group's subscription, if this
// process has one that knows where the group stands.
func (r *Redis) localPosition(group string) (Position, bool) {
	r.mu.Lock()
	s := r.groups[group]
	r.mu.Unlock()
	if s == nil {
		return Position{}, false
	}
	known, epoch, last := s.position()
	if !known {
		return Position{}, false
	}
	r.stats.localPositions.Add(1)
	return Position{Offset: last, Epoch: epoch}, true
}

// Positions implements BatchPositioner: the groups this process is
// subscribed to are answered as Position answers them, the others read in
// one pipeline.
func (r *Redis) Positions(ctx context.Context, groups []string) ([]Position, error) {
	if r.isClosed() {
		return nil, ErrClosed
	}
	out := make([]Position, len(groups))
	var remote []string
	var at []int // index in out of each remote group
	for i, g := range groups {
		if p, ok := r.localPosition(g); ok {
			out[i] = p
			continue
		}
		remote = append(remote, g)
		at = append(at, i)
	}
	if len(remote) == 0 {
		return out, nil
	}
	if err := r.Subscribing(); err != nil {
		return nil, fmt.Errorf("layer: positions of %d groups: %w", len(remote), err)
	}
	ps, errs, err := r.readPositions(ctx, remote)
	if err != nil {
		return nil, err
	}
	for j, i := range at {
		if errs[j] != nil {
			return nil, errs[j]
		}
		out[i] = ps[j]
	}
	return out, nil
}

var _ BatchPositioner = (*Redis)(nil)

// Sync implements Syncer: it reads where the group stands in Redis and, if
// this process is subscribed to the group, waits (up to historyWait) until
// the subscription has delivered that far, resets included. The position
// returned is then the subscription's, as Position would answer it now.
func (r *Redis) Sync(ctx context.Context, group string) (Position, error) {
	off, epoch, err := r.readPosition(ctx, group)
	if err != nil {
		return Position{}, err
	}
	r.mu.Lock()
	s := r.groups[group]
	r.mu.Unlock()
	if s == nil {
		return Position{Offset: off, Epoch: epoch}, nil
	}
	se, sl, reached, err := s.await(ctx, func(se string, sl uint64) bool {
		return epoch == "" || (se == epoch && sl >= off)
	}, nil)
	switch {
	case err != nil:
		return Position{}, fmt.Errorf("layer: sync %q: %w", group, err)
	case !reached:
		return Position{}, fmt.Errorf("layer: sync %q: the subscription did not deliver offset %d of epoch %s in time (it stands at %d of %s)", group, off, epoch, sl, se)
	}
	return Position{Offset: sl, Epoch: se}, nil
}

var _ Syncer = (*Redis)(nil)

// readPosition reads the group's position from Redis.
func (r *Redis) readPosition(ctx context.Context, group string) (uint64, string, error) {
	ps, errs, err := r.readPositions(ctx, []string{group})
	if err == nil {
		err = errs[0]
	}
	if err != nil {
		return 0, "", err
	}
	return ps[0].Offset, ps[0].Epoch, nil
}

// readPositions reads the groups' positions from Redis in one pipeline. err
// is the round trip's; errs[i] is group i's, whose state in Redis could not
// be read.
func (r *Redis) readPositions(ctx context.Context, groups []string) (ps []Position, errs []error, err error) {
	if r.isClosed() {
		return nil, nil, ErrClosed
	}
	pipe := r.cmd.Pipeline()
	cmds := make([]*redis.SliceCmd, len(groups))
	for i, g := range groups {
		cmds[i] = pipe.HMGet(ctx, r.key(g, "m"), "epoch", "last")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		if len(groups) == 1 {
			return nil, nil, fmt.Errorf("layer: position of %q: %w", groups[0], err)
		}
		return nil, nil, fmt.Errorf("layer: positions of %d groups: %w", len(groups), err)
	}
	ps, errs = make([]Position, len(groups)), make([]error, len(groups))
	var missing []int
	for i, c := range cmds {
		if ps[i].Offset, ps[i].Epoch, errs[i] = parsePosition(c.Val()); errs[i] != nil {
			errs[i] = fmt.Errorf("layer: position of %q: %w", groups[i], errs[i])
		} else if ps[i].Epoch == "" {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 && r.opt.Log != nil {
		// No state in Redis: the group has no events, or Redis lost them.
		// The log knows which.
		names := make([]string, len(missing))
		for j, i := range missing {
			names[j] = groups[i]
		}
		lps, err := r.opt.Log.Positions(ctx, names)
		if err != nil {
			return nil, nil, fmt.Errorf("layer: positions of %d groups from the log: %w", len(names), err)
		}
		r.stats.logPositions.Add(uint64(len(names)))
		for j, i := range missing {
			ps[i] = lps[j]
		}
	}
	return ps, errs, nil
}

func parsePosition(vals []any) (uint64, string, error) {
	if len(vals) != 2 {
		return 0, "", fmt.Errorf("%d values in redis's answer to HMGET epoch last", len(vals))
	}
	epoch, _ := vals[0].(string)
	last, _ := vals[1].(string)
	if epoch == "" || last == "" {
		return 0, "", nil
	}
	off, err := strconv.ParseUint(last, 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("bad offset %q in redis", last)
	}
	// A group's state holds offset 0 only after a reset: (0, its epoch).
	return off, epoch, nil
}

// Ping reports whether Redis answers and every subscriber connection is up;
// readiness checks call it.
func (r *Redis) Ping(ctx context.Context) error {
	if r.isClosed() {
		return ErrClosed
	}
	if err := r.cmd.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return r.subscribers(func(sb *subscriber) bool { return sb.up() })
}

// Subscribing reports whether every subscriber connection is up, without
// a round trip. While one reconnects, a group this process does not serve
// yet cannot be subscribed: Position, Positions and History of such a group
// fail (errSubscribing), so a handshake that reads them before its upgrade
// is refused with 503 rather than accepted and then closed with 1011 when
// its join cannot subscribe. A group this process serves is answered from
// its own subscription, as during a Redis outage.
func (r *Redis) Subscribing() error {
	return r.subscribers(func(sb *subscriber) bool { return !sb.down() })
}

// subscribers reports the first subscriber connection that is not ok.
func (r *Redis) subscribers(ok func(*subscriber) bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for addr, sb := range r.nodes {
		if !ok(sb) {
			if addr == "" {
				return errors.New("redis: subscriber connection is reconnecting")
			}
			return fmt.Errorf("redis: subscriber connection to %s is reconnecting", addr)
		}
	}
	return nil
}

// Stats returns the layer's counters.
func (r *Redis) Stats() RedisStats {
	r.mu.Lock()
	n := len(r.groups)
	r.mu.Unlock()
	return RedisStats{
		Published:  r.stats.published.Load(),
		Delivered:  r.stats.delivered.Load(),
		Duplicates: r.stats.duplicates.Load(),
		GapFills:   r.stats.gapFills.Load(),
		Lost:       r.stats.lost.Load(),
		Reconnects: r.stats.reconnects.Load(),
		Groups:     n,

		LocalPositions: r.stats.localPositions.Load(),
		LocalHistory:   r.stats.localHistory.Load(),
		SharedHistory:  r.stats.sharedHistory.Load(),
		LogHistory:     r.stats.logHistory.Load(),
		LogPositions:   r.stats.logPositions.Load(),
	}
}

func (r *Redis) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// Close implements Layer: it closes the subscriber connections and the
// clients and waits for the layer's goroutines.
func (r *Redis) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.stop)
	nodes := make([]*subscriber, 0, len(r.nodes))
	for _, sb := range r.nodes {
		nodes = append(nodes, sb)
	}
	r.mu.Unlock()
	for _, sb := range nodes {
		sb.close()
	}
	r.wg.Wait()
	return errors.Join(r.cmd.Close(), r.pub.Close())
}

// keeper refreshes the state TTL of subscribed groups, so a quiet group
// with members keeps its epoch, and in sharded mode moves groups whose slot
// moved to another node.
func (r *Redis) keeper() {
	defer r.wg.Done()
	refresh := max(r.opt.StateTTL/4, time.Second)
	lastRefresh := time.Now()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		if r.opt.Sharded {
			r.guarded(r.rebalance)
		}
		if time.Since(lastRefresh) >= refresh {
			lastRefresh = time.Now()
			r.guarded(r.refreshState)
		}
	}
}

// guarded runs f, one turn of a background loop: a panic in it is
// reported and the loop goes on with its next turn.
func (r *Redis) guarded(f func()) {
	defer panics.Recover(r.log, r.opt.OnPanic, panics.Layer)
	f()
}

func (r *Redis) panicked(p any) {
	panics.Report(r.log, r.opt.OnPanic, panics.Layer, p)
}

func (r *Redis) refreshState() {
	r.mu.Lock()
	groups := make([]string, 0, len(r.groups))
	for g := range r.groups {
		groups = append(groups, g)
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(groups) > 0 {
		n := min(len(groups), 512)
		pipe := r.cmd.Pipeline()
		for _, g := range groups[:n] {
			pipe.PExpire(ctx, r.key(g, "m"), r.opt.StateTTL)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			r.log.Debug("channel layer: refresh group state TTL", "err", err)
			return
		}
		groups = groups[n:]
	}
}

// decodePayload parses an event as the channel carries it (the history
// list holds the same text after the publish time; the Lua script builds
// both): "offset\nepoch\ntype\ndata".
func decodePayload(group, s string) (Message, error) {
	offs, rest, ok1 := strings.Cut(s, "\n")
	epoch, rest, ok2 := strings.Cut(rest, "\n")
	typ, data, ok3 := strings.Cut(rest, "\n")
	if !ok1 || !ok2 || !ok3 {
		return Message{}, errors.New("layer: malformed event")
	}
	off, err := strconv.ParseUint(offs, 10, 64)
	if err != nil || (off == 0) != (typ == TypeReset) || epoch == "" {
		return Message{}, errors.New("layer: malformed event")
	}
	// Type and Epoch outlive the payload (maps keyed by type, a
	// subscription's epoch): as substrings they would keep the whole
	// payload, data included, alive with them.
	return Message{Group: group, Type: internType(typ), Data: []byte(data), Offset: off, Epoch: strings.Clone(epoch)}, nil
}

// internType returns typ as a string of its own: a constant for the event
// types herald publishes (no allocation per event), else a clone.
func internType(typ string) string {
	for _, t := range [...]string{"comment", "contribution", "update", "release", "milestone",
		"new_application", "application_update", "quest_created", TypeReset} {
		if typ == t {
			return t
		}
	}
	return strings.Clone(typ)
}
