//go:build linux

package transport

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/heraldhq/herald/internal/panics"
	"github.com/heraldhq/herald/internal/realtime"
)

// wakeID is the epoll data of a poller's eventfd, used to stop it.
const wakeID uint32 = 1<<31 - 1

// Readiness is one-shot: after an event the descriptor is disarmed until the
// worker that read it re-arms it, so one connection is never read by two
// workers and its messages are handled in order. Level-triggered, so a
// worker may stop after a budget and be called again for the rest.
const armEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// poller is one epoll loop.
type poller struct {
	s    *Server
	epfd int
	evfd int
}

func (s *Server) startPollers(n int) ([]*poller, error) {
	var ps []*poller
	fail := func(err error) ([]*poller, error) {
		for _, p := range ps {
			p.closeFDs()
		}
		return nil, err
	}
	for range n {
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return fail(fmt.Errorf("epoll_create1: %w", err))
		}
		evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
		if err != nil {
			unix.Close(epfd)
			return fail(fmt.Errorf("eventfd: %w", err))
		}
		p := &poller{s: s, epfd: epfd, evfd: evfd}
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakeID)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
			p.closeFDs()
			return fail(fmt.Errorf("epoll_ctl eventfd: %w", err))
		}
		ps = append(ps, p)
	}
	for _, p := range ps {
		s.wg.Add(1)
		go p.run()
	}
	return ps, nil
}

// stopPollers wakes every poller so it returns; the caller waits on s.wg
// and then calls closePollers.
func (s *Server) stopPollers() {
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	for _, p := range s.pollers {
		_, _ = unix.Write(p.evfd, one)
	}
}

func (s *Server) closePollers() {
	for _, p := range s.pollers {
		p.closeFDs()
	}
}

func (p *poller) closeFDs() {
	unix.Close(p.evfd)
	unix.Close(p.epfd)
}

func (p *poller) run() {
	defer p.s.wg.Done()
	events := make([]unix.EpollEvent, 256)
	for p.wait(events) {
	}
}

// wait waits for readable connections and hands them to the readers; false
// when the poller stops. After a panic it goes on with the next wait.
func (p *poller) wait(events []unix.EpollEvent) (more bool) {
	more = true
	defer panics.Recover(p.s.log, p.s.opts.OnPanic, panics.WSReader)
	n, err := unix.EpollWait(p.epfd, events, -1)
	if err != nil {
		if errors.Is(err, unix.EINTR) {
			return true
		}
		p.s.log.Error("transport: epoll_wait failed; poller stops", "err", err)
		return false
	}
	for i := range n {
		id := uint32(events[i].Fd)
		if id == wakeID {
			return false
		}
		if wc := p.s.lookup(id); wc != nil {
			wc.dispatch()
		}
	}
	return true
}

// attachFD takes the socket of wc out of its net.Conn and picks its poller,
// before wc is visible to other goroutines: a duplicate of the descriptor
// becomes wc's own and the net.Conn is closed, which returns its poll
// descriptor to the Go runtime (512 bytes each, kept outside the heap for
// as long as the net.Conn is open) and lets its addresses and file go. The
// duplicate shares the socket's non-blocking mode. Connections without a
// descriptor (TLS), or when none is left to duplicate into, keep fd -1 and
// their net.Conn, and get a reader goroutine.
func (s *Server) attachFD(wc *wsConn) {
	if len(s.pollers) == 0 {
		return
	}
	sc, ok := wc.nc.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(f uintptr) { fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || derr != nil || fd < 0 {
		return
	}
	// The Go runtime forgets the descriptor (epoll_ctl DEL) and closes it;
	// the socket stays open through the duplicate.
	_ = wc.nc.Close()
	wc.nc = nil
	wc.fd = int32(fd)
	// Held "being read" until pollConn hands reading to the poller.
	wc.rstate.Store(1)
}

// pollConn hands reading wc to its poller. It reports false when wc has no
// descriptor and needs a reader goroutine.
func (s *Server) pollConn(wc *wsConn, pending []byte) (bool, error) {
	if wc.fd < 0 {
		return false, nil
	}
	// Nobody reads the connection yet, so this goroutine may.
	if len(pending) > 0 && !s.readPending(wc, pending, &scratch{}) {
		return true, nil
	}
	// Publishes the reader state above to the worker that reads next.
	wc.rstate.Store(0)
	wc.fdMu.RLock()
	defer wc.fdMu.RUnlock()
	if wc.fdClosed {
		return true, nil
	}
	ev := unix.EpollEvent{Events: armEvents, Fd: int32(wc.id)}
	if err := unix.EpollCtl(wc.poller().epfd, unix.EPOLL_CTL_ADD, int(wc.fd), &ev); err != nil {
		return true, fmt.Errorf("epoll_ctl add: %w", err)
	}
	return true, nil
}

// poller is the epoll loop of a connection with a descriptor: chosen by the
// descriptor, so it is not stored.
func (w *wsConn) poller() *poller {
	return w.srv.pollers[uint(w.fd)%uint(len(w.srv.pollers))]
}

// closeSocket closes the connection's socket; the caller holds fdMu
// exclusively. Closing the descriptor takes it out of the poller's epoll
// set, unless a blocking write's duplicate still holds the socket open: it
// is removed first then, and the duplicate closed, which ends that write.
func (w *wsConn) closeSocket() {
	if w.fd < 0 {
		_ = w.nc.Close()
		return
	}
	if w.waiter != nil {
		_ = unix.EpollCtl(w.poller().epfd, unix.EPOLL_CTL_DEL, int(w.fd), nil)
		_ = w.waiter.Close()
		w.waiter = nil
	}
	_ = unix.Close(int(w.fd))
}

// dispatch hands a readable connection to a reader worker unless one is
// reading it already, in which case that worker reads again before it
// re-arms.
func (w *wsConn) dispatch() {
	for {
		switch w.rstate.Load() {
		case 0:
			if w.rstate.CompareAndSwap(0, 1) {
				select {
				case w.srv.readq <- w:
				case <-w.srv.done:
				}
				return
			}
		case 1:
			if w.rstate.CompareAndSwap(1, 2) {
				return
			}
		default:
			return
		}
	}
}

// onReadable runs on a reader worker.
func (w *wsConn) onReadable(sc *scratch) {
	for {
		if !w.readSome(sc) {
			return // reading ended; the descriptor stays disarmed
		}
		if w.rstate.CompareAndSwap(1, 0) {
			w.arm()
			return
		}
		w.rstate.Store(1)
	}
}

// readBudget bounds the reads of one turn so a busy client cannot hold a
// worker; level-triggered epoll brings it back.
const readBudget = 8

// readSome reads and handles what the socket holds and reports whether
// reading goes on.
func (w *wsConn) readSome(sc *scratch) bool {
	for range readBudget {
		n, err := w.rawRead(sc.buf)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return true
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			w.readFailed(err)
			return false
		case n == 0:
			w.readFailed(io.EOF)
			return false
		}
		w.lastRead.Store(w.srv.now())
		if err := w.feed(sc.buf[:n], sc); err != nil {
			w.readFailed(err)
			if !reading(err) {
				return false
			}
		}
		if n < len(sc.buf) {
			return true
		}
	}
	return true
}

