package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/internal/realtime"
)

func TestJoinFanOutAndOrdering(t *testing.T) { forEachMode(t, testJoinFanOutAndOrdering) }

func testJoinFanOutAndOrdering(t *testing.T, mode Options) {
	e := newEnv(t, realtime.HubOptions{MaxQueueFrames: 4096}, withPollers(mode, Options{}))
	ctx := context.Background()
	both1 := dial(t, e.url+"?join=g,h")
	both2 := dial(t, e.url+"?join=g,h&v=2")
	onlyH := dial(t, e.url+"?join=h")
	for _, c := range []*client{both1, both2, onlyH} {
		if got := c.text(); got != `{"type":"snapshot","data":{}}` {
			t.Fatalf(
				"first message = %s",
				got)
		}
	}
	eventually(t, "joins", func() bool { return e.hub.GroupSize("g") == 2 && e.hub.GroupSize("h") == 3 })

	const n = 300
	var wg sync.WaitGroup
	for _, g := range []string{"g", "h"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= n; i++ {
				if _, err := e.hub.Publish(ctx, g, "ev_"+g, fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()

	type wire struct {
		Type   string `json:"type"`
		Data   struct{ N int }
		Group  string `json:"group"`
		Offset uint64 `json:"offset"`
	}
	check := func(name string, c *client, groups []string, v2 bool) {
		last := map[string]int{}
		for range n * len(groups) {
			raw := c.text()
			var m wire
			if err := json.Unmarshal([]byte(raw), &m); err != nil {
				t.Fatalf(
					"%s: %v in %s",
					name, err, raw)
			}
			g := strings.TrimPrefix(m.Type, "ev_")
			if m.Data.N != last[g]+1 {
				t.Fatalf(
					"%s: group %s: got n=%d after %d",
					name, g, m.Data.N, last[g])
			}
			last[g] = m.Data.N
			if v2 != (m.Group == g && m.Offset == uint64(m.Data.N)) {
				t.Fatalf(
					"%s: v2 fields wrong in %s",
					name, raw)
			}
			if !v2 && strings.Contains(raw, "offset") {
				t.Fatalf(
					"%s: v1 frame carries v2 fields: %s",
					name, raw)
			}
		}
	}
	check("v1 client", both1, []string{"g", "h"}, false)
	check("v2 client", both2, []string{"g", "h"}, true)
	check("h-only client", onlyH, []string{"h"}, false)

	// Leaving on close unsubscribes.
	both1.conn.Close()
	both2.conn.Close()
	onlyH.conn.Close()
	eventually(t, "groups emptied", func() bool { return e.hub.Stats().Groups == 0 && e.srv.Conns() == 0 })
	if got := e.h.closed.Load(); got != 3 {
		t.Fatalf(
			"OnClose calls = %d",
			got)
	}
}

func TestMessagesEchoAndFragments(t *testing.T) { forEachMode(t, testMessagesEchoAndFragments) }

func testMessagesEchoAndFragments(t *testing.T, mode Options) {
	e := newEnv(t, realtime.HubOptions{}, withPollers(mode, Options{}))
	c := dial(t, e.url)
	c.text() // snapshot
	c.send(ws.OpText, []byte(`{"type":"comment","data":{"id":345}}`))
	if got := c.text(); got != `{"type":"echo","data":{"type":"comment","data":{"id":345}}}` {
		t.Fatalf(
			"echo = %s",
			got)
	}
	// A fragmented message with a ping in between.
	c.sendFrame(ws.OpText, false, []byte(`{"a":`))
	c.sendFrame(ws.OpPing, true, []byte("hi"))
	c.sendFrame(ws.OpContinuation, false, []byte(`[1,2`))
	c.sendFrame(ws.OpContinuation, true, []byte(`]}`))
	op, p, err := c.next()
	if err != nil || op != ws.OpPong || string(p) != "hi" {
		t.Fatalf(
			"pong: op=%v p=%q err=%v",
			op, p, err)
	}
	if got := c.text(); got != `{"type":"echo","data":{"a":[1,2]}}` {
		t.Fatalf(
			"fragmented echo = %s",
			got)
	}
	// Client-initiated close is answered with the same code.
	c.send(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye"))
	if code := c.closeCode(); code != ws.StatusNormalClosure {
		t.Fatalf(
			"close echo = %d",
			code)
	}
	eventually(t, "connection released", func() bool { return e.srv.Conns() == 0 && e.h.closed.Load() == 1 })
}

func TestBadInputCloses(t *testing.T) { forEachMode(t, testBadInputCloses) }

func testBadInputCloses(t *testing.T, mode Options) {
	e := newEnv(t, realtime.HubOptions{}, withPollers(mode, Options{MaxMessageSize: 1024, CloseTimeout: 200 * time.Millisecond}))
	cases := []struct {
		name string
		send func(c *client)
		code ws.StatusCode
	}{
		{
			name: "oversized frame",
			send: func(c *client) { c.send(ws.OpText, bytes.Repeat([]byte("x"), 2000)) },
			code: ws.StatusCode(realtime.CloseMessageTooBig),
		},
		{
			name: "oversized fragmented message",
			send: func(c *client) {
				c.sendFrame(ws.OpText, false, bytes.Repeat([]byte("x"), 600))
				c.sendFrame(ws.OpContinuation, true, bytes.Repeat([]byte("x"), 600))
			},
			code: ws.StatusCode(realtime.CloseMessageTooBig),
		},
		{
			name: "binary",
			send: func(c *client) { c.send(ws.OpBinary, []byte{1, 2, 3}) },
			code: ws.StatusCode(realtime.CloseUnsupportedData),
		},
		{
			name: "invalid utf-8",
			send: func(c *client) { c.send(ws.OpText, []byte{'"', 0xff, '"'}) },
			code: ws.StatusCode(realtime.CloseInvalidPayload),
		},
		{
			name: "unmasked frame",
			send: func(c *client) {
				if err := ws.WriteFrame(c.conn, ws.NewTextFrame([]byte("{}"))); err != nil {
					t.Fatal(err)
				}
			},
			code: ws.StatusCode(realtime.CloseProtocolError),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, e.url)
			c.t = t
			c.text()
			tc.send(c)
			if code := c.closeCode(); code != tc.code {
				t.Fatalf(
					"close code = %d, want %d",
					code, tc.code)
			}
		})
	}
	eventually(t, "connections released", func() bool { return e.srv.Conns() == 0 })
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, realtime.HubOptions{}, Options{RateLimit: 5, RateBurst: 10, RateStrikes: 5})
	c := dial(t, e.url)
	c.text()
	for i := range 40 {
		if err := writeClientText(c, fmt.Appendf(nil, `{"i":%d}`, i)); err != nil {
			break // the server may already have closed
		}
	}
	var echoes, limited int
	for {
		op, p, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		if op == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(p)
			if code != ws.StatusCode(realtime.CloseTooManyMessages) {
				t.Fatalf(
					"close code = %d",
					code)
			}
			break
		}
		switch {
		case bytes.Contains(p, []byte(`"echo"`)):
			echoes++
		case bytes.Contains(p, []byte(`"rate_limited"`)):
			limited++
		}
	}
	if echoes < 10 || echoes > 12 || limited != 4 {
		t.Fatalf(
			"echoes=%d limited=%d; want about the burst (10) and strikes-1 (4)",
			echoes, limited)
	}
	if e.srv.RateLimited() < 5 || e.h.limited.Load() != 4 {
		t.Fatalf(
			"counters: server %d, handler %d",
			e.srv.RateLimited(), e.h.limited.Load())
	}
}

