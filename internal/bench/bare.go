package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/heraldhq/herald/internal/auth"
)

// spawnBare starts `bin bench bare-server` (ServeBare) on a free loopback
// port with an admin address, and waits until it answers /healthz.
func spawnBare(ctx context.Context, bin string, snapshotBytes int, env []string, timeout time.Duration) (*cluster, error) {
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("--spawn: find the herald executable: %w", err)
		}
		bin = exe
	}
	dir, err := os.MkdirTemp("", "herald-bench-bare-")
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir}
	port, err := freePort()
	if err != nil {
		_ = c.stop("")
		return nil, err
	}
	aport, err := freePort()
	if err != nil {
		_ = c.stop("")
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s := &server{log: filepath.Join(dir, "bare-server.log"), done: make(chan error, 1), base: "http://" + addr,
		admin: net.JoinHostPort("127.0.0.1", strconv.Itoa(aport))}
	logf, err := os.Create(s.log)
	if err != nil {
		_ = c.stop("")
		return nil, err
	}
	s.cmd = exec.Command(bin, "bench", "bare-server", "--addr", addr, "--admin-addr", s.admin,
		"--snapshot-bytes", strconv.Itoa(snapshotBytes))
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if len(env) > 0 {
		s.cmd.Env = append(os.Environ(), env...)
	}
	dieWithParent(s.cmd)
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		_ = c.stop("")
		return nil, fmt.Errorf("--spawn: start %s: %w", bin, err)
	}
	logf.Close()
	s.pid = s.cmd.Process.Pid
	go func() { s.done <- s.cmd.Wait() }()
	if err := s.waitHealthy(ctx, "bare-server", timeout); err != nil {
		_ = c.stop("")
		return nil, err
	}
	c.servers = []*server{s}
	return c, nil
}

// placeholderToken is an access token as long as herald's, signed with a
// secret nobody knows: what the clients of a --bare run send as ?token=,
// so their requests are the size of a real run's. The bare server does not
// read it.
func placeholderToken() (string, error) {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	iss, err := auth.NewIssuer(secret, 5*time.Minute, time.Hour)
	if err != nil {
		return "", err
	}
	return iss.Access(1)
}
