package channelsredis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
)

// event is what a Member handed to Record.
type event struct {
	group, typ string
	data       []byte
}

// sink records what Members hand over, optionally failing.
type sink struct {
	mu      sync.Mutex
	events  []event
	fail    func(event) error
	batches int
}

func (s *sink) record(_ context.Context, group, typ string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := event{group, typ, bytes.Clone(data)}
	if s.fail != nil {
		if err := s.fail(e); err != nil {
			return err
		}
	}
	s.events = append(s.events, e)
	return nil
}

// recordBatch records events as one call, all or none; batches counts the
// calls of more than one event.
func (s *sink) recordBatch(ctx context.Context, evs []Event) error {
	s.mu.Lock()
	if s.fail != nil {
		for _, e := range evs {
			if err := s.fail(event{e.Group, e.Type, e.Data}); err != nil {
				s.mu.Unlock()
				return err
			}
		}
	}
	s.batches++
	s.mu.Unlock()
	for _, e := range evs {
		s.mu.Lock()
		s.events = append(s.events, event{e.Group, e.Type, bytes.Clone(e.Data)})
		s.mu.Unlock()
	}
	return nil
}

func (s *sink) all() []event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]event(nil), s.events...)
}

func (s *sink) setFail(f func(event) error) {
	s.mu.Lock()
	s.fail = f
	s.mu.Unlock()
}

// groups is a settable Options.Groups.
type groups struct {
	mu sync.Mutex
	gs []string
}

func (g *groups) set(gs ...string) {
	g.mu.Lock()
	g.gs = gs
	g.mu.Unlock()
}

func (g *groups) list() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.gs...)
}

func groupKind(g string) (string, bool) {
	kind, _, ok := platform.ParseGroup(g)
	return kind, ok
}

// running is a Member running until the test ends or stop.
type running struct {
	*Member
	stop func()
}

func start(t *testing.T, url string, layer Layer, s *sink, gs *groups, tweak ...func(*Options)) *running {
	t.Helper()
	opt := Options{
		Layer: layer, Record: s.record, GroupKind: groupKind, Groups: gs.list,
		Logger: slog.New(slog.DiscardHandler),
		Scan:   20 * time.Millisecond, Block: 200 * time.Millisecond, LockTTL: 600 * time.Millisecond,
		Refresh: time.Second, MaxHold: time.Minute,
	}
	for _, f := range tweak {
		f(&opt)
	}
	m, err := New(context.Background(), url, opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	var once sync.Once
	r := &running{Member: m, stop: func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("Run did not return within 30 s of its context's end")
			}
			m.Close()
		})
	}}
	t.Cleanup(r.stop)
	return r
}

// waitFor polls cond until it holds, failing t after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// joined waits until herald's channel is in group's sorted set and the
// leader pops it (it is in herald's registry, which the leader reads
// every Block: one more Block after it appears).
func joined(t *testing.T, c *redis.Client, group string, members ...*running) {
	t.Helper()
	ctx := context.Background()
	waitFor(t, "herald's channel in "+group, func() bool {
		return c.ZScore(ctx, "asgi:group:"+group, "herald."+group).Err() == nil
	})
	waitFor(t, "a leader popping "+group, func() bool {
		for _, m := range members {
			if !m.leading() {
				continue
			}
			for i := range m.shardKeys {
				if p := m.shardKeys[i].Load(); p != nil {
					for _, k := range *p {
						if k == "asgiherald."+group {
							return true
						}
					}
				}
			}
		}
		return false
	})
}

// subscribed waits until a leader listens to every group's channel.
func subscribed(t *testing.T, c *redis.Client, members ...*running) {
	t.Helper()
	waitFor(t, "a pub/sub leader", func() bool {
		n, err := c.PubSubNumPat(context.Background()).Result()
		if err != nil || n < 1 {
			return false
		}
		for _, m := range members {
			if m.leading() {
				return true
			}
		}
		return false
	})
}

// store writes b as group_send of RedisChannelLayer stores a message for
// herald's channel of group: a member of its sorted set scored by the send
// time, with the key's expiry (the group_send Lua script's ZADD, EXPIRE).
func store(t *testing.T, c *redis.Client, group string, b []byte, at float64) {
	t.Helper()
	ctx := context.Background()
	key := "asgiherald." + group
	if err := c.ZAdd(ctx, key, redis.Z{Score: at, Member: b}).Err(); err != nil {
		t.Fatal(err)
	}
	c.Expire(ctx, key, 60*time.Second)
}

