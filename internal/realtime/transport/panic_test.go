package transport

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/internal/panics"
	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/layer"
)

// panicCounter is an OnPanic hook that counts by boundary.
type panicCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (p *panicCounter) hook(where string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == nil {
		p.n = map[string]int{}
	}
	p.n[where]++
}

func (p *panicCounter) get(where string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[where]
}

// panicHandler panics on the message "boom", and in OnClose of a
// connection named "bad-close"; otherwise it echoes like testHandler.
type panicHandler struct{ testHandler }

func (h *panicHandler) OnMessage(c *realtime.Conn, data []byte) {
	if string(data) == "boom" {
		panic("boom")
	}
	h.testHandler.OnMessage(c, data)
}

func (h *panicHandler) OnClose(c *realtime.Conn) {
	h.testHandler.OnClose(c)
	if c.Value == "bad-close" {
		panic("close failed")
	}
}

type panicEnv struct {
	hub    *realtime.Hub
	srv    *Server
	sse    *SSE
	h      *panicHandler
	counts *panicCounter
	url    string // http://…
	ws     string // ws://…
}

// newPanicEnv serves WebSocket connections on /ws and event streams on
// /sse, both named by ?name= (their Value) and joined to the group "room"
// once open. A stream named "boom" panics while it is opened.
func newPanicEnv(t *testing.T, opts Options, sseOpts SSEOptions) *panicEnv {
	t.Helper()
	e := &panicEnv{h: &panicHandler{}, counts: &panicCounter{}}
	hub, err := realtime.NewHub(realtime.HubOptions{Logger: quietLogger()}, func(deliver func(layer.Message)) (layer.Layer, error) {
		return layer.NewMemory(deliver, layer.MemoryOptions{}), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger, opts.OnPanic = quietLogger(), e.counts.hook
	sseOpts.Logger, sseOpts.OnPanic = quietLogger(), e.counts.hook
	srv, err := NewServer(hub, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.hub, e.srv, e.sse = hub, srv, NewSSE(hub, sseOpts)
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		_, _ = srv.Upgrade(w, r, ConnConfig{Handler: e.h, Value: name, Open: func(c *realtime.Conn) {
			_ = c.SendJSON([]byte(`{"type":"snapshot","data":{}}`))
			if err := hub.Join(context.Background(), c, "room"); err != nil {
				t.Error(err)
			}
		}})
	})
	mux.HandleFunc("/sse", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		st, err := e.sse.Accept(w, r, ConnConfig{Handler: e.h, Value: name})
		if err != nil {
			return
		}
		st.Open(func() {
			if name == "boom" {
				panic("open failed")
			}
			if err := hub.Join(context.Background(), st.Conn(), "room"); err != nil {
				t.Error(err)
			}
		})
		st.Serve(r.Context())
	})
	ts := httptest.NewServer(mux)
	e.url, e.ws = ts.URL, "ws"+strings.TrimPrefix(ts.URL, "http")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
		_ = e.sse.Shutdown(ctx)
		ts.Close()
		hub.Close()
	})
	return e
}

func (e *panicEnv) dial(t *testing.T, name string) *client {
	t.Helper()
	c := dial(t, e.ws+"/ws?name="+name)
	if got := c.text(); got != `{"type":"snapshot","data":{}}` {
		t.Fatalf("first message of %s: %s", name, got)
	}
	return c
}

// stillServed checks that c gets an event published to the room.
func (e *panicEnv) stillServed(t *testing.T, c *client) {
	t.Helper()
	if _, err := e.hub.Publish(context.Background(), "room", "comment", []byte(`{"id":1}`)); err != nil {
		t.Fatal(err)
	}
	if got := c.text(); got != `{"type":"comment","data":{"id":1}}` {
		t.Fatalf("event: %s", got)
	}
}

// A handler that panics on one connection's message closes that
// connection with 1011; the other connections are served on, the panic is
// counted, and the reader workers go on.
func TestReaderPanicClosesOnlyItsConnection(t *testing.T) {
	forEachMode(t, testReaderPanic)
}

