package transport

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/layer"
)

// discardConn is a net.Conn that takes every write.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) Close() error                     { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }

type nopHandler struct{ msgs int }

func (h *nopHandler) OnMessage(*realtime.Conn, []byte) { h.msgs++ }
func (h *nopHandler) OnClose(*realtime.Conn)           {}

func newFeedConn(t testing.TB) *wsConn {
	hub, err := realtime.NewHub(realtime.HubOptions{Logger: quietLogger()}, func(deliver func(layer.Message)) (layer.Layer, error) {
		return layer.NewMemory(deliver, layer.MemoryOptions{}), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	opts := Options{MaxMessageSize: 1024, Logger: quietLogger()}
	opts.setDefaults()
	s := &Server{hub: hub, opts: opts, log: opts.Logger, start: time.Now(), writeq: make(chan *wsConn, 1), done: make(chan struct{})}
	w := &wsConn{srv: s, h: &nopHandler{}, nc: discardConn{}, fd: -1, tokens: float32(opts.RateBurst)}
	w.link = hub.Attach(realtime.ConnConfig{}, w)
	return w
}

func clientFrame(op ws.OpCode, fin bool, p []byte) []byte {
	var b bytes.Buffer
	_ = ws.WriteFrame(&b, ws.MaskFrame(ws.NewFrame(op, fin, p)))
	return b.Bytes()
}

// FuzzFeed checks that no input, however split, panics the frame reader or
// makes it buffer more than one maximal message.
func FuzzFeed(f *testing.F) {
	f.Add(clientFrame(ws.OpText, true, []byte(`{"type":"comment","data":{"id":1}}`)), uint8(3))
	f.Add(append(clientFrame(ws.OpText, false, []byte(`{"a":`)), clientFrame(ws.OpContinuation, true, []byte(`1}`))...), uint8(0))
	f.Add(clientFrame(ws.OpPing, true, []byte("x")), uint8(200))
	f.Add(clientFrame(ws.OpBinary, true, []byte{1, 2}), uint8(1))
	f.Add(clientFrame(ws.OpText, true, bytes.Repeat([]byte("x"), 2000)), uint8(100))
	f.Add(clientFrame(ws.OpClose, true, ws.NewCloseFrameBody(1000, "")), uint8(5))
	f.Add([]byte{0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		w := newFeedConn(t)
		sc := &scratch{}
		limit := w.srv.opts.MaxMessageSize + ws.MaxHeaderSize
		for len(data) > 0 {
			n := min(len(data), int(split)+1)
			if err := w.feed(data[:n], sc); err != nil {
				if !reading(err) {
					return
				}
				w.stopRead = true
			}
			data = data[n:]
			if cap(w.rbuf) > limit || cap(w.frag) > 2*w.srv.opts.MaxMessageSize {
				t.Fatalf(
					"buffers grew to rbuf %d, frag %d",
					cap(w.rbuf), cap(w.frag))
			}
		}
	})
}

func TestFeedSplitAnywhere(t *testing.T) {
	stream := bytes.Join([][]byte{
		clientFrame(ws.OpText, true, []byte(`{"n":1}`)),
		clientFrame(ws.OpText, false, []byte(`{"n":`)),
		clientFrame(ws.OpPing, true, nil),
		clientFrame(ws.OpContinuation, true, []byte(`2}`)),
		clientFrame(ws.OpText, true, bytes.Repeat([]byte(" "), 700)),
	}, nil)
	for split := 1; split <= len(stream); split++ {
		w := newFeedConn(t)
		h := w.h.(*nopHandler)
		sc := &scratch{}
		for i := 0; i < len(stream); i += split {
			// feed unmasks in place, as it may: give it a copy.
			chunk := bytes.Clone(stream[i:min(i+split, len(stream))])
			if err := w.feed(chunk, sc); err != nil {
				t.Fatalf(
					"split %d: %v",
					split, err)
			}
		}
		if h.msgs != 3 || w.rbuf != nil || w.frag != nil {
			t.Fatalf(
				"split %d: %d messages, rbuf %d, frag %d",
				split, h.msgs, len(w.rbuf), len(w.frag))
		}
	}
}

// TestFramesBehindHandshake sends a message in the same write as the
// handshake: it sits in the HTTP server's buffer and must not be lost.
func TestFramesBehindHandshake(t *testing.T) {
	e := newEnv(t, realtime.HubOptions{}, Options{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write(append([]byte(req), clientFrame(ws.OpText, true, []byte(`{"early":true}`))...)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf(
			"handshake: %v %v",
			resp, err)
	}
	c := &client{t: t, conn: conn, r: br}
	var got []string
	for range 2 {
		got = append(got, c.text())
	}
	if !strings.Contains(strings.Join(got, " "), `{"type":"echo","data":{"early":true}}`) {
		t.Fatalf(
			"messages = %q",
			got)
	}
}
