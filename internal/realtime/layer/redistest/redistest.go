// Package redistest gives tests Redis: the shared server named by
// HERALD_TEST_REDIS (default redis://127.0.0.1:6379/0) under a key prefix of
// their own, and redis-server processes of their own (plain or as a small
// cluster) for tests that stop, kill or restart Redis. A test that needs
// Redis fails when it cannot have it; it never skips.
package redistest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/redisprefix"
)

// SharedURL is the Redis tests share, told apart by key prefix.
func SharedURL() string {
	if v := os.Getenv("HERALD_TEST_REDIS"); v != "" {
		return v
	}
	return "redis://127.0.0.1:6379/0"
}

// Prefix returns a key prefix unique to t on the shared Redis and deletes
// the keys under it when t ends. It fails t if that Redis does not answer.
func Prefix(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "heraldtest:" + hex.EncodeToString(b[:]) + ":"
	opt, err := redis.ParseURL(SharedURL())
	if err != nil {
		t.Fatalf("redistest: HERALD_TEST_REDIS: %v", err)
	}
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		t.Fatalf("redistest: Redis at %s is needed: %v", SharedURL(), err)
	}
	t.Cleanup(func() {
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		DeletePrefix(ctx, c, prefix)
	})
	return prefix
}

// DeletePrefix deletes the keys under prefix.
func DeletePrefix(ctx context.Context, c *redis.Client, prefix string) {
	redisprefix.Delete(ctx, c, prefix)
}

// FreePort returns a loopback TCP port nobody listens on right now.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Server is a redis-server process of one test.
type Server struct {
	t    testing.TB
	Port int
	dir  string
	args []string
	cmd  *exec.Cmd
}

// Start runs redis-server on a free loopback port with its files in a
// temporary directory. Extra arguments are redis-server options
// ("--appendonly", "yes"). The server is killed when t ends.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	s := &Server{t: t, Port: FreePort(t), dir: t.TempDir(), args: args}
	s.start()
	t.Cleanup(s.Kill)
	return s
}

// Addr is host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// URL is the server's redis:// URL (database 0).
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

func (s *Server) start() {
	s.t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		s.t.Fatalf("redistest: redis-server is needed: %v", err)
	}
	args := append([]string{
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--daemonize", "no", "--protected-mode", "no", "--loglevel", "warning",
	}, s.args...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.dir
	logf, err := os.OpenFile(filepath.Join(s.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.t.Fatalf("redistest: start redis-server: %v", err)
	}
	logf.Close()
	s.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
		if err == nil {
			ok := ping(c)
			c.Close()
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.t.Fatalf("redistest: redis-server on %s did not come up: %s", s.Addr(), log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ping(c net.Conn) bool {
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// Kill ends the server with SIGKILL and waits for it; it is a no-op on a
// stopped server.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Pause stops the process (SIGSTOP) without closing its sockets: clients
// see a Redis that does not answer. Resume undoes it.
func (s *Server) Pause() { _ = s.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused server.
func (s *Server) Resume() { _ = s.cmd.Process.Signal(syscall.SIGCONT) }

// Restart starts a killed server again on the same port and directory (its
// data survives if it was started with persistence).
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.start()
}

// Client returns a client of the server, closed when t ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2, MaxRetries: -1})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// Cluster is a Redis Cluster of masters without replicas, one process each.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts n cluster-enabled redis-servers and joins them into
// one cluster with redis-cli --cluster create. It returns an error (and
// leaves nothing running) when that is not possible on this machine.
func StartCluster(t testing.TB, n int) (*Cluster, error) {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		return nil, fmt.Errorf("redis-cli not found: %w", err)
	}
	c := &Cluster{}
	addrs := make([]string, 0, n)
	for range n {
		s := Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000", "--appendonly", "no")
		c.Nodes = append(c.Nodes, s)
		addrs = append(addrs, s.Addr())
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	if err != nil {
		for _, s := range c.Nodes {
			s.Kill()
		}
		return nil, fmt.Errorf("redis-cli --cluster create: %v: %s", err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, s := range c.Nodes {
		cl := s.Client()
		for {
			info, err := cl.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				for _, s := range c.Nodes {
					s.Kill()
				}
				return nil, fmt.Errorf("cluster did not reach cluster_state:ok: %v %s", err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c, nil
}

// URL is a redis:// URL naming every node as a seed, for
// redis.ParseClusterURL.
func (c *Cluster) URL() string {
	u := "redis://" + c.Nodes[0].Addr()
	for i, s := range c.Nodes[1:] {
		if i == 0 {
			u += "?"
		} else {
			u += "&"
		}
		u += "addr=" + s.Addr()
	}
	return u
}
