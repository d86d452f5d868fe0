package transport

import (
	"context"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/realtime"
)

type countWriter struct{ n *atomic.Int64 }

func (w countWriter) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	return len(p), nil
}

// BenchmarkBroadcastLoopback publishes one event to a group of 1,000
// WebSocket clients on loopback and waits until every client received it:
// ns/op is the latency of a full broadcast, allocs/op covers the server's
// whole path (encode, fan-out, wake, write) and the clients' reads.
func BenchmarkBroadcastLoopback(b *testing.B) {
	const n = 1000
	// Pings would add frames the byte count does not expect.
	e := newEnv(b, realtime.HubOptions{}, Options{PingInterval: time.Hour, IdleTimeout: 2 * time.Hour, MaxConnsPerAddr: -1, HandshakeRate: -1})
	var got atomic.Int64
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = dial(b, e.url+"?join=room")
		clients[i].text()
	}
	eventually(b, "joins", func() bool { return e.hub.GroupSize("room") == n })
	for _, c := range clients {
		_ = c.conn.SetReadDeadline(time.Time{})
		go func() { _, _ = io.Copy(countWriter{&got}, c.r) }()
	}
	data := []byte(`{"id":345,"campaign":456,"content":"Great project!"}`)
	frameLen := int64(len(`{"type":"comment","data":}`) + len(data) + 2)
	ctx := context.Background()
	var want int64
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.hub.Publish(ctx, "room", "comment", data); err != nil {
			b.Fatal(err)
		}
		want += n * frameLen
		for deadline := time.Now().Add(10 * time.Second); got.Load() < want; {
			if time.Now().After(deadline) {
				b.Fatalf(
					"received %d of %d bytes",
					got.Load(), want)
			}
			runtime.Gosched()
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/receiver")
}
