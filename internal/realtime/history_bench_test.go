package realtime

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/heraldhq/herald/internal/realtime/layer"
)

// BenchmarkPublishHistory measures what keeping history for resume costs:
// an event published through the in-memory layer to 1,000 local receivers
// (queues drained as a transport would), with the default window and with
// none.
func BenchmarkPublishHistory(b *testing.B) {
	for _, size := range []int{layer.DefaultHistorySize, -1} {
		name := fmt.Sprintf("history=%d", size)
		if size < 0 {
			name = "history=off"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			h, err := NewHub(HubOptions{Logger: slog.New(slog.DiscardHandler)}, func(d func(layer.Message)) (layer.Layer, error) {
				return layer.NewMemory(d, layer.MemoryOptions{HistorySize: size}), nil
			})
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			var tr nopTransport
			links := make([]Link, 1000)
			for i := range links {
				links[i] = h.Attach(ConnConfig{UserID: int64(i)}, &tr)
				if err := h.Join(ctx, links[i].Conn(), "g"); err != nil {
					b.Fatal(err)
				}
			}
			data := []byte(`{"id":1,"campaign":1,"user":{"id":2,"username":"bob"},"content":"Counting the days until the kiosk opens!","created_at":"2026-11-22T05:22:38.281979Z"}`)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h.Publish(ctx, "g", "comment", data); err != nil {
					b.Fatal(err)
				}
				for _, l := range links {
					if batch := l.Take(); batch != nil {
						l.Release(batch)
					}
					l.Take()
				}
			}
			b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