func (w *wsConn) rawRead(p []byte) (int, error) {
	w.fdMu.RLock()
	defer w.fdMu.RUnlock()
	if w.fdClosed {
		return 0, net.ErrClosed
	}
	return unix.Read(int(w.fd), p)
}

func (w *wsConn) arm() {
	w.fdMu.RLock()
	if w.fdClosed {
		w.fdMu.RUnlock()
		return
	}
	ev := unix.EpollEvent{Events: armEvents, Fd: int32(w.id)}
	err := unix.EpollCtl(w.poller().epfd, unix.EPOLL_CTL_MOD, int(w.fd), &ev)
	w.fdMu.RUnlock()
	if err != nil {
		w.srv.log.Warn("transport: re-arm connection", "err", err)
		w.teardown()
	}
}

// tryWrite writes as much of b as the socket takes without blocking. It
// reports whether b was written whole.
func (w *wsConn) tryWrite(b *realtime.Batch) (bool, error) {
	if w.fd < 0 {
		return false, nil
	}
	return w.writeNow(&b.Frames)
}

// writeNow writes as much of frames as the socket takes without blocking,
// consuming what it wrote, and reports whether that was all of it.
func (w *wsConn) writeNow(frames *[][]byte) (bool, error) {
	w.fdMu.RLock()
	defer w.fdMu.RUnlock()
	if w.fdClosed {
		return false, net.ErrClosed
	}
	return writevAll(int(w.fd), frames)
}

// writevAll writes frames to fd until done or the socket is full (false,
// nil), consuming what it wrote.
func writevAll(fd int, frames *[][]byte) (bool, error) {
	for len(*frames) > 0 {
		n, err := unix.Writev(fd, (*frames)[:min(len(*frames), maxIov)])
		switch {
		case errors.Is(err, unix.EAGAIN):
			return false, nil
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return false, err
		}
		f := *frames
		for n > 0 {
			if l := len(f[0]); n >= l {
				f = f[1:]
				n -= l
			} else {
				f[0] = f[0][n:]
				n = 0
			}
		}
		*frames = f
	}
	return true, nil
}

// writeFD is writeWait for a connection served by a poller. What the socket
// takes at once is written directly; for the rest the write waits, with
// deadline d, on a pollable duplicate of the descriptor (waiter), which the
// Go runtime's poller watches for writability: so a stalled client's
// writer sleeps in the runtime, not in a system call, and an idle
// connection needs no poll descriptor. The duplicate lives only while this
// call waits: the next write that finds the socket full, maybe on another
// goroutine once this one has handed the queue on, makes its own, so no
// writer can close one another is waiting on. Teardown closes it to end
// the wait.
func (w *wsConn) writeFD(bufs *net.Buffers, d time.Duration) error {
	frames := (*[][]byte)(bufs)
	if done, err := w.writeNow(frames); done || err != nil {
		return err
	}
	f, err := w.openWaiter()
	if err != nil {
		return err
	}
	defer w.closeWaiter(f)
	if err := f.SetWriteDeadline(time.Now().Add(d)); err != nil {
		return err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		done, err := writevAll(int(fd), frames)
		werr = err
		return done || err != nil
	})
	if werr != nil {
		return werr
	}
	return err
}

// openWaiter makes the pollable duplicate of the connection's descriptor a
// write waits on, and records it for teardown.
func (w *wsConn) openWaiter() (*os.File, error) {
	w.fdMu.Lock()
	defer w.fdMu.Unlock()
	if w.fdClosed {
		return nil, net.ErrClosed
	}
	fd, err := unix.FcntlInt(uintptr(w.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("duplicate descriptor: %w", err)
	}
	// Non-blocking like the socket it shares, so os.NewFile registers it
	// with the runtime's poller and deadlines apply.
	w.waiter = os.NewFile(uintptr(fd), "websocket")
	return w.waiter, nil
}

// closeWaiter closes f, the duplicate a write waited on, unless teardown
// already did.
func (w *wsConn) closeWaiter(f *os.File) {
	w.fdMu.Lock()
	if w.waiter == f {
		w.waiter = nil
		_ = f.Close()
	}
	w.fdMu.Unlock()
}
