package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
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
	// A frame split across reads: its buffer must not be rounded up past it.
	f.Add(append(hugeFrameHeader(0x81, 995), bytes.Repeat([]byte(" "), 1025)...), uint8(100))
	// Whole headers (mask key included) at the extremes of the 64-bit length.
	for _, l := range []uint64{1<<63 - 1, 1<<63 - 14, 1<<63 - 15, 1 << 62, 1<<32 + 1, 65536, 65535} {
		for _, op := range []byte{0x81, 0x82, 0x01} {
			f.Add(hugeFrameHeader(op, l), uint8(255))
		}
		f.Add(append(clientFrame(ws.OpText, false, []byte(`{"a":`)), hugeFrameHeader(0x80, l)...), uint8(255))
	}
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
			if cap(parts(w).rbuf) > limit || cap(parts(w).frag) > 2*w.srv.opts.MaxMessageSize {
				t.Fatalf(
					"buffers grew to rbuf %d, frag %d",
					cap(parts(w).rbuf), cap(parts(w).frag))
			}
		}
	})
}

// hugeFrameHeader is a masked client frame header (first byte b0) that
// announces a payload of length l and carries none of it.
func hugeFrameHeader(b0 byte, l uint64) []byte {
	h := []byte{b0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}
	binary.BigEndian.PutUint64(h[2:10], l)
	return h
}

// TestFeedHugeLengths: a header announcing up to 2^63-1 bytes is refused
// with 1009 (or 1003 for binary) and skipped; it must never panic or buffer.
func TestFeedHugeLengths(t *testing.T) {
	for _, l := range []uint64{1<<63 - 1, 1<<63 - 14, 1<<63 - 13, 1 << 62, 1025} {
		for _, tc := range []struct {
			name   string
			prefix []byte
			b0     byte
			code   uint16
		}{
			{"text", nil, 0x81, realtime.CloseMessageTooBig},
			{"binary", nil, 0x82, realtime.CloseUnsupportedData},
			{"unfinished text", nil, 0x01, realtime.CloseMessageTooBig},
			{"continuation", clientFrame(ws.OpText, false, []byte(`{"a":`)), 0x80, realtime.CloseMessageTooBig},
		} {
			w := newFeedConn(t)
			data := append(bytes.Clone(tc.prefix), hugeFrameHeader(tc.b0, l)...)
			data = append(data, 0, 0, 0, 0)
			if err := w.feed(data, &scratch{}); err != nil {
				t.Fatalf(
					"%s, length %d: %v",
					tc.name, l, err)
			}
			if want := int64(l) - 4; parts(w).skip != want {
				t.Errorf(
					"%s, length %d: skip %d, want %d",
					tc.name, l, parts(w).skip, want)
			}
			if parts(w).rbuf != nil {
				t.Errorf(
					"%s, length %d: buffered %d bytes",
					tc.name, l, len(parts(w).rbuf))
			}
			if code := queuedCloseCode(w); code != tc.code {
				t.Errorf(
					"%s, length %d: close code %d, want %d",
					tc.name, l, code, tc.code)
			}
		}
	}
}

// TestFeedCloseBodies: the peer's close is answered with its own code when
// the body is valid, and with 1002 when it is one byte long, names a code
// nobody may send or has a reason that is not UTF-8.
func TestFeedCloseBodies(t *testing.T) {
	for _, tc := range []struct {
		name string
		body []byte
		want uint16
	}{
		{"empty", nil, realtime.CloseNormal},
		{"1000", ws.NewCloseFrameBody(1000, "bye"), 1000},
		{"4000", ws.NewCloseFrameBody(4000, ""), 4000},
		{"one byte", []byte{0x03}, realtime.CloseProtocolError},
		{"999", ws.NewCloseFrameBody(999, ""), realtime.CloseProtocolError},
		{"1005", ws.NewCloseFrameBody(1005, ""), realtime.CloseProtocolError},
		{"5000", ws.NewCloseFrameBody(5000, ""), realtime.CloseProtocolError},
		{"65535", ws.NewCloseFrameBody(65535, ""), realtime.CloseProtocolError},
		{"bad UTF-8", append(ws.NewCloseFrameBody(1000, ""), 0xff, 0xfe), realtime.CloseProtocolError},
	} {
		w := newFeedConn(t)
		err := w.feed(clientFrame(ws.OpClose, true, tc.body), &scratch{})
		if !errors.Is(err, errPeerClosed) {
			t.Fatalf(
				"%s: feed returned %v, want errPeerClosed",
				tc.name, err)
		}
		if code := queuedCloseCode(w); code != tc.want {
			t.Errorf(
				"%s: answered with %d, want %d",
				tc.name, code, tc.want)
		}
	}
}

// queuedCloseCode is the code of the close frame queued on w, or 0.
func queuedCloseCode(w *wsConn) uint16 {
	b := w.link.Take()
	if b == nil {
		return 0
	}
	defer w.link.Release(b)
	for _, f := range b.Frames {
		fr, err := ws.ReadFrame(bytes.NewReader(f))
		if err == nil && fr.Header.OpCode == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(fr.Payload)
			return uint16(code)
		}
	}
	return 0
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
		if h.msgs != 3 || w.part != nil {
			t.Fatalf(
				"split %d: %d messages, rbuf %d, frag %d, partial state kept: %v",
				split, h.msgs, len(parts(w).rbuf), len(parts(w).frag), w.part != nil)
		}
	}
}

// parts is the connection's partial-frame state, empty when it has none.
func parts(w *wsConn) partial {
	if w.part == nil {
		return partial{}
	}
	return *w.part
}

// TestFeedKeepsStateOnlyMidFrame: between complete frames a connection
// holds no reader state (an idle connection costs no more than its
// struct); a read ending inside a frame or a fragmented message moves the
// worker's state to the connection, off the worker's scratch, which the
// next connection it reads may then use.
func TestFeedKeepsStateOnlyMidFrame(t *testing.T) {
	w := newFeedConn(t)
	h := w.h.(*nopHandler)
	sc := &scratch{}
	msg := clientFrame(ws.OpText, true, []byte(`{"n":1}`))
	if err := w.feed(bytes.Clone(msg), sc); err != nil || w.part != nil || h.msgs != 1 {
		t.Fatalf("a whole frame: err %v, state kept %v, %d messages", err, w.part != nil, h.msgs)
	}
	if err := w.feed(bytes.Clone(msg[:3]), sc); err != nil || w.part == nil || w.part == &sc.part || len(w.part.rbuf) != 3 {
		t.Fatalf("half a frame: err %v, state %+v (the worker's own: %v)", err, w.part, w.part == &sc.part)
	}
	// Another connection read by the same worker meanwhile.
	other := newFeedConn(t)
	if err := other.feed(clientFrame(ws.OpText, false, []byte(`{"n":`)), sc); err != nil || other.part == nil || !other.part.fragging {
		t.Fatalf("a first fragment: err %v, state %+v", err, other.part)
	}
	if err := w.feed(bytes.Clone(msg[3:]), sc); err != nil || w.part != nil || h.msgs != 2 {
		t.Fatalf("the rest of the frame: err %v, state kept %v, %d messages", err, w.part != nil, h.msgs)
	}
	if err := other.feed(clientFrame(ws.OpContinuation, true, []byte(`2}`)), sc); err != nil || other.part != nil || other.h.(*nopHandler).msgs != 1 {
		t.Fatalf("the last fragment: err %v, state kept %v, %d messages", err, other.part != nil, other.h.(*nopHandler).msgs)
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
