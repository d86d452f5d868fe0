package consumers

import (
	"log/slog"
	"strconv"
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

// BenchmarkObserve measures what Observe costs each event on the delivery
// path: recording the version of a campaign object (an object edited again
// and again, and a stream of new objects).
func BenchmarkObserve(b *testing.B) {
	hub, err := realtime.NewHub(realtime.HubOptions{Logger: slog.New(slog.DiscardHandler)}, func(d func(layer.Message)) (layer.Layer, error) {
		return layer.NewMemory(d, layer.MemoryOptions{}), nil
	})
	if err != nil {
		b.Fatal(err)
	}
	defer hub.Close()
	c := New(Config{Hub: hub, Logger: slog.New(slog.DiscardHandler)})
	data := make([][]byte, 1024)
	for i := range data {
		data[i] = []byte(`{"id":` + strconv.Itoa(1+i) + `,"content":"hello"}`)
	}
	for _, tc := range []struct {
		name string
		ids  int
	}{{"same-object", 1}, {"new-objects", len(data)}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				msg := layer.Message{Group: "campaign_1", Type: "comment", Data: data[i%tc.ids], Offset: uint64(i + 1), Epoch: "e"}
				if !c.Observe(msg) {
					b.Fatal("kept from clients")
				}
				i++
			}
		})
	}
}