func writeClientText(c *client, p []byte) error {
	return ws.WriteFrame(c.conn, ws.MaskFrame(ws.NewTextFrame(p)))
}

func TestSlowConsumerQueueOverflow(t *testing.T) { forEachMode(t, testSlowConsumerQueueOverflow) }

func testSlowConsumerQueueOverflow(t *testing.T, mode Options) {
	const bound = 64
	e := newEnv(t, realtime.HubOptions{MaxQueueFrames: bound}, withPollers(mode, Options{SendBuffer: 4096, WriteTimeout: 20 * time.Second}))
	ctx := context.Background()
	slow := dialWith(t, smallBufDialer(), e.url+"?join=g")
	slow.text()
	eventually(t, "join", func() bool { return e.hub.GroupSize("g") == 1 })

	// The client does not read. Publish far more than socket buffers and the
	// queue can hold.
	payload := fmt.Appendf(nil, `{"pad":%q}`, strings.Repeat("x", 500))
	for range 20000 {
		if _, err := e.hub.Publish(ctx, "g", "ev", payload); err != nil {
			t.Fatal(err)
		}
	}
	st := e.hub.Stats()
	if st.SlowConsumers != 1 {
		t.Fatalf(
			"slow consumers = %d, want 1",
			st.SlowConsumers)
	}
	// Everything past the bound was refused, not buffered.
	if accepted := st.FramesOut; accepted > 20000-st.Dropped || st.Dropped < 20000-bound-2000 {
		t.Fatalf(
			"frames queued %d, dropped %d",
			accepted, st.Dropped)
	}
	if e.hub.GroupSize("g") != 1 {
		t.Fatal("closing connection left its group too early")
	}
	// Now the client reads: what was in flight, then the close frame.
	if code := slow.closeCode(); code != ws.StatusCode(realtime.CloseSlowConsumer) {
		t.Fatalf(
			"close code = %d, want 4000",
			code)
	}
	eventually(t, "connection released", func() bool { return e.srv.Conns() == 0 && e.hub.GroupSize("g") == 0 })
}

func TestSlowConsumerWriteTimeout(t *testing.T) { forEachMode(t, testSlowConsumerWriteTimeout) }

