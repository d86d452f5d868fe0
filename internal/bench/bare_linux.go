//go:build linux

package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// BareOptions configures the bare server (herald bench bare-server).
type BareOptions struct {
	// Addr is the loopback host:port to serve WebSocket connections (and
	// GET /healthz) on; AdminAddr, if set, serves /metrics and
	// /debug/pprof/ for the bench's memory figures.
	Addr, AdminAddr string
	// SnapshotBytes is the size of the campaign_data message every new
	// connection gets with its handshake response.
	SnapshotBytes int
	// Pollers is the number of epoll loops (default 1: on two cores shared
	// with the load generator, one loop connected fastest, 7,700–10,500/s
	// against 6,600–8,600/s with two sharing the listener).
	Pollers int
}

// Connection states of the bare server, one byte per descriptor.
const (
	bareFree = iota
	bareHandshake
	bareOpen
)

// bareServer is the floor herald's per-connection figures are compared
// with: accept4, an epoll set per poller, the gobwas/ws upgrade of a
// request read in one piece and one writev of the 101 response and
// campaign_data, then nothing but the descriptor and a byte of state. It
// keeps no Go object per connection, has no goroutine per connection and
// never touches Go's own network poller, so what an idle connection costs
// it is the kernel's socket alone; it checks no token, reads no database
// and sends no pings.
type bareServer struct {
	lfd      int
	frame    []byte // campaign_data, framed once
	state    []atomic.Uint32
	open     atomic.Int64
	pollers  []*barePoller
	upgrader ws.Upgrader
}

type barePoller struct {
	s    *bareServer
	epfd int
	evfd int
	buf  []byte
	resp bytes.Buffer
	req  bytes.Reader
}

// bareStop is the epoll data of a poller's eventfd.
const bareStop = -1

// ServeBare runs the bare server until ctx ends; ready is called with its
// address once it accepts connections.
func ServeBare(ctx context.Context, o BareOptions, ready func(addr string)) error {
	ap, err := netip.ParseAddrPort(o.Addr)
	if err != nil {
		return fmt.Errorf("bare-server: --addr %q: %w", o.Addr, err)
	}
	if !ap.Addr().IsLoopback() {
		return fmt.Errorf("bare-server: --addr %s is not a loopback address", o.Addr)
	}
	nofile, err := RaiseFileLimit()
	if err != nil {
		return err
	}
	s := &bareServer{lfd: -1, state: make([]atomic.Uint32, nofile+16), frame: bareSnapshot(o.SnapshotBytes)}
	defer s.close()
	if err := s.listen(ap); err != nil {
		return err
	}
	n := max(o.Pollers, 1)
	for range n {
		p, err := s.newPoller()
		if err != nil {
			return err
		}
		s.pollers = append(s.pollers, p)
	}
	var admin *http.Server
	if o.AdminAddr != "" {
		ln, err := net.Listen("tcp", o.AdminAddr)
		if err != nil {
			return fmt.Errorf("bare-server: --admin-addr: %w", err)
		}
		admin = &http.Server{Handler: s.adminMux(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = admin.Serve(ln) }()
	}
	var wg sync.WaitGroup
	for _, p := range s.pollers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run()
		}()
	}
	sa, _ := unix.Getsockname(s.lfd)
	if ready != nil {
		ready(sockaddrString(sa))
	}
	<-ctx.Done()
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	for _, p := range s.pollers {
		_, _ = unix.Write(p.evfd, one)
	}
	wg.Wait()
	if admin != nil {
		_ = admin.Close()
	}
	return nil
}

// bareSnapshot is a campaign_data text frame of about n bytes of payload.
func bareSnapshot(n int) []byte {
	const head, tail = `{"type":"campaign_data","data":{"id":1,"description":"`, `"}}`
	pad := max(0, n-len(head)-len(tail))
	payload := head + strings.Repeat("x", pad) + tail
	return ws.MustCompileFrame(ws.NewTextFrame([]byte(payload)))
}

func (s *bareServer) listen(ap netip.AddrPort) error {
	family := unix.AF_INET
	var sa unix.Sockaddr = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bare-server: socket: %w", err)
	}
	s.lfd = fd
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fmt.Errorf("bare-server: SO_REUSEADDR: %w", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bare-server: bind %s: %w", ap, err)
	}
	// The kernel caps the backlog at net.core.somaxconn, as for Go's
	// listeners.
	if err := unix.Listen(fd, 1<<16-1); err != nil {
		return fmt.Errorf("bare-server: listen: %w", err)
	}
	return nil
}

