package app_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/internal/app"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/testenv"
)

// stoppable is a herald serving on a loopback port that the test shuts
// down (as SIGTERM does) when it chooses.
type stoppable struct {
	base, addr string
	stop       context.CancelFunc
	done       chan error
	once       sync.Once
	err        error
}

// wait waits for Serve to return and returns its error.
func (s *stoppable) wait() error {
	s.once.Do(func() { s.err = <-s.done })
	return s.err
}

func startStoppable(t *testing.T, dsn string, tweak func(*config.Config)) *stoppable {
	t.Helper()
	cfg := testenv.Config(t, dsn)
	if tweak != nil {
		tweak(&cfg)
	}
	a, err := app.New(context.Background(), cfg, slog.New(slog.DiscardHandler), app.WithPasswordParams(testenv.CheapPasswords))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := app.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &stoppable{base: "http://" + ln.Addr().String(), addr: ln.Addr().String(), stop: cancel, done: make(chan error, 1)}
	go func() { s.done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		_ = s.wait()
		a.Close()
	})
	return s
}

// waitRefusing waits until the server accepts no more connections: its
// shutdown has begun.
func (s *stoppable) waitRefusing(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the server still accepts connections after shutdown began")
		}
	}
}

// signUp registers name and signs in, leaving no connection open.
func signUp(t *testing.T, base, name string) string {
	t.Helper()
	post(t, base+"/api/auth/register/", "", map[string]string{"username": name, "password": "password of " + name})
	tok := post(t, base+"/api/auth/token/", "", map[string]string{"username": name, "password": "password of " + name})["access"].(string)
	http.DefaultClient.CloseIdleConnections()
	return tok
}

// postQuest creates a quest with client, reporting whether the request went
// out on a connection used before.
func postQuest(client *http.Client, base, token, title string) (res *http.Response, reused bool, err error) {
	body := fmt.Sprintf(`{"title":%q}`, title)
	req, _ := http.NewRequest("POST", base+"/api/quests/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
	}))
	res, err = client.Do(req)
	if err != nil {
		return nil, reused, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res, reused, nil
}

func readyz(t *testing.T, client *http.Client, base string) int {
	t.Helper()
	res, err := client.Get(base + "/readyz")
	if err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// A request in flight when shutdown begins is answered in full with
// Connection: close, and so is one that a client sends on its kept-alive
// connection after shutdown began: neither is cut off, while new
// connections are refused and /readyz answers 503. Once no connection is
// left, herald stops without waiting for the rest of the grace period.
func TestShutdownAnswersKeptAliveConnectionsWithConnectionClose(t *testing.T) {
	const grace = time.Minute
	h := startStoppable(t, testenv.SQLite(t), func(c *config.Config) { c.ShutdownGrace = grace })
	tok := signUp(t, h.base, "drainer")

	// In flight: the handler runs and reads the body, which the client has
	// not sent yet (it asked for 100 Continue and got it).
	inflight, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer inflight.Close()
	_ = inflight.SetDeadline(time.Now().Add(30 * time.Second))
	body := `{"title":"in flight"}`
	fmt.Fprintf(inflight, "POST /api/quests/ HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", h.addr, tok, len(body))
	br := bufio.NewReader(inflight)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("before the body: %q %v; want 100 Continue", line, err)
	}
	if line, err := br.ReadString('\n'); err != nil || line != "\r\n" {
		t.Fatalf("after 100 Continue: %q %v", line, err)
	}

	// Kept alive: one request done, the connection idle in the pool.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	res, _, err := postQuest(client, h.base, tok, "before")
	if err != nil || res.StatusCode != http.StatusCreated || res.Close {
		t.Fatalf("before shutdown: %v %v", res, err)
	}

	// A load balancer's health check, kept alive too.
	probe := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer probe.CloseIdleConnections()
	if code := readyz(t, probe, h.base); code != http.StatusOK {
		t.Fatalf("/readyz before shutdown: %d", code)
	}

	h.stop()
	h.waitRefusing(t)

	if code := readyz(t, probe, h.base); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz after shutdown began: %d, want 503", code)
	}
	res, reused, err := postQuest(client, h.base, tok, "kept alive")
	if err != nil {
		t.Fatalf("a request on a kept-alive connection after shutdown began failed: %v", err)
	}
	if res.StatusCode != http.StatusCreated || !res.Close || !reused {
		t.Errorf("kept-alive request after shutdown began: HTTP %d, Connection: close %v, on the kept-alive connection %v; want 201 with Connection: close on it",
			res.StatusCode, res.Close, reused)
	}

	if _, err := io.WriteString(inflight, body); err != nil {
		t.Fatal(err)
	}
	res, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the request in flight got no answer: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated || !res.Close || !bytes.Contains(b, []byte(`"in flight"`)) {
		t.Errorf("request in flight: HTTP %d, Connection: close %v, %s; want 201 with Connection: close and the quest", res.StatusCode, res.Close, b)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("the in-flight request's connection stays open after Connection: close (%v)", err)
	}

	returned := make(chan error, 1)
	go func() { returned <- h.wait() }()
	select {
	case err := <-returned:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(grace / 4):
		t.Fatalf("herald still serving %v after its last connection closed", grace/4)
	}
}

