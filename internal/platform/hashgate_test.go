package platform_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/testenv"
)

// Every password hash the platform runs takes a slot of its hash gate:
// with the only slot held elsewhere, sign-in (a known user's and an unknown
// one's alike) and registration fail with the gate's error instead of
// hashing, and an unknown user is not told apart by a fast 401.
func TestEveryHashTakesTheGate(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, testenv.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	gate := auth.NewHashGate(1, 20*time.Millisecond)
	p, err := platform.New(db, platform.Options{Hasher: auth.Hasher{Params: testenv.CheapPasswords}, HashGate: gate})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Register(ctx, platform.Registration{Username: "ann", Password: "a good password"}); err != nil {
		t.Fatal(err)
	}
	release, err := gate.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Authenticate(ctx, "ann", "a good password"); !errors.Is(err, auth.ErrBusy) {
		t.Errorf("sign-in with the gate full: %v; want ErrBusy", err)
	}
	if _, err := p.Authenticate(ctx, "nobody", "a good password"); !errors.Is(err, auth.ErrBusy) {
		t.Errorf("unknown user's sign-in with the gate full: %v; want ErrBusy", err)
	}
	if _, err := p.Register(ctx, platform.Registration{Username: "bo", Password: "a good password"}); !errors.Is(err, auth.ErrBusy) {
		t.Errorf("registration with the gate full: %v; want ErrBusy", err)
	}
	release()
	if _, err := p.Authenticate(ctx, "ann", "a good password"); err != nil {
		t.Errorf("sign-in with the gate free: %v", err)
	}
	if _, err := p.Authenticate(ctx, "nobody", "a good password"); platform.KindOf(err) != platform.KindUnauthorized {
		t.Errorf("unknown user with the gate free: %v; want unauthorized", err)
	}
}
