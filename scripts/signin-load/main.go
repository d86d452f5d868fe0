// Command signin-load measures what password sign-ins cost herald: the worst
// resident memory of a fresh server under a burst of concurrent sign-ins,
// and the sign-in rate it sustains. It builds cmd/herald (or takes --bin),
// starts it on a temporary SQLite database with the default argon2id
// parameters, and drives it over loopback only, spreading its clients over
// the source addresses 127.0.0.2 and up so that the per-address sign-in
// throttle does not refuse them.
//
//	go run ./scripts/signin-load [--burst 200] [--duration 20s] [--workers 8]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	bin := flag.String("bin", "", "herald binary to measure; empty builds ./cmd/herald")
	burst := flag.Int("burst", 200, "concurrent sign-ins in the burst")
	duration := flag.Duration("duration", 20*time.Second, "how long to measure the sustained sign-in rate")
	workers := flag.Int("workers", 8, "concurrent clients signing in during the sustained run")
	extra := flag.String("serve-args", "", "more flags for herald serve, space-separated")
	flag.Parse()
	if *burst < 1 || *burst > 2000 || *workers < 1 || *workers > 200 || *duration <= 0 || *duration > 5*time.Minute {
		log.Fatal("want 1 ≤ --burst ≤ 2000, 1 ≤ --workers ≤ 200, 0 < --duration ≤ 5m")
	}
	dir, err := os.MkdirTemp("", "signin-load")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if *bin == "" {
		*bin = filepath.Join(dir, "herald")
		if out, err := exec.Command("go", "build", "-o", *bin, "./cmd/herald").CombinedOutput(); err != nil {
			log.Fatalf("build herald: %v\n%s", err, out)
		}
	}
	srv, err := start(*bin, dir, strings.Fields(*extra))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.stop()
	if err := run(srv, *burst, *workers, *duration); err != nil {
		srv.stop()
		log.Fatal(err)
	}
}

func run(srv *server, burst, workers int, duration time.Duration) error {
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("herald pid %d at %s; load average %s\n", srv.cmd.Process.Pid, srv.base, strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Printf("fresh server: RSS %s\n", mib(srv.status().rss))

	// Enough accounts that no account has more than one sign-in in flight:
	// the throttle counts attempts in progress against the account.
	users := max(burst, workers)
	start := time.Now()
	if err := register(srv, users); err != nil {
		return err
	}
	fmt.Printf("registered %d users in %v: RSS %s, peak %s\n", users, time.Since(start).Round(time.Millisecond),
		mib(srv.status().rss), mib(srv.status().hwm))

	for _, known := range []bool{true, false} {
		what := "known users, right password"
		if !known {
			what = "unknown users"
		}
		codes, took := signInBurst(srv, burst, known)
		st := srv.status()
		fmt.Printf("burst of %d concurrent sign-ins (%s) in %v: %s; RSS %s, peak so far %s\n",
			burst, what, took.Round(time.Millisecond), codes, mib(st.rss), mib(st.hwm))
	}

	codes, n := sustained(srv, workers, users, duration)
	fmt.Printf("sustained, %d clients for %v: %.1f sign-ins/s (%s); peak RSS %s\n",
		workers, duration, float64(n)/duration.Seconds(), codes, mib(srv.status().hwm))

	// The Go runtime hands idle heap back to the system gradually, once a
	// collection (forced every two minutes at the latest) lowers its goal.
	idle := time.Now()
	for _, at := range []time.Duration{10 * time.Second, time.Minute, 150 * time.Second} {
		time.Sleep(time.Until(idle.Add(at)))
		fmt.Printf("idle for %v: RSS %s\n", at, mib(srv.status().rss))
	}
	return nil
}

// server is a herald serve child process.
type server struct {
	cmd  *exec.Cmd
	base string
	once sync.Once
}

func start(bin, dir string, extra []string) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	args := append([]string{"serve", "--addr", addr, "--db", "sqlite:" + filepath.Join(dir, "herald.db"),
		"--data-dir", dir, "--demo=false", "--log-level", "warn",
		// This tool signs all its users up from one machine.
		"--registrations-per-hour", "-1"}, extra...)
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &server{cmd: cmd, base: "http://" + addr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(s.base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("herald did not answer on %s within 30 s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *server) stop() {
	s.once.Do(func() {
		_ = s.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
	})
}

type procStatus struct{ rss, hwm int64 } // KiB

// status reads the server's current and peak resident memory.
func (s *server) status() procStatus {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return procStatus{}
	}
	var st procStatus
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		switch k {
		case "VmRSS":
			st.rss = n
		case "VmHWM":
			st.hwm = n
		}
	}
	return st
}

func mib(kib int64) string { return fmt.Sprintf("%.0f MiB", float64(kib)/1024) }

// client k sends from 127.0.0.(2+k%250), so that no address has more than a
// few sign-ins in flight.
func client(k int) *http.Client {
	src := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+k%250))}
	return &http.Client{
		Timeout: time.Minute,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{LocalAddr: src}).DialContext,
			MaxIdleConnsPerHost: 4,
		},
	}
}

func name(i int) string     { return "load" + strconv.Itoa(i) }
func password(i int) string { return "load password " + strconv.Itoa(i) }

func post(c *http.Client, url string, body any) (int, error) {
	b, _ := json.Marshal(body)
	res, err := c.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode, nil
}

func register(srv *server, n int) error {
	c := client(0)
	for i := range n {
		for {
			code, err := post(c, srv.base+"/api/auth/register/", map[string]string{"username": name(i), "password": password(i)})
			if err != nil {
				return fmt.Errorf("register %s: %w", name(i), err)
			}
			if code == http.StatusServiceUnavailable {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			if code != http.StatusCreated {
				return fmt.Errorf("register %s: HTTP %d", name(i), code)
			}
			break
		}
	}
	return nil
}

// codes counts answers by status.
type codes struct {
	mu sync.Mutex
	by map[string]int
}

func (c *codes) add(code int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[string]int{}
	}
	k := strconv.Itoa(code)
	if err != nil {
		k = "error"
	}
	c.by[k]++
}

func (c *codes) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for k, n := range c.by {
		parts = append(parts, fmt.Sprintf("%d × %s", n, k))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// signInBurst sends n sign-ins at once, each from its own client.
func signInBurst(srv *server, n int, known bool) (*codes, time.Duration) {
	var out codes
	var ready, done sync.WaitGroup
	startc := make(chan struct{})
	for i := range n {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			c := client(i)
			user := name(i)
			if !known {
				user = "nobody" + strconv.Itoa(i)
			}
			ready.Done()
			<-startc
			out.add(post(c, srv.base+"/api/auth/token/", map[string]string{"username": user, "password": password(i)}))
		}()
	}
	ready.Wait()
	start := time.Now()
	close(startc)
	done.Wait()
	return &out, time.Since(start)
}

// sustained signs in with right passwords from workers clients for d and
// returns the answers and how many succeeded.
func sustained(srv *server, workers, users int, d time.Duration) (*codes, int64) {
	var out codes
	var ok atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client(w)
			for i := w; ctx.Err() == nil; i += workers {
				u := i % users
				code, err := post(c, srv.base+"/api/auth/token/", map[string]string{"username": name(u), "password": password(u)})
				if ctx.Err() != nil {
					return // answered after the end: not counted
				}
				out.add(code, err)
				if err == nil && code == http.StatusOK {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return &out, ok.Load()
}
