package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
	"github.com/heraldhq/herald/internal/testenv"
)

// heraldBin is the herald binary the tests run, built once by TestMain.
var heraldBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "herald-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var flags []string
	if os.Getenv("HERALD_CLUSTER_RACE") != "" {
		flags = append(flags, "-race") // the processes under the race detector (slower)
	}
	if heraldBin, err = testenv.BuildHerald(dir, flags...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// deployment is n herald processes sharing one PostgreSQL database and one
// Redis (under a key prefix of their own).
type deployment struct {
	t      *testing.T
	dsn    string
	layer  string
	prefix string
	secret string
	extra  []string // more serve flags
	procs  []*proc
}

// proc is one `herald serve`.
type proc struct {
	d    *deployment
	name string
	port int
	dir  string
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// deploy starts n processes on a fresh database, with layerURL as their
// channel layer (the shared Redis when empty) and extra serve flags.
func deploy(t *testing.T, n int, layerURL string, extra ...string) *deployment {
	t.Helper()
	return deployOn(t, testenv.Postgres(t), n, layerURL, extra...)
}

// deployOn is deploy on the database dsn.
func deployOn(t *testing.T, dsn string, n int, layerURL string, extra ...string) *deployment {
	t.Helper()
	var b [24]byte
	_, _ = rand.Read(b[:])
	d := &deployment{t: t, dsn: dsn, layer: layerURL, secret: hex.EncodeToString(b[:]), extra: extra}
	if d.layer == "" {
		d.layer = redistest.SharedURL()
		d.prefix = redistest.Prefix(t)
	} else {
		d.prefix = "herald:"
	}
	for i := range n {
		p := &proc{d: d, name: string(rune('A' + i)), port: redistest.FreePort(t), dir: t.TempDir()}
		p.log = filepath.Join(p.dir, "herald.log")
		d.procs = append(d.procs, p)
	}
	t.Cleanup(func() {
		for _, p := range d.procs {
			p.kill()
			if races := p.lines("DATA RACE"); len(races) > 0 {
				t.Errorf("process %s: the race detector reported %d races", p.name, len(races))
			}
		}
		if t.Failed() {
			for _, p := range d.procs {
				t.Logf("--- log of process %s (last lines)\n%s", p.name, tail(p.log, 40))
			}
		}
	})
	var wg sync.WaitGroup
	for _, p := range d.procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.start()
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return d
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// start runs the process and waits until it is ready. It reports failures
// with t.Error, so it may run on another goroutine.
func (p *proc) start() {
	d := p.d
	args := []string{"serve",
		"--addr", "127.0.0.1:" + strconv.Itoa(p.port),
		"--db", d.dsn,
		"--layer", d.layer,
		"--redis-prefix", d.prefix,
		"--demo=false",
		"--jwt-secret", d.secret,
		"--data-dir", p.dir,
		"--allowed-origins", "*",
		"--handshake-rate", "-1",
		"--max-conns-per-addr", "-1",
		"--public-metrics=true", // metric reads them from the main address
		"--registrations-per-hour", "-1",
		"--shutdown-grace", "3s",
		"--log-level", "info",
	}
	args = append(args, d.extra...)
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Error(err)
		return
	}
	fmt.Fprintf(logf, "=== start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(heraldBin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		d.t.Errorf("start herald %s: %v", p.name, err)
		return
	}
	logf.Close()
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url("/readyz"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-done:
			d.t.Errorf("herald %s exited during start:\n%s", p.name, tail(p.log, 30))
			return
		default:
		}
		if time.Now().After(deadline) {
			d.t.Errorf("herald %s not ready after 30s:\n%s", p.name, tail(p.log, 30))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the process with SIGKILL (no-op if it is not running).
func (p *proc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// stop ends the process with SIGTERM (a graceful shutdown) and waits.
func (p *proc) stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		p.d.t.Errorf("herald %s did not stop within 15s after SIGTERM", p.name)
		_ = cmd.Process.Kill()
		<-done
	}
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// pid is the process id of the running process (0 if it is not running).
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *proc) url(path string) string {
	return "http://127.0.0.1:" + strconv.Itoa(p.port) + path
}

func (p *proc) ws(path string) string {
	return "ws://127.0.0.1:" + strconv.Itoa(p.port) + path
}

// ready reports the process's /readyz status code (0 if it does not answer).
func (p *proc) ready() int {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(p.url("/readyz"))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// outbox returns how many events wait in the outbox to be published.
func (d *deployment) outbox() int {
	db, err := sql.Open("pgx", d.dsn)
	if err != nil {
		d.t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM outbox WHERE NOT published").Scan(&n); err != nil {
		d.t.Fatal(err)
	}
	return n
}

// httpc sends each request on a new connection, so a request never rides
// a kept-alive connection to a process that is going away.
var httpc = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// call sends a JSON request and decodes a JSON answer into out.
func call(method, u, token string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, u, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %v in %s", method, u, err, b)
		}
	}
	return resp.StatusCode, nil
}

// user registers a user through p and returns an access token.
func (d *deployment) user(p *proc, name string) string {
	d.t.Helper()
	if _, err := call("POST", p.url("/api/auth/register/"), "", map[string]string{
		"username": name, "email": name + "@example.com", "password": "correct horse battery staple",
	}, nil); err != nil {
		d.t.Fatal(err)
	}
	var tok struct{ Access string }
	if _, err := call("POST", p.url("/api/auth/token/"), "", map[string]string{
		"username": name, "password": "correct horse battery staple",
	}, &tok); err != nil {
		d.t.Fatal(err)
	}
	return tok.Access
}

// campaign creates an active campaign through p.
func (d *deployment) campaign(p *proc, token string) int64 {
	d.t.Helper()
	var c struct{ ID int64 }
	if _, err := call("POST", p.url("/api/campaigns/"), token, map[string]any{
		"title": "Cluster test", "description": "events across processes", "goal_amount": "1000.00",
		"currency": "USD", "status": "active",
	}, &c); err != nil {
		d.t.Fatal(err)
	}
	return c.ID
}

// comment posts a comment through p and returns its id.
func comment(p *proc, token string, campaign int64, content string) (int64, error) {
	var c struct{ ID int64 }
	_, err := call("POST", p.url("/api/campaigns/"+strconv.FormatInt(campaign, 10)+"/comments/"), token,
		map[string]string{"content": content}, &c)
	return c.ID, err
}

// commentIDs lists every comment of a campaign through p (a client's
// reload after recovered=false).
func commentIDs(p *proc, campaign int64) (map[int64]bool, error) {
	ids := map[int64]bool{}
	for page := 1; ; page++ {
		var pg struct {
			Next    *string
			Results []struct{ ID int64 }
		}
		u := p.url("/api/campaigns/" + strconv.FormatInt(campaign, 10) + "/comments/?page_size=100&page=" + strconv.Itoa(page))
		if _, err := call("GET", u, "", nil, &pg); err != nil {
			return nil, err
		}
		for _, r := range pg.Results {
			ids[r.ID] = true
		}
		if pg.Next == nil {
			return ids, nil
		}
	}
}

// writer posts comments and remembers the ids the server confirmed.
type writer struct {
	mu  sync.Mutex
	ids []int64
}

func (w *writer) add(id int64) {
	w.mu.Lock()
	w.ids = append(w.ids, id)
	w.mu.Unlock()
}

func (w *writer) written() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int64(nil), w.ids...)
}

