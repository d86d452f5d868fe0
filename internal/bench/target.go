package bench

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
)

// Target is the herald under load: its base URL and the matching
// WebSocket base.
type Target struct {
	HTTP string // http://127.0.0.1:8000
	WS   string // ws://127.0.0.1:8000
	Addr netip.AddrPort
}

// ParseTarget checks that raw names a herald on this machine's loopback
// interface (127.0.0.0/8 or ::1, or "localhost") over plain HTTP and
// returns it. Anything else is refused: the load generator never sends its
// load over a real network.
func ParseTarget(raw string) (Target, error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, fmt.Errorf("target %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "ws" {
		return Target{}, fmt.Errorf("target %q: want http://127.0.0.1:PORT (plain HTTP on loopback)", raw)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return Target{}, fmt.Errorf("target %q: give the server's base URL only, like http://127.0.0.1:8000", raw)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "80"
	}
	if strings.EqualFold(host, "localhost") {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return Target{}, fmt.Errorf("target %q: the host must be a loopback address (127.0.0.0/8 or ::1) or localhost", raw)
	}
	ip = ip.Unmap()
	if !IsLoopback(ip) {
		return Target{}, fmt.Errorf("target %q: %s is not a loopback address; herald bench only drives a server on this machine (127.0.0.0/8 or ::1)", raw, ip)
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort(ip.String(), port))
	if err != nil {
		return Target{}, fmt.Errorf("target %q: bad port %q", raw, port)
	}
	hp := ap.String()
	return Target{HTTP: "http://" + hp, WS: "ws://" + hp, Addr: ap}, nil
}

// MaxTargets bounds the processes one run spreads its load over.
const MaxTargets = 16

// ParseTargets reads --target: one base URL, or several separated by
// commas (herald processes sharing a database and a Redis channel layer),
// each checked by ParseTarget. The clients and REST writes of a run are
// spread over them in turn, as a load balancer would.
func ParseTargets(raw string) ([]Target, error) {
	var ts []Target
	seen := map[netip.AddrPort]bool{}
	for _, one := range strings.Split(raw, ",") {
		one = strings.TrimSpace(one)
		if one == "" {
			continue
		}
		t, err := ParseTarget(one)
		if err != nil {
			return nil, err
		}
		if seen[t.Addr] {
			return nil, fmt.Errorf("target %s is given twice", t.HTTP)
		}
		if len(ts) > 0 && t.Addr.Addr().Is4() != ts[0].Addr.Addr().Is4() {
			return nil, fmt.Errorf("targets %s and %s: give all IPv4 or all IPv6 addresses", ts[0].HTTP, t.HTTP)
		}
		seen[t.Addr] = true
		ts = append(ts, t)
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("no target given; want a base URL like http://127.0.0.1:8000")
	}
	if len(ts) > MaxTargets {
		return nil, fmt.Errorf("%d targets: at most %d", len(ts), MaxTargets)
	}
	return ts, nil
}

// IsLoopback reports whether ip is in 127.0.0.0/8 or is ::1.
func IsLoopback(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.As4()[0] == 127
	}
	return ip == netip.IPv6Loopback()
}

// First and last source addresses the clients connect from.
const (
	firstSource = 2
	lastSource  = 254
)

// Sources hands out client source addresses, rotating over
// 127.0.0.2–127.0.0.254 so that no single address runs out of ephemeral
// ports (each holds ~28,000) and the server's per-address limits see the
// load spread out. For an IPv6 target there is only ::1, so it hands out
// nil (the kernel picks).
type Sources struct {
	addrs []*net.TCPAddr
	next  atomic.Uint64
}

// NewSources returns the source addresses for connections to target.
func NewSources(target netip.Addr) *Sources {
	s := &Sources{}
	if target.Unmap().Is4() {
		for i := firstSource; i <= lastSource; i++ {
			s.addrs = append(s.addrs, &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(i))})
		}
	}
	return s
}

// Len is the number of distinct source addresses (0 for IPv6).
func (s *Sources) Len() int { return len(s.addrs) }

// At is the source address of connection i.
func (s *Sources) At(i int) *net.TCPAddr {
	if len(s.addrs) == 0 {
		return nil
	}
	return s.addrs[i%len(s.addrs)]
}

// Next is the next address in rotation.
func (s *Sources) Next() *net.TCPAddr {
	return s.At(int(s.next.Add(1) - 1))
}