// coreBytes is a message as RedisChannelLayer stores it: 12 random bytes,
// then msgpack with __asgi_channel__.
func coreBytes(t *testing.T, group string, msg map[string]any, seq int) []byte {
	t.Helper()
	m := map[string]any{"__asgi_channel__": []string{"herald." + group}}
	for k, v := range msg {
		m[k] = v
	}
	b, err := msgpack.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("%012d", seq) // distinct, as the random prefix makes them
	return append([]byte(prefix), b...)
}

func pubsubBytes(t *testing.T, msg map[string]any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func now() float64 { return float64(time.Now().UnixMicro()) / 1e6 }

func TestCoreTakesWhatChannelsRedisStores(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client()
	s, gs := &sink{}, &groups{}
	gs.set("quest_5", "campaign_9", "ctl_user_3")
	m := start(t, srv.URL(), Core, s, gs)
	joined(t, c, "quest_5", m)
	joined(t, c, "campaign_9", m)
	ctx := context.Background()
	// group_add's expiry, which herald never shortens.
	if ttl := c.TTL(ctx, "asgi:group:quest_5").Val(); ttl < 86000*time.Second {
		t.Errorf("group key expires in %v", ttl)
	}
	if n := c.Exists(ctx, "asgi:group:ctl_user_3").Val(); n != 0 {
		t.Error("herald joined its internal group ctl_user_3")
	}

	// Golden messages written by channels_redis itself.
	at := now()
	store(t, c, "quest_5", golden(t, "new_application", "core"), at)
	store(t, c, "campaign_9", golden(t, "contribution", "core"), at+0.001)
	waitFor(t, "two events", func() bool { return len(s.all()) == 2 })
	got := s.all()
	byGroup := map[string]event{got[0].group: got[0], got[1].group: got[1]}
	if e := byGroup["quest_5"]; e.typ != "new_application" || !sameJSON(t, e.data, golden(t, "new_application", "json")) {
		t.Errorf("quest_5: %s %s", e.typ, e.data)
	}
	if e := byGroup["campaign_9"]; e.typ != "contribution" || !sameJSON(t, e.data, golden(t, "contribution", "json")) {
		t.Errorf("campaign_9: %s %s", e.typ, e.data)
	}
	if n := c.ZCard(ctx, "asgiherald.quest_5").Val(); n != 0 {
		t.Errorf("%d messages left in the channel", n)
	}
	if st := m.Stats(); st.Received != 2 || st.Recorded != 2 || !st.Leader {
		t.Errorf("stats %+v", st)
	}
}

func TestPubSubTakesWhatChannelsRedisPublishes(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client()
	s := &sink{}
	m := start(t, srv.URL(), PubSub, s, &groups{})
	subscribed(t, c, m)
	ctx := context.Background()
	c.Publish(ctx, "asgi__group__user_12", golden(t, "application_update", "pubsub"))
	c.Publish(ctx, "asgi__group__campaign_9", golden(t, "extremes", "pubsub"))
	waitFor(t, "two events", func() bool { return len(s.all()) == 2 })
	got := map[string]event{}
	for _, e := range s.all() {
		got[e.group] = e
	}
	if e := got["user_12"]; e.typ != "application_update" || !sameJSON(t, e.data, golden(t, "application_update", "json")) {
		t.Errorf("user_12: %s %s", e.typ, e.data)
	}
	if e := got["campaign_9"]; e.typ != "update" || !sameJSON(t, e.data, golden(t, "extremes", "json")) {
		t.Errorf("campaign_9: %s %s", e.typ, e.data)
	}
}

// hostile is what no Channels consumer would have handled, each with the
// reason it is dropped for.
func hostile(t *testing.T) []struct {
	name, reason, group string
	msg                 []byte
} {
	ok := map[string]any{"type": "new_application", "data": 1}
	return []struct {
		name, reason, group string
		msg                 []byte
	}{
		{"oversized", DropTooLarge, "quest_5", pubsubBytes(t, map[string]any{"type": "x", "data": strings.Repeat("a", 5000)})},
		{"garbage", DropUndecodable, "quest_5", []byte("\xc1\xc1\xc1 not msgpack")},
		{"type not a string", DropUndecodable, "quest_5", pubsubBytes(t, map[string]any{"type": 3, "data": 1})},
		{"bytes data", DropUndecodable, "quest_5", pubsubBytes(t, map[string]any{"type": "x", "data": []byte("b")})},
		{"no data", DropUndecodable, "quest_5", pubsubBytes(t, map[string]any{"type": "x"})},
		{"bad type", DropType, "quest_5", pubsubBytes(t, map[string]any{"type": "_private", "data": 1})},
		{"bad group", DropGroup, "quest_05", pubsubBytes(t, ok)},
		{"internal group", DropGroup, "ctl_user_1", pubsubBytes(t, ok)},
		{"foreign group", DropGroup, "chat_lobby", pubsubBytes(t, ok)},
	}
}

func TestHostileMessagesAreDroppedAndCounted(t *testing.T) {
	t.Run("pubsub", func(t *testing.T) {
		srv := redistest.Start(t)
		c := srv.Client()
		s := &sink{}
		m := start(t, srv.URL(), PubSub, s, &groups{}, func(o *Options) { o.MaxMessage = 4096 })
		subscribed(t, c, m)
		want := map[string]uint64{}
		for _, h := range hostile(t) {
			c.Publish(context.Background(), "asgi__group__"+h.group, h.msg)
			want[h.reason]++
		}
		c.Publish(context.Background(), "asgi__group__quest_5", pubsubBytes(t, map[string]any{"type": "new_application", "data": "after"}))
		waitFor(t, "the good message after the bad ones", func() bool { return len(s.all()) == 1 })
		if e := s.all()[0]; string(e.data) != `"after"` {
			t.Errorf("recorded %s", e.data)
		}
		st := m.Stats()
		for reason, n := range want {
			if st.Dropped[reason] != n {
				t.Errorf("dropped %s: %d, want %d (%v)", reason, st.Dropped[reason], n, st.Dropped)
			}
		}
		if st.Received != uint64(len(hostile(t))+1) || st.Recorded != 1 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("core", func(t *testing.T) {
		srv := redistest.Start(t)
		c := srv.Client()
		s, gs := &sink{}, &groups{}
		gs.set("quest_5")
		m := start(t, srv.URL(), Core, s, gs, func(o *Options) { o.MaxMessage = 4096 })
		joined(t, c, "quest_5", m)
		// Entries no herald process wrote in its registry are never popped.
		c.ZAdd(context.Background(), "asgi:herald:groups", redis.Z{Score: now(), Member: "quest_05"})
		store(t, c, "quest_05", coreBytes(t, "quest_05", map[string]any{"type": "x", "data": 1}, 0), now())
		want := map[string]uint64{}
		at := now()
		for i, h := range hostile(t) {
			if h.group != "quest_5" {
				continue
			}
			store(t, c, "quest_5", append([]byte(fmt.Sprintf("%012d", i)), h.msg...), at+float64(i)/1000)
			want[h.reason]++
		}
		store(t, c, "quest_5", []byte("short"), at+0.5) // shorter than the random prefix
		want[DropUndecodable]++
		store(t, c, "quest_5", coreBytes(t, "quest_5", map[string]any{"type": "new_application", "data": "after"}, 99), at+1)
		waitFor(t, "the good message after the bad ones", func() bool { return len(s.all()) == 1 })
		if e := s.all()[0]; string(e.data) != `"after"` {
			t.Errorf("recorded %s", e.data)
		}
		st := m.Stats()
		for reason, n := range want {
			if st.Dropped[reason] != n {
				t.Errorf("dropped %s: %d, want %d (%v)", reason, st.Dropped[reason], n, st.Dropped)
			}
		}
		waitFor(t, "quest_05 out of the registry", func() bool {
			return c.ZScore(context.Background(), "asgi:herald:groups", "quest_05").Err() == redis.Nil
		})
		if n := c.ZCard(context.Background(), "asgiherald.quest_05").Val(); n != 1 {
			t.Errorf("the message for quest_05 was taken (%d left)", n)
		}
	})
}

// TestOneDeliveryAcrossProcesses: three members of one layer (three herald
// processes) record each message once, in the order it was sent.
func TestOneDeliveryAcrossProcesses(t *testing.T) {
	const n = 300
	for _, layer := range []Layer{Core, PubSub} {
		t.Run(string(layer), func(t *testing.T) {
			srv := redistest.Start(t)
			c := srv.Client()
			s, gs := &sink{}, &groups{}
			gs.set("quest_5", "user_7")
			var ms []*running
			for range 3 {
				ms = append(ms, start(t, srv.URL(), layer, s, gs, func(o *Options) { o.RecordBatch = s.recordBatch }))
			}
			if layer == Core {
				joined(t, c, "quest_5", ms...)
				joined(t, c, "user_7", ms...)
			} else {
				subscribed(t, c, ms...)
			}
			at := now()
			for i := range n {
				group := []string{"quest_5", "user_7"}[i%2]
				msg := map[string]any{"type": "new_application", "data": i}
				if layer == Core {
					store(t, c, group, coreBytes(t, group, msg, i), at+float64(i)/1e4)
				} else {
					c.Publish(context.Background(), "asgi__group__"+group, pubsubBytes(t, msg))
				}
			}
			waitFor(t, "every message", func() bool { return len(s.all()) >= n })
			next := map[string]int{"quest_5": 0, "user_7": 1}
			for _, e := range s.all() {
				i, _ := strconv.Atoi(string(e.data))
				if i != next[e.group] {
					t.Fatalf("%s: got message %d, want %d", e.group, i, next[e.group])
				}
				next[e.group] += 2
			}
			if got := len(s.all()); got != n {
				t.Errorf("%d recorded, want %d", got, n)
			}
			leaders := 0
			for _, m := range ms {
				if m.Stats().Leader {
					leaders++
				}
			}
			if leaders != 1 {
				t.Errorf("%d leaders", leaders)
			}
		})
	}
}

// TestFailover: when the leader stops another member takes over; with the
// core layer what was sent meanwhile waited in Redis and is not lost.
func TestFailover(t *testing.T) {
	for _, layer := range []Layer{Core, PubSub} {
		t.Run(string(layer), func(t *testing.T) {
			srv := redistest.Start(t)
			c := srv.Client()
			s, gs := &sink{}, &groups{}
			gs.set("campaign_1")
			a := start(t, srv.URL(), layer, s, gs)
			send := func(i int) {
				msg := map[string]any{"type": "comment_message", "data": i}
				if layer == Core {
					store(t, c, "campaign_1", coreBytes(t, "campaign_1", msg, i), now())
				} else {
					c.Publish(context.Background(), "asgi__group__campaign_1", pubsubBytes(t, msg))
				}
			}
			if layer == Core {
				joined(t, c, "campaign_1", a)
			} else {
				subscribed(t, c, a)
			}
			b := start(t, srv.URL(), layer, s, gs)
			send(0)
			waitFor(t, "message 0", func() bool { return len(s.all()) == 1 })
			a.stop()
			if layer == Core {
				send(1) // waits in Redis for the next leader
				joined(t, c, "campaign_1", b)
			} else {
				// a's subscription may outlive it a moment in Redis: b
				// listens once it has dropped a probe to a group herald
				// does not serve.
				waitFor(t, "b subscribed", func() bool {
					c.Publish(context.Background(), "asgi__group__probe", pubsubBytes(t, map[string]any{"type": "x", "data": 1}))
					time.Sleep(10 * time.Millisecond)
					return b.Stats().Dropped[DropGroup] > 0
				})
				send(1)
			}
			waitFor(t, "message 1", func() bool { return len(s.all()) == 2 })
			if e := s.all()[1]; e.typ != "comment" || string(e.data) != "1" {
				t.Errorf("recorded %s %s", e.typ, e.data)
			}
		})
	}
}

// TestRecordFailures: a failing Record is retried, in order and without
// loss; a rejected message is dropped; at shutdown a core message still
// unrecorded goes back to its channel for the next leader.
func TestRecordFailures(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client()
	s, gs := &sink{}, &groups{}
	gs.set("quest_5")
	failures := 3
	s.setFail(func(e event) error {
		switch {
		case string(e.data) == `"reject me"`:
			return fmt.Errorf("%w: not for the log", ErrRejected)
		case failures > 0:
			failures--
			return errors.New("database down")
		}
		return nil
	})
	m := start(t, srv.URL(), Core, s, gs)
	joined(t, c, "quest_5", m)
	at := now()
	for i, d := range []string{"1", "reject me", "2"} {
		store(t, c, "quest_5", coreBytes(t, "quest_5", map[string]any{"type": "new_application", "data": d}, i), at+float64(i)/1000)
	}
	waitFor(t, "two events", func() bool { return len(s.all()) == 2 })
	if got := s.all(); string(got[0].data) != `"1"` || string(got[1].data) != `"2"` {
		t.Errorf("recorded %s then %s", got[0].data, got[1].data)
	}
	if st := m.Stats(); st.Dropped[DropRejected] != 1 || st.Recorded != 2 {
		t.Errorf("stats %+v", st)
	}

	s.setFail(func(event) error { return errors.New("database down") })
	store(t, c, "quest_5", coreBytes(t, "quest_5", map[string]any{"type": "new_application", "data": "held"}, 9), now())
	waitFor(t, "the message taken", func() bool { return c.ZCard(context.Background(), "asgiherald.quest_5").Val() == 0 })
	m.stop()
	if n := c.ZCard(context.Background(), "asgiherald.quest_5").Val(); n != 1 {
		t.Fatalf("%d messages given back, want 1", n)
	}
	if st := m.Stats(); st.Returned != 1 {
		t.Errorf("stats %+v", st)
	}
	s.setFail(nil)
	next := start(t, srv.URL(), Core, s, gs)
	joined(t, c, "quest_5", next)
	waitFor(t, "the given back message recorded", func() bool { return len(s.all()) == 3 })
	if e := s.all()[2]; string(e.data) != `"held"` {
		t.Errorf("recorded %s", e.data)
	}
}

// TestMembershipFollowsClients: herald joins a group as its clients do,
// stays for Linger after the last one left, then leaves it.
func TestMembershipFollowsClients(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client()
	s, gs := &sink{}, &groups{}
	gs.set("user_1")
	m := start(t, srv.URL(), Core, s, gs, func(o *Options) {
		o.Refresh = 200 * time.Millisecond
		o.Linger = 300 * time.Millisecond
	})
	joined(t, c, "user_1", m)
	// A consumer of the Django app in the same group keeps its place.
	ctx := context.Background()
	c.ZAdd(ctx, "asgi:group:user_1", redis.Z{Score: now(), Member: "specific.abc!def"})
	gs.set("user_2")
	joined(t, c, "user_2", m)
	waitFor(t, "herald out of user_1", func() bool {
		return c.ZScore(ctx, "asgi:group:user_1", "herald.user_1").Err() == redis.Nil &&
			c.ZScore(ctx, "asgi:herald:groups", "user_1").Err() == redis.Nil
	})
	if c.ZScore(ctx, "asgi:group:user_1", "specific.abc!def").Err() != nil {
		t.Error("the Django consumer's membership was removed")
	}
	if c.ZScore(ctx, "asgi:group:user_2", "herald.user_2").Err() != nil {
		t.Error("herald left user_2, which has a client")
	}
}

// TestBatchRefusedFallsBackToOneAtATime: a group's waiting messages are
// recorded in one call; a batch the log refuses is recorded message by
// message, so only the refused one is dropped and the others keep their
// order.
func TestBatchRefusedFallsBackToOneAtATime(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client()
	s, gs := &sink{}, &groups{}
	s.setFail(func(e event) error {
		if string(e.data) == `"reject me"` {
			return fmt.Errorf("%w: not for the log", ErrRejected)
		}
		return nil
	})
	gs.set("quest_5", "user_5")
	// Waiting before herald takes them: each group's popped together.
	at := now()
	for i, d := range []string{"1", "2", "3"} {
		store(t, c, "quest_5", coreBytes(t, "quest_5", map[string]any{"type": "new_application", "data": d}, i), at+float64(i)/1000)
	}
	for i, d := range []string{"a", "reject me", "b"} {
		store(t, c, "user_5", coreBytes(t, "user_5", map[string]any{"type": "application_update", "data": d}, 10+i), at+float64(i)/1000)
	}
	m := start(t, srv.URL(), Core, s, gs, func(o *Options) { o.RecordBatch = s.recordBatch })
	waitFor(t, "five events", func() bool { return len(s.all()) == 5 })
	got := map[string][]string{}
	for _, e := range s.all() {
		got[e.group] = append(got[e.group], string(e.data))
	}
	if q, u := strings.Join(got["quest_5"], " "), strings.Join(got["user_5"], " "); q != `"1" "2" "3"` || u != `"a" "b"` {
		t.Errorf("recorded quest_5 %s, user_5 %s", q, u)
	}
	if st := m.Stats(); st.Dropped[DropRejected] != 1 || st.Recorded != 5 {
		t.Errorf("stats %+v", st)
	}
	s.mu.Lock()
	batches := s.batches
	s.mu.Unlock()
	if batches != 1 {
		t.Errorf("%d calls recorded batches, want 1 (quest_5's)", batches)
	}
}
