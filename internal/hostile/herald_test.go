package hostile

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testenv"
)

// heraldBin is the herald binary under test, built once by TestMain.
var heraldBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "herald-hostile-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Built without -race: the suite tests the process as it is deployed,
	// and the race detector's own memory would swamp the RSS bound.
	if heraldBin, err = testenv.BuildHerald(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// allowedOrigin is the one origin --allowed-origins lets in besides the
// server's own.
const allowedOrigin = "http://app.example"

// maxConnsPerAddr is the --max-conns-per-addr the process runs with: low,
// so that a case can reach it. Every other case has an address of its own
// and holds a few connections at most.
const maxConnsPerAddr = 16

// herald is the `herald serve` process under test.
type herald struct {
	addr   string // host:port of the API and real-time endpoints
	base   string // http://addr
	admin  string // http://host:port of the admin listener (metrics, pprof)
	secret []byte // the JWT secret, so the suite can sign tokens
	log    string // the process's stdout and stderr

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's answer, once done is closed

	rec     recorder
	nextSrc atomic.Uint32 // the next client source address (srcAddr)
	fixture fixture
	// overwhelmed is set when a storm's requests went unanswered: the
	// process is still working through them, so later storms would only
	// measure that backlog.
	overwhelmed atomic.Bool
}

// fixture is what the cases need of the running process: access tokens
// of the demo users (ids 1 to 4, signed by the suite with the server's
// secret), the server's own origin, and publish API keys made by `herald
// apikey` (scopes campaign and user_2; a revoked one).
type fixture struct {
	alice, bob, carol, dave string
	origin                  string // http://host:port
	publisher, revokedKey   string
}

// startHerald starts herald on a new SQLite database with the demo data and
// waits until it answers; it is killed when the test ends if still running.
func startHerald(t *testing.T) *herald {
	t.Helper()
	dir := t.TempDir()
	var key [24]byte
	_, _ = rand.Read(key[:])
	h := &herald{secret: []byte(hex.EncodeToString(key[:])), log: filepath.Join(dir, "herald.log"), done: make(chan struct{})}
	h.nextSrc.Store(1 << 8) // 127.0.1.x upwards: 127.0.0.1 stays the test's own
	logf, err := os.Create(h.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	db := "sqlite:" + filepath.Join(dir, "herald.db")
	publisher := apikeyCreate(t, db, "campaign,user_2")
	revoked := apikeyCreate(t, db, "campaign")
	if id, _, ok := strings.Cut(strings.TrimPrefix(revoked, "hk_"), "_"); !ok {
		t.Fatalf("herald apikey create printed %q", revoked)
	} else {
		heraldCmd(t, "apikey", "revoke", id, "--db", db)
	}
	h.cmd = exec.Command(heraldBin, "serve",
		"--addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0",
		"--db", db,
		"--data-dir", dir,
		"--demo=true",
		"--jwt-secret", string(h.secret),
		"--allowed-origins", allowedOrigin,
		"--max-conns-per-addr", strconv.Itoa(maxConnsPerAddr),
		"--log-format", "json",
		"--log-level", "info",
		"--shutdown-grace", "3s",
	)
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	// Only the flags above configure it, whatever HERALD_* the test runs with.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			h.cmd.Env = append(h.cmd.Env, kv)
		}
	}
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start herald: %v", err)
	}
	go func() {
		h.err = h.cmd.Wait()
		close(h.done)
	}()
	t.Cleanup(func() {
		if h.alive() {
			_ = h.cmd.Process.Kill()
			<-h.done
		}
		if t.Failed() {
			t.Logf("--- herald's log (last lines)\n%s", tail(h.log, 60))
		}
	})
	if err := h.awaitListening(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	h.fixture = fixture{origin: h.base,
		alice: h.access(1), bob: h.access(2), carol: h.access(3), dave: h.access(4),
		publisher: publisher, revokedKey: revoked}
	return h
}

