package panics

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Recover, deferred directly, ends only the function that panicked: the
// caller goes on, the panic is logged once at ERROR with its stack and the
// boundary is told to onPanic.
func TestRecover(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	var mu sync.Mutex
	var told []string
	onPanic := func(where string) {
		mu.Lock()
		defer mu.Unlock()
		told = append(told, where)
	}
	turn := func(fail bool) (finished bool) {
		defer Recover(log, onPanic, Relay)
		if fail {
			panic("turn failed")
		}
		return true
	}
	if turn(true) {
		t.Fatal("a turn that panicked finished")
	}
	if !turn(false) {
		t.Fatal("the next turn did not run")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer Recover(log, onPanic, Presence)
		panic("goroutine failed")
	}()
	<-done
	if want := []string{Relay, Presence}; !slices.Equal(told, want) {
		t.Fatalf("told %v; want %v", told, want)
	}
	logged := out.String()
	if n := strings.Count(logged, "panic recovered"); n != 2 || !strings.Contains(logged, "level=ERROR") ||
		!strings.Contains(logged, "turn failed") || !strings.Contains(logged, "panics_test.go") {
		t.Fatalf("log:\n%s", logged)
	}
}

// Without a hook or a logger a panic is still recovered.
func TestRecoverWithoutHook(t *testing.T) {
	func() {
		defer Recover(slog.New(slog.DiscardHandler), nil, HTTP)
		panic("no hook")
	}()
}