func testReaderPanic(t *testing.T, mode Options) {
	e := newPanicEnv(t, withPollers(mode, Options{}), SSEOptions{})
	bad, good := e.dial(t, "bad"), e.dial(t, "good")
	eventually(t, "joins", func() bool { return e.hub.GroupSize("room") == 2 })
	bad.send(ws.OpText, []byte("boom"))
	if code := bad.closeCode(); code != ws.StatusCode(realtime.CloseInternalError) {
		t.Fatalf("close code %d, want 1011", code)
	}
	good.send(ws.OpText, []byte(`"hi"`))
	if got := good.text(); got != `{"type":"echo","data":"hi"}` {
		t.Fatalf("echo: %s", got)
	}
	e.stillServed(t, good)
	eventually(t, "the connection that panicked to end", func() bool { return e.srv.Conns() == 1 })
	if n := e.counts.get(panics.WSReader); n != 1 {
		t.Fatalf("%d reader panics counted, want 1", n)
	}
	// The readers survived: new connections are read.
	again := e.dial(t, "again")
	again.send(ws.OpText, []byte(`"again"`))
	if got := again.text(); got != `{"type":"echo","data":"again"}` {
		t.Fatalf("echo on a new connection: %s", got)
	}
}

// A message that panics the handler while it is still in the handshake's
// read buffer (sent right behind the upgrade request) closes its connection
// with 1011 too.
func TestPendingMessagePanic(t *testing.T) { forEachMode(t, testPendingMessagePanic) }

func testPendingMessagePanic(t *testing.T, mode Options) {
	e := newPanicEnv(t, withPollers(mode, Options{}), SSEOptions{})
	good := e.dial(t, "good")
	addr := strings.TrimPrefix(e.url, "http://")
	var req strings.Builder
	req.WriteString("GET /ws?name=bad HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	if err := ws.WriteFrame(&req, ws.MaskFrame(ws.NewTextFrame([]byte("boom")))); err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if _, err := io.WriteString(nc, req.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if res, err := http.ReadResponse(br, nil); err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", res, err)
	}
	bad := &client{t: t, conn: nc, r: br}
	bad.text() // snapshot
	if code := bad.closeCode(); code != ws.StatusCode(realtime.CloseInternalError) {
		t.Fatalf("close code %d, want 1011", code)
	}
	e.stillServed(t, good)
	if n := e.counts.get(panics.WSReader); n != 1 {
		t.Fatalf("%d reader panics counted, want 1", n)
	}
}

// A panic while writing a connection drops that connection (no close frame
// can follow a partly written frame); the pool writer goes on writing the
// others.
func TestWriterPanicDropsOnlyItsConnection(t *testing.T) {
	forEachMode(t, testWriterPanic)
}

func testWriterPanic(t *testing.T, mode Options) {
	var armed atomic.Bool
	opts := withPollers(mode, Options{})
	opts.testBeforeDrain = func(w *wsConn) {
		if w.link.Conn().Value == "bad" && armed.CompareAndSwap(true, false) {
			panic("write failed")
		}
	}
	e := newPanicEnv(t, opts, SSEOptions{})
	bad, good := e.dial(t, "bad"), e.dial(t, "good")
	eventually(t, "joins", func() bool { return e.hub.GroupSize("room") == 2 })
	armed.Store(true)
	e.stillServed(t, good)
	if op, p, err := bad.next(); err == nil {
		t.Fatalf("the connection whose write panicked read %v %q; want it dropped", op, p)
	}
	eventually(t, "the dropped connection to end", func() bool { return e.srv.Conns() == 1 && e.h.closed.Load() == 1 })
	if n := e.counts.get(panics.WSWriter); n != 1 {
		t.Fatalf("%d writer panics counted, want 1", n)
	}
	e.stillServed(t, good) // the writers go on
}

// A handler whose OnClose panics (here on the close timer's goroutine or a
// reader's) does not take the server down, and the connection is gone.
func TestOnClosePanic(t *testing.T) {
	e := newPanicEnv(t, Options{}, SSEOptions{})
	bad, good := e.dial(t, "bad-close"), e.dial(t, "good")
	eventually(t, "joins", func() bool { return e.hub.GroupSize("room") == 2 })
	bad.conn.Close()
	eventually(t, "the closed connection to end", func() bool { return e.srv.Conns() == 1 && e.h.closed.Load() == 1 })
	// The panic is counted once the recover boundary has reported it,
	// which may come just after the connection ended.
	eventually(t, "the panic to be counted", func() bool { return e.counts.get(panics.WSReader) >= 1 })
	if n := e.counts.get(panics.WSReader); n != 1 {
		t.Fatalf("%d panics counted, want 1", n)
	}
	e.stillServed(t, good)
}

