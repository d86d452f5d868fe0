package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/demo"
	"github.com/heraldhq/herald/internal/testenv"
	"github.com/heraldhq/herald/internal/version"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestHelp(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, &out, &errOut, env(nil)); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("herald --help: %v", err)
	}
	for _, want := range []string{"serve", "migrate", "HERALD_"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("herald --help lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := run(context.Background(), []string{"serve", "--help"}, &out, &errOut, env(nil)); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("herald serve --help: %v", err)
	}
	for _, want := range []string{"-addr", "$HERALD_ADDR", "-db", "$HERALD_DB", "-allowed-origins", "-jwt-secret", "-log-level", "-log-format", "-demo"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("herald serve --help lacks %q:\n%s", want, out.String())
		}
	}
	// herald alone runs serve: its --help lists serve's flags too, a
	// boolean without a type, the others with the kind of value they take.
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"help", "serve"}} {
		out.Reset()
		if err := run(context.Background(), args, &out, &errOut, env(nil)); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("herald %v: %v", args, err)
		}
		for _, want := range []string{"\n  -demo\n", "\n  -trust-proxy\n", "\n  -addr addr\n", "\n  -access-ttl duration\n", "\n  -max-image-bytes bytes\n"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("herald %v lacks %q:\n%s", args, want, out.String())
			}
		}
		if strings.Contains(out.String(), "-demo string") || strings.Contains(out.String(), "-addr string") {
			t.Errorf("herald %v types flags as string:\n%s", args, out.String())
		}
	}
	if errOut.Len() != 0 {
		t.Errorf("help wrote to standard error: %q", errOut.String())
	}
}

