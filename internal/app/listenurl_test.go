package app_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/app"
	"github.com/heraldhq/herald/internal/config"
)

// The start line's URL is one a person can open: localhost for every
// interface, the address otherwise, IPv6 in brackets.
func TestListenURL(t *testing.T) {
	for addr, want := range map[string]string{
		"[::]:8000":         "http://localhost:8000",
		"0.0.0.0:8000":      "http://localhost:8000",
		":8000":             "http://localhost:8000",
		"127.0.0.1:41234":   "http://127.0.0.1:41234",
		"[::1]:8000":        "http://[::1]:8000",
		"192.0.2.7:80":      "http://192.0.2.7:80",
		"[2001:db8::7]:443": "http://[2001:db8::7]:443",
	} {
		tcp, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := app.ListenURL(tcp); got != want {
			t.Errorf("ListenURL(%s) = %q, want %q", addr, got, want)
		}
	}
	// A real wildcard listener.
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if got := app.ListenURL(ln.Addr()); got != "http://localhost:"+port {
		t.Errorf("listening on :0 (%s): %q", ln.Addr(), got)
	}
}

// OpenDB creates a SQLite file's missing folders and says so, once.
func TestOpenDBCreatesFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cfg := config.Config{DB: "sqlite:" + filepath.Join(dir, "herald.db")}
	for i := 0; i < 2; i++ {
		db, err := app.OpenDB(context.Background(), cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	if _, err := os.Stat(filepath.Join(dir, "herald.db")); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "level=INFO msg=\"created the database's folder\" path="+dir+"\n"); n != 1 {
		t.Errorf("%d lines say the folder was created; want 1:\n%s", n, logs.String())
	}
	// A folder that cannot be made is an error naming it.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := app.OpenDB(context.Background(), config.Config{DB: "sqlite:" + filepath.Join(file, "sub", "herald.db")}, log)
	if err == nil || !strings.Contains(err.Error(), file) || errors.Is(err, os.ErrNotExist) {
		t.Errorf("a folder under a file: %v", err)
	}
}