func testSlowConsumerWriteTimeout(t *testing.T, mode Options) {
	e := newEnv(t, realtime.HubOptions{MaxQueueFrames: 1 << 20, MaxQueueBytes: 1 << 30}, withPollers(mode, Options{SendBuffer: 4096, WriteTimeout: 200 * time.Millisecond, CloseTimeout: 100 * time.Millisecond}))
	ctx := context.Background()
	slow := dialWith(t, smallBufDialer(), e.url+"?join=g")
	slow.text()
	eventually(t, "join", func() bool { return e.hub.GroupSize("g") == 1 })
	payload := fmt.Appendf(nil, `{"pad":%q}`, strings.Repeat("x", 1000))
	for range 2000 {
		if _, err := e.hub.Publish(ctx, "g", "ev", payload); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "write timeout to close the connection", func() bool {
		return e.hub.SlowConsumers() == 1 && e.srv.Conns() == 0
	})
}

func TestPingAndIdleTimeout(t *testing.T) {
	e := newEnv(t, realtime.HubOptions{}, Options{PingInterval: 50 * time.Millisecond, IdleTimeout: 300 * time.Millisecond, CloseTimeout: 50 * time.Millisecond})
	silent := dial(t, e.url)
	live := dial(t, e.url)
	// live answers pings (client.next does) for a while.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, _, err := live.next(); err != nil {
				return
			}
		}
	}()
	eventually(t, "silent connection closed", func() bool { return e.srv.Conns() == 1 })
	live.conn.Close()
	<-done
	_ = silent
	eventually(t, "all closed", func() bool { return e.srv.Conns() == 0 })
}

func TestOriginCheck(t *testing.T) {
	e := newEnv(t, realtime.HubOptions{}, Options{AllowedOrigins: []string{"https://app.example.com", "https://*.herald.test"}})
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{
			origin: "https://app.example.com",
			ok:     true,
		},
		{
			origin: "https://eu.herald.test",
			ok:     true,
		},
		{
			origin: "https://evil.example.com",
			ok:     false,
		},
		{
			origin: "http://eu.herald.test",
			ok:     false,
		},
	} {
		d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(http.Header{"Origin": {tc.origin}})}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, _, _, err := d.Dial(ctx, e.url)
		cancel()
		if conn != nil {
			conn.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf(
				"origin %s: err = %v, want ok=%v",
				tc.origin, err, tc.ok)
		}
		if !tc.ok {
			if se, isStatus := err.(ws.StatusError); !isStatus || int(se) != http.StatusForbidden {
				t.Errorf(
					"origin %s: err = %v, want HTTP 403",
					tc.origin, err)
			}
		}
	}
}

func TestShutdownClosesWith1012AndLeaksNoGoroutine(t *testing.T) {
	forEachMode(t, testShutdownClosesWith1012AndLeaksNoGoroutine)
}

func testShutdownClosesWith1012AndLeaksNoGoroutine(t *testing.T, mode Options) {
	before := runtime.NumGoroutine()
	func() {
		e := newEnv(t, realtime.HubOptions{}, withPollers(mode, Options{DrainPeriod: 200 * time.Millisecond}))
		const n = 30
		codes := make(chan ws.StatusCode, n)
		for range n {
			c := dial(t, e.url+"?join=room")
			c.text()
			go func() {
				for {
					op, p, err := c.next()
					if err != nil {
						codes <- 0
						return
					}
					if op == ws.OpClose {
						code, _ := ws.ParseCloseFrameData(p)
						_ = writeClose(c, code)
						codes <- code
						return
					}
				}
			}()
		}
		eventually(t, "joins", func() bool { return e.hub.GroupSize("room") == n })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Errorf(
				"shutdown took %v; closes should be spread over the drain period",
				d)
		}
		for range n {
			if code := <-codes; code != ws.StatusCode(realtime.CloseServiceRestart) {
				t.Fatalf(
					"close code = %d, want 1012",
					code)
			}
		}
		if e.srv.Conns() != 0 || e.hub.Stats().Conns != 0 || e.hub.Stats().Groups != 0 {
			t.Fatalf(
				"after shutdown: %d conns, %+v",
				e.srv.Conns(), e.hub.Stats())
		}
		// Upgrades are refused now.
		resp, err := http.Get(e.ts.URL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf(
					"upgrade after shutdown: HTTP %d",
					resp.StatusCode)
			}
		}
		e.ts.Close()
		e.hub.Close()
	}()
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf(
				"goroutines: %d before, %d after\n%s",
				before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func writeClose(c *client, code ws.StatusCode) error {
	return ws.WriteFrame(c.conn, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(code, ""))))
}

// forEachMode runs a test with epoll readers and with a reader goroutine per
// connection (the portable path).
func forEachMode(t *testing.T, f func(t *testing.T, mode Options)) {
	t.Run("epoll", func(t *testing.T) { f(t, Options{}) })
	t.Run("goroutines", func(t *testing.T) { f(t, Options{Pollers: -1}) })
}

func withPollers(mode, o Options) Options {
	o.Pollers = mode.Pollers
	return o
}
