package auth

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func mustAllow(t *testing.T, th *Throttle, account, addr string) {
	t.Helper()
	if d, ok := th.Check(account, addr); !ok {
		t.Fatalf("Check(%q, %q) locked for %v, want allowed", account, addr, d)
	}
}

func mustDeny(t *testing.T, th *Throttle, account, addr string, want time.Duration) {
	t.Helper()
	if d, ok := th.Check(account, addr); ok || d != want {
		t.Fatalf("Check(%q, %q) = %v, %v; want %v, false", account, addr, d, ok, want)
	}
}

func TestThrottleAccount(t *testing.T) {
	clock := newFakeClock()
	th := NewThrottle(ThrottleConfig{Now: clock.Now})

	// Failures from different addresses all count against the account, and
	// the account name is case-insensitive.
	for i := range 4 {
		mustAllow(t, th, "Alice", "")
		th.Failure([]string{"alice", "ALICE", "Alice"}[i%3], fmt.Sprintf("198.51.100.%d", i))
		clock.Advance(time.Minute)
	}
	mustAllow(t, th, "alice", "")
	th.Failure("alice", "198.51.100.9")

	// The window started with the first failure, four minutes ago.
	mustDeny(t, th, "alice", "", 11*time.Minute)
	mustDeny(t, th, "aLiCe", "203.0.113.1", 11*time.Minute)
	mustAllow(t, th, "bob", "198.51.100.9")

	// Further failures while locked do not extend the lock.
	th.Failure("alice", "")
	clock.Advance(11*time.Minute - time.Second)
	mustDeny(t, th, "alice", "", time.Second)
	clock.Advance(time.Second)
	mustAllow(t, th, "alice", "")

	// A fresh window starts from zero.
	th.Failure("alice", "")
	mustAllow(t, th, "alice", "")
}

func TestThrottleAddress(t *testing.T) {
	clock := newFakeClock()
	th := NewThrottle(ThrottleConfig{Now: clock.Now})

	for i := range 20 {
		mustAllow(t, th, "", "198.51.100.7")
		th.Failure("user"+strconv.Itoa(i), "198.51.100.7")
	}
	mustDeny(t, th, "fresh-account", "198.51.100.7", 15*time.Minute)
	mustAllow(t, th, "fresh-account", "198.51.100.8")

	// A successful login clears only the account, not the address.
	th.Success("user0", "198.51.100.7")
	mustDeny(t, th, "user0", "198.51.100.7", 15*time.Minute)

	clock.Advance(15 * time.Minute)
	mustAllow(t, th, "fresh-account", "198.51.100.7")
}

func TestThrottleIPv6Prefix(t *testing.T) {
	th := NewThrottle(ThrottleConfig{MaxPerAddress: 3, Now: newFakeClock().Now})
	th.Failure("", "2001:db8:1:2::1")
	th.Failure("", "2001:db8:1:2:ffff::9")
	th.Failure("", "2001:db8:1:2:abcd:1:2:3")
	_, ok := th.Check("", "2001:db8:1:2::77")
	if ok {
		t.Error("address in the same /64 not locked")
	}
	mustAllow(t, th, "", "2001:db8:1:3::1")
	// IPv4 addresses are tracked individually, mapped or not.
	th.Failure("", "::ffff:192.0.2.1")
	th.Failure("", "192.0.2.1")
	th.Failure("", "192.0.2.1")
	mustDeny(t, th, "", "192.0.2.1", 15*time.Minute)
	mustAllow(t, th, "", "192.0.2.2")
}

func TestThrottleSuccessResets(t *testing.T) {
	clock := newFakeClock()
	th := NewThrottle(ThrottleConfig{MaxPerAccount: 3, Window: time.Minute, Now: clock.Now})
	th.Failure("carol", "192.0.2.1")
	th.Failure("carol", "192.0.2.1")
	th.Success("Carol", "192.0.2.1")
	th.Failure("carol", "192.0.2.1")
	th.Failure("carol", "192.0.2.1")
	mustAllow(t, th, "carol", "192.0.2.1")
	th.Failure("carol", "192.0.2.1")
	mustDeny(t, th, "carol", "", time.Minute)
}

