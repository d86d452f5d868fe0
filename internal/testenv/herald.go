package testenv

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/app"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/config"
)

// CheapPasswords keeps argon2id honest but fast enough for tests that sign
// up hundreds of users under the race detector.
var CheapPasswords = auth.PasswordParams{Memory: 64, Time: 1, Threads: 1}

// Herald is a whole herald serving in this process on a loopback port, its
// outbox relay and presence running, as `herald serve` runs it.
type Herald struct {
	App  *app.App
	Base string // http://127.0.0.1:port
	WS   string // ws://127.0.0.1:port

	t    testing.TB
	stop context.CancelFunc
	done chan error
	once sync.Once
}

// Config is the configuration tests start herald with on dsn.
func Config(t testing.TB, dsn string) config.Config {
	return config.Config{
		DB: dsn, DataDir: t.TempDir(), AccessTTL: 15 * time.Minute, RefreshTTL: time.Hour,
		JWTSecret: strings.Repeat("k", 32), ShutdownGrace: 2 * time.Second,
		AllowedOrigins: []string{"http://localhost:8000"},
		// Tests register many users from one address.
		RegistrationsPerHour: -1,
	}
}

// StartHerald starts herald on dsn, with tweak applied to its configuration;
// it stops when the test ends.
func StartHerald(t testing.TB, dsn string, tweak ...func(*config.Config)) *Herald {
	t.Helper()
	return StartHeraldWith(t, dsn, nil, tweak...)
}

// StartHeraldWith is StartHerald with app options, for what is not
// configuration (CheapPasswords is always one of them).
func StartHeraldWith(t testing.TB, dsn string, opts []app.Option, tweak ...func(*config.Config)) *Herald {
	t.Helper()
	cfg := Config(t, dsn)
	for _, f := range tweak {
		f(&cfg)
	}
	opts = append([]app.Option{app.WithPasswordParams(CheapPasswords)}, opts...)
	a, err := app.New(context.Background(), cfg, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatalf("start herald on %s: %v", dsn, err)
	}
	ln, err := app.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Herald{App: a, t: t, stop: cancel, done: make(chan error, 1)}
	go func() { h.done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		h.Stop()
		a.Close()
	})
	addr := ln.Addr().String()
	h.Base, h.WS = "http://"+addr, "ws://"+addr
	return h
}

// Stop shuts herald down gracefully (as on SIGTERM) and waits for it.
func (h *Herald) Stop() {
	h.once.Do(func() {
		h.stop()
		if err := <-h.done; err != nil {
			h.t.Errorf("serve: %v", err)
		}
	})
}