// sseClient reads an event stream line by line.
type sseClient struct {
	t     *testing.T
	res   *http.Response
	lines chan string
}

func dialSSE(t *testing.T, url string) (*sseClient, int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		res.Body.Close()
	})
	c := &sseClient{t: t, res: res, lines: make(chan string, 64)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	return c, res.StatusCode
}

// event returns the next "event:" line's value; "" when the stream ended.
func (c *sseClient) event() string {
	c.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return ""
			}
			if v, found := strings.CutPrefix(l, "event: "); found {
				return v
			}
		case <-timeout:
			c.t.Fatal("no event in 10 s")
		}
	}
}

// ended waits for the stream's end.
func (c *sseClient) ended() bool {
	c.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-c.lines:
			if !ok {
				return true
			}
		case <-timeout:
			return false
		}
	}
}

// A panic while opening an event stream, or while writing it, ends that
// stream only; the others get their events, and the panics are counted.
func TestSSEPanicEndsOnlyItsStream(t *testing.T) {
	var armed atomic.Bool
	e := newPanicEnv(t, Options{}, SSEOptions{testBeforeDrain: func(st *SSEStream) {
		if st.Conn().Value == "bad" && armed.CompareAndSwap(true, false) {
			panic("write failed")
		}
	}})
	good, code := dialSSE(t, e.url+"/sse?name=good")
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	boom, code := dialSSE(t, e.url+"/sse?name=boom")
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if !boom.ended() {
		t.Fatal("the stream whose opening panicked did not end")
	}
	bad, _ := dialSSE(t, e.url+"/sse?name=bad")
	eventually(t, "joins", func() bool { return e.hub.GroupSize("room") == 2 })
	armed.Store(true)
	if _, err := e.hub.Publish(context.Background(), "room", "comment", []byte(`{"id":1}`)); err != nil {
		t.Fatal(err)
	}
	if ev := good.event(); ev != "comment" {
		t.Fatalf("good stream: event %q", ev)
	}
	if !bad.ended() {
		t.Fatal("the stream whose write panicked did not end")
	}
	eventually(t, "the streams that panicked to end", func() bool { return e.sse.Conns() == 1 })
	if n := e.counts.get(panics.SSE); n != 2 {
		t.Fatalf("%d stream panics counted, want 2", n)
	}
	if _, err := e.hub.Publish(context.Background(), "room", "comment", []byte(`{"id":2}`)); err != nil {
		t.Fatal(err)
	}
	if ev := good.event(); ev != "comment" {
		t.Fatalf("good stream, second event: %q", ev)
	}
}

// With one limiter given to both transports, an address's WebSocket
// connections and event streams count together: N of one kind leave no
// room for the other.
func TestSharedLimitsCountBothTransports(t *testing.T) {
	const n = 2
	limits := NewAddrLimiter(n, -1, 0)
	e := newPanicEnv(t, Options{Limits: limits}, SSEOptions{Limits: limits})
	var wss []*client
	for i := range n {
		wss = append(wss, e.dial(t, "ws"+string(rune('a'+i))))
	}
	if _, code := dialSSE(t, e.url+"/sse?name=over"); code != http.StatusTooManyRequests {
		t.Fatalf("event stream over the limit: %d, want 429", code)
	}
	for _, c := range wss {
		c.conn.Close()
	}
	eventually(t, "the WebSocket connections to end", func() bool { return e.srv.Conns() == 0 })
	for i := range n {
		if _, code := dialSSE(t, e.url+"/sse?name=s"+string(rune('a'+i))); code != http.StatusOK {
			t.Fatalf("event stream %d: %d", i, code)
		}
	}
	eventually(t, "the streams to open", func() bool { return e.sse.Conns() == n })
	_, _, _, err := ws.Dialer{}.Dial(context.Background(), e.ws+"/ws?name=over")
	if err != ws.StatusError(http.StatusTooManyRequests) {
		t.Fatalf("WebSocket over the limit: %v, want 429", err)
	}
}
