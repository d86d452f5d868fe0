package transport

import (
	"testing"
	"unsafe"
)

func TestWSConnSize(t *testing.T) {
	if n := unsafe.Sizeof(wsConn{}); n > 224 {
		t.Fatalf(
			"wsConn is %d bytes; keep it small (idle connections are counted in tens of thousands)",
			n)
	}
}
