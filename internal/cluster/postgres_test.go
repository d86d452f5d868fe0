package cluster

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
)

// pgServer is a PostgreSQL server of one test, on a free loopback port with
// its data in a temporary directory, for tests that stop it: the server
// other packages' tests share must never go away under them.
type pgServer struct {
	t    testing.TB
	bin  string // the directory of initdb and postgres
	dir  string
	port int
	cred *syscall.Credential // the user it runs as when the tests run as root

	cmd  *exec.Cmd
	done chan struct{}
}

// startPostgres creates a database cluster with initdb and starts it. It
// is stopped and removed when t ends.
func startPostgres(t testing.TB) *pgServer {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		t.Fatal("PostgreSQL's initdb is needed (/usr/lib/postgresql/*/bin/initdb)")
	}
	sort.Slice(bins, func(i, j int) bool { return pgVersion(bins[i]) > pgVersion(bins[j]) })
	s := &pgServer{t: t, bin: filepath.Dir(bins[0]), port: redistest.FreePort(t)}
	dir, err := os.MkdirTemp("", "herald-pg-")
	if err != nil {
		t.Fatal(err)
	}
	s.dir = dir
	t.Cleanup(func() {
		s.kill()
		os.RemoveAll(dir)
	})
	// PostgreSQL refuses to run as root; a root test runs it as the
	// postgres user the package installs.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, PostgreSQL needs a user of its own to run as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	initdb := s.command(filepath.Join(s.bin, "initdb"), "-D", s.data(), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	s.start()
	return s
}

// pgVersion is the major version in an installation's path.
func pgVersion(path string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return n
}

func (s *pgServer) data() string { return filepath.Join(s.dir, "data") }

func (s *pgServer) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: s.cred}
	return cmd
}

// DSN names the server's postgres database, which only this test uses.
func (s *pgServer) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// start runs the server and waits until it accepts queries. Durability is
// off (fsync): a test's data need not survive a power cut.
func (s *pgServer) start() {
	s.t.Helper()
	logf, err := os.OpenFile(filepath.Join(s.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := s.command(filepath.Join(s.bin, "postgres"), "-D", s.data(), "-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+s.dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "shared_buffers=32MB", "-c", "max_connections=60")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.t.Fatalf("start postgres: %v", err)
	}
	logf.Close()
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	db, err := sql.Open("pgx", s.DSN())
	if err != nil {
		s.t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-done:
			s.t.Fatalf("postgres exited during start:\n%s", tail(filepath.Join(s.dir, "postgres.log"), 20))
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("postgres not accepting connections after 30 s: %v\n%s", err, tail(filepath.Join(s.dir, "postgres.log"), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop shuts the server down as `pg_ctl stop -m fast` does (SIGINT: open
// transactions are rolled back, connections ended) and waits until it is gone.
func (s *pgServer) stop() {
	s.t.Helper()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.t.Errorf("postgres did not stop within 30 s of SIGINT")
		s.kill()
	}
	s.cmd = nil
}

// kill ends the server and its backends at once.
func (s *pgServer) kill() {
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}