// follower is a v2 WebSocket client of a campaign room that checks every
// event by offset, reconnects to another process when its connection ends
// and resumes from its last position (?resume=group:epoch:offset).
type follower struct {
	t        *testing.T
	name     string
	campaign int64
	group    string
	// pick returns the process to (re)connect to on the given attempt.
	pick func(attempt int) *proc

	mu    sync.Mutex
	epoch string
	last  uint64
	// segment counts the connections since the last fresh state (start or
	// recovered=false): within one, offsets must follow each other and no
	// comment may arrive twice.
	segIDs       map[int64]bool
	seen         map[int64]bool // every comment id received as an event
	order        []int64        // the comment ids of the events, in the order received
	reloaded     map[int64]bool // ids known from reloads after recovered=false
	events       int
	reconnects   int
	notRecovered int
	recovered    int
	problems     []string
	expectFirst  uint64 // the first offset a fresh start must see (0: any)
	conn         *testenv.WSClient
	closeCodes   []int
}

func newFollower(t *testing.T, name string, campaign int64, pick func(int) *proc) *follower {
	return &follower{
		t: t, name: name, campaign: campaign, group: "campaign_" + strconv.FormatInt(campaign, 10), pick: pick,
		segIDs: map[int64]bool{}, seen: map[int64]bool{}, reloaded: map[int64]bool{}, expectFirst: 1,
	}
}

