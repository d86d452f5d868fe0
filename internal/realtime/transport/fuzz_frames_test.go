package transport

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/internal/realtime"
)

// extremeLengths are the payload lengths a frame header is most likely to
// get wrong: the edges of each length encoding, of int32, uint32 and the
// float64 integers, and the top of int64, where adding a header size to
// the length overflows.
var extremeLengths = []uint64{
	0, 1, 125, 126, 127, 65535, 65536, 1<<31 - 1, 1 << 31, 1 << 32, 1 << 53,
	1 << 62, 1<<63 - 15, 1<<63 - 14, 1<<63 - 13, 1<<63 - 1, 1 << 63, 1<<64 - 1,
}

// FuzzFrameHeaders builds frame headers itself, so that every payload
// length reaches the reader however rarely random bytes would spell it:
// the fuzzer picks the opcode and flag bits, the mask key, a length from
// extremeLengths (or any 64-bit length), how it is encoded, and the bytes
// that follow the header, optionally after the first frame of a fragmented
// message. The stream is fed in chunks of any size. Nothing may panic, and
// the reader may never hold more than one maximal frame.
func FuzzFrameHeaders(f *testing.F) {
	for i := range extremeLengths {
		for _, op := range []byte{0x1, 0x2, 0x0, 0x8, 0x9} {
			f.Add(0x80|op, true, uint32(0x01020304), uint8(i), uint64(0), uint8(0), false, []byte("{}"), uint8(255))
		}
		f.Add(byte(0x01), true, uint32(0), uint8(i), uint64(0), uint8(2), true, []byte(`1}`), uint8(0))
		f.Add(byte(0x81), false, uint32(0xffffffff), uint8(i), uint64(0), uint8(1), false, []byte{0xff, 0xfe}, uint8(3))
	}
	f.Add(byte(0x81), true, uint32(7), uint8(255), uint64(9), uint8(0), false, []byte(`{"type":"x"}`), uint8(1))
	f.Add(byte(0xf1), true, uint32(7), uint8(255), uint64(3), uint8(0), false, []byte("abc"), uint8(1))
	f.Add(byte(0x81), true, uint32(7), uint8(255), uint64(1<<63+5), uint8(2), true, []byte("abc"), uint8(7))
	newConn := newFeedConns(f)
	f.Fuzz(func(t *testing.T, b0 byte, masked bool, key uint32, pick uint8, raw uint64, enc uint8, frag bool, tail []byte, split uint8) {
		length := raw
		if int(pick) < len(extremeLengths) {
			length = extremeLengths[pick]
		}
		var stream []byte
		if frag {
			stream = clientFrame(ws.OpText, false, []byte(`{"a":`))
		}
		stream = append(stream, frameHeader(b0, masked, key, length, enc)...)
		stream = append(stream, tail...)

		w := newConn()
		defer w.link.Finish()
		sc := &scratch{}
		maxMsg := w.srv.opts.MaxMessageSize
		for len(stream) > 0 {
			n := min(len(stream), int(split)+1)
			if err := w.feed(stream[:n], sc); err != nil {
				if !reading(err) {
					return
				}
				w.stopRead = true
			}
			stream = stream[n:]
			// What is held, and allocated, is at most one frame.
			if len(parts(w).rbuf) > maxMsg+ws.MaxHeaderSize || cap(parts(w).rbuf) > maxMsg+ws.MaxHeaderSize ||
				len(parts(w).frag) > maxMsg || cap(parts(w).frag) > 2*maxMsg || parts(w).skip < 0 {
				t.Fatalf("length %d (encoding %d): rbuf %d (cap %d), frag %d (cap %d), skip %d",
					length, enc%3, len(parts(w).rbuf), cap(parts(w).rbuf), len(parts(w).frag), cap(parts(w).frag), parts(w).skip)
			}
		}
	})
}

// newFeedConns makes connections like newFeedConn, all on one hub, so that
// a fuzz execution costs a connection and not a hub.
func newFeedConns(f *testing.F) func() *wsConn {
	first := newFeedConn(f)
	return func() *wsConn {
		w := &wsConn{srv: first.srv, h: &nopHandler{}, nc: discardConn{}, fd: -1, tokens: float32(first.srv.opts.RateBurst)}
		w.link = first.srv.hub.Attach(realtime.ConnConfig{}, w)
		return w
	}
}

// frameHeader writes a header with first byte b0 announcing length: in the
// shortest form (enc%3 == 0), or in the 16-bit or 64-bit form whenever the
// length fits it, which RFC 6455 forbids for shorter lengths.
func frameHeader(b0 byte, masked bool, key uint32, length uint64, enc uint8) []byte {
	var mask byte
	if masked {
		mask = 0x80
	}
	h := []byte{b0}
	switch {
	case length <= 125 && enc%3 == 0:
		h = append(h, mask|byte(length))
	case length <= 0xffff && enc%3 != 2:
		h = append(h, mask|126)
		h = binary.BigEndian.AppendUint16(h, uint16(length))
	default:
		h = append(h, mask|127)
		h = binary.BigEndian.AppendUint64(h, length)
	}
	if masked {
		h = binary.BigEndian.AppendUint32(h, key)
	}
	return h
}

// TestFrameHeaderForms checks the generator itself: each form is what a
// WebSocket reader decodes back.
func TestFrameHeaderForms(t *testing.T) {
	for _, length := range []uint64{0, 125, 126, 65535, 65536, 1<<63 - 1} {
		for enc := range uint8(3) {
			b := frameHeader(0x81, true, 0x01020304, length, enc)
			h, err := ws.ReadHeader(bytes.NewReader(b))
			if err != nil || uint64(h.Length) != length || !h.Masked || h.Mask != [4]byte{1, 2, 3, 4} || !h.Fin || h.OpCode != ws.OpText {
				t.Errorf("length %d, encoding %d: %+v, %v", length, enc, h, err)
			}
		}
	}
}
