package transport

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/origin"
)

// Defaults of the per-address limits.
const (
	DefaultMaxConnsPerAddr = 1000
	DefaultHandshakeRate   = 100
	DefaultHandshakeBurst  = 200
)

// AddrLimiter bounds, per client address, the open connections and the
// rate of new handshakes, so one host cannot take all of the server's
// descriptors or keep its workers busy with upgrades. IPv6 addresses count
// per /64, the block one subscriber usually gets. One limiter given to both
// transports (Options.Limits, SSEOptions.Limits) counts an address's
// WebSocket connections and event streams together.
type AddrLimiter struct {
	maxConns int     // <0: no limit
	rate     float64 // handshakes per second; <0: no limit
	burst    float64
	start    time.Time // the clock of the token buckets

	mu sync.Mutex
	m  map[netip.Addr]*addrState
}

type addrState struct {
	conns  int
	tokens float64
	last   int64 // limiter clock of the last refill
}

// maxTracked bounds the limiter's memory; past it, idle entries are swept.
const maxTracked = 100_000

// NewAddrLimiter returns a limiter of maxConns open connections and rate
// new ones per second (bursts of burst) per client address. Zero values take
// the defaults (DefaultMaxConnsPerAddr, DefaultHandshakeRate,
// DefaultHandshakeBurst); a negative maxConns or rate disables that limit.
func NewAddrLimiter(maxConns int, rate float64, burst int) *AddrLimiter {
	if maxConns == 0 {
		maxConns = DefaultMaxConnsPerAddr
	}
	if rate == 0 {
		rate = DefaultHandshakeRate
	}
	if burst <= 0 {
		burst = DefaultHandshakeBurst
	}
	return newAddrLimiter(maxConns, rate, burst)
}

func newAddrLimiter(maxConns int, rate float64, burst int) *AddrLimiter {
	return &AddrLimiter{maxConns: maxConns, rate: rate, burst: float64(burst), start: time.Now(), m: make(map[netip.Addr]*addrState)}
}

// now is the limiter's monotonic clock in nanoseconds, shared by every
// transport the limiter serves.
func (l *AddrLimiter) now() int64 { return int64(time.Since(l.start)) }

// addrKey is the unit a limit applies to.
func addrKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// admit takes a handshake token and a connection slot for addr. On refusal
// it returns why and how many seconds to wait.
func (l *AddrLimiter) admit(addr netip.Addr, now int64) (ok bool, why string, retry int) {
	_, ok, why, retry = l.admitSlot(addr, now)
	return ok, why, retry
}

// admitSlot is admit that also returns the address's entry, which
// releaseSlot takes instead of the address (nil when the address is not
// counted). An entry with a connection is never swept, so a connection
// may hold on to its entry rather than its address.
func (l *AddrLimiter) admitSlot(addr netip.Addr, now int64) (slot *addrState, ok bool, why string, retry int) {
	if !addr.IsValid() || (l.maxConns < 0 && l.rate < 0) {
		return nil, true, "", 0
	}
	key := addrKey(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.m[key]
	if st == nil {
		if len(l.m) >= maxTracked {
			l.sweep(now)
		}
		st = &addrState{tokens: l.burst, last: now}
		l.m[key] = st
	}
	if l.rate >= 0 {
		st.tokens = min(l.burst, st.tokens+float64(now-st.last)/1e9*l.rate)
		st.last = now
		if st.tokens < 1 {
			// Bounded before the conversion: a tiny rate must not make
			// the float too large for an int.
			return nil, false, "too many new connections from this address", max(1, int(min((1-st.tokens)/l.rate, 3600))+1)
		}
	}
	if l.maxConns >= 0 && st.conns >= l.maxConns {
		return nil, false, "too many open connections from this address", 5
	}
	if l.rate >= 0 {
		st.tokens--
	}
	st.conns++
	return st, true, "", 0
}

// release gives back addr's connection slot.
func (l *AddrLimiter) release(addr netip.Addr) {
	if !addr.IsValid() || (l.maxConns < 0 && l.rate < 0) {
		return
	}
	key := addrKey(addr)
	l.mu.Lock()
	if st := l.m[key]; st != nil && st.conns > 0 {
		st.conns--
	}
	l.mu.Unlock()
}

// releaseSlot gives back the connection slot admitSlot returned.
func (l *AddrLimiter) releaseSlot(st *addrState) {
	if st == nil {
		return
	}
	l.mu.Lock()
	if st.conns > 0 {
		st.conns--
	}
	l.mu.Unlock()
}

// sweep forgets addresses with no connection whose bucket has refilled.
func (l *AddrLimiter) sweep(now int64) {
	for k, st := range l.m {
		if st.conns == 0 && (l.rate < 0 || st.tokens+float64(now-st.last)/1e9*l.rate >= l.burst) {
			delete(l.m, k)
		}
	}
}

// remoteAddr is the client address of r as the server sees it.
func remoteAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(strings.TrimSpace(host))
	return a
}

// tooMany answers a refused handshake.
func tooMany(w http.ResponseWriter, why string, retry int) {
	w.Header().Set("Retry-After", strconv.Itoa(retry))
	http.Error(w, why, http.StatusTooManyRequests)
}

// originOK reports whether a handshake with this Origin header may connect:
// none (not a browser), the server's own page, or an allowed origin; with
// no allow-list configured, any.
func originOK(allowed []string, o, host string) bool {
	return o == "" || len(allowed) == 0 || origin.Same(o, host) || origin.Allowed(allowed, o)
}