func (f *follower) problem(format string, args ...any) {
	f.problems = append(f.problems, fmt.Sprintf(format, args...))
}

// run follows the room until ctx ends.
func (f *follower) run(ctx context.Context, connected chan<- struct{}) {
	attempt := 0
	first := true
	for ctx.Err() == nil {
		p := f.pick(attempt)
		attempt++
		f.mu.Lock()
		path := "/ws/campaign/" + strconv.FormatInt(f.campaign, 10) + "/?v=2"
		if !first {
			path += "&resume=" + url.QueryEscape(f.group+":"+f.epoch+":"+strconv.FormatUint(f.last, 10))
		}
		f.mu.Unlock()
		c, _, err := testenv.DialWS(f.t, p.ws(path), nil)
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(50+attempt%5*20) * time.Millisecond):
			}
			continue
		}
		f.mu.Lock()
		f.conn = c
		if !first {
			f.reconnects++
		}
		f.mu.Unlock()
		err = f.read(ctx, c, p, func() {
			if first && connected != nil {
				connected <- struct{}{}
			}
			first = false
		})
		f.mu.Lock()
		f.conn = nil
		if c.CloseCode != 0 {
			f.closeCodes = append(f.closeCodes, int(c.CloseCode))
		}
		f.mu.Unlock()
		c.Close()
		if ctx.Err() != nil {
			return
		}
		_ = err
		attempt = 0
	}
}

type wire struct {
	Type   string          `json:"type"`
	Data   json.RawMessage `json:"data"`
	Group  string          `json:"group"`
	Offset uint64          `json:"offset"`
	Epoch  string          `json:"epoch"`
}

// read handles one connection's messages until it ends.
func (f *follower) read(ctx context.Context, c *testenv.WSClient, p *proc, established func()) error {
	gotState := false
	for ctx.Err() == nil {
		raw, err := c.Next(500 * time.Millisecond)
		if err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		var m wire
		if err := json.Unmarshal(raw, &m); err != nil {
			f.mu.Lock()
			f.problem("not JSON: %s", raw)
			f.mu.Unlock()
			continue
		}
		switch m.Type {
		case "campaign_data":
			if !gotState {
				gotState = true
				established()
			}
		case "subscribed":
			var s struct {
				Group     string
				Recovered bool
			}
			_ = json.Unmarshal(m.Data, &s)
			f.mu.Lock()
			if s.Recovered {
				f.recovered++
			} else {
				// Told: reload (the snapshot follows; the test reloads the
				// whole list through REST) and start a new segment.
				f.notRecovered++
				f.epoch, f.last, f.expectFirst = "", 0, 0
				f.segIDs = map[int64]bool{}
			}
			f.mu.Unlock()
			if !s.Recovered {
				if ids, err := commentIDs(p, f.campaign); err == nil {
					f.mu.Lock()
					for id := range ids {
						f.reloaded[id] = true
					}
					f.mu.Unlock()
				} else {
					f.mu.Lock()
					f.problem("reload after recovered=false: %v", err)
					f.mu.Unlock()
				}
			}
			if !gotState {
				gotState = true
				established()
			}
		case "comment":
			var cm struct{ ID int64 }
			_ = json.Unmarshal(m.Data, &cm)
			f.mu.Lock()
			f.event(m, cm.ID)
			f.mu.Unlock()
		}
	}
	return ctx.Err()
}

