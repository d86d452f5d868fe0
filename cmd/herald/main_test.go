package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/demo"
	"github.com/heraldhq/herald/internal/testenv"
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
	var logs syncBuffer
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
	if !strings.Contains(logs.String(), "herald listening") || !strings.Contains(logs.String(), addr) {
		t.Errorf("logs do not say where herald listens:\n%s", logs.String())
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