// A mistake on the command line prints the error and where to find help,
// not the whole usage, and herald exits with status 2.
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, c := range []struct {
		args       []string
		want, hint string
	}{
		{[]string{"--no-such-flag"}, "flag provided but not defined: -no-such-flag", "run 'herald --help' for the flags"},
		{[]string{"serve", "--no-such-flag"}, "-no-such-flag", "run 'herald serve --help' for the flags"},
		{[]string{"migrate", "--db-max-conns=many"}, `--db-max-conns "many"`, "run 'herald migrate --help' for the flags"},
		{[]string{"--access-ttl", "soon"}, "--access-ttl", "run 'herald --help' for the flags"},
		{[]string{"--demo", "false"}, "--demo=false", "run 'herald --help' for the flags"},
		{[]string{"--addr"}, "flag needs an argument: -addr", "run 'herald --help' for the flags"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`, "run 'herald --help' for the commands"},
		{[]string{"version", "now"}, "unexpected argument", "run 'herald --help' for the commands"},
		{[]string{"apikey", "create", "--no-such-flag"}, "-no-such-flag", "run 'herald apikey create --help' for the flags"},
		{[]string{"apikey", "create", "--name", "x"}, "--name and --scope are required", "run 'herald apikey create --help' for the flags"},
		{[]string{"apikey", "list", "--addr=:99999"}, "--addr", "run 'herald apikey list --help' for the flags"},
		{[]string{"apikey", "frob"}, `unknown command "frob"`, "run 'herald apikey --help' for its commands"},
		{[]string{"bench", "idle", "--conns", "many"}, `invalid value "many" for flag -conns`, "run 'herald bench idle --help' for the flags"},
		{[]string{"bench", "idle", "extra"}, `unexpected argument "extra"`, "run 'herald bench idle --help' for the flags"},
		{[]string{"bench", "nope"}, `unknown scenario "nope"`, "run 'herald bench --help' for the scenarios"},
		{[]string{"bench", "bare-server", "--pollers", "many"}, `invalid value "many" for flag -pollers`, "run 'herald bench bare-server --help' for the flags"},
		{[]string{"bench", "bare-server", "extra"}, `unexpected argument "extra"`, "run 'herald bench bare-server --help' for the flags"},
	} {
		var out, errOut, printed bytes.Buffer
		err := run(context.Background(), c.args, &out, &errOut, env(nil))
		code := report(err, &printed)
		lines := strings.Split(strings.TrimSuffix(printed.String(), "\n"), "\n")
		if code != 2 || len(lines) != 2 || !strings.HasPrefix(lines[0], "herald: ") || !strings.Contains(lines[0], c.want) || lines[1] != c.hint {
			t.Errorf("herald %v: status %d, printed\n%s\nwant status 2, an error with %q and then %q", c.args, code, printed.String(), c.want, c.hint)
		}
		if out.Len()+errOut.Len() != 0 {
			t.Errorf("herald %v also printed %q %q", c.args, out.String(), errOut.String())
		}
	}
	// None of them created anything (the database's folder is ./data).
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("the mistakes left %v (%v)", entries, err)
	}
}

// Every value is checked before herald touches its database: a bad port
// creates no SQLite file, nor its folder.
func TestBadAddrOpensNothing(t *testing.T) {
	dir := t.TempDir()
	dsn := "sqlite:" + filepath.Join(dir, "sub", "herald.db")
	for _, args := range [][]string{
		{"--addr=:99999", "--db", dsn},
		{"serve", "--admin-addr", "127.0.0.1:65536", "--db", dsn},
		{"migrate", "--addr", ":99999", "--db", dsn},
	} {
		var out bytes.Buffer
		err := run(context.Background(), args, &out, &out, env(nil))
		if err == nil || !strings.Contains(err.Error(), "out of range") || !strings.Contains(err.Error(), "-addr") {
			t.Errorf("herald %v: %v; want the port refused, naming its flag", args, err)
		}
		if report(err, io.Discard) != 2 {
			t.Errorf("herald %v: not a usage error", args)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "sub")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the database's folder was created: %v", err)
	}
}

// An address already in use is refused before the database is touched.
func TestAddrInUseOpensNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	var out bytes.Buffer
	err = run(context.Background(), []string{"--addr", taken.Addr().String(), "--db", "sqlite:" + filepath.Join(dir, "sub", "herald.db")}, &out, &out, env(nil))
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("serve on a taken address: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sub")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the database's folder was created: %v", err)
	}
}

// herald version prints the build; other errors exit with status 1.
func TestVersionAndStatus(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out, &out, env(nil)); err != nil {
			t.Fatalf("herald %v: %v", args, err)
		}
		if want := "herald " + version.Get().String() + "\n"; out.String() != want || !strings.HasPrefix(want, "herald devel") && !strings.HasPrefix(want, "herald v") {
			t.Errorf("herald %v printed %q, want %q", args, out.String(), want)
		}
	}
	var printed bytes.Buffer
	if code := report(errors.New("open database: boom"), &printed); code != 1 || printed.String() != "herald: open database: boom\n" {
		t.Errorf("a failure: status %d, printed %q", code, printed.String())
	}
	if code := report(nil, &printed); code != 0 {
		t.Errorf("success: status %d", code)
	}
	if code := report(flag.ErrHelp, &printed); code != 0 {
		t.Errorf("--help: status %d", code)
	}
}

// Bad configuration is refused before anything starts, naming each problem.
func TestBadConfig(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--addr", "nonsense"}, nil, "--addr"},
		{[]string{"--db", "mysql://x"}, nil, "--db"},
		{nil, map[string]string{"HERALD_DB": "oracle:x"}, "--db"},
		{[]string{"--jwt-secret", "short"}, nil, "at least 32 bytes"},
		{[]string{"--log-level", "loud"}, nil, "--log-level"},
		{[]string{"--log-format", "xml"}, nil, "--log-format"},
		{[]string{"--allowed-origins", "localhost:3000"}, nil, "--allowed-origins"},
		{[]string{"--access-ttl", "forever"}, nil, "--access-ttl"},
		{nil, map[string]string{"HERALD_DEMO": "maybe"}, "--demo"},
		{[]string{"--no-such-flag"}, nil, "no-such-flag"},
		{[]string{"extra"}, nil, "unknown command"},
	}
	for _, c := range cases {
		var out, errOut bytes.Buffer
		err := run(context.Background(), c.args, &out, &errOut, env(c.env))
		if err == nil || !strings.Contains(err.Error()+errOut.String(), c.want) {
			t.Errorf("args %v env %v: error %v (stderr %q); want one naming %q", c.args, c.env, err, errOut.String(), c.want)
		}
	}
}

// A flag wins over its environment variable, which wins over the default.
func TestFlagsAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	dsn := "sqlite:" + filepath.Join(dir, "env.db")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"migrate"}, &out, &out, env(map[string]string{"HERALD_DB": dsn})); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "env.db")); err != nil {
		t.Errorf("HERALD_DB was not used: %v", err)
	}
	flagDSN := "sqlite:" + filepath.Join(dir, "flag.db")
	if err := run(context.Background(), []string{"migrate", "--db", flagDSN}, &out, &out, env(map[string]string{"HERALD_DB": dsn})); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "flag.db")); err != nil {
		t.Errorf("--db did not win over HERALD_DB: %v", err)
	}
}

func TestMigrateCommand(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"migrate", "--db", dsn}, &out, &out, env(nil)); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "applied 0001_init.sql") {
			t.Errorf("first migrate said %q", out.String())
		}
		out.Reset()
		if err := run(context.Background(), []string{"migrate", "--db", dsn}, &out, &out, env(nil)); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "up to date") {
			t.Errorf("second migrate said %q", out.String())
		}
	})
}

// `herald serve` with only defaults (run in an empty directory) creates its
// SQLite database and secret under ./data, loads the demo data, serves the
// API, and stops cleanly when its context ends.
func TestServeDefaults(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var logs testenv.SyncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--addr", addr}, &logs, &logs, env(nil)) }()

	var body []byte
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Post("http://"+addr+"/api/auth/token/", "application/json",
			strings.NewReader(`{"username":"alice","password":"`+demo.Password+`"}`))
		if err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("demo sign-in: %d %s", res.StatusCode, b.String())
			}
			body = b.Bytes()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("herald did not start: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var tok map[string]string
	if err := json.Unmarshal(body, &tok); err != nil || tok["access"] == "" || tok["refresh"] == "" {
		t.Fatalf("token answer %s", body)
	}
	for _, f := range []string{"data/herald.db", "data/jwt-secret"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("expected %s: %v", f, err)
		}
	}
	if !strings.Contains(logs.String(), "herald listening") || !strings.Contains(logs.String(), "addr=http://"+addr+" ") ||
		!strings.Contains(logs.String(), "version=") {
		t.Errorf("logs do not say where herald listens, and which herald it is:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "msg=\"created the database's folder\" path=data\n") {
		t.Errorf("logs do not say the data folder was created:\n%s", logs.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
}