// heraldCmd runs a herald command to its end and returns its standard
// output; only its flags configure it, whatever HERALD_* the test runs
// with.
func heraldCmd(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(heraldBin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("herald %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// apikeyCreate makes a publish API key with scopes on db, as an operator
// would, and returns it.
func apikeyCreate(t *testing.T, db, scopes string) string {
	t.Helper()
	return strings.TrimSpace(heraldCmd(t, "apikey", "create", "--db", db, "--name", "hostile suite", "--scope", scopes))
}

// awaitListening reads the addresses the process logs once it listens (it
// was given port 0, so the kernel picked them) and waits for /readyz.
func (h *herald) awaitListening(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for h.addr == "" || h.admin == "" {
		if !h.alive() {
			return fmt.Errorf("herald exited during start (%v):\n%s", h.err, tail(h.log, 30))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("herald not listening after %v:\n%s", timeout, tail(h.log, 30))
		}
		for _, l := range h.logLines() {
			switch l.Msg {
			case "herald listening":
				h.addr = strings.TrimPrefix(l.Addr, "http://")
				h.base = l.Addr
			case "admin listening":
				h.admin = l.Addr
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	for {
		res, err := hc.Get(h.base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("herald not ready after %v (%v):\n%s", timeout, err, tail(h.log, 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *herald) alive() bool {
	select {
	case <-h.done:
		return false
	default:
		return true
	}
}

// stop ends the process with SIGTERM, as a deployment does, and reports
// how it exited.
func (h *herald) stop(timeout time.Duration) error {
	if !h.alive() {
		return fmt.Errorf("herald had already exited: %v", h.err)
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
		if h.err != nil {
			return fmt.Errorf("herald exited after SIGTERM with %w", h.err)
		}
		return nil
	case <-time.After(timeout):
		_ = h.cmd.Process.Kill()
		<-h.done
		return fmt.Errorf("herald did not stop within %v of SIGTERM", timeout)
	}
}

// logLine is the part of a JSON log line the suite reads.
type logLine struct {
	Level  string `json:"level"`
	Msg    string `json:"msg"`
	Addr   string `json:"addr"`
	Status int    `json:"status"`
	raw    string
	json   bool
}

func (h *herald) logLines() []logLine {
	f, err := os.Open(h.log)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []logLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		l := logLine{raw: sc.Text()}
		l.json = json.Unmarshal(sc.Bytes(), &l) == nil
		out = append(out, l)
	}
	return out
}

// logProblems returns the log lines that show a failure: errors, panics,
// and anything the process wrote outside its structured log (a runtime
// crash report, for one).
func (h *herald) logProblems() (problems, warnings []string) {
	for _, l := range h.logLines() {
		lower := strings.ToLower(l.raw)
		switch {
		case l.Msg == "http request" && l.Status == http.StatusServiceUnavailable:
			// The access log of a refusal to queue (the recorder checks
			// that each came with Retry-After).
		case !l.json && strings.TrimSpace(l.raw) != "",
			l.Level == "ERROR",
			strings.Contains(lower, "panic"),
			strings.Contains(lower, "fatal error"),
			strings.Contains(l.raw, "DATA RACE"):
			problems = append(problems, clip(l.raw, 2000))
		case l.Level == "WARN":
			warnings = append(warnings, clip(l.raw, 500))
		}
	}
	return problems, warnings
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		lines[i] = clip(l, 1000)
	}
	return strings.Join(lines, "\n")
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// metrics reads the admin listener's /metrics: each sample by its series
// (name and labels as written).
func (h *herald) metrics() (map[string]float64, error) {
	hc := &http.Client{Timeout: 10 * time.Second}
	res, err := hc.Get(h.admin + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read metrics: status %d", res.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// sum adds the samples of metric name whose labels contain every one of
// labels (written as `key="value"`).
func sum(m map[string]float64, name string, labels ...string) (total float64, found bool) {
	for series, v := range m {
		if series != name && !strings.HasPrefix(series, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(series, l)
		}
		if ok {
			total += v
			found = true
		}
	}
	return total, found
}

// usage is what the suite compares before and after the cases.
type usage struct {
	goroutines, rss, fds float64
	conns                float64 // open WebSocket and SSE connections
	heap, heapIdle       float64 // Go heap in use, and idle but not yet released
}

func (u usage) String() string {
	return fmt.Sprintf("%.0f goroutines, %.1f MiB RSS (Go heap %.1f MiB in use, %.1f MiB idle), %.0f descriptors, %.0f real-time connections",
		u.goroutines, u.rss/(1<<20), u.heap/(1<<20), u.heapIdle/(1<<20), u.fds, u.conns)
}

// usage runs a garbage collection in the process (through pprof's heap
// endpoint) so that memory the cases left behind as garbage can go back to
// the system, then reads the gauges: RSS that stays up after that is
// memory the process keeps.
func (h *herald) usage() (usage, error) {
	hc := &http.Client{Timeout: 10 * time.Second}
	res, err := hc.Get(h.admin + "/debug/pprof/heap?gc=1")
	if err != nil {
		return usage{}, fmt.Errorf("force a collection: %w", err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	m, err := h.metrics()
	if err != nil {
		return usage{}, err
	}
	u := usage{}
	var ok [4]bool
	u.goroutines, ok[0] = sum(m, "go_goroutines")
	u.rss, ok[1] = sum(m, "process_resident_memory_bytes")
	u.fds, ok[2] = sum(m, "process_open_fds")
	u.conns, ok[3] = sum(m, "herald_realtime_connections")
	for i, name := range []string{"go_goroutines", "process_resident_memory_bytes", "process_open_fds", "herald_realtime_connections"} {
		if !ok[i] {
			return u, fmt.Errorf("metrics: no %s", name)
		}
	}
	u.heap, _ = sum(m, "go_memstats_heap_inuse_bytes")
	idle, _ := sum(m, "go_memstats_heap_idle_bytes")
	released, _ := sum(m, "go_memstats_heap_released_bytes")
	u.heapIdle = idle - released
	return u, nil
}

// answer is one HTTP status the server gave (a WebSocket handshake's
// included).
type answer struct {
	who        string // the case
	what       string // method and path
	status     int
	retryAfter string
}

// recorder keeps every answer of the run.
type recorder struct {
	mu      sync.Mutex
	answers []answer
}

func (r *recorder) add(a answer) {
	r.mu.Lock()
	r.answers = append(r.answers, a)
	r.mu.Unlock()
}

// serverErrors are the answers no input may cause: a 5xx, unless it is a
// 503 that tells the client when to come back.
func (r *recorder) serverErrors() []answer {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []answer
	for _, a := range r.answers {
		if a.status >= 500 && !(a.status == http.StatusServiceUnavailable && a.retryAfter != "") {
			out = append(out, a)
		}
	}
	return out
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.answers)
}

// errTimeout marks a wait that ran out.
var errTimeout = errors.New("timed out")

// poll calls check until it reports done or timeout passes; it returns the
// last error check gave.
func poll(timeout time.Duration, check func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		done, err := check()
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errTimeout
			}
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ctxTimeout is a context for one bounded step.
func ctxTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
