package transport

import (
	"testing"
	"unsafe"
)

func TestWSConnSize(t *testing.T) {
	// 240 is a malloc size class; the client address for the per-address
	// limits took the last step up from 224.
	if n := unsafe.Sizeof(wsConn{}); n > 240 {
		t.Fatalf(
			"wsConn is %d bytes; keep it small (idle connections are counted in tens of thousands)",
			n)
	}
}
