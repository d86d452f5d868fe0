package bench

import (
	"context"
	"crypto/rand"
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
	bin, err := heraldBin(bin)
	if err != nil {
		return nil, err
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
	admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(aport))
	cmd := exec.Command(bin, "bench", "bare-server", "--addr", addr, "--admin-addr", admin,
		"--snapshot-bytes", strconv.Itoa(snapshotBytes))
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	s, err := startServer(ctx, "bare-server", cmd, filepath.Join(dir, "bare-server.log"), "http://"+addr, admin, timeout)
	if err != nil {
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
