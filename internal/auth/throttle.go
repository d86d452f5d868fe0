package auth

import (
	"container/list"
	"strings"
	"sync"
	"time"
)

// Throttle defaults, used for zero ThrottleConfig fields.
const (
	DefaultMaxPerAccount  = 5
	DefaultMaxPerAddress  = 20
	DefaultThrottleWindow = 15 * time.Minute
	DefaultMaxEntries     = 100_000
)

// maxThrottleKeyLen caps how much of a client-supplied account name is stored, so
// the memory bound holds for entry sizes as well as entry counts.
const maxThrottleKeyLen = 256

// ThrottleConfig configures a Throttle. Zero fields select the defaults.
type ThrottleConfig struct {
	MaxPerAccount int           // failures per account before it is locked
	MaxPerAddress int           // failures per client address before it is locked
	Window        time.Duration // counting window, which is also the lock duration
	MaxEntries    int           // accounts and addresses tracked at once
	Now           func() time.Time
}

// Throttle limits password guessing. Attempts are counted per account
// (case-insensitively) and per client address (IPv6 clients by /64, since
// one host typically controls a whole /64). Once a key reaches its limit it
// stays locked until its window, which starts at its first failure, ends.
// Begin counts an attempt before its work starts, so that concurrent
// attempts cannot pass the limit; a successful or abandoned attempt is given
// back.
//
// State is kept in memory and bounded by MaxEntries: expired entries are
// dropped as calls come in, and when the table is full the oldest entry,
// the one closest to expiring anyway, is evicted. A Throttle is safe for
// concurrent use and needs no cleanup.
type Throttle struct {
	cfg ThrottleConfig

	mu      sync.Mutex
	entries map[string]*list.Element // of *throttleEntry
	// order holds entries oldest first. Every window has the same length,
	// so this is also expiry order and pruning only looks at the front.
	order list.List
}

type throttleEntry struct {
	key      string
	start    time.Time
	failures int // settled attempts that count
	pending  int // attempts begun and not settled yet
}

// Refusal says why Begin refused an attempt.
type Refusal struct {
	// RetryAfter is how long until an attempt may pass.
	RetryAfter time.Duration
	// Locked is true when settled failures reached a limit: the key is
	// locked until its window ends. Otherwise attempts still in flight
	// fill the limit, and RetryAfter is a moment for them to settle.
	Locked bool
}

// inFlightRetry is the wait given to an attempt refused only because
// attempts in flight fill its limit: they settle within seconds.
const inFlightRetry = time.Second

