package transport

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/layer"
)

// testHandler echoes client messages as {"type":"echo","data":<msg>}.
type testHandler struct {
	mu      sync.Mutex
	msgs    []string
	closed  atomic.Int64
	limited atomic.Int64
}

func (h *testHandler) OnMessage(c *realtime.Conn, data []byte) {
	h.mu.Lock()
	h.msgs = append(h.msgs, string(data))
	h.mu.Unlock()
	_ = c.SendJSON(fmt.Appendf(nil, `{"type":"echo","data":%s}`, data))
}

func (h *testHandler) OnClose(*realtime.Conn) { h.closed.Add(1) }

func (h *testHandler) OnRateLimited(c *realtime.Conn) {
	h.limited.Add(1)
	_ = c.SendJSON([]byte(`{"type":"error","data":{"code":"rate_limited","message":"too many messages"}}`))
}

type testEnv struct {
	hub *realtime.Hub
	srv *Server
	ts  *httptest.Server
	url string
	h   *testHandler
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newEnv starts a hub, a transport server and an HTTP server whose handler
// upgrades every request: ?v=2 selects protocol 2, ?join=a,b joins groups
// after sending a snapshot message.
func newEnv(t testing.TB, hubOpts realtime.HubOptions, opts Options) *testEnv {
	t.Helper()
	hubOpts.Logger = quietLogger()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	hub, err := realtime.NewHub(hubOpts, func(deliver func(layer.Message)) (layer.Layer, error) {
		return layer.NewMemory(deliver, layer.MemoryOptions{}), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(hub, opts)
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{hub: hub, srv: srv, h: &testHandler{}}
	e.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := 1
		if r.URL.Query().Get("v") == "2" {
			v = 2
		}
		c, err := srv.Upgrade(w, r, ConnConfig{UserID: 7, Version: v, Handler: e.h})
		if err != nil {
			return
		}
		_ = c.SendJSON([]byte(`{"type":"snapshot","data":{}}`))
		if j := r.URL.Query().Get("join"); j != "" {
			for _, g := range strings.Split(j, ",") {
				if err := hub.Join(r.Context(), c, g); err != nil {
					t.Error(err)
				}
			}
		}
	}))
	e.url = "ws" + strings.TrimPrefix(e.ts.URL, "http")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
		e.ts.Close()
		hub.Close()
	})
	return e
}

type client struct {
	t    testing.TB
	conn net.Conn
	r    io.Reader
}

func dial(t testing.TB, url string) *client {
	t.Helper()
	return dialWith(t, ws.Dialer{}, url)
}

func dialWith(t testing.TB, d ws.Dialer, url string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, br, _, err := d.Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, conn: conn, r: conn}
	if br != nil {
		c.r = br
	}
	t.Cleanup(func() { conn.Close() })
	return c
}

// next reads one frame, answering pings.
func (c *client) next() (ws.OpCode, []byte, error) {
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		h, err := ws.ReadHeader(c.r)
		if err != nil {
			return 0, nil, err
		}
		if h.Masked {
			return 0, nil, fmt.Errorf("server frame is masked")
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.r, p); err != nil {
			return 0, nil, err
		}
		if h.OpCode == ws.OpPing {
			_ = wsutil.WriteClientMessage(c.conn, ws.OpPong, p)
			continue
		}
		return h.OpCode, p, nil
	}
}

func (c *client) text() string {
	c.t.Helper()
	op, p, err := c.next()
	if err != nil {
		c.t.Fatal(err)
	}
	if op != ws.OpText {
		code, reason := ws.ParseCloseFrameData(p)
		c.t.Fatalf(
			"got opcode %v (close %d %q), want text",
			op, code, reason)
	}
	return string(p)
}

// closeCode reads until a close frame, answers it and returns its code.
func (c *client) closeCode() ws.StatusCode {
	c.t.Helper()
	for {
		op, p, err := c.next()
		if err != nil {
			c.t.Fatalf(
				"waiting for close frame: %v",
				err)
		}
		if op == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(p)
			_ = wsutil.WriteClientMessage(c.conn, ws.OpClose, ws.NewCloseFrameBody(code, ""))
			return code
		}
	}
}

func (c *client) send(op ws.OpCode, p []byte) {
	c.t.Helper()
	if err := wsutil.WriteClientMessage(c.conn, op, p); err != nil {
		c.t.Fatal(err)
	}
}

// sendFrame writes one masked frame (for fragmentation tests).
func (c *client) sendFrame(op ws.OpCode, fin bool, p []byte) {
	c.t.Helper()
	f := ws.MaskFrame(ws.NewFrame(op, fin, p))
	if err := ws.WriteFrame(c.conn, f); err != nil {
		c.t.Fatal(err)
	}
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf(
				"timed out waiting for %s",
				what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// smallBufDialer dials with a small receive buffer so a client that stops
// reading backs up into the server quickly.
func smallBufDialer() ws.Dialer {
	return ws.Dialer{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		_ = c.(*net.TCPConn).SetReadBuffer(4096)
		return c, nil
	}}
}
