package layer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
)

// sink collects what a layer delivers.
type sink struct {
	mu   sync.Mutex
	msgs map[string][]Message
	lost []string
	cond *sync.Cond
}

func newSink() *sink {
	s := &sink{msgs: map[string][]Message{}}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *sink) handle(m Message) {
	s.mu.Lock()
	s.msgs[m.Group] = append(s.msgs[m.Group], m)
	s.cond.Broadcast()
	s.mu.Unlock()
}

func (s *sink) onLost(g string) {
	s.mu.Lock()
	s.lost = append(s.lost, g)
	s.cond.Broadcast()
	s.mu.Unlock()
}

func (s *sink) lostGroups() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lost)
}

// wait returns the group's messages once there are at least n, failing the
// test after timeout.
func (s *sink) wait(t *testing.T, group string, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.Now().Add(timeout)
	stop := time.AfterFunc(timeout, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.msgs[group]) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: got %d messages within %v, want %d", group, len(s.msgs[group]), timeout, n)
		}
		s.cond.Wait()
	}
	return slices.Clone(s.msgs[group])
}

func (s *sink) get(group string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs[group])
}

// checkOffsets fails unless msgs are offsets from..from+len-1 of one epoch,
// in order.
func checkOffsets(t *testing.T, what string, msgs []Message, from uint64) {
	t.Helper()
	for i, m := range msgs {
		if m.Offset != from+uint64(i) {
			t.Fatalf("%s: message %d has offset %d, want %d (all: %v)", what, i, m.Offset, from+uint64(i), offsets(msgs))
		}
		if m.Epoch != msgs[0].Epoch {
			t.Fatalf("%s: message %d has epoch %q, first had %q", what, i, m.Epoch, msgs[0].Epoch)
		}
	}
}

func offsets(msgs []Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Offset
	}
	return out
}

