// Package testenv gives tests real databases: a fresh SQLite file, and a
// fresh PostgreSQL database on the server named by HERALD_TEST_POSTGRES
// (default postgres://postgres@127.0.0.1:5432/postgres), dropped afterwards.
// A test that needs PostgreSQL fails when it cannot reach it; it never skips.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
)

// PostgresAdminURL is the server tests create their databases on.
func PostgresAdminURL() string {
	if v := os.Getenv("HERALD_TEST_POSTGRES"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// SQLite returns the DSN of a new, empty SQLite database in t's temp dir.
func SQLite(t testing.TB) string {
	t.Helper()
	return "sqlite:" + filepath.Join(t.TempDir(), "herald.db")
}

// Postgres creates an empty database for t and returns its DSN.
func Postgres(t testing.TB) string {
	t.Helper()
	admin := PostgresAdminURL()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("testenv: open PostgreSQL admin connection: %v", err)
	}
	defer db.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "herald_test_" + hex.EncodeToString(b[:])
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv: PostgreSQL at %s is needed and could not create a database: %v", admin, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		db, err := sql.Open("pgx", admin)
		if err != nil {
			return
		}
		defer db.Close()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("testenv: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("testenv: bad HERALD_TEST_POSTGRES: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Databases returns one DSN per supported database, keyed by dialect name,
// for tests that must hold on both.
func Databases(t testing.TB) map[string]string {
	t.Helper()
	return map[string]string{"sqlite": SQLite(t), "postgres": Postgres(t)}
}

// ForEachDB runs fn as a subtest on a fresh SQLite and a fresh PostgreSQL
// database.
func ForEachDB(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			var dsn string
			if name == "sqlite" {
				dsn = SQLite(t)
			} else {
				dsn = Postgres(t)
			}
			fn(t, dsn)
		})
	}
}

// BuildHerald builds cmd/herald into dir with the go command of the running
// toolchain and returns the binary's path; flags go to `go build` (for
// example -race).
func BuildHerald(dir string, flags ...string) (string, error) {
	bin := filepath.Join(dir, "herald")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	args := append(append([]string{"build", "-o", bin}, flags...), "github.com/heraldhq/herald/cmd/herald")
	if out, err := exec.Command(gobin, args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("build herald: %w\n%s", err, out)
	}
	return bin, nil
}
