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
	"syscall"
	"time"
)

// server is a `herald serve` child started by --spawn.
type server struct {
	cmd  *exec.Cmd
	dir  string // temporary directory: database, JWT secret, log
	db   string
	log  string
	base string
	pid  int
	done chan error
}

// spawnServer starts `bin serve` on a free loopback port with a new SQLite
// database in a temporary directory and no demo data, and waits until it
// answers /healthz.
func spawnServer(ctx context.Context, bin string, extra []string, timeout time.Duration) (*server, error) {
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("--spawn: find the herald executable: %w", err)
		}
		bin = exe
	}
	dir, err := os.MkdirTemp("", "herald-bench-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &server{dir: dir, db: filepath.Join(dir, "bench.db"), log: filepath.Join(dir, "server.log"), done: make(chan error, 1)}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.base = "http://" + addr
	args := append([]string{"serve", "--addr", addr, "--db", "sqlite:" + s.db, "--data-dir", dir,
		"--demo=false", "--log-level", "warn", "--shutdown-grace", "3s"}, extra...)
	logf, err := os.Create(s.log)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	dieWithParent(s.cmd)
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("--spawn: start %s: %w", bin, err)
	}
	logf.Close()
	s.pid = s.cmd.Process.Pid
	go func() { s.done <- s.cmd.Wait() }()

	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(max(timeout, 30*time.Second))
	for {
		res, err := hc.Get(s.base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case err := <-s.done:
			s.done <- err
			tail := s.logTail()
			_ = s.stop("")
			return nil, fmt.Errorf("--spawn: herald serve exited (%v):\n%s", err, tail)
		case <-ctx.Done():
			_ = s.stop("")
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tail := s.logTail()
			_ = s.stop("")
			return nil, fmt.Errorf("--spawn: herald serve did not answer /healthz on %s:\n%s", s.base, tail)
		}
	}
}

// stop ends the child (SIGTERM, then SIGKILL after 15 s), keeps its log in
// keepDir if set, and removes the temporary directory.
func (s *server) stop(keepDir string) error {
	defer os.RemoveAll(s.dir)
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
				_ = os.WriteFile(filepath.Join(keepDir, "server.log"), b, 0o644)
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