func newTestRedis(t *testing.T, url string, s *sink, opts RedisOptions) *Redis {
	t.Helper()
	if opts.OnLost == nil {
		opts.OnLost = s.onLost
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 500 * time.Millisecond
	}
	r, err := NewRedis(context.Background(), url, s.handle, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func publishN(t *testing.T, r *Redis, group string, n int) {
	t.Helper()
	for i := range n {
		if _, err := r.Publish(context.Background(), Message{Group: group, Type: "t", Data: fmt.Appendf(nil, `{"i":%d}`, i)}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRedisDeliversAcrossLayersOnlyToSubscribers(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	url := redistest.SharedURL()
	sa, sb := newSink(), newSink()
	a := newTestRedis(t, url, sa, RedisOptions{Prefix: prefix})
	b := newTestRedis(t, url, sb, RedisOptions{Prefix: prefix})

	if off, epoch, err := b.Position(ctx, "g"); err != nil || off != 0 || epoch != "" {
		t.Fatalf("position of an unused group = %d %q %v, want 0 \"\"", off, epoch, err)
	}
	if err := b.Subscribe(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	// Published right after Subscribe returned: must arrive.
	for i := 1; i <= 5; i++ {
		off, err := a.Publish(ctx, Message{Group: "g", Type: "comment", Data: []byte(`{"id":` + strconv.Itoa(i) + `}`)})
		if err != nil || off != uint64(i) {
			t.Fatalf("publish %d: offset %d, %v", i, off, err)
		}
	}
	publishN(t, a, "other", 3)
	got := sb.wait(t, "g", 5, 5*time.Second)
	checkOffsets(t, "b", got, 1)
	if got[0].Type != "comment" || string(got[4].Data) != `{"id":5}` {
		t.Fatalf("message = %+v", got[4])
	}
	if off, epoch, err := a.Position(ctx, "g"); err != nil || off != 5 || epoch != got[0].Epoch {
		t.Fatalf("position = %d %q %v, want 5 %q", off, epoch, err, got[0].Epoch)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(sa.get("g")); n != 0 {
		t.Fatalf("unsubscribed layer received %d messages", n)
	}
	if n := len(sb.get("other")); n != 0 {
		t.Fatalf("layer received %d messages of a group it did not subscribe to", n)
	}

	if err := b.Unsubscribe(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	publishN(t, a, "g", 1)
	time.Sleep(100 * time.Millisecond)
	if n := len(sb.get("g")); n != 5 {
		t.Fatalf("after unsubscribe: %d messages, want 5", n)
	}
	// Subscribing again delivers from the next event on.
	if err := b.Subscribe(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	publishN(t, a, "g", 1)
	got = sb.wait(t, "g", 6, 5*time.Second)
	if got[5].Offset != 7 {
		t.Fatalf("after resubscribing got offset %d, want 7", got[5].Offset)
	}
}

func TestRedisOffsetsGapFreeAcrossConcurrentPublishers(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	url := redistest.SharedURL()
	const layers, perLayer = 3, 300
	groups := []string{"g0", "g1", "g2"}
	sinks := make([]*sink, layers)
	rs := make([]*Redis, layers)
	for i := range layers {
		sinks[i] = newSink()
		rs[i] = newTestRedis(t, url, sinks[i], RedisOptions{Prefix: prefix, HistorySize: 10000})
		for _, g := range groups {
			if err := rs[i].Subscribe(ctx, g); err != nil {
				t.Fatal(err)
			}
		}
	}
	var wg sync.WaitGroup
	for i := range layers {
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range perLayer / 2 {
					g := groups[(i+w+j)%len(groups)]
					if _, err := rs[i].Publish(ctx, Message{Group: g, Type: "t", Data: []byte(`1`)}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	total := 0
	for _, g := range groups {
		want, _, err := rs[0].readPosition(ctx, g) // Redis itself: the subscriptions may still be delivering
		if err != nil {
			t.Fatal(err)
		}
		total += int(want)
		for i := range layers {
			got := sinks[i].wait(t, g, int(want), 10*time.Second)
			if len(got) != int(want) {
				t.Fatalf("layer %d group %s: %d messages, want %d", i, g, len(got), want)
			}
			checkOffsets(t, fmt.Sprintf("layer %d group %s", i, g), got, 1)
		}
		h, ok, err := rs[1].History(ctx, g, 0, "")
		if err != nil || !ok || len(h) != int(want) {
			t.Fatalf("history of %s: %d msgs, ok=%v, err=%v; want %d", g, len(h), ok, err, want)
		}
		checkOffsets(t, "history "+g, h, 1)
	}
	if total != layers*perLayer {
		t.Fatalf("published %d, want %d", total, layers*perLayer)
	}
}

func TestRedisHistoryWindow(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	s := newSink()
	r := newTestRedis(t, redistest.SharedURL(), s, RedisOptions{Prefix: prefix, HistorySize: 5, HistoryAge: 600 * time.Millisecond})

	if msgs, ok, err := r.History(ctx, "g", 0, ""); err != nil || !ok || len(msgs) != 0 {
		t.Fatalf("history of an unused group from the start: %v %v %v", msgs, ok, err)
	}
	if _, ok, _ := r.History(ctx, "g", 3, "x"); ok {
		t.Fatal("history of an unused group with a position must not be ok")
	}
	publishN(t, r, "g", 12)
	_, epoch, _ := r.Position(ctx, "g")
	cases := []struct {
		since uint64
		epoch string
		ok    bool
		n     int
	}{
		{12, epoch, true, 0},
		{11, epoch, true, 1},
		{7, epoch, true, 5},
		{6, epoch, false, 0}, // offset 7 is the oldest kept
		{13, epoch, false, 0},
		{11, "other", false, 0},
		{0, "", false, 0}, // offset 1 is gone
		{11, "", false, 0},
	}
	for _, c := range cases {
		msgs, ok, err := r.History(ctx, "g", c.since, c.epoch)
		if err != nil || ok != c.ok || len(msgs) != c.n {
			t.Errorf("History(%d, %q) = %d msgs, ok=%v, err=%v; want %d, %v", c.since, c.epoch, len(msgs), ok, err, c.n, c.ok)
			continue
		}
		if c.n > 0 {
			checkOffsets(t, "history", msgs, c.since+1)
			if msgs[0].Epoch != epoch || string(msgs[len(msgs)-1].Data) != `{"i":11}` {
				t.Errorf("History(%d) = %+v", c.since, msgs)
			}
		}
	}
	// By age: everything expires; the position stays, so a client that saw
	// everything still resumes, one that did not is told it cannot.
	time.Sleep(700 * time.Millisecond)
	if msgs, ok, err := r.History(ctx, "g", 12, epoch); err != nil || !ok || len(msgs) != 0 {
		t.Fatalf("history at the head after expiry: %v %v %v", msgs, ok, err)
	}
	if _, ok, _ := r.History(ctx, "g", 11, epoch); ok {
		t.Fatal("an expired event was still served")
	}
	// A publish trims expired entries; the new one is served.
	publishN(t, r, "g", 1)
	if msgs, ok, err := r.History(ctx, "g", 12, epoch); err != nil || !ok || len(msgs) != 1 || msgs[0].Offset != 13 {
		t.Fatalf("history after a new event: %v %v %v", msgs, ok, err)
	}
	if off, e, _ := r.Position(ctx, "g"); off != 13 || e != epoch {
		t.Fatalf("position = %d %q, want 13 %q", off, e, epoch)
	}
}

func TestRedisPublishKeyPublishesOnce(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	s := newSink()
	r := newTestRedis(t, redistest.SharedURL(), s, RedisOptions{Prefix: prefix})
	if err := r.Subscribe(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	kctx := WithPublishKey(ctx, "outbox:41")
	o1, err := r.Publish(kctx, Message{Group: "g", Type: "t", Data: []byte(`"a"`)})
	if err != nil {
		t.Fatal(err)
	}
	o2, err := r.Publish(kctx, Message{Group: "g", Type: "t", Data: []byte(`"a"`)})
	if err != nil || o2 != o1 {
		t.Fatalf("publish again with the same key: offset %d, %v; want %d", o2, err, o1)
	}
	o3, err := r.Publish(WithPublishKey(ctx, "outbox:42"), Message{Group: "g", Type: "t", Data: []byte(`"b"`)})
	if err != nil || o3 != o1+1 {
		t.Fatalf("next key: offset %d, %v", o3, err)
	}
	got := s.wait(t, "g", 2, 5*time.Second)
	time.Sleep(100 * time.Millisecond)
	if got = s.get("g"); len(got) != 2 || string(got[1].Data) != `"b"` {
		t.Fatalf("delivered %+v, want a then b", got)
	}
	if st := r.Stats(); st.Published != 2 {
		t.Fatalf("stats: published %d, want 2", st.Published)
	}
}

// silentPublish records an event in the group's state and history without
// publishing it, as if this process had missed it on the channel.
func silentPublish(t *testing.T, r *Redis, group string) {
	t.Helper()
	_, err := r.publish.Run(context.Background(), r.pub,
		[]string{r.key(group, "m"), r.key(group, "h"), r.key(group, "d")},
		r.channel(group), "t", `"silent"`, r.opt.HistorySize, r.opt.HistoryAge.Milliseconds(),
		r.opt.StateTTL.Milliseconds(), "x.1", "", "EXISTS", "0", 0).Result()
	if err != nil {
		t.Fatal(err)
	}
}

func TestRedisFillsGapsFromHistory(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	s := newSink()
	r := newTestRedis(t, redistest.SharedURL(), s, RedisOptions{Prefix: prefix})
	if err := r.Subscribe(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	publishN(t, r, "g", 2)
	silentPublish(t, r, "g")
	silentPublish(t, r, "g")
	publishN(t, r, "g", 1)
	got := s.wait(t, "g", 5, 5*time.Second)
	checkOffsets(t, "with a gap", got, 1)
	if string(got[2].Data) != `"silent"` || string(got[3].Data) != `"silent"` {
		t.Fatalf("filled messages = %+v", got[2:4])
	}
	if st := r.Stats(); st.GapFills != 1 || st.Lost != 0 {
		t.Fatalf("stats = %+v, want one gap fill and nothing lost", st)
	}

	// A gap beyond the window cannot be filled: OnLost, then delivery goes on.
	small := newSink()
	r2 := newTestRedis(t, redistest.SharedURL(), small, RedisOptions{Prefix: prefix, HistorySize: 2})
	if err := r2.Subscribe(ctx, "h"); err != nil {
		t.Fatal(err)
	}
	publishN(t, r2, "h", 1)
	for range 3 {
		silentPublish(t, r2, "h")
	}
	publishN(t, r2, "h", 1)
	got = small.wait(t, "h", 2, 5*time.Second)
	if got[0].Offset != 1 || got[1].Offset != 5 {
		t.Fatalf("offsets %v, want 1 then 5", offsets(got))
	}
	if l := small.lostGroups(); !slices.Equal(l, []string{"h"}) {
		t.Fatalf("OnLost calls = %v, want [h]", l)
	}
}

func TestRedisNewEpochWhenStateIsLost(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	s := newSink()
	r := newTestRedis(t, redistest.SharedURL(), s, RedisOptions{Prefix: prefix})
	if err := r.Subscribe(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	publishN(t, r, "g", 3)
	first := s.wait(t, "g", 3, 5*time.Second)
	// What a FLUSHALL or a restart without persistence does to the group.
	opt, _ := redis.ParseURL(redistest.SharedURL())
	c := redis.NewClient(opt)
	defer c.Close()
	if err := c.Del(ctx, r.key("g", "m"), r.key("g", "h"), r.key("g", "d")).Err(); err != nil {
		t.Fatal(err)
	}
	// A process not subscribed to the group reads Redis and sees the loss.
	other := newTestRedis(t, redistest.SharedURL(), newSink(), RedisOptions{Prefix: prefix})
	if off, epoch, _ := other.Position(ctx, "g"); off != 0 || epoch != "" {
		t.Fatalf("position after the loss = %d %q", off, epoch)
	}
	if _, ok, _ := other.History(ctx, "g", 3, first[0].Epoch); ok {
		t.Fatal("history of the lost epoch must not be ok")
	}
	// The subscribed one answers from its delivery, which is complete so
	// far; it learns of the loss with the group's next event (OnLost).
	if off, epoch, _ := r.Position(ctx, "g"); off != 3 || epoch != first[0].Epoch {
		t.Fatalf("subscribed position after the loss = %d %q; want where its delivery stands", off, epoch)
	}
	publishN(t, r, "g", 2)
	got := s.wait(t, "g", 5, 5*time.Second)
	if got[3].Offset != 1 || got[4].Offset != 2 || got[3].Epoch == first[0].Epoch || got[3].Epoch != got[4].Epoch {
		t.Fatalf("after the loss: %+v", got[3:])
	}
	if l := s.lostGroups(); !slices.Equal(l, []string{"g"}) {
		t.Fatalf("OnLost calls = %v, want [g]", l)
	}
	if _, ok, _ := r.History(ctx, "g", 3, first[0].Epoch); ok {
		t.Fatal("an old position must not resume in the new epoch")
	}
	if msgs, ok, _ := r.History(ctx, "g", 0, ""); !ok || len(msgs) != 2 {
		t.Fatalf("new epoch from the start: %d msgs, ok=%v", len(msgs), ok)
	}
}

func TestRedisRejectsBadInput(t *testing.T) {
	if _, err := NewRedis(context.Background(), "http://x", func(Message) {}, RedisOptions{}); err == nil {
		t.Fatal("a non-redis URL was accepted")
	}
	if _, err := NewRedis(context.Background(), redistest.SharedURL(), func(Message) {}, RedisOptions{Prefix: "a{b}"}); err == nil {
		t.Fatal("a prefix with braces was accepted")
	}
	r := newTestRedis(t, redistest.SharedURL(), newSink(), RedisOptions{Prefix: redistest.Prefix(t)})
	if _, err := r.Publish(context.Background(), Message{Group: "g", Type: "a\nb"}); err == nil {
		t.Fatal("a type with a newline was accepted")
	}
	r.Close()
	if _, err := r.Publish(context.Background(), Message{Group: "g", Type: "t"}); err != ErrClosed {
		t.Fatalf("publish after close: %v", err)
	}
	if err := r.Subscribe(context.Background(), "g"); err != ErrClosed {
		t.Fatalf("subscribe after close: %v", err)
	}
}

// History on a process subscribed to the group never runs ahead of what
// the subscription delivered, and waits for it to reach the position asked
// for: a resume replays each event once, whatever is still in flight.
func TestRedisHistoryFollowsLocalDelivery(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	s := newSink()
	r := newTestRedis(t, redistest.SharedURL(), s, RedisOptions{Prefix: prefix})
	other := newTestRedis(t, redistest.SharedURL(), newSink(), RedisOptions{Prefix: prefix})
	if err := r.Subscribe(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	publishN(t, r, "g", 3)
	epoch := s.wait(t, "g", 3, 5*time.Second)[0].Epoch
	silentPublish(t, r, "g") // 4 and 5: in Redis, not yet delivered here
	silentPublish(t, r, "g")
	if msgs, ok, err := r.History(ctx, "g", 1, epoch); err != nil || !ok || len(msgs) != 2 || msgs[1].Offset != 3 {
		t.Fatalf("History(1) = %v %v %v, want offsets 2 and 3 only", offsets(msgs), ok, err)
	}
	if msgs, ok, _ := other.History(ctx, "g", 1, epoch); !ok || len(msgs) != 4 {
		t.Fatalf("a process not subscribed reads all of Redis: %v %v", offsets(msgs), ok)
	}
	type result struct {
		msgs []Message
		ok   bool
		err  error
	}
	done := make(chan result, 1)
	go func() {
		msgs, ok, err := r.History(ctx, "g", 5, epoch)
		done <- result{msgs, ok, err}
	}()
	select {
	case res := <-done:
		t.Fatalf("History(5) answered before offset 5 was delivered: %+v", res)
	case <-time.After(100 * time.Millisecond):
	}
	publishN(t, other, "g", 1) // 6: fills 4 and 5 here
	res := <-done
	if res.err != nil || !res.ok || len(res.msgs) > 1 || (len(res.msgs) == 1 && res.msgs[0].Offset != 6) {
		t.Fatalf("History(5) = %v %v %v", offsets(res.msgs), res.ok, res.err)
	}
	checkOffsets(t, "delivered", s.wait(t, "g", 6, 5*time.Second), 1)
}

// A subscribed group's position and an up-to-date client's history come
// from the subscription's own delivery state, without a round trip; a client
// behind it is still replayed from Redis.
func TestRedisLocalPositionAndHistory(t *testing.T) {
	ctx := context.Background()
	s := newSink()
	r := newTestRedis(t, redistest.SharedURL(), s, RedisOptions{Prefix: redistest.Prefix(t)})
	if err := r.Subscribe(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	publishN(t, r, "g", 3)
	got := s.wait(t, "g", 3, 5*time.Second)
	before := r.Stats()
	off, epoch, err := r.Position(ctx, "g")
	if err != nil || off != 3 || epoch != got[2].Epoch {
		t.Fatalf("position %d %q %v; want 3 %q", off, epoch, err, got[2].Epoch)
	}
	msgs, ok, err := r.History(ctx, "g", 3, epoch)
	if err != nil || !ok || len(msgs) != 0 {
		t.Fatalf("history from the current position: %v %v %v", msgs, ok, err)
	}
	after := r.Stats()
	if after.LocalPositions != before.LocalPositions+1 || after.LocalHistory != before.LocalHistory+1 {
		t.Fatalf("stats %+v after %+v: not answered locally", after, before)
	}
	// A client a little behind: replayed from the events delivered here.
	msgs, ok, err = r.History(ctx, "g", 1, epoch)
	if err != nil || !ok || len(msgs) != 2 || msgs[0].Offset != 2 || msgs[1].Offset != 3 {
		t.Fatalf("history from offset 1: %v %v %v", msgs, ok, err)
	}
	if r.Stats().LocalHistory != after.LocalHistory+1 {
		t.Fatal("a client a little behind was not answered from the recent events")
	}
	msgs[0].Offset = 99
	if again, _, _ := r.History(ctx, "g", 1, epoch); again[0].Offset != 2 {
		t.Fatal("callers share the recent events' slice")
	}
	// Further behind than the recent events: Redis's history answers.
	publishN(t, r, "g", recentEvents)
	s.wait(t, "g", 3+recentEvents, 5*time.Second)
	local := r.Stats().LocalHistory
	msgs, ok, err = r.History(ctx, "g", 1, epoch)
	if err != nil || !ok || len(msgs) != 2+recentEvents || msgs[0].Offset != 2 {
		t.Fatalf("history from offset 1 after %d more: %d events, %v %v", recentEvents, len(msgs), ok, err)
	}
	if r.Stats().LocalHistory != local {
		t.Fatal("a client beyond the recent events was answered without reading the history")
	}
	// Not subscribed: Redis answers.
	if off, _, err := r.Position(ctx, "other"); err != nil || off != 0 || r.Stats().LocalPositions != after.LocalPositions {
		t.Fatalf("position of an unsubscribed group: %d %v", off, err)
	}
}

// A batch is published in order with gap-free offsets per group, once per
// publish key even when sent again, and still after Redis forgot the script.
func TestRedisPublishBatch(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s := newSink()
	r := newTestRedis(t, srv.URL(), s, RedisOptions{Prefix: "b:"})
	for _, g := range []string{"a", "b"} {
		if err := r.Subscribe(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	batch := func(from, n int) ([]Message, []string) {
		var msgs []Message
		var keys []string
		for i := from; i < from+n; i++ {
			msgs = append(msgs, Message{Group: []string{"a", "b"}[i%2], Type: "t", Data: fmt.Appendf(nil, `{"i":%d}`, i)})
			keys = append(keys, fmt.Sprintf("k%d", i))
		}
		return msgs, keys
	}
	msgs, keys := batch(0, 40)
	offs, err := r.PublishBatch(ctx, msgs, keys)
	if err != nil || len(offs) != 40 || offs[0] != 1 || offs[1] != 1 || offs[38] != 20 || offs[39] != 20 {
		t.Fatalf("offsets %v, %v", offs, err)
	}
	// The same keys again: the same offsets, nothing published.
	again, err := r.PublishBatch(ctx, msgs, keys)
	if err != nil || !slices.Equal(again, offs) {
		t.Fatalf("published again: %v, %v", again, err)
	}
	// Redis forgets the script (a restart without persistence of scripts).
	if err := redis.NewClient(&redis.Options{Addr: srv.Addr()}).ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	msgs, keys = batch(40, 10)
	if offs, err := r.PublishBatch(ctx, msgs, keys); err != nil || len(offs) != 10 || offs[9] != 25 {
		t.Fatalf("after SCRIPT FLUSH: %v, %v", offs, err)
	}
	for _, g := range []string{"a", "b"} {
		got := s.wait(t, g, 25, 5*time.Second)
		checkOffsets(t, "group "+g, got, 1)
		for i, m := range got {
			want := 2*i + map[string]int{"a": 0, "b": 1}[g]
			if string(m.Data) != fmt.Sprintf(`{"i":%d}`, want) {
				t.Fatalf("group %s message %d = %s; want i=%d", g, i, m.Data, want)
			}
		}
	}
	if _, err := r.PublishBatch(ctx, msgs, keys[:1]); err == nil {
		t.Fatal("a batch with fewer keys than messages was accepted")
	}
}

// Clients resuming together from one position share one read of the
// window, each gets a copy of its own, and a shared read that cannot hold
// what this process already delivered is not used.
func TestRedisConcurrentResumesShareARead(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	s := newSink()
	r := newTestRedis(t, srv.URL(), s, RedisOptions{Prefix: redistest.Prefix(t)})
	if err := r.Subscribe(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	// More than the subscription keeps, so a resume from offset 1 reads
	// Redis's history.
	const published = recentEvents + 5
	publishN(t, r, "g", published)
	epoch := s.wait(t, "g", published, 5*time.Second)[0].Epoch
	want := make([]uint64, 0, published-1)
	for o := uint64(2); o <= published; o++ {
		want = append(want, o)
	}

	const n = 20
	// read runs n concurrent reads of the window after offset 1 while
	// Redis is stopped, so they all wait on the first one's round trip.
	read := func(covered uint64) ([][]Message, []error) {
		got, errs := make([][]Message, n), make([]error, n)
		srv.Pause()
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var ok bool
				if covered == 0 {
					got[i], ok, errs[i] = r.History(ctx, "g", 1, epoch)
				} else {
					got[i], ok, errs[i] = r.sharedHistory(ctx, "g", 1, epoch, covered)
				}
				if errs[i] == nil && !ok {
					errs[i] = fmt.Errorf("not in the window")
				}
			}()
		}
		time.Sleep(200 * time.Millisecond)
		srv.Resume()
		wg.Wait()
		return got, errs
	}
	got, errs := read(0)
	for i := range n {
		if errs[i] != nil || !slices.Equal(offsets(got[i]), want) {
			t.Fatalf("reader %d: %v %v, want offsets 2-%d", i, offsets(got[i]), errs[i], published)
		}
	}
	if shared := r.Stats().SharedHistory; shared != n {
		t.Fatalf("%d of %d concurrent reads shared a round trip", shared, n)
	}
	got[0][0].Offset = 99
	if got[1][0].Offset != 2 {
		t.Fatal("readers share one slice")
	}

	// A read that ends at the last offset cannot stand in for one that
	// must reach two further: every caller reads again on its own.
	got, errs = read(published + 2)
	for i := range n {
		if errs[i] != nil || len(got[i]) != published-1 {
			t.Fatalf("reader %d: %v %v", i, offsets(got[i]), errs[i])
		}
	}
	if shared := r.Stats().SharedHistory; shared != n {
		t.Fatalf("a read too early to hold the offset asked for was shared: %d", shared-n)
	}
}

// A subscription's recent events stay consecutive and bounded, and answer
// only what they hold entirely.
func TestRecentEvents(t *testing.T) {
	s := &rsub{known: true}
	ev := func(epoch string, off uint64, size int) Message {
		return Message{Group: "g", Epoch: epoch, Offset: off, Data: make([]byte, size)}
	}
	check := func(since uint64, epoch string, want []uint64, wantOK bool) {
		t.Helper()
		got, ok := s.since(since, epoch)
		if ok != wantOK || !slices.Equal(offsets(got), want) {
			t.Fatalf("since(%d, %q) = %v %v; want %v %v", since, epoch, offsets(got), ok, want, wantOK)
		}
	}
	for o := uint64(1); o <= 3; o++ {
		s.delivered(ev("e", o, 10))
	}
	check(1, "e", []uint64{2, 3}, true)
	check(3, "e", nil, true)
	check(0, "e", []uint64{1, 2, 3}, true)
	check(4, "e", nil, false)
	check(1, "x", nil, false)
	// A gap (events filled in from elsewhere, or lost) starts over.
	s.delivered(ev("e", 5, 10))
	check(3, "e", nil, false)
	check(4, "e", []uint64{5}, true)
	// Bounded by count…
	for o := uint64(6); o <= 200; o++ {
		s.delivered(ev("e", o, 10))
	}
	if got, ok := s.since(200-recentEvents, "e"); !ok || len(got) != recentEvents {
		t.Fatalf("the last %d events: %d, %v", recentEvents, len(got), ok)
	}
	check(200-recentEvents-1, "e", nil, false)
	// …and by bytes, keeping at least the last event.
	s.delivered(ev("e", 201, recentBytes))
	check(199, "e", nil, false)
	check(200, "e", []uint64{201}, true)
	// A new epoch starts over.
	s.forget()
	s.epoch, s.last = "f", 0
	s.delivered(ev("f", 1, 10))
	check(0, "f", []uint64{1}, true)
	check(200, "e", nil, false)
}

// waitEarly waits until s holds n events received before its position.
func waitEarly(t *testing.T, s *rsub, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d events of %s kept before its position", n, s.group), 5*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.early) == n
	})
}

// A new group's position is read off the subscriber connection's reader:
// the events of groups already subscribed keep arriving meanwhile, and the
// new group's events that arrive before its position is known are delivered
// after it, in order, those the position covers left out.
func TestRedisConfirmsOffTheReader(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	url := redistest.SharedURL()
	s := newSink()
	r := newTestRedis(t, url, s, RedisOptions{Prefix: prefix})
	pub := newTestRedis(t, url, newSink(), RedisOptions{Prefix: prefix})
	if err := r.Subscribe(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	publishN(t, pub, "new", 2) // offsets 1 and 2, before the subscription

	var once sync.Once
	r.testBeforeConfirm = func(subs []*rsub) {
		once.Do(func() {
			// Confirmed, position not read yet: the reader is free to
			// deliver another group's event, and keeps the new group's.
			publishN(t, pub, "old", 1)
			s.wait(t, "old", 1, 5*time.Second)
			publishN(t, pub, "new", 2) // 3 and 4: the position will cover them
			waitEarly(t, subs[0], 2)
		})
	}
	var once2 sync.Once
	r.testAfterPositions = func(subs []*rsub) {
		once2.Do(func() {
			publishN(t, pub, "new", 2) // 5 and 6: after the position
			waitEarly(t, subs[0], 4)
			if got := s.get("new"); len(got) != 0 {
				t.Errorf("delivered before the position was known: %v", offsets(got))
			}
		})
	}
	if err := r.Subscribe(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	if off, _, err := r.Position(ctx, "new"); err != nil || off != 6 {
		t.Fatalf("position after subscribing = %d, %v; want 6", off, err)
	}
	publishN(t, pub, "new", 1)
	got := s.wait(t, "new", 3, 5*time.Second)
	checkOffsets(t, "new", got, 5)
	if len(got) != 3 {
		t.Fatalf("new: got offsets %v, want [5 6 7]", offsets(got))
	}
}

// Subscriptions confirmed while the confirmer is busy share its next read
// of positions: one pipeline for the lot.
func TestRedisBatchesConfirmations(t *testing.T) {
	ctx := context.Background()
	s := newSink()
	r := newTestRedis(t, redistest.SharedURL(), s, RedisOptions{Prefix: redistest.Prefix(t)})
	var (
		mu      sync.Mutex
		batches []int
	)
	gate := make(chan struct{})
	r.testBeforeConfirm = func(subs []*rsub) {
		mu.Lock()
		batches = append(batches, len(subs))
		first := len(batches) == 1
		mu.Unlock()
		if first {
			<-gate
		}
	}
	const n = 50
	errs := make(chan error, n)
	subscribe := func(i int) { errs <- r.Subscribe(ctx, fmt.Sprintf("g%d", i)) }
	// The first confirmation holds the confirmer; the others queue.
	go subscribe(0)
	waitFor(t, "the first confirmation", 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(batches) == 1
	})
	for i := 1; i < n; i++ {
		go subscribe(i)
	}
	waitFor(t, "the other confirmations to queue", 5*time.Second, func() bool {
		r.confirmMu.Lock()
		defer r.confirmMu.Unlock()
		return len(r.confirming) == n-1
	})
	close(gate)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(batches, []int{1, n - 1}) {
		t.Fatalf("confirmation batches %v, want [1 %d]", batches, n-1)
	}
}

// Positions answers as Position would for each group: from the subscription
// for a subscribed group, from Redis (one pipeline) for the others.
func TestRedisPositions(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	s := newSink()
	r := newTestRedis(t, redistest.SharedURL(), s, RedisOptions{Prefix: prefix})
	pub := newTestRedis(t, redistest.SharedURL(), newSink(), RedisOptions{Prefix: prefix})
	if err := r.Subscribe(ctx, "sub"); err != nil {
		t.Fatal(err)
	}
	publishN(t, pub, "sub", 3)
	s.wait(t, "sub", 3, 5*time.Second)
	publishN(t, pub, "far", 2)

	groups := []string{"sub", "far", "none", "far"}
	local := r.Stats().LocalPositions
	got, err := r.Positions(ctx, groups)
	if err != nil {
		t.Fatal(err)
	}
	if n := r.Stats().LocalPositions - local; n != 1 {
		t.Fatalf("%d positions answered locally, want 1 (the subscribed group)", n)
	}
	for i, g := range groups {
		off, epoch, err := pub.Position(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		if want := (Position{Offset: off, Epoch: epoch}); got[i] != want {
			t.Fatalf("Positions[%d] (%s) = %+v, Position says %+v", i, g, got[i], want)
		}
	}
	if got[0].Offset != 3 || got[1].Offset != 2 || got[2] != (Position{}) || got[0].Epoch == "" {
		t.Fatalf("Positions = %+v, want offsets 3, 2, (0, \"\"), 2", got)
	}
	r.Close()
	if _, err := r.Positions(ctx, groups); !errors.Is(err, ErrClosed) {
		t.Fatalf("Positions after Close: %v, want ErrClosed", err)
	}
}

// Each group keeps its own window in Redis, by count and by age, and so
// does a subscription's record of the events it delivered, which answers
// History without Redis.
func TestRedisWindowPerGroup(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	const shortAge = 2 * time.Second
	window := func(g string) (int, time.Duration) {
		switch g {
		case "a":
			return 3, time.Hour
		case "c":
			return 1000, shortAge
		}
		return 1000, time.Hour
	}
	s := newSink()
	sub := newTestRedis(t, redistest.SharedURL(), s, RedisOptions{Prefix: prefix, Window: window})
	// other never subscribes: its History reads Redis's window.
	other := newTestRedis(t, redistest.SharedURL(), newSink(), RedisOptions{Prefix: prefix, Window: window})
	for _, g := range []string{"a", "c"} {
		if err := sub.Subscribe(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	publishN(t, other, "a", 10)
	publishN(t, other, "b", 10)
	s.wait(t, "a", 10, 5*time.Second)
	for g, want := range map[string]int64{"a": 3, "b": 10} {
		if n, err := other.cmd.LLen(ctx, other.key(g, "h")).Result(); err != nil || n != want {
			t.Errorf("redis keeps %d events of %s (%v); want %d", n, g, err, want)
		}
	}
	_, ea, _ := other.Position(ctx, "a")
	for name, r := range map[string]*Redis{"subscribed": sub, "unsubscribed": other} {
		for _, c := range []struct {
			group, epoch string
			since        uint64
			ok           bool
			n            int
		}{
			{"a", ea, 7, true, 3},
			{"a", ea, 6, false, 0},
			{"a", "", 0, false, 0},
			{"b", "", 0, true, 10},
		} {
			msgs, ok, err := r.History(ctx, c.group, c.since, c.epoch)
			if err != nil || ok != c.ok || len(msgs) != c.n {
				t.Errorf("%s: History(%s, %d) = %d events, ok=%v, err=%v; want %d, %v", name, c.group, c.since, len(msgs), ok, err, c.n, c.ok)
			}
		}
	}

	// By age: c's window and its key expire after shortAge, b's after an
	// hour.
	publishN(t, other, "c", 2)
	s.wait(t, "c", 2, 5*time.Second)
	_, ec, _ := other.Position(ctx, "c")
	if msgs, ok, err := other.History(ctx, "c", 0, ""); err != nil || !ok || len(msgs) != 2 {
		t.Fatalf("c just published: %d events, ok=%v, err=%v; want both", len(msgs), ok, err)
	}
	if ttl, err := other.cmd.PTTL(ctx, other.key("c", "h")).Result(); err != nil || ttl <= 0 || ttl > shortAge {
		t.Errorf("c's window expires in %v (%v); want at most %v", ttl, err, shortAge)
	}
	if ttl, err := other.cmd.PTTL(ctx, other.key("b", "h")).Result(); err != nil || ttl <= shortAge {
		t.Errorf("b's window expires in %v (%v); want an hour", ttl, err)
	}
	waitFor(t, "c's events to leave its window", 10*time.Second, func() bool {
		_, subOK, _ := sub.History(ctx, "c", 1, ec)
		_, otherOK, _ := other.History(ctx, "c", 1, ec)
		return !subOK && !otherOK
	})
	if msgs, ok, err := sub.History(ctx, "c", 2, ec); err != nil || !ok || len(msgs) != 0 {
		t.Fatalf("a client that saw all of c: %d events, ok=%v, err=%v", len(msgs), ok, err)
	}
	if msgs, ok, err := other.History(ctx, "b", 0, ""); err != nil || !ok || len(msgs) != 10 {
		t.Fatalf("b after c's window passed: %d events, ok=%v, err=%v; want its 10", len(msgs), ok, err)
	}
}
