package app_test

import (
	"context"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/heraldhq/herald/internal/app"
)

// Connections accepted by Listen carry no TCP keep-alive (herald's own
// pings and timeouts watch every connection) but keep TCP_NODELAY.
func TestListenWithoutKeepAlive(t *testing.T) {
	ln, err := app.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var keepAlive, noDelay int
	var sockErr error
	if err := rc.Control(func(fd uintptr) {
		keepAlive, sockErr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		if sockErr == nil {
			noDelay, sockErr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_NODELAY)
		}
	}); err != nil || sockErr != nil {
		t.Fatal(err, sockErr)
	}
	if keepAlive != 0 || noDelay == 0 {
		t.Fatalf("accepted socket: SO_KEEPALIVE %d (want 0), TCP_NODELAY %d (want 1)", keepAlive, noDelay)
	}
	if _, err := app.Listen(context.Background(), "127.0.0.1:bad"); err == nil || !strings.Contains(err.Error(), "listen on 127.0.0.1:bad") {
		t.Fatalf("bad address: %v", err)
	}
}
