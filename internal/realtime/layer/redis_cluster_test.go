package layer

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
)

// startCluster starts a three-master Redis Cluster for the test, failing
// the test if that is impossible here.
func startCluster(t *testing.T) *redistest.Cluster {
	t.Helper()
	c, err := redistest.StartCluster(t, 3)
	if err != nil {
		t.Fatalf("a local Redis Cluster is needed for the sharded layer: %v", err)
	}
	return c
}

func TestRedisShardedAcrossClusterNodes(t *testing.T) {
	ctx := context.Background()
	cl := startCluster(t)
	const layers = 3
	groups := make([]string, 24)
	for i := range groups {
		groups[i] = fmt.Sprintf("campaign_%d", i)
	}
	sinks := make([]*sink, layers)
	rs := make([]*Redis, layers)
	for i := range layers {
		sinks[i] = newSink()
		rs[i] = newTestRedis(t, cl.URL(), sinks[i], RedisOptions{Sharded: true})
		for _, g := range groups {
			if err := rs[i].Subscribe(ctx, g); err != nil {
				t.Fatal(err)
			}
		}
	}
	rs[0].mu.Lock()
	nodes := len(rs[0].nodes)
	rs[0].mu.Unlock()
	if nodes != 3 {
		t.Fatalf("subscriber connections to %d nodes, want one to each of the 3 masters", nodes)
	}
	const per = 21 // events per group, a third from each layer
	var wg sync.WaitGroup
	for i := range layers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range per / layers * len(groups) {
				if _, err := rs[i].Publish(ctx, Message{Group: groups[(i+j)%len(groups)], Type: "t", Data: []byte(`1`)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, g := range groups {
		want, _, err := rs[0].readPosition(ctx, g) // Redis itself: the subscription may not have delivered them all yet
		if err != nil || want != per {
			t.Fatalf("position of %s = %d, %v; want %d", g, want, err, per)
		}
		for i := range layers {
			checkOffsets(t, fmt.Sprintf("layer %d %s", i, g), sinks[i].wait(t, g, per, 10*time.Second), 1)
		}
		if h, ok, err := rs[2].History(ctx, g, 5, sinks[0].get(g)[0].Epoch); err != nil || !ok || len(h) != per-5 {
			t.Fatalf("history of %s: %d, %v, %v", g, len(h), ok, err)
		}
	}
	// Every key and the channel of a group share its slot.
	r := rs[0]
	for _, g := range groups[:3] {
		slot := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{cl.Nodes[0].Addr()}})
		defer slot.Close()
		var slots []int64
		for _, k := range []string{r.key(g, "m"), r.key(g, "h"), r.key(g, "d"), r.channel(g)} {
			s, err := slot.ClusterKeySlot(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			slots = append(slots, s)
		}
		for _, s := range slots {
			if s != slots[0] {
				t.Fatalf("keys of %s are in slots %v", g, slots)
			}
		}
	}
}

// A group's slot moves to another master while events are published: the
// server drops the subscription, the layer subscribes again on the new
// owner and fills what it missed from the history.
func TestRedisShardedSlotMigration(t *testing.T) {
	ctx := context.Background()
	cl := startCluster(t)
	sa, sb := newSink(), newSink()
	a := newTestRedis(t, cl.URL(), sa, RedisOptions{Sharded: true})
	b := newTestRedis(t, cl.URL(), sb, RedisOptions{Sharded: true})
	const g = "campaign_7"
	if err := b.Subscribe(ctx, g); err != nil {
		t.Fatal(err)
	}
	publishN(t, a, g, 10)
	sb.wait(t, g, 10, 5*time.Second)

	// Find the slot's owner and another master.
	admin := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{cl.Nodes[0].Addr()}, Protocol: 2})
	defer admin.Close()
	slot, err := admin.ClusterKeySlot(ctx, b.channel(g)).Result()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{} // addr → node id
	var owner string
	for _, n := range cl.Nodes {
		c := n.Client()
		id, err := c.Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			t.Fatal(err)
		}
		ids[n.Addr()] = id
		slots, err := c.ClusterSlots(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range slots {
			if int64(s.Start) <= slot && slot <= int64(s.End) && s.Nodes[0].ID == id {
				owner = n.Addr()
			}
		}
	}
	if owner == "" {
		t.Fatalf("no owner found for slot %d", slot)
	}
	var target string
	for addr := range ids {
		if addr != owner {
			target = addr
			break
		}
	}
	client := func(addr string) *redis.Client {
		for _, n := range cl.Nodes {
			if n.Addr() == addr {
				return n.Client()
			}
		}
		t.Fatalf("no node %s", addr)
		return nil
	}
	src, dst := client(owner), client(target)

	// Publish all along.
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		defer func() { done <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := a.Publish(ctx, Message{Group: g, Type: "t", Data: []byte(`1`)}); err == nil {
				n++
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	must := func(c *redis.Client, args ...any) {
		t.Helper()
		if err := c.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	must(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[owner])
	must(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
	for {
		keys, err := src.ClusterGetKeysInSlot(ctx, int(slot), 100).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			break
		}
		host, port, _ := strings.Cut(target, ":")
		args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		must(src, args...)
	}
	for _, n := range cl.Nodes {
		must(n.Client(), "CLUSTER", "SETSLOT", slot, "NODE", ids[target])
	}
	time.Sleep(1500 * time.Millisecond) // publishes continue on the new owner
	close(stop)
	published := <-done
	want := uint64(10 + published)
	if off, _, err := a.readPosition(ctx, g); err != nil || off != want {
		t.Fatalf("position after the move = %d, %v; want %d (published %d)", off, err, want, published)
	}
	got := sb.wait(t, g, int(want), 15*time.Second)
	checkOffsets(t, "across the slot move", got, 1)
	if l := sb.lostGroups(); len(l) != 0 {
		t.Fatalf("OnLost %v", l)
	}
	b.mu.Lock()
	s := b.groups[g]
	b.mu.Unlock()
	s.ctl.Lock()
	addr := s.sb.addr
	s.ctl.Unlock()
	if addr != target {
		t.Fatalf("subscription is on %s, want the new owner %s", addr, target)
	}
	t.Logf("%d events published during the move; stats %+v", published, b.Stats())
}

// Every master drops its pub/sub clients while events are published: each
// per-master subscriber connection is made again, its groups subscribed one
// by one (SSUBSCRIBE takes one slot's channels) and caught up.
func TestRedisShardedReconnect(t *testing.T) {
	ctx := context.Background()
	cl := startCluster(t)
	sa, sb := newSink(), newSink()
	a := newTestRedis(t, cl.URL(), sa, RedisOptions{Sharded: true})
	b := newTestRedis(t, cl.URL(), sb, RedisOptions{Sharded: true})
	groups := make([]string, 12)
	for i := range groups {
		groups[i] = fmt.Sprintf("user_%d", i)
		if err := b.Subscribe(ctx, groups[i]); err != nil {
			t.Fatal(err)
		}
	}
	for round := 1; round <= 3; round++ {
		for _, n := range cl.Nodes {
			if err := n.Client().Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
				t.Fatal(err)
			}
		}
		for _, g := range groups {
			publishN(t, a, g, 5)
		}
		for _, g := range groups {
			checkOffsets(t, g, sb.wait(t, g, 5*round, 10*time.Second), 1)
		}
	}
	time.Sleep(100 * time.Millisecond)
	for _, g := range groups {
		if n := len(sb.get(g)); n != 15 {
			t.Fatalf("%s: %d events, want 15", g, n)
		}
	}
	if st := b.Stats(); st.Reconnects < 3 || st.Lost != 0 {
		t.Fatalf("stats = %+v", st)
	}
}
