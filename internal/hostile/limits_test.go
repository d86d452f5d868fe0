package hostile

import (
	"bytes"
	"net"
	"net/http"
	"testing"
	"time"
)

// limitCases are the limits one client address meets.
func limitCases() []hcase {
	return []hcase{
		{name: "limits/WebSockets up to the limit, then an event stream", run: wsThenStream},
		{name: "limits/event streams up to the limit, then a WebSocket", run: streamsThenWS},
		{name: "limits/metrics on the public port", run: func(t *testing.T, h *herald) {
			r := h.client(t).must(t, req{path: "/metrics"})
			if r.Status == ok && (bytes.Contains(r.Body, []byte("go_goroutines")) || bytes.Contains(r.Body, []byte("herald_"))) {
				t.Errorf("/metrics on the public port serves the metrics; they belong on --admin-addr")
			}
		}},
	}
}

// wsThenStream: an address holding its limit of WebSockets gets no event
// stream either (429 with Retry-After); closing one makes room again.
func wsThenStream(t *testing.T, h *herald) {
	c := h.client(t)
	var held []*wsConn
	defer func() {
		for _, w := range held {
			w.Close()
		}
	}()
	for range maxConnsPerAddr {
		held = append(held, dialOK(t, c, "/ws/campaign/1/"))
	}
	w, err := c.ws("/ws/campaign/1/", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if w.status != http.StatusTooManyRequests {
		t.Errorf("WebSocket %d over the limit: %d, want 429", maxConnsPerAddr+1, w.status)
	}
	nc, r, err := c.holdStream("/sse/campaign/1/")
	if err != nil {
		t.Fatal(err)
	}
	if nc != nil {
		nc.Close()
		t.Fatalf("an event stream over the limit of %d connections was accepted", maxConnsPerAddr)
	}
	wantStatus(t, r, http.StatusTooManyRequests)
	if r.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	held[0].Close()
	held = held[1:]
	awaitStream(t, c)
}

// streamsThenWS is wsThenStream the other way round.
func streamsThenWS(t *testing.T, h *herald) {
	c := h.client(t)
	var held []net.Conn
	defer func() {
		for _, nc := range held {
			nc.Close()
		}
	}()
	for i := range maxConnsPerAddr {
		nc, r, err := c.holdStream("/sse/campaign/1/")
		if err != nil {
			t.Fatal(err)
		}
		if nc == nil {
			t.Fatalf("event stream %d under the limit: %s", i+1, r)
		}
		held = append(held, nc)
	}
	w, err := c.ws("/ws/campaign/1/", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if w.status != http.StatusTooManyRequests {
		t.Errorf("a WebSocket over the limit of %d connections: %d, want 429", maxConnsPerAddr, w.status)
	}
}

// awaitStream waits until the address may open an event stream again (the
// server notices a closed connection on its own time).
func awaitStream(t *testing.T, c *client) {
	t.Helper()
	err := poll(10*time.Second, func() (bool, error) {
		nc, r, err := c.holdStream("/sse/campaign/1/")
		if nc != nil {
			nc.Close()
			return true, nil
		}
		if err == nil && r.Status != http.StatusTooManyRequests {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		t.Errorf("no room after a connection closed: %v", err)
	}
}
