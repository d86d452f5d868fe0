package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// server is a `herald serve` child started by --spawn.
type server struct {
	cmd   *exec.Cmd
	log   string
	base  string
	admin string // host:port of its admin listener (pprof, metrics)
	pid   int
	done  chan error
}

// cluster is the --spawn children: one, or --procs of them sharing a
// database, a channel layer and a data directory (the JWT secret), as
// behind a load balancer.
type cluster struct {
	dir     string // temporary directory: SQLite database, JWT secret, logs
	db      string // the database the children use
	servers []*server
	daphne  bool // the django scenario's Daphne, not herald
}

// spawnCluster starts n `bin serve` children, one after another (the first
// one migrates the database), each on a free loopback port with an admin
// listener, sharing a new temporary data directory. Without a --db in
// extra they share a new SQLite database there, which only one process may
// serve; check refuses n > 1 without PostgreSQL and Redis. Each must answer
// /healthz before the next starts.
func spawnCluster(ctx context.Context, bin string, extra, env []string, n int, timeout time.Duration) (*cluster, error) {
	bin, err := heraldBin(bin)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "herald-bench-")
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir, db: "sqlite:" + filepath.Join(dir, "bench.db")}
	if v, ok := flagValue(extra, "db"); ok {
		c.db = v
	}
	for k := range n {
		s, err := c.start(ctx, bin, extra, env, k, n, timeout)
		if err != nil {
			_ = c.stop("")
			return nil, err
		}
		c.servers = append(c.servers, s)
	}
	return c, nil
}

func (c *cluster) start(ctx context.Context, bin string, extra, env []string, k, n int, timeout time.Duration) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	aport, err := freePort()
	if err != nil {
		return nil, err
	}
	name := "server.log"
	if n > 1 {
		name = fmt.Sprintf("server-%d.log", k+1)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(aport))
	// Later flags win, so extra can override any of these but the addresses
	// (check refuses those).
	args := append([]string{"serve", "--addr", addr, "--db", c.db, "--data-dir", c.dir,
		"--demo=false", "--log-level", "warn", "--shutdown-grace", "3s", "--admin-addr", admin,
		"--registrations-per-hour", "-1"}, extra...) // the bench signs its users up from one address
	cmd := exec.Command(bin, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	return startServer(ctx, "herald serve", cmd, filepath.Join(c.dir, name), "http://"+addr, admin, timeout)
}

// heraldBin is the herald executable to start: bin, or this one.
func heraldBin(bin string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("--spawn: find the herald executable: %w", err)
	}
	return exe, nil
}

// startServer starts cmd, a server child (what it is) writing its output
// to the file log, and waits until it answers /healthz on base; admin is
// its admin address, if any. The child gets SIGKILL if the bench dies.
func startServer(ctx context.Context, what string, cmd *exec.Cmd, log, base, admin string, timeout time.Duration) (*server, error) {
	logf, err := os.Create(log)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	dieWithParent(cmd)
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return nil, fmt.Errorf("--spawn: start %s: %w", cmd.Args[0], err)
	}
	s := &server{cmd: cmd, log: log, base: base, admin: admin, pid: cmd.Process.Pid, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	if err := s.waitHealthy(ctx, what, timeout); err != nil {
		return nil, err
	}
	return s, nil
}

// waitHealthy waits until the started child s answers /healthz with 200,
// and stops it when it exits first, ctx ends or it does not answer within
// timeout (at least 30 s).
func (s *server) waitHealthy(ctx context.Context, what string, timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(max(timeout, 30*time.Second))
	for {
		res, err := hc.Get(s.base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-s.done:
			s.done <- err
			tail := s.logTail()
			_ = s.stop("")
			return fmt.Errorf("--spawn: %s exited (%v):\n%s", what, err, tail)
		case <-ctx.Done():
			_ = s.stop("")
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tail := s.logTail()
			_ = s.stop("")
			return fmt.Errorf("--spawn: %s did not answer /healthz on %s:\n%s", what, s.base, tail)
		}
	}
}

// stop ends every child at once, keeps their logs in keepDir if set, and
// removes the temporary directory.
func (c *cluster) stop(keepDir string) error {
	defer os.RemoveAll(c.dir)
	errs := make([]error, len(c.servers))
	var wg sync.WaitGroup
	for k, s := range c.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = s.stop(keepDir)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// flagValue finds the value of --name in a 'herald serve' argument list
// (--name v, --name=v, -name v); the last one wins, as in package flag.
func flagValue(args []string, name string) (string, bool) {
	var v string
	found := false
	for i := 0; i < len(args); i++ {
		a := strings.TrimLeft(args[i], "-")
		if len(a) == len(args[i]) || len(args[i])-len(a) > 2 {
			continue
		}
		if k, val, ok := strings.Cut(a, "="); ok {
			if k == name {
				v, found = val, true
			}
			continue
		}
		if a == name && i+1 < len(args) {
			v, found = args[i+1], true
			i++
		}
	}
	return v, found
}

// stop ends the child (SIGTERM, then SIGKILL after 15 s) and keeps its log
// in keepDir if set.
func (s *server) stop(keepDir string) error {
	var err error
	select {
	case err = <-s.done:
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err = <-s.done:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			err = <-s.done
			err = errors.Join(errors.New("herald serve did not stop on SIGTERM within 15s; killed"), err)
		}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() && ee.ExitCode() == 0 {
		err = nil
	}
	if keepDir != "" {
		if b, rerr := os.ReadFile(s.log); rerr == nil {
			if mkErr := os.MkdirAll(keepDir, 0o755); mkErr == nil {
				_ = os.WriteFile(filepath.Join(keepDir, filepath.Base(s.log)), b, 0o644)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("%w\n%s", err, s.logTail())
	}
	return nil
}

// logTail is the end of the child's log.
func (s *server) logTail() string {
	f, err := os.Open(s.log)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
