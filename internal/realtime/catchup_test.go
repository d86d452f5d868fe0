package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/realtime/layer"
)

// windowHub is a hub on a memory layer keeping the last window events of a
// group, with "g" published up to offset n.
func windowHub(t *testing.T, opts HubOptions, window, n int) (*Hub, string) {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := NewHub(opts, func(deliver func(layer.Message)) (layer.Layer, error) {
		return layer.NewMemory(deliver, layer.MemoryOptions{HistorySize: window}), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	publish(t, h, n)
	_, epoch, err := h.Layer().Position(context.Background(), "g")
	if err != nil {
		t.Fatal(err)
	}
	return h, epoch
}

// publish publishes n events to "g"; each one's data is its offset.
func publish(t *testing.T, h *Hub, n int) {
	t.Helper()
	ctx := context.Background()
	for range n {
		off, _, err := h.Layer().Position(ctx, "g")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Publish(ctx, "g", "e", fmt.Appendf(nil, "%d", off+1)); err != nil {
			t.Fatal(err)
		}
	}
}

// frames names what c was queued: the offset of each event, or the type of
// each other message.
func frames(t *testing.T, c *Conn) []string {
	t.Helper()
	var out []string
	for _, p := range payloads(t, c) {
		var m struct {
			Type   string
			Offset uint64
		}
		switch {
		case json.Unmarshal([]byte(p), &m) != nil:
			out = append(out, p) // a close frame
		case m.Type == "e":
			out = append(out, fmt.Sprint(m.Offset))
		default:
			out = append(out, m.Type)
		}
	}
	return out
}

func position(t *testing.T, h *Hub) layer.Position {
	t.Helper()
	off, epoch, err := h.Layer().Position(context.Background(), "g")
	if err != nil {
		t.Fatal(err)
	}
	return layer.Position{Offset: off, Epoch: epoch}
}

// A join that cannot replay runs Fresh while the group's events are held:
// what Fresh sends comes first, then only the events after the position it
// read its state at, including those that came while it ran.
func TestJoinFromWithFreshStateBeforeHeldEvents(t *testing.T) {
	ctx := context.Background()
	h, epoch := windowHub(t, HubOptions{}, 5, 10)
	c := h.Attach(ConnConfig{Version: 2}, &nopTransport{}).Conn()
	recovered, err := h.JoinFromWith(ctx, c, "g", layer.Position{Offset: 2, Epoch: epoch}, Catchup{
		Replayed: func(layer.Position) { t.Error("Replayed called for a position out of the window") },
		Fresh: func(context.Context) (layer.Position, error) {
			publish(t, h, 3) // before the state is read: in it
			at := position(t, h)
			_ = c.SendJSON([]byte(`{"type":"fresh"}`))
			publish(t, h, 2) // after: sent after it
			return at, nil
		},
	})
	if err != nil || recovered {
		t.Fatalf("recovered=%v err=%v; want false, nil", recovered, err)
	}
	publish(t, h, 1)
	if got, want := frames(t, c), []string{"fresh", "14", "15", "16"}; !slices.Equal(got, want) {
		t.Fatalf("queued %v; want %v", got, want)
	}
}

// A join that replays runs Replayed after the replay and before the events
// held meanwhile, with where the replay left the connection.
func TestJoinFromWithReplayedBetweenReplayAndLive(t *testing.T) {
	ctx := context.Background()
	h, epoch := windowHub(t, HubOptions{}, 5, 10)
	c := h.Attach(ConnConfig{Version: 2}, &nopTransport{}).Conn()
	var at layer.Position
	recovered, err := h.JoinFromWith(ctx, c, "g", layer.Position{Offset: 8, Epoch: epoch}, Catchup{
		Replayed: func(p layer.Position) {
			at = p
			publish(t, h, 2)
			_ = c.SendJSON([]byte(`{"type":"replayed"}`))
		},
		Fresh: func(context.Context) (layer.Position, error) {
			t.Error("Fresh called for a position in the window")
			return layer.Position{}, nil
		},
	})
	if err != nil || !recovered || at != (layer.Position{Offset: 10, Epoch: epoch}) {
		t.Fatalf("recovered=%v err=%v at %+v; want true, nil, 10", recovered, err, at)
	}
	if got, want := frames(t, c), []string{"9", "10", "replayed", "11", "12"}; !slices.Equal(got, want) {
		t.Fatalf("queued %v; want %v", got, want)
	}
}

// Held events of another epoch than the fresh state's position are older
// when one of its epoch came after them, newer otherwise.
func TestJoinFromWithFreshAcrossEpochs(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		read func(before, after layer.Position) layer.Position
		want []string
	}{
		{"state read before the reset", func(before, _ layer.Position) layer.Position { return before }, []string{"fresh", layer.TypeReset, "1"}},
		{"state read after it", func(_, after layer.Position) layer.Position { return after }, []string{"fresh"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, epoch := windowHub(t, HubOptions{}, 5, 10)
			c := h.Attach(ConnConfig{Version: 2}, &nopTransport{}).Conn()
			_, err := h.JoinFromWith(ctx, c, "g", layer.Position{Offset: 1, Epoch: epoch}, Catchup{
				Fresh: func(context.Context) (layer.Position, error) {
					publish(t, h, 1)
					before := position(t, h)
					if _, err := h.Layer().Publish(ctx, layer.Message{Group: "g", Type: layer.TypeReset, Data: []byte(`{}`)}); err != nil {
						t.Fatal(err)
					}
					if _, err := h.Publish(ctx, "g", "e", []byte(`1`)); err != nil {
						t.Fatal(err)
					}
					_ = c.SendJSON([]byte(`{"type":"fresh"}`))
					return tc.read(before, position(t, h)), nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := frames(t, c); !slices.Equal(got, tc.want) {
				t.Fatalf("queued %v; want %v", got, tc.want)
			}
		})
	}
}

// A failed Fresh leaves nothing held queued and is returned.
func TestJoinFromWithFreshFails(t *testing.T) {
	h, epoch := windowHub(t, HubOptions{}, 5, 10)
	c := h.Attach(ConnConfig{Version: 2}, &nopTransport{}).Conn()
	gone := errors.New("state gone")
	_, err := h.JoinFromWith(context.Background(), c, "g", layer.Position{Offset: 1, Epoch: epoch}, Catchup{
		Fresh: func(context.Context) (layer.Position, error) {
			publish(t, h, 2)
			return layer.Position{}, gone
		},
	})
	if !errors.Is(err, gone) {
		t.Fatalf("err %v; want the Fresh error", err)
	}
	if got := frames(t, c); len(got) != 0 {
		t.Fatalf("queued %v after a failed Fresh; want nothing", got)
	}
}

// What arrives while a join holds the group's events is bounded like a
// replay: past MaxReplayFrames the connection cannot catch up without a
// gap and is closed as a slow consumer.
func TestJoinFromWithHoldIsBounded(t *testing.T) {
	h, epoch := windowHub(t, HubOptions{MaxQueueFrames: 4, MaxReplayFrames: 8}, 5, 10)
	c := h.Attach(ConnConfig{Version: 2}, &nopTransport{}).Conn()
	_, err := h.JoinFromWith(context.Background(), c, "g", layer.Position{Offset: 1, Epoch: epoch}, Catchup{
		Fresh: func(context.Context) (layer.Position, error) {
			at := position(t, h)
			publish(t, h, 20)
			return at, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := frames(t, c)
	if h.SlowConsumers() != 1 || len(got) != 1 || !strings.HasPrefix(got[0], "close 4000") || !c.Closed() {
		t.Fatalf("queued %v, %d slow consumers; want only the 4000 close", got, h.SlowConsumers())
	}
}
