package transport

import (
	"net/netip"
	"testing"
)

func TestAddrLimiterConnections(t *testing.T) {
	l := newAddrLimiter(2, -1, 0)
	a := netip.MustParseAddr("192.0.2.1")
	for i := 0; i < 2; i++ {
		if ok, _, _ := l.admit(a, 0); !ok {
			t.Fatalf("connection %d refused", i+1)
		}
	}
	if ok, why, retry := l.admit(a, 0); ok || why == "" || retry <= 0 {
		t.Fatalf("third connection: ok %v, %q, retry %d", ok, why, retry)
	}
	if ok, _, _ := l.admit(netip.MustParseAddr("192.0.2.2"), 0); !ok {
		t.Fatal("another address was refused")
	}
	l.release(a)
	if ok, _, _ := l.admit(a, 0); !ok {
		t.Fatal("a released slot was not reusable")
	}
}

func TestAddrLimiterHandshakeRate(t *testing.T) {
	l := newAddrLimiter(-1, 10, 3) // 10/s, burst 3
	a := netip.MustParseAddr("2001:db8::1")
	sameNet := netip.MustParseAddr("2001:db8::ffff") // same /64
	for i := 0; i < 3; i++ {
		if ok, _, _ := l.admit(a, 0); !ok {
			t.Fatalf("handshake %d of the burst refused", i+1)
		}
	}
	if ok, _, _ := l.admit(sameNet, 0); ok {
		t.Fatal("the same /64 got past the exhausted bucket")
	}
	if ok, _, _ := l.admit(netip.MustParseAddr("2001:db8:0:1::1"), 0); !ok {
		t.Fatal("another /64 was refused")
	}
	if ok, _, _ := l.admit(a, 100e6); !ok { // 100 ms later: one token back
		t.Fatal("the bucket did not refill")
	}
	if ok, _, _ := l.admit(a, 100e6); ok {
		t.Fatal("two handshakes from one refilled token")
	}
}

// However slow the configured rate, Retry-After is the longest wait (an
// hour), not whatever a float too large for an int converts to.
func TestAddrLimiterRetryBounded(t *testing.T) {
	l := newAddrLimiter(-1, 1e-300, 1)
	a := netip.MustParseAddr("192.0.2.9")
	if ok, _, _ := l.admit(a, 0); !ok {
		t.Fatal("the first handshake was refused")
	}
	if ok, _, retry := l.admit(a, 0); ok || retry != 3601 {
		t.Fatalf("ok %v, Retry-After %d; want a refusal with 3601 s", ok, retry)
	}
}

// The limiter's memory stays bounded by what is really open: idle entries
// are swept once the table is full.
func TestAddrLimiterBounded(t *testing.T) {
	l := newAddrLimiter(10, 1000, 10)
	for i := 0; i < maxTracked+5000; i++ {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		now := int64(i) * 1e9 // every entry has long refilled by the next
		if ok, _, _ := l.admit(a, now); !ok {
			t.Fatalf("address %d refused", i)
		}
		l.release(a)
	}
	if len(l.m) > maxTracked {
		t.Fatalf("%d entries tracked; bound %d", len(l.m), maxTracked)
	}
}

// TestAddrLimiterSlots: a connection holds its address's entry instead of
// the address; the entry is not swept while it has connections, and
// releasing it by pointer frees the slot as releasing the address does.
func TestAddrLimiterSlots(t *testing.T) {
	l := newAddrLimiter(1, -1, 0)
	a := netip.MustParseAddr("192.0.2.1")
	slot, ok, _, _ := l.admitSlot(a, 0)
	if !ok || slot == nil {
		t.Fatalf("admitSlot: ok %v, slot %v", ok, slot)
	}
	l.mu.Lock()
	l.sweep(0)
	kept := l.m[addrKey(a)] == slot
	l.mu.Unlock()
	if !kept {
		t.Fatal("a sweep dropped an entry with a connection")
	}
	if ok, _, _ := l.admit(a, 0); ok {
		t.Fatal("a second connection was admitted over the limit of one")
	}
	l.releaseSlot(slot)
	l.releaseSlot(nil) // an address that is not counted
	if ok, _, _ := l.admit(a, 0); !ok {
		t.Fatal("a slot released by its entry was not reusable")
	}
	if slot, ok, _, _ := newAddrLimiter(-1, -1, 0).admitSlot(a, 0); !ok || slot != nil {
		t.Fatalf("without limits: ok %v, slot %v; want admitted, not counted", ok, slot)
	}
}