// Clients posting back to back through a shutdown, each honouring
// Connection: close as Go's client does, lose no request: every request
// they send is answered; only new connections are refused.
func TestShutdownLosesNoRequestOfWellBehavedClients(t *testing.T) {
	const clients = 8
	h := startStoppable(t, testenv.SQLite(t), func(c *config.Config) { c.ShutdownGrace = 20 * time.Second })
	tok := signUp(t, h.base, "steady")
	var (
		mu       sync.Mutex
		answered int
		closed   int
		lost     []string
		wg       sync.WaitGroup
		started  sync.WaitGroup
	)
	started.Add(clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
			defer client.CloseIdleConnections()
			for n := 0; ; n++ {
				if n == 3 {
					started.Done()
				}
				res, _, err := postQuest(client, h.base, tok, fmt.Sprintf("client %d quest %d", i, n))
				var op *net.OpError
				switch {
				case errors.As(err, &op) && op.Op == "dial":
					// Refused before anything was sent: the client would
					// go to another process.
					if n < 3 {
						started.Done()
					}
					return
				case err != nil:
					mu.Lock()
					lost = append(lost, err.Error())
					mu.Unlock()
					if n < 3 {
						started.Done()
					}
					return
				}
				mu.Lock()
				if res.StatusCode == http.StatusCreated {
					answered++
				} else {
					lost = append(lost, res.Status)
				}
				if res.Close {
					closed++
				}
				mu.Unlock()
			}
		}()
	}
	started.Wait()
	h.stop()
	wg.Wait()
	if err := h.wait(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	t.Logf("%d requests answered, %d of them with Connection: close", answered, closed)
	if len(lost) > 0 {
		t.Errorf("%d requests failed during the shutdown: %v", len(lost), lost)
	}
	if closed < clients {
		t.Errorf("%d responses said Connection: close; want one per client (%d) at least", closed, clients)
	}
}

// A real herald with real-time clients connected: SIGTERM with a 3 s grace
// closes them with 1012 spread over the grace, the last after half of it.
func TestShutdownSpreadsRealtimeClosesOverTheGrace(t *testing.T) {
	const (
		n     = 100
		grace = 3 * time.Second
	)
	h := startStoppable(t, testenv.SQLite(t), func(c *config.Config) { c.ShutdownGrace = grace })
	_, cid := activeCampaign(t, h.base, "spread")
	url := "ws" + strings.TrimPrefix(h.base, "http") + fmt.Sprintf("/ws/campaign/%d/", cid)
	type closed struct {
		code ws.StatusCode
		at   time.Time
	}
	closes := make(chan closed, n)
	for range n {
		c := testenv.MustDialWS(t, url, nil)
		c.NextEvent(5 * time.Second) // the snapshot
		go func() {
			for {
				if _, err := c.Next(10 * time.Second); err != nil {
					closes <- closed{c.CloseCode, time.Now()}
					return
				}
			}
		}()
	}
	start := time.Now()
	h.stop()
	if err := h.wait(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	var after []time.Duration
	for range n {
		c := <-closes
		if c.code != ws.StatusCode(realtime.CloseServiceRestart) {
			t.Fatalf("close code %d, want 1012", c.code)
		}
		after = append(after, c.at.Sub(start))
	}
	slices.Sort(after)
	first, last := after[0], after[n-1]
	t.Logf("closes seen from %v to %v after shutdown began", first, last)
	if last < grace/2 || last >= grace {
		t.Errorf("last close seen %v after shutdown began; want it after half the grace (%v) and before its end", last, grace/2)
	}
	if last-first < grace/2 {
		t.Errorf("closes seen within %v; want them spread over at least half the grace", last-first)
	}
}
