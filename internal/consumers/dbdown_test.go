package consumers_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/heraldhq/herald/internal/testenv"
)

// cutProxy forwards TCP connections to target until cut, which closes its
// listener and every connection it carried: the database seems gone.
type cutProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); _, _ = io.Copy(u, c); u.Close() }()
			go func() { defer p.wg.Done(); _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(p.cut)
	return p
}

func (p *cutProxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// A handshake that needs the database while it is unreachable is answered
// 503 with Retry-After, as the REST API answers: a load balancer may pass it
// on and the client tries again. Before, it was a 500.
func TestHandshakesWhileTheDatabaseIsDownAnswer503(t *testing.T) {
	dsn, err := url.Parse(testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, dsn.Host)
	dsn.Host = proxy.ln.Addr().String()
	s := start(t, dsn.String())
	_, tok := s.user("owner")
	camp := id(s.call("POST", "/api/campaigns/", tok, map[string]any{
		"title": "Down", "description": "d", "goal_amount": "10.00", "currency": "USD", "status": "active",
	}, 201))
	s.settle()
	proxy.cut()

	// A room nobody has joined yet, whose visibility and state come from
	// the database, and a user's quests.
	for name, u := range map[string]string{
		"campaign WebSocket":     fmt.Sprintf("%s/ws/campaign/%d/?v=2", s.ws, camp),
		"applications WebSocket": s.ws + "/ws/applications/?token=" + tok,
	} {
		if c, status, err := testenv.DialWS(t, u, nil); status != http.StatusServiceUnavailable {
			if c != nil {
				c.Close()
			}
			t.Errorf("%s with the database down: %d (%v), want 503", name, status, err)
		}
	}
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/sse/campaign/%d/", s.base, camp), nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "1" {
		t.Errorf("event stream with the database down: %d, Retry-After %q; want 503 and 1", res.StatusCode, res.Header.Get("Retry-After"))
	}
}
