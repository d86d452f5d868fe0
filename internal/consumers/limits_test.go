package consumers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/internal/app"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/testenv"
)

// One address may hold only so many connections; past that the handshake is
// refused with 429, and a closed connection frees its slot.
func TestPerAddressConnectionLimit(t *testing.T) {
	s := start(t, testenv.SQLite(t), func(c *config.Config) { c.MaxConnsPerAddr = 3; c.HandshakeRate = -1 })
	_, tok := s.user("owner")
	c := s.call("POST", "/api/campaigns/", tok, map[string]any{"title": "A", "goal_amount": "1.00", "status": "active"}, 201)
	url := s.ws + fmt.Sprintf("/ws/campaign/%d/", id(c))
	var open []*testenv.WSClient
	for i := 0; i < 3; i++ {
		open = append(open, testenv.MustDialWS(t, url, nil))
	}
	if _, status, _ := testenv.DialWS(t, url, nil); status != http.StatusTooManyRequests {
		t.Fatalf("fourth connection: status %d; want 429", status)
	}
	open[0].Close()
	deadline := time.Now().Add(wait)
	for {
		if _, status, _ := testenv.DialWS(t, url, nil); status == http.StatusSwitchingProtocols {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed connection never freed its slot")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHandshakeRateLimit(t *testing.T) {
	s := start(t, testenv.SQLite(t), func(c *config.Config) { c.HandshakeRate = 2 }) // burst 4
	_, tok := s.user("owner")
	c := s.call("POST", "/api/campaigns/", tok, map[string]any{"title": "A", "goal_amount": "1.00", "status": "active"}, 201)
	url := s.ws + fmt.Sprintf("/ws/campaign/%d/", id(c))
	refused := 0
	for i := 0; i < 8; i++ {
		if _, status, _ := testenv.DialWS(t, url, nil); status == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused < 3 {
		t.Fatalf("%d of 8 rapid handshakes refused; want at least 3 past the burst of 4", refused)
	}
}

// 1,000 clients in one room each receive every one of 100 events, in order.
func TestThousandClientsAllEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,000 connections")
	}
	s := start(t, testenv.SQLite(t), func(c *config.Config) { c.HandshakeRate = -1; c.MaxConnsPerAddr = -1 })
	_, tok := s.user("owner")
	c := s.call("POST", "/api/campaigns/", tok, map[string]any{"title": "Big room", "goal_amount": "1.00", "status": "active"}, 201)
	url := s.ws + fmt.Sprintf("/ws/campaign/%d/", id(c))
	const clients, events = 1000, 100
	conns := make([]*testenv.WSClient, clients)
	for i := range conns {
		conns[i] = testenv.MustDialWS(t, url, nil)
		if ev := conns[i].NextEvent(wait); ev.Type != "campaign_data" {
			t.Fatalf("client %d first got %s", i, ev.Type)
		}
	}
	var want []int64
	for i := 0; i < events; i++ {
		com := s.call("POST", fmt.Sprintf("/api/campaigns/%d/comments/", id(c)), tok, map[string]any{"content": fmt.Sprint(i)}, 201)
		want = append(want, id(com))
	}
	var wg sync.WaitGroup
	errs := make(chan string, clients)
	for i, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < events; j++ {
				raw, err := conn.Next(20 * time.Second)
				if err != nil {
					errs <- fmt.Sprintf("client %d: event %d: %v", i, j, err)
					return
				}
				var ev struct {
					Type string
					Data struct{ ID int64 }
				}
				if json.Unmarshal(raw, &ev) != nil || ev.Type != "comment" || ev.Data.ID != want[j] {
					errs <- fmt.Sprintf("client %d: event %d is %s; want comment %d", i, j, raw, want[j])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

// A client that stops reading is cut off as a slow consumer while the rest
// of the room keeps receiving everything.
func TestStalledReaderIsCutOff(t *testing.T) {
	s := startWith(t, testenv.SQLite(t), []app.Option{queueBoundOnly()})
	uid, tok := s.user("owner")
	c := s.call("POST", "/api/campaigns/", tok, map[string]any{"title": "Room", "goal_amount": "1.00", "status": "active"}, 201)
	url := s.ws + fmt.Sprintf("/ws/campaign/%d/", id(c))
	stalled := testenv.MustDialWS(t, url, nil)
	healthy := testenv.MustDialWS(t, url, nil)
	stalled.NextEvent(wait)
	healthy.NextEvent(wait)
	// Big comments fill the stalled client's socket buffers and then its
	// bounded queue; it never reads.
	big := strings.Repeat("x", 4900)
	const n = 2500 // ~12 MB: more than loopback socket buffers hold
	done := make(chan int)
	var got atomic.Int64
	go func() {
		for got.Load() < n {
			ev, err := healthy.Next(10 * time.Second)
			if err != nil {
				break
			}
			if json.Valid(ev) {
				got.Add(1)
			}
		}
		done <- int(got.Load())
	}()
	// The stalled client starts reading once the server has cut it off, to
	// find the close code behind what its socket still holds.
	closed := make(chan int, 1)
	go func() {
		for s.app.Hub().SlowConsumers() == 0 {
			select {
			case <-t.Context().Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
		for {
			if _, err := stalled.Next(15 * time.Second); err != nil {
				closed <- int(stalled.CloseCode)
				return
			}
		}
	}()
	for i := 0; i < n; i++ {
		// Paced to what a healthy reader takes, so only the stalled one lags.
		for lag := time.Now(); int64(i)-got.Load() > 64; time.Sleep(time.Millisecond) {
			if time.Since(lag) > 10*time.Second {
				t.Fatalf("the healthy client stopped at %d events", got.Load())
			}
		}
		content := big
		if _, err := s.app.Platform().PostComment(context.Background(), uid, id(c), platform.CommentInput{Content: &content}); err != nil {
			t.Fatal(err)
		}
	}
	if got := <-done; got != n {
		t.Fatalf("the healthy client got %d of %d events", got, n)
	}
	// Every event reached the room, so the stalled client's queue overflowed
	// long ago: its close code comes once it has read its backlog.
	select {
	case code := <-closed:
		if code != int(realtime.CloseSlowConsumer) {
			t.Errorf("stalled client closed with %d; want %d", code, realtime.CloseSlowConsumer)
		}
	case <-time.After(time.Minute):
		t.Fatalf("the stalled client was not cut off (slow consumers: %d)", s.app.Hub().SlowConsumers())
	}
}

// On shutdown (SIGTERM) every real-time client is told to reconnect
// elsewhere with 1012, and events committed just before are still delivered.
func TestShutdownClosesWith1012(t *testing.T) {
	s := start(t, testenv.SQLite(t), func(c *config.Config) { c.ShutdownGrace = 3 * time.Second })
	_, tok := s.user("owner")
	c := s.call("POST", "/api/campaigns/", tok, map[string]any{"title": "Room", "goal_amount": "1.00", "status": "active"}, 201)
	room := testenv.MustDialWS(t, s.ws+fmt.Sprintf("/ws/campaign/%d/", id(c)), nil)
	apps := testenv.MustDialWS(t, s.ws+"/ws/applications/?token="+tok, nil)
	room.NextEvent(wait)
	s.Stop()
	for _, cl := range []*testenv.WSClient{room, apps} {
		if code := cl.WaitClose(wait); code != ws.StatusCode(realtime.CloseServiceRestart) {
			t.Errorf("close code %d; want 1012", code)
		}
	}
}
