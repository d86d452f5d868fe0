package consumers

import (
	"log/slog"
	"testing"

	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/layer"
)

// BenchmarkDecodeClientMessage measures decoding a client's announce (the
// hot part of a campaign room's OnMessage before the database lookup).
func BenchmarkDecodeClientMessage(b *testing.B) {
	hub, err := realtime.NewHub(realtime.HubOptions{Logger: slog.New(slog.DiscardHandler)}, func(d func(layer.Message)) (layer.Layer, error) {
		return layer.NewMemory(d, layer.MemoryOptions{}), nil
	})
	if err != nil {
		b.Fatal(err)
	}
	defer hub.Close()
	conn := hub.Attach(realtime.ConnConfig{}, nopTransport{}).Conn()
	msg := []byte(`{"type":"comment","data":{"id":345}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		m, ok := parseMessage(conn, msg)
		if !ok {
			b.Fatal("rejected")
		}
		if _, ok := announceID(newReply(conn, m), m); !ok {
			b.Fatal("no id")
		}
	}
}