func (s *bareServer) newPoller() (*barePoller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("bare-server: epoll_create1: %w", err)
	}
	p := &barePoller{s: s, epfd: epfd, evfd: -1, buf: make([]byte, 16<<10)}
	if p.evfd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("bare-server: eventfd: %w", err)
	}
	add := func(fd int, events uint32, data int32) error {
		return unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: events, Fd: data})
	}
	if err := add(p.evfd, unix.EPOLLIN, bareStop); err != nil {
		p.close()
		return nil, fmt.Errorf("bare-server: epoll_ctl: %w", err)
	}
	// Every poller accepts; EPOLLEXCLUSIVE wakes one of them per connection.
	if err := add(s.lfd, unix.EPOLLIN|unix.EPOLLEXCLUSIVE, int32(s.lfd)); err != nil {
		p.close()
		return nil, fmt.Errorf("bare-server: epoll_ctl: %w", err)
	}
	return p, nil
}

func (p *barePoller) close() {
	unix.Close(p.epfd)
	if p.evfd >= 0 {
		unix.Close(p.evfd)
	}
}

// close closes the listener, the pollers and every connection.
func (s *bareServer) close() {
	if s.lfd >= 0 {
		unix.Close(s.lfd)
	}
	for _, p := range s.pollers {
		p.close()
	}
	for fd := range s.state {
		if s.state[fd].Swap(bareFree) != bareFree {
			unix.Close(fd)
		}
	}
}

func (p *barePoller) run() {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			switch fd := int(ev.Fd); {
			case ev.Fd == bareStop:
				return
			case fd == p.s.lfd:
				p.accept()
			default:
				p.readable(fd)
			}
		}
	}
}

// accept takes the waiting connections, a bounded number per wake so the
// other descriptors of this poller get their turn.
func (p *barePoller) accept() {
	for range 64 {
		fd, _, err := unix.Accept4(p.s.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN, or out of descriptors: the next wake retries
		}
		if fd >= len(p.s.state) {
			unix.Close(fd)
			continue
		}
		// As Go's listeners do.
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		p.s.state[fd].Store(bareHandshake)
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
		if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			p.drop(fd)
		}
	}
}

func (p *barePoller) drop(fd int) {
	if st := p.s.state[fd].Swap(bareFree); st != bareFree {
		if st == bareOpen {
			p.s.open.Add(-1)
		}
		unix.Close(fd) // leaves the epoll set with it
	}
}

func (p *barePoller) readable(fd int) {
	n, err := unix.Read(fd, p.buf)
	switch {
	case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
		return
	case err != nil || n == 0:
		p.drop(fd)
		return
	}
	if p.s.state[fd].Load() == bareOpen {
		// A client's frames: pongs and the like are dropped; a close
		// frame (the first byte's opcode 8) ends the connection.
		if p.buf[0]&0x0f == byte(ws.OpClose) {
			_, _ = unix.Write(fd, ws.CompiledCloseNormalClosure)
			p.drop(fd)
		}
		return
	}
	p.handshake(fd, p.buf[:n])
}

// handshake answers a request read whole (a loopback client's request
// arrives in one segment; one that does not is refused).
func (p *barePoller) handshake(fd int, req []byte) {
	if !bytes.HasSuffix(req, []byte("\r\n\r\n")) {
		_, _ = unix.Write(fd, []byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
		p.drop(fd)
		return
	}
	if bytes.HasPrefix(req, []byte("GET /healthz ")) {
		_, _ = unix.Write(fd, []byte("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"))
		p.drop(fd)
		return
	}
	p.req.Reset(req)
	p.resp.Reset()
	if _, err := p.s.upgrader.Upgrade(struct {
		io.Reader
		io.Writer
	}{&p.req, &p.resp}); err != nil {
		if p.resp.Len() > 0 {
			_, _ = unix.Write(fd, p.resp.Bytes())
		}
		p.drop(fd)
		return
	}
	// The 101 response and campaign_data in one write, as herald sends
	// them.
	iov := [][]byte{p.resp.Bytes(), p.s.frame}
	if n, err := unix.Writev(fd, iov); err != nil || n != len(iov[0])+len(iov[1]) {
		p.drop(fd)
		return
	}
	if p.s.state[fd].CompareAndSwap(bareHandshake, bareOpen) {
		p.s.open.Add(1)
	}
}

// adminMux serves what the bench reads from a server's admin address: the
// Go runtime's memory figures in Prometheus's format and pprof (heap?gc=1
// forces a collection).
func (s *bareServer) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		for _, m := range []struct {
			name string
			v    float64
		}{
			{"go_memstats_heap_inuse_bytes", float64(ms.HeapInuse)},
			{"go_memstats_heap_alloc_bytes", float64(ms.HeapAlloc)},
			{"go_memstats_stack_inuse_bytes", float64(ms.StackInuse)},
			{"go_memstats_sys_bytes", float64(ms.Sys)},
			{"go_memstats_heap_released_bytes", float64(ms.HeapReleased)},
			{"go_goroutines", float64(runtime.NumGoroutine())},
			{"go_gc_duration_seconds_count", float64(ms.NumGC)},
			{"herald_realtime_connections", float64(s.open.Load())},
		} {
			fmt.Fprintf(w, "%s %g\n", m.name, m.v)
		}
	})
	return mux
}

func sockaddrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String()
	}
	return ""
}
