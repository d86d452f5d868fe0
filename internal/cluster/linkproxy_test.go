package cluster

import (
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
)

// linkProxy is a TCP proxy on a free loopback port in front of one address
// (a process's link to Redis) that the test can cut and restore, as a
// network failure between the two would.
type linkProxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool // both ends of every proxied connection
	wg    sync.WaitGroup
}

// startLinkProxy proxies a free loopback port to target until t ends.
func startLinkProxy(t *testing.T, target string) *linkProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &linkProxy{t: t, ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

// Port is the port the proxy listens on.
func (p *linkProxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Addr is the proxy's host:port.
func (p *linkProxy) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.Port()) }

func (p *linkProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close() // refused while the link is cut
			continue
		}
		p.wg.Add(1)
		go p.pipe(c)
	}
}

// pipe joins c to a new connection to the target.
func (p *linkProxy) pipe(c net.Conn) {
	defer p.wg.Done()
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	p.conns[c], p.conns[u] = true, true
	p.mu.Unlock()
	var both sync.WaitGroup
	both.Add(2)
	copyHalf := func(dst, src net.Conn) {
		defer both.Done()
		_, _ = io.Copy(dst, src)
		// One side ended: the whole link ends, as a broken connection's.
		dst.Close()
		src.Close()
	}
	go copyHalf(u, c)
	go copyHalf(c, u)
	both.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

// cut closes every proxied connection and refuses new ones until restore.
func (p *linkProxy) cut() {
	p.mu.Lock()
	p.down = true
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// restore lets new connections through again.
func (p *linkProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}