func TestThrottleBounded(t *testing.T) {
	clock := newFakeClock()
	th := NewThrottle(ThrottleConfig{Now: clock.Now})
	const n = 200_000
	for i := range n {
		th.Failure("user"+strconv.Itoa(i), "")
		if i%10_000 == 0 {
			clock.Advance(time.Second)
		}
	}
	if got := len(th.entries); got > DefaultMaxEntries || got != th.order.Len() {
		t.Fatalf("after %d distinct accounts: %d map entries, %d queued; want at most %d, equal",
			n, got, th.order.Len(), DefaultMaxEntries)
	}
	// Eviction drops the oldest keys and keeps the newest.
	if _, ok := th.entries[accountKey("user0")]; ok {
		t.Error("oldest entry survived eviction")
	}
	if _, ok := th.entries[accountKey("user"+strconv.Itoa(n-1))]; !ok {
		t.Error("newest entry was evicted")
	}

	// Expired entries are pruned without being looked up again.
	clock.Advance(15 * time.Minute)
	mustAllow(t, th, "someone", "")
	if got := len(th.entries); got != 0 {
		t.Errorf("%d entries left after the window passed, want 0", got)
	}

	// Oversized names do not make entries unbounded in size.
	th.Failure(string(make([]byte, 1<<20)), string(make([]byte, 1<<20)))
	for k := range th.entries {
		if len(k) > maxThrottleKeyLen+2 {
			t.Errorf("stored key of %d bytes", len(k))
		}
	}
}

func TestThrottleConcurrent(t *testing.T) {
	th := NewThrottle(ThrottleConfig{MaxEntries: 50})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				account := fmt.Sprintf("u%d-%d", g, i%60)
				th.Check(account, "192.0.2.1")
				th.Failure(account, fmt.Sprintf("192.0.2.%d", i%7))
				if i%5 == 0 {
					th.Success(account, "192.0.2.1")
				}
			}
		})
	}
	wg.Wait()
	if got := len(th.entries); got > 50 {
		t.Errorf("%d entries, want at most 50", got)
	}
}

// Attempts are counted when they begin, so concurrent attempts cannot all
// pass a check made before any of them failed.
func TestThrottleBeginCountsInFlight(t *testing.T) {
	clock := newFakeClock()
	th := NewThrottle(ThrottleConfig{Now: clock.Now})
	var mu sync.Mutex
	var begun []*Attempt
	refused := 0
	var wg sync.WaitGroup
	for i := range 15 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, r, ok := th.Begin("alice", fmt.Sprintf("198.51.100.%d", i))
			mu.Lock()
			defer mu.Unlock()
			if !ok {
				// Refused for the attempts in flight, not locked out.
				if r.Locked || r.RetryAfter != inFlightRetry {
					t.Errorf("refused with %+v; want a retry in %v, not locked", r, inFlightRetry)
				}
				refused++
				return
			}
			begun = append(begun, a)
		}()
	}
	wg.Wait()
	if len(begun) != DefaultMaxPerAccount || refused != 15-DefaultMaxPerAccount {
		t.Fatalf("%d begun, %d refused; want %d and %d", len(begun), refused, DefaultMaxPerAccount, 15-DefaultMaxPerAccount)
	}
	// Unsettled attempts stay counted, as in flight.
	if _, r, ok := th.Begin("alice", ""); ok || r.Locked || r.RetryAfter != inFlightRetry {
		t.Fatalf("Begin with the limit in flight: ok %v, %+v", ok, r)
	}
	// Settled as failures, they lock the account for the window.
	for _, a := range begun {
		a.Count()
	}
	mustDeny(t, th, "alice", "", DefaultThrottleWindow)
	if _, r, ok := th.Begin("alice", ""); ok || !r.Locked || r.RetryAfter != DefaultThrottleWindow {
		t.Fatalf("Begin on a locked account: ok %v, %+v", ok, r)
	}
}

