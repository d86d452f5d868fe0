package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// SignInFigures is the signin scenario's outcome: what password sign-ins
// cost the server in memory (each argon2id check holds its whole memory
// cost while it runs) and how many it sustains.
type SignInFigures struct {
	Users int `json:"users"`
	// Server VmRSS before the accounts were made and after.
	RSSFreshKiB      int64 `json:"rss_fresh_kib,omitempty"`
	RSSRegisteredKiB int64 `json:"rss_registered_kib,omitempty"`
	// Bursts are --conns sign-ins sent at once: with right passwords, then
	// for unknown users.
	Bursts    []SignInBurst   `json:"bursts"`
	Sustained SignInSustained `json:"sustained"`
	// RSSPeakKiB is the server's VmHWM at the end: its highest RSS ever.
	RSSPeakKiB int64 `json:"rss_peak_kib,omitempty"`
}

// SignInBurst is one burst of concurrent sign-ins.
type SignInBurst struct {
	KnownUsers bool           `json:"known_users"`
	Requests   int            `json:"requests"`
	Codes      map[string]int `json:"codes"` // HTTP status (or "error") → answers
	Seconds    float64        `json:"seconds"`
	RSSKiB     int64          `json:"rss_after_kib,omitempty"`
	PeakKiB    int64          `json:"rss_peak_so_far_kib,omitempty"`
}

// SignInSustained is --publishers clients signing in with right passwords,
// one after another, for --duration.
type SignInSustained struct {
	Clients int            `json:"clients"`
	Seconds float64        `json:"seconds"`
	OK      int64          `json:"ok"`
	PerS    float64        `json:"ok_per_s"`
	Codes   map[string]int `json:"codes"`
}

func (e *env) runSignIn(ctx context.Context) error {
	o := e.o
	f := &SignInFigures{Users: max(o.Conns, o.Publishers)}
	e.res.SignIn = f
	f.RSSFreshKiB, _ = e.serverMemory()
	// One account per sign-in in flight: the throttle counts the attempts in
	// progress against their account.
	users, err := e.newUsers(ctx, "bench"+e.runID+"s", f.Users)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	f.RSSRegisteredKiB, _ = e.serverMemory()
	clients := make([]*http.Client, max(o.Conns, o.Publishers))
	for k := range clients {
		clients[k] = e.signInClient(k)
	}
	defer func() {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
	}()
	for _, known := range []bool{true, false} {
		b := e.signInBurst(ctx, clients[:o.Conns], users, known)
		f.Bursts = append(f.Bursts, b)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	f.Sustained = e.signInSustained(ctx, clients[:o.Publishers], users, o.Duration.D())
	_, f.RSSPeakKiB = e.serverMemory()
	return ctx.Err()
}

// serverMemory is the server processes' VmRSS and VmHWM, summed (0 when
// the server's pid is unknown).
func (e *env) serverMemory() (rss, peak int64) {
	for _, pid := range e.pids {
		if st, err := ReadProcStatus(pid); err == nil {
			rss += st.RSSKiB
			peak += st.HWMKiB
		}
	}
	return rss, peak
}

// signInClient is client k's HTTP client: from its own source address, so
// that the per-address sign-in throttle (which counts attempts in flight)
// sees the load spread out, to the targets in turn.
func (e *env) signInClient(k int) *http.Client {
	d := &net.Dialer{LocalAddr: e.src.At(k), Timeout: e.o.Timeout.D()}
	return &http.Client{
		Timeout:   time.Minute, // a sign-in may wait for a hashing slot
		Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 1},
	}
}

// signIn posts one sign-in through c and returns its HTTP status.
func (e *env) signIn(ctx context.Context, c *http.Client, k int, name string) (int, error) {
	body, _ := json.Marshal(map[string]string{"username": name, "password": e.password()})
	base := e.targets[k%len(e.targets)].HTTP
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/api/auth/token/", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode, nil
}

// codeCounts counts answers by HTTP status.
type codeCounts struct {
	mu sync.Mutex
	by map[string]int
}

func (c *codeCounts) add(code int, err error) {
	k := strconv.Itoa(code)
	if err != nil {
		k = "error"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[string]int{}
	}
	c.by[k]++
}

func (c *codeCounts) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.by
}

// signInBurst sends one sign-in per client at once: for users (right
// passwords) or, unless known, for names nobody has.
func (e *env) signInBurst(ctx context.Context, clients []*http.Client, users []user, known bool) SignInBurst {
	what := "known users"
	if !known {
		what = "unknown users"
	}
	e.setPhase("burst", func() string { return fmt.Sprintf("burst: %d concurrent sign-ins of %s", len(clients), what) })
	var codes codeCounts
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for k, c := range clients {
		name := users[k].Name
		if !known {
			name = "bench" + e.runID + "nobody" + strconv.Itoa(k)
		}
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			codes.add(e.signIn(ctx, c, k, name))
		}()
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	done.Wait()
	b := SignInBurst{KnownUsers: known, Requests: len(clients), Codes: codes.counts(), Seconds: time.Since(t0).Seconds()}
	b.RSSKiB, b.PeakKiB = e.serverMemory()
	return b
}

// signInSustained signs in with right passwords from each client, one
// after another, for d.
func (e *env) signInSustained(ctx context.Context, clients []*http.Client, users []user, d time.Duration) SignInSustained {
	e.setPhase("sustained", func() string { return fmt.Sprintf("sustained: %d clients signing in for %v", len(clients), d) })
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var codes codeCounts
	var ok atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for k, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := k; ctx.Err() == nil; i += len(clients) {
				code, err := e.signIn(ctx, c, k, users[i%len(users)].Name)
				if ctx.Err() != nil {
					return // cut off by the end: not counted
				}
				codes.add(code, err)
				if err == nil && code == http.StatusOK {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	s := SignInSustained{Clients: len(clients), Seconds: time.Since(t0).Seconds(), OK: ok.Load(), Codes: codes.counts()}
	s.PerS = float64(s.OK) / s.Seconds
	return s
}
