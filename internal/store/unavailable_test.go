package store_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// A database that cannot be reached is told apart from one that refused a
// statement: the first answers 503 and may be retried.
func TestIsUnavailable(t *testing.T) {
	// A port nothing listens on: connections are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = store.Open(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/test?sslmode=disable&connect_timeout=2", port))
	if err == nil || !store.IsUnavailable(err) {
		t.Errorf("opening a database nobody serves: %v; want it unavailable", err)
	}
	db, err := store.Open(ctx, "sqlite:"+t.TempDir()+"/x.db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, "SELECT * FROM no_such_table")
	if err == nil || store.IsUnavailable(err) {
		t.Errorf("a statement the database refused: %v; want it not unavailable", err)
	}
	if store.IsUnavailable(nil) {
		t.Error("no error is unavailable")
	}
}
