package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestHashGateBoundsConcurrency(t *testing.T) {
	g := NewHashGate(2, time.Minute)
	var mu sync.Mutex
	running, most := 0, 0
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := g.Acquire(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			running++
			most = max(most, running)
			mu.Unlock()
			time.Sleep(time.Millisecond) // let others try to overlap
			mu.Lock()
			running--
			mu.Unlock()
			release()
		}()
	}
	wg.Wait()
	if most > 2 {
		t.Fatalf("%d ran at once; want at most 2", most)
	}
}

func TestHashGateBusy(t *testing.T) {
	g := NewHashGate(1, 20*time.Millisecond)
	release, err := g.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The slot is held: a second caller gives up after the wait.
	if _, err := g.Acquire(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Acquire: %v; want ErrBusy", err)
	}
	// A caller whose context ends first gets the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire with a cancelled context: %v; want context.Canceled", err)
	}
	release()
	release, err = g.Acquire(context.Background())
	if err != nil {
		t.Fatalf("Acquire after release: %v", err)
	}
	release()
}

// The queue is bounded: past waitersPerSlot waiters a caller is refused at
// once instead of waiting.
func TestHashGateBoundsWaiters(t *testing.T) {
	g := NewHashGate(1, time.Minute)
	release, err := g.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range waitersPerSlot {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = g.Acquire(ctx)
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for g.waiting.Load() < waitersPerSlot {
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters after 30 s; want %d", g.waiting.Load(), waitersPerSlot)
		}
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	if _, err := g.Acquire(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("Acquire past the queue bound: %v; want ErrBusy", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("refusal took %v", d)
	}
	cancel()
	wg.Wait()
	release()
}
