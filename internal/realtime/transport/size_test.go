package transport

import (
	"testing"
	"unsafe"
)

func TestWSConnSize(t *testing.T) {
	// 144 is a malloc size class (the next is 160). What only some
	// connections need for a while hangs off pointers (partial, timer,
	// waiter), the per-address slot is its limiter entry's pointer rather
	// than the address, and the flags share one word.
	if n := unsafe.Sizeof(wsConn{}); n > 144 {
		t.Fatalf(
			"wsConn is %d bytes; keep it small (idle connections are counted in tens of thousands)",
			n)
	}
}
