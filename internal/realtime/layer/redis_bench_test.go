package layer

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
)

// BenchmarkRedisCrossLayer measures an event's trip from Publish on one
// Redis layer to the handler of another (separate connections, as two
// processes have): one event at a time, so ns/op is the latency, with p50
// and p99 reported.
func BenchmarkRedisCrossLayer(b *testing.B) {
	ctx := context.Background()
	prefix := redistest.Prefix(b)
	got := make(chan Message, 1)
	recv, err := NewRedis(ctx, redistest.SharedURL(), func(m Message) { got <- m }, RedisOptions{Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	defer recv.Close()
	send, err := NewRedis(ctx, redistest.SharedURL(), func(Message) {}, RedisOptions{Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	defer send.Close()
	if err := recv.Subscribe(ctx, "g"); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 300)
	for i := range data {
		data[i] = 'x'
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := send.Publish(ctx, Message{Group: "g", Type: "comment", Data: data}); err != nil {
			b.Fatal(err)
		}
		<-got
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// reportPercentiles reports the p50 and p99 of lat (sorted in place).
func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkRedisPublish measures Publish throughput with concurrent
// publishers (the script: offset, history, PUBLISH) to groups nobody
// subscribes to.
func BenchmarkRedisPublish(b *testing.B) {
	ctx := context.Background()
	r := publishOnly(b)
	data := make([]byte, 300)
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := r.Publish(ctx, Message{Group: "g" + string(rune('a'+i%16)), Type: "t", Data: data}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRedisPublishBatch measures what the outbox relay does: rounds of
// 256 events to 16 groups, each round one pipeline. ns/op is per event.
func BenchmarkRedisPublishBatch(b *testing.B) {
	ctx := context.Background()
	r := publishOnly(b)
	data := make([]byte, 300)
	const round = 256
	msgs := make([]Message, round)
	keys := make([]string, round)
	for i := range msgs {
		msgs[i] = Message{Group: "g" + string(rune('a'+i%16)), Type: "t", Data: data}
	}
	b.ResetTimer()
	for n := 0; n < b.N; n += round {
		k := min(round, b.N-n)
		if _, err := r.PublishBatch(ctx, msgs[:k], keys[:k]); err != nil {
			b.Fatal(err)
		}
	}
}

// publishOnly returns a Redis layer on the shared server whose handler
// drops what it receives, closed when b ends.
func publishOnly(b *testing.B) *Redis {
	b.Helper()
	r, err := NewRedis(context.Background(), redistest.SharedURL(), func(Message) {}, RedisOptions{Prefix: redistest.Prefix(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	return r
}

// BenchmarkRedisSubscribeNewGroups measures subscribing groups the process
// has not subscribed before, 64 at a time (a burst of handshakes in the
// quest app, each joining its user's own group): ns/op is per group, with
// p50 and p99 of one Subscribe call.
func BenchmarkRedisSubscribeNewGroups(b *testing.B) {
	ctx := context.Background()
	prefix := redistest.Prefix(b)
	r, err := NewRedis(ctx, redistest.SharedURL(), func(Message) {}, RedisOptions{Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	var (
		next atomic.Int64
		mu   sync.Mutex
		lat  = make([]time.Duration, 0, b.N)
		wg   sync.WaitGroup
	)
	b.ResetTimer()
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				start := time.Now()
				if err := r.Subscribe(ctx, fmt.Sprintf("user_%d", i)); err != nil {
					b.Error(err)
					return
				}
				d := time.Since(start)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkRedisPositions reads the positions of ten groups this process is
// not subscribed to (a quest creator's handshake): one Position call after
// another, or one Positions pipeline. ns/op is per ten.
func BenchmarkRedisPositions(b *testing.B) {
	ctx := context.Background()
	r := publishOnly(b)
	groups := make([]string, 10)
	for i := range groups {
		groups[i] = fmt.Sprintf("quest_%d", i)
		if _, err := r.Publish(ctx, Message{Group: groups[i], Type: "t", Data: []byte(`{}`)}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("one-by-one", func(b *testing.B) {
		for range b.N {
			for _, g := range groups {
				if _, _, err := r.Position(ctx, g); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("pipelined", func(b *testing.B) {
		for range b.N {
			if _, err := r.Positions(ctx, groups); err != nil {
				b.Fatal(err)
			}
		}
	})
}