// event checks one comment event against the follower's position.
func (f *follower) event(m wire, id int64) {
	f.events++
	switch {
	case m.Group != f.group:
		f.problem("event of group %q on %s's connection", m.Group, f.group)
		return
	case f.epoch == "":
		if f.expectFirst != 0 && m.Offset != f.expectFirst {
			f.problem("first event has offset %d, want %d", m.Offset, f.expectFirst)
		}
	case m.Epoch != f.epoch:
		f.problem("epoch changed from %s to %s at offset %d without recovered=false (silent loss)", f.epoch, m.Epoch, m.Offset)
	case m.Offset <= f.last:
		f.problem("offset %d again (last %d): duplicate", m.Offset, f.last)
		return
	case m.Offset != f.last+1:
		f.problem("offset %d after %d: gap of %d events", m.Offset, f.last, m.Offset-f.last-1)
	}
	if f.segIDs[id] {
		f.problem("comment %d delivered twice (offset %d)", id, m.Offset)
	}
	f.segIDs[id] = true
	f.seen[id] = true
	f.order = append(f.order, id)
	f.epoch, f.last = m.Epoch, m.Offset
}

// received returns the comment ids of the events received, in order.
func (f *follower) received() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int64(nil), f.order...)
}

// has reports whether the follower got (or reloaded) every id.
func (f *follower) has(ids []int64) (missing int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if !f.seen[id] && !f.reloaded[id] {
			missing++
		}
	}
	return missing
}

// dropConn cuts the follower's connection without a close handshake, as a
// network failure would.
func (f *follower) dropConn() {
	f.mu.Lock()
	c := f.conn
	f.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

type followerStats struct {
	events, reconnects, recovered, notRecovered int
	last                                        uint64
	epoch                                       string
	problems                                    []string
	closeCodes                                  []int
}

func (f *follower) stats() followerStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return followerStats{f.events, f.reconnects, f.recovered, f.notRecovered, f.last, f.epoch,
		append([]string(nil), f.problems...), append([]int(nil), f.closeCodes...)}
}

// followers runs fs until the returned stop function is called; it waits
// until each has its first state (snapshot) before returning.
func startFollowers(t *testing.T, fs []*follower) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	connected := make(chan struct{}, len(fs))
	var wg sync.WaitGroup
	for _, f := range fs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.run(ctx, connected)
		}()
	}
	timeout := time.After(20 * time.Second)
	for range fs {
		select {
		case <-connected:
		case <-timeout:
			cancel()
			wg.Wait()
			t.Fatal("followers did not connect within 20s")
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
		})
	}
}

// awaitAll waits until every follower has every id, then checks them: no
// problems, and (unless allowLoss) every id received as an event.
func awaitAll(t *testing.T, fs []*follower, ids []int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, f := range fs {
		for f.has(ids) > 0 {
			if time.Now().After(deadline) {
				st := f.stats()
				t.Fatalf("%s: %d of %d comments missing after %v (stats %+v)", f.name, f.has(ids), len(ids), timeout, st)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, f := range fs {
		if st := f.stats(); len(st.problems) > 0 {
			t.Errorf("%s: %d problems, first ones: %s", f.name, len(st.problems), strings.Join(st.problems[:min(len(st.problems), 5)], "; "))
		}
	}
}

// lines returns the log lines of p containing s.
func (p *proc) lines(s string) []string {
	fh, err := os.Open(p.log)
	if err != nil {
		return nil
	}
	defer fh.Close()
	var out []string
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			out = append(out, sc.Text())
		}
	}
	return out
}
