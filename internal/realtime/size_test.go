package realtime

import (
	"testing"
	"unsafe"
)

// TestConnSize guards the per-connection footprint, the main cost of an idle
// connection next to the socket itself.
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 160 {
		t.Fatalf(
			"Conn is %d bytes; keep it small (idle connections are counted in tens of thousands)",
			n)
	}
}
