//go:build linux

package transport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/heraldhq/herald/internal/realtime"
)

// stalledConn opens a connection served by a poller whose client reads
// nothing yet, and returns the server's side of it. The test writes to it
// directly, so the server pings nobody while it runs. Both sockets keep
// the kernel's buffer sizes: with a small one, data crosses loopback one
// segment per delayed ACK (~40 ms), so the client would read slowly, not
// stall.
func stalledConn(t *testing.T) (*wsConn, *client) {
	t.Helper()
	e := newEnv(t, realtime.HubOptions{}, Options{PingInterval: time.Hour, IdleTimeout: 3 * time.Hour})
	c := dial(t, e.url)
	c.text()
	var wc *wsConn
	eventually(t, "the connection registered", func() bool {
		if conns := e.srv.snapshot(-1); len(conns) == 1 {
			wc = conns[0]
		}
		return wc != nil
	})
	if wc.fd < 0 {
		t.Fatal("the connection is not served by a poller")
	}
	return wc, c
}

// waiterFD returns the descriptor number of the duplicate a write of wc
// waits on, once one waits.
func waiterFD(t *testing.T, wc *wsConn) int {
	t.Helper()
	var f *os.File
	eventually(t, "a write waiting for the socket", func() bool {
		wc.fdMu.RLock()
		f = wc.waiter
		wc.fdMu.RUnlock()
		return f != nil
	})
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	if err := rc.Control(func(d uintptr) { fd = int(d) }); err != nil {
		t.Fatal(err)
	}
	return fd
}

// stallBytes is more than loopback's socket buffers on both sides hold at
// their largest (4 MiB to send, 6 MiB to receive by default), so a write of
// it waits for the client.
const stallBytes = 32 << 20

func fdOpen(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return !errors.Is(err, unix.EBADF)
}

// TestWaitingWritesOwnTheirDuplicate: a write that finds the socket full
// waits on a duplicate of the descriptor made for it and closed when it is
// done, before the next write may start. A duplicate kept for the writing
// goroutine's lifetime was shared with the next blocked write when the
// queue was handed on meanwhile, and closed under it by the goroutine that
// made it: the next write failed and a healthy client was dropped.
func TestWaitingWritesOwnTheirDuplicate(t *testing.T) {
	wc, c := stalledConn(t)
	const size = stallBytes
	payload := bytes.Repeat([]byte("x"), size)
	got := make([]byte, size)
	for round := range 3 {
		bufs := net.Buffers{bytes.Clone(payload)}
		done := make(chan error, 1)
		go func() { done <- wc.writeFD(&bufs, 10*time.Second) }()
		fd := waiterFD(t, wc)
		_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c.r, got); err != nil {
			t.Fatalf("round %d: reading: %v", round, err)
		}
		if err := <-done; err != nil {
			t.Fatalf("round %d: the write failed: %v", round, err)
		}
		if !bytes.Equal(got, payload) {
			t.Fatalf("round %d: the client read other bytes than were written", round)
		}
		wc.fdMu.RLock()
		kept := wc.waiter != nil
		wc.fdMu.RUnlock()
		if kept || fdOpen(fd) {
			t.Fatalf("round %d: after the write: duplicate recorded %v, descriptor %d open %v; want both gone", round, kept, fd, fdOpen(fd))
		}
	}
}

// TestTeardownEndsAWaitingWrite: closing a connection while a write waits
// for the socket ends that write at once, not at its deadline, and closes
// the socket's descriptor and the duplicate.
func TestTeardownEndsAWaitingWrite(t *testing.T) {
	wc, _ := stalledConn(t)
	bufs := net.Buffers{make([]byte, stallBytes)}
	done := make(chan error, 1)
	go func() { done <- wc.writeFD(&bufs, time.Hour) }()
	dup := waiterFD(t, wc)
	sock := int(wc.fd)
	wc.teardown()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the waiting write returned %v; want the error of a closed file", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting write did not end when the connection was torn down")
	}
	if fdOpen(dup) || fdOpen(sock) {
		t.Fatalf("after teardown: duplicate %d open %v, socket %d open %v; want both closed", dup, fdOpen(dup), sock, fdOpen(sock))
	}
	wc.fdMu.RLock()
	defer wc.fdMu.RUnlock()
	if wc.waiter != nil {
		t.Fatal("teardown left the duplicate recorded")
	}
}
