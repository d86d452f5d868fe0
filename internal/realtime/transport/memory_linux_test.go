//go:build linux

package transport

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/heraldhq/herald/internal/realtime"
)

// Bounds of TestIdleConnectionMemory, per idle connection in one group.
// Measured: 410–540 bytes of Go heap (wsConn 144, realtime.Conn 128, the
// registry's and the group's map entries and slices, the group name in
// the connection's list; the maps' growth steps make it vary) and -40 to
// 250 bytes outside it (the runtime's other allocations move by a few
// hundred KiB between two readings). Before the connections gave up
// their net.Conn: 1,021 and 624. The bounds sit between: keeping the
// net.Conn (its netFD, TCPConn and two addresses, ~300 bytes) crosses the
// first, its runtime poll descriptor (512 bytes outside the heap, in
// OtherSys) the second.
const (
	idleHeapBound  = 640
	idleOtherBound = 256
)

// TestIdleConnectionMemory opens idle WebSocket connections from raw
// client sockets (no Go objects on the client side) and measures what the
// server's side of them costs after a forced GC: Go heap, memory outside
// the heap and goroutines per connection.
func TestIdleConnectionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2,000 connections")
	}
	const n = 2000
	e := newEnv(t, realtime.HubOptions{}, Options{MaxConnsPerAddr: -1, HandshakeRate: -1})
	// The server's own goroutines; a handshake's end when it is done.
	gServer := runtime.NumGoroutine()
	addr := netip.MustParseAddrPort(e.ts.Listener.Addr().String())
	req := []byte("GET /?join=room HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	// Warm up (pools, the runtime's own structures), then keep one
	// connection so the group and the registry exist before the baseline.
	var warmup []int
	for range 200 {
		warmup = append(warmup, socketUpgrade(t, addr, req))
	}
	eventually(t, "the warm-up connections", func() bool { return e.hub.GroupSize("room") == len(warmup) })
	for _, fd := range warmup[1:] {
		unix.Close(fd)
	}
	warm := warmup[0]
	eventually(t, "the warm-up connections closed", func() bool { return e.srv.Conns() == 1 })
	heap0, other0, g0 := settledMem(t, gServer+10)

	fds := make([]int, 0, n)
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	for range n {
		fds = append(fds, socketUpgrade(t, addr, req))
	}
	eventually(t, "every connection in its group", func() bool { return e.hub.GroupSize("room") == n+1 })
	heap1, other1, g1 := settledMem(t, g0+n/100)
	unix.Close(warm)

	perHeap := float64(int64(heap1)-int64(heap0)) / n
	perOther := float64(int64(other1)-int64(other0)) / n
	t.Logf("per idle connection: %.0f bytes of Go heap, %.0f bytes outside it; goroutines %d → %d", perHeap, perOther, g0, g1)
	if perHeap > idleHeapBound {
		t.Errorf("an idle connection holds %.0f bytes of Go heap; want at most %d", perHeap, idleHeapBound)
	}
	if perOther > idleOtherBound {
		t.Errorf("an idle connection holds %.0f bytes outside the Go heap (a runtime poll descriptor?); want at most %d", perOther, idleOtherBound)
	}
	if g1-g0 > n/100 {
		t.Errorf("goroutines went from %d to %d with %d idle connections; want none per connection", g0, g1, n)
	}
}

// settledMem waits until at most maxG goroutines run (the handshakes' have
// ended; one left per connection would never end, and fails the test),
// forces two collections (sync.Pool keeps what it holds for one more) and
// returns the heap in use by live objects, the runtime's memory outside the
// heap (poll descriptors live there) and the number of goroutines.
func settledMem(t *testing.T, maxG int) (heap, other uint64, goroutines int) {
	t.Helper()
	eventually(t, fmt.Sprintf("at most %d goroutines (the handshakes' ended; none per connection)", maxG),
		func() bool { return runtime.NumGoroutine() <= maxG })
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.OtherSys, runtime.NumGoroutine()
}

// socketUpgrade connects a blocking socket to addr and sends req, without
// reading the answer; the caller closes the descriptor.
func socketUpgrade(t *testing.T, addr netip.AddrPort, req []byte) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: addr.Addr().As4(), Port: int(addr.Port())}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	if _, err := unix.Write(fd, req); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	return fd
}