// Correct sign-ins at the same moment fill the limit only while they are
// checked: once they succeed the account is open again, never locked.
func TestThrottleConcurrentSuccessesDoNotLock(t *testing.T) {
	clock := newFakeClock()
	th := NewThrottle(ThrottleConfig{Now: clock.Now})
	var begun []*Attempt
	for range DefaultMaxPerAccount {
		a, r, ok := th.Begin("alice", "198.51.100.1")
		if !ok {
			t.Fatalf("refused %+v", r)
		}
		begun = append(begun, a)
	}
	for _, a := range begun {
		a.Succeed()
	}
	for range 3 * DefaultMaxPerAccount {
		a, r, ok := th.Begin("alice", "198.51.100.1")
		if !ok {
			t.Fatalf("refused after successes: %+v", r)
		}
		a.Succeed()
	}
}

func TestThrottleAttemptSettles(t *testing.T) {
	clock := newFakeClock()
	th := NewThrottle(ThrottleConfig{Now: clock.Now, MaxPerAccount: 2, MaxPerAddress: 3})
	begin := func(account, addr string) *Attempt {
		t.Helper()
		a, r, ok := th.Begin(account, addr)
		if !ok {
			t.Fatalf("Begin(%q, %q) refused: %+v", account, addr, r)
		}
		return a
	}
	// Released attempts give back both counts.
	for range 10 {
		begin("alice", "198.51.100.1").Release()
	}
	mustAllow(t, th, "alice", "198.51.100.1")
	if n := len(th.entries); n != 0 {
		t.Fatalf("%d entries left after released attempts", n)
	}

	// A success clears the account's failures and does not count against
	// the address; failures do.
	begin("alice", "198.51.100.1").Count() // fails
	begin("alice", "198.51.100.1").Succeed()
	begin("alice", "198.51.100.1").Count() // fails
	mustAllow(t, th, "alice", "")
	begin("bob", "198.51.100.1").Count() // fails: the address's third
	mustDeny(t, th, "carol", "198.51.100.1", DefaultThrottleWindow)
	if _, _, ok := th.Begin("carol", "198.51.100.1"); ok {
		t.Fatal("Begin passed a locked address")
	}

	// An attempt whose entry expired meanwhile does not touch the new one.
	a := begin("dave", "")
	clock.Advance(DefaultThrottleWindow)
	begin("dave", "").Count()
	a.Release()
	begin("dave", "").Count()
	mustDeny(t, th, "dave", "", DefaultThrottleWindow)
}

// The throttle's state seen one operation at a time, as the tests below
// drive it (the server uses Begin and its Attempt).

// Check reports whether a login attempt for account from addr may proceed.
// If not, retryAfter is how long until the lock lifts.
func (t *Throttle) Check(account, addr string) (retryAfter time.Duration, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.cfg.Now()
	t.prune(now)
	for _, k := range t.keys(account, addr) {
		if e := t.lookup(k.key, now); e != nil && e.failures >= k.max {
			retryAfter = max(retryAfter, e.start.Add(t.cfg.Window).Sub(now))
		}
	}
	return retryAfter, retryAfter == 0
}

// Failure records a failed login for account from addr.
func (t *Throttle) Failure(account, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.cfg.Now()
	t.prune(now)
	for _, k := range t.keys(account, addr) {
		e := t.lookup(k.key, now)
		if e == nil {
			e = t.insert(k.key, now)
		}
		e.failures++
	}
}

// Success records a successful login, clearing the account's failures. The
// address counter is kept: otherwise an attacker holding one valid account
// could reset it between guesses at others.
func (t *Throttle) Success(account, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.entries[accountKey(account)]; ok {
		t.remove(el)
	}
}