// NewThrottle returns a Throttle configured by cfg.
func NewThrottle(cfg ThrottleConfig) *Throttle {
	if cfg.MaxPerAccount <= 0 {
		cfg.MaxPerAccount = DefaultMaxPerAccount
	}
	if cfg.MaxPerAddress <= 0 {
		cfg.MaxPerAddress = DefaultMaxPerAddress
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultThrottleWindow
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Throttle{cfg: cfg, entries: make(map[string]*list.Element)}
}

// Begin counts an attempt for account from addr before its work starts, so
// concurrent attempts cannot all pass a check made before any of them is
// recorded. It refuses the attempt, with how long until the lock lifts, if
// any of its keys has reached its limit, counting attempts still in flight.
//
// An attempt that is not settled stays counted, as in flight, until its
// window ends. Count settles it as a failure; Succeed and Release give back
// what Begin took.
func (t *Throttle) Begin(account, addr string) (a *Attempt, r Refusal, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.cfg.Now()
	t.prune(now)
	keys := t.keys(account, addr)
	for _, k := range keys {
		e := t.lookup(k.key, now)
		switch {
		case e == nil:
		case e.failures >= k.max:
			r.Locked = true
			r.RetryAfter = max(r.RetryAfter, e.start.Add(t.cfg.Window).Sub(now))
		case e.failures+e.pending >= k.max:
			r.RetryAfter = max(r.RetryAfter, inFlightRetry)
		}
	}
	if r.RetryAfter > 0 {
		return nil, r, false
	}
	a = &Attempt{t: t}
	for _, k := range keys {
		e := t.lookup(k.key, now)
		if e == nil {
			e = t.insert(k.key, now)
		}
		e.pending++
		a.held = append(a.held, e)
	}
	return a, Refusal{}, true
}

// Attempt is an attempt counted by Throttle.Begin. Its methods may be called
// at most once, and not concurrently.
type Attempt struct {
	t    *Throttle
	held []*throttleEntry // account first, if there is one
}

// Count settles an attempt that counts against its keys: a failed sign-in,
// a created account.
func (a *Attempt) Count() {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	for _, e := range a.held {
		if a.t.live(e) {
			e.pending--
			e.failures++
		}
	}
}

// Succeed settles a successful sign-in: the account's failures are cleared
// and the attempt no longer counts against the address. The address keeps
// its other attempts: an attacker holding one valid account cannot clear
// the count of its guesses at others.
func (a *Attempt) Succeed() {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	for _, e := range a.held {
		if strings.HasPrefix(e.key, "u:") {
			if el, ok := a.t.entries[e.key]; ok {
				a.t.remove(el)
			}
			continue
		}
		a.t.giveBack(e)
	}
}

// Release gives the attempt back: it did no work that should count, for
// example because the server was too busy to check the password.
func (a *Attempt) Release() {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	for _, e := range a.held {
		a.t.giveBack(e)
	}
}

// live says whether e is still the entry for its key: one that expired or
// was evicted meanwhile took its counts along.
func (t *Throttle) live(e *throttleEntry) bool {
	el, ok := t.entries[e.key]
	return ok && el.Value.(*throttleEntry) == e
}

// giveBack uncounts one attempt in flight from e, if e is still live.
func (t *Throttle) giveBack(e *throttleEntry) {
	if !t.live(e) {
		return
	}
	if e.pending--; e.pending <= 0 && e.failures <= 0 {
		t.remove(t.entries[e.key])
	}
}

type throttleKey struct {
	key string
	max int
}

func (t *Throttle) keys(account, addr string) []throttleKey {
	keys := make([]throttleKey, 0, 2)
	if account != "" {
		keys = append(keys, throttleKey{accountKey(account), t.cfg.MaxPerAccount})
	}
	if addr != "" {
		keys = append(keys, throttleKey{addressKey(addr), t.cfg.MaxPerAddress})
	}
	return keys
}

func accountKey(account string) string {
	if len(account) > maxThrottleKeyLen {
		account = account[:maxThrottleKeyLen]
	}
	return "u:" + strings.ToLower(account)
}

func addressKey(addr string) string {
	ip, ok := parseIP(addr)
	if !ok {
		if len(addr) > maxThrottleKeyLen {
			addr = addr[:maxThrottleKeyLen]
		}
		return "a:" + addr
	}
	if ip.Is6() {
		p, _ := ip.Prefix(64) // cannot fail for a /64 of an IPv6 address
		return "a:" + p.String()
	}
	return "a:" + ip.String()
}

// lookup returns the live entry for key, or nil.
func (t *Throttle) lookup(key string, now time.Time) *throttleEntry {
	el, ok := t.entries[key]
	if !ok {
		return nil
	}
	e := el.Value.(*throttleEntry)
	if t.expired(e, now) {
		// Only reachable if the clock went backwards and broke the
		// ordering prune relies on.
		t.remove(el)
		return nil
	}
	return e
}

func (t *Throttle) insert(key string, now time.Time) *throttleEntry {
	for len(t.entries) >= t.cfg.MaxEntries {
		t.remove(t.order.Front())
	}
	e := &throttleEntry{key: key, start: now}
	t.entries[key] = t.order.PushBack(e)
	return e
}

func (t *Throttle) remove(el *list.Element) {
	delete(t.entries, el.Value.(*throttleEntry).key)
	t.order.Remove(el)
}

// prune drops expired entries from the front of the queue. Each entry is
// dropped once, so the cost is amortised over the calls that created them.
func (t *Throttle) prune(now time.Time) {
	for el := t.order.Front(); el != nil; el = t.order.Front() {
		if !t.expired(el.Value.(*throttleEntry), now) {
			return
		}
		t.remove(el)
	}
}

func (t *Throttle) expired(e *throttleEntry, now time.Time) bool {
	return !now.Before(e.start.Add(t.cfg.Window))
}
