package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/internal/panics"
	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/layer"
)

// handshakeServer serves Upgrade with open as ConnConfig.Open and returns
// the server's address, the server and the connections' handler. A panic
// in Open ends the request, as net/http's own recovery would.
func handshakeServer(t *testing.T, mode Options, open func(c *realtime.Conn)) (string, *Server, *testHandler) {
	t.Helper()
	hub, err := realtime.NewHub(realtime.HubOptions{Logger: quietLogger()}, func(deliver func(layer.Message)) (layer.Layer, error) {
		return layer.NewMemory(deliver, layer.MemoryOptions{}), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mode.Logger = quietLogger()
	srv, err := NewServer(hub, mode)
	if err != nil {
		t.Fatal(err)
	}
	h := &testHandler{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { _ = recover() }()
		_, _ = srv.Upgrade(w, r, ConnConfig{Handler: h, Open: open})
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
		ts.Close()
		hub.Close()
	})
	return strings.TrimPrefix(ts.URL, "http://"), srv, h
}

// rawUpgrade sends a WebSocket upgrade request by hand, with version as
// Sec-WebSocket-Version.
func rawUpgrade(t *testing.T, addr, version string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: " + version + "\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	return nc
}

// Open runs before anything is written to the client, and what it sends
// follows the 101 response on the wire, in order, ahead of later frames.
func TestOpenMessagesGoOutWithTheHandshake(t *testing.T) { forEachMode(t, testOpenWithHandshake) }

func testOpenWithHandshake(t *testing.T, mode Options) {
	silent := make(chan error, 1)
	var nc net.Conn
	ready := make(chan struct{})
	addr, _, _ := handshakeServer(t, mode, func(c *realtime.Conn) {
		<-ready
		// Nothing, not even the 101 response, has reached the client yet.
		_ = nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := nc.Read(make([]byte, 1))
		_ = nc.SetReadDeadline(time.Time{})
		if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			silent <- errors.New("the client read before Open returned")
		} else {
			silent <- nil
		}
		_ = c.SendJSON([]byte(`{"type":"first"}`))
		_ = c.SendJSON([]byte(`{"type":"second"}`))
	})
	nc = rawUpgrade(t, addr, "13")
	close(ready)
	if err := <-silent; err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Sec-Websocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("handshake response: %d %v", res.StatusCode, res.Header)
	}
	c := &client{t: t, conn: nc, r: br}
	for _, want := range []string{`{"type":"first"}`, `{"type":"second"}`} {
		if got := c.text(); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
}

// A connection closed inside Open still gets the handshake, the messages
// sent before the close, and the close frame.
func TestOpenCloses(t *testing.T) {
	addr, _, _ := handshakeServer(t, Options{}, func(c *realtime.Conn) {
		_ = c.SendJSON([]byte(`{"type":"error"}`))
		c.Close(realtime.CloseNotFound, "not found")
	})
	nc := rawUpgrade(t, addr, "13")
	br := bufio.NewReader(nc)
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", res, err)
	}
	c := &client{t: t, conn: nc, r: br}
	if got := c.text(); got != `{"type":"error"}` {
		t.Fatalf("got %s", got)
	}
	if code := c.closeCode(); code != ws.StatusCode(realtime.CloseNotFound) {
		t.Fatalf("close code %d, want %d", code, realtime.CloseNotFound)
	}
}

// The upgrader's own error response, written after it took the connection
// over, still reaches the client, and Open does not run.
func TestHandshakeErrorAfterHijack(t *testing.T) {
	opened := make(chan struct{}, 1)
	addr, _, _ := handshakeServer(t, Options{}, func(*realtime.Conn) { opened <- struct{}{} })
	nc := rawUpgrade(t, addr, "8")
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(nc)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read: %v (got %q)", err, b)
	}
	res, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
	if err != nil {
		t.Fatalf("no HTTP response (%v): %q", err, b)
	}
	if res.StatusCode != http.StatusUpgradeRequired || res.Header.Get("Sec-Websocket-Version") != "13" {
		t.Fatalf("got %d %v, want 426 with Sec-WebSocket-Version: 13", res.StatusCode, res.Header)
	}
	select {
	case <-opened:
		t.Fatal("Open ran for a refused handshake")
	default:
	}
}

// An Open that panics closes its connection with 1011, after the handshake
// response and what Open sent before it panicked, and counts the panic;
// the panic does not reach the HTTP server.
func TestOpenPanics(t *testing.T) {
	var counted atomic.Int64
	addr, srv, h := handshakeServer(t, Options{OnPanic: func(where string) {
		if where == panics.Handshake {
			counted.Add(1)
		}
	}}, func(c *realtime.Conn) {
		_ = c.SendJSON([]byte(`{"type":"first"}`))
		panic("open failed")
	})
	nc := rawUpgrade(t, addr, "13")
	br := bufio.NewReader(nc)
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if res, err := http.ReadResponse(br, nil); err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", res, err)
	}
	c := &client{t: t, conn: nc, r: br}
	if got := c.text(); got != `{"type":"first"}` {
		t.Fatalf("got %s", got)
	}
	if code := c.closeCode(); code != ws.StatusCode(realtime.CloseInternalError) {
		t.Fatalf("close code %d, want 1011", code)
	}
	eventually(t, "the connection to be gone", func() bool { return srv.Conns() == 0 && h.closed.Load() == 1 })
	if n := counted.Load(); n != 1 {
		t.Fatalf("%d handshake panics counted, want 1", n)
	}
}
