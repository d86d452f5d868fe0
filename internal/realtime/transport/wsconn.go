package transport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/internal/panics"
	"github.com/heraldhq/herald/internal/realtime"
)

// wsConn is the WebSocket side of one realtime.Conn. Its fields are kept
// few and small (TestWSConnSize): an idle connection served by a poller is
// this struct, the realtime.Conn and its socket's descriptor, nothing else.
// What only some connections need for a while (a partial frame, a close
// timer, a blocked write) hangs off pointers that are nil while idle.
type wsConn struct {
	srv  *Server
	link realtime.Link
	h    Handler
	// nc is the network connection of one read by a goroutine of its own
	// (no descriptor: TLS, Pollers < 0, other systems). One served by a
	// poller keeps only its descriptor, fd: its net.Conn is closed once
	// upgraded, and with it the Go runtime's poll descriptor (512 bytes
	// outside the heap) and the connection's addresses.
	nc net.Conn
	// slot is the client address's entry in the per-address limits (nil
	// when not counted), given back by teardown.
	slot *addrState

	// fdMu keeps the descriptor open while it is used directly (raw reads
	// and writes); teardown takes it exclusively before closing. It also
	// guards timer and waiter.
	fdMu sync.RWMutex
	// timer tears the connection down CloseTimeout after its close frame
	// went out, unless the client answers first.
	timer *time.Timer
	// waiter is a pollable duplicate of fd while a write waits for the
	// socket (writeFD).
	waiter *os.File

	// part is the reader state of an incomplete frame or message; nil
	// between complete frames. Touched only by the goroutine reading the
	// connection, like the fields down to strikes.
	part     *partial
	rlLast   int64 // rate limit: server clock of the last refill
	tokens   float32
	strikes  uint16
	stopRead bool // the stream is unusable or the peer closed: discard input
	fdClosed bool

	lastRead atomic.Int64 // server clock of the last frame read
	id       uint32
	fd       int32 // raw descriptor when served by a poller, else -1
	// rstate guards against two workers reading one connection: 0 idle,
	// 1 being read, 2 being read and readable again.
	rstate atomic.Uint32
	// state holds the flags below.
	state atomic.Uint32
}

// Flags of wsConn.state.
const (
	closeSent  uint32 = 1 << iota // our close frame is written
	peerClosed                    // the client's close frame was read
	finished                      // torn down
)

// has reports whether flag is set.
func (w *wsConn) has(flag uint32) bool { return w.state.Load()&flag != 0 }

// partial is what a connection's reader keeps between reads while a frame
// or a fragmented message is incomplete, or a rejected frame is skipped.
type partial struct {
	rbuf     []byte // bytes of an incomplete frame; nil when none
	frag     []byte // payload of an incomplete fragmented message
	skip     int64  // bytes of a rejected frame still to discard
	fragging bool
	// dropFrags marks the continuation frames of a rejected fragmented
	// message, which are skipped too.
	dropFrags bool
}

// idle reports whether p holds nothing to carry to the next read.
func (p *partial) idle() bool {
	return p.rbuf == nil && p.frag == nil && p.skip == 0 && !p.fragging && !p.dropFrags
}

// scratch is a reader worker's reusable memory.
type scratch struct {
	buf []byte
	rd  bytes.Reader
	hdr [ws.MaxHeaderSize]byte
	// part is the reader state of the connection being read while it has
	// none of its own; feed moves it to the connection when a read ends
	// in the middle of a frame.
	part partial
}

const scratchSize = 16 << 10

func newScratch() *scratch { return &scratch{buf: make([]byte, scratchSize)} }

// closeErr asks to close the connection with a code.
type closeErr struct {
	code   uint16
	reason string
}

func (e *closeErr) Error() string { return e.reason }

var (
	errTooBig     = &closeErr{realtime.CloseMessageTooBig, "message too big"}
	errBinary     = &closeErr{realtime.CloseUnsupportedData, "binary messages are not supported"}
	errUTF8       = &closeErr{realtime.CloseInvalidPayload, "invalid UTF-8"}
	errTooMany    = &closeErr{realtime.CloseTooManyMessages, "too many messages"}
	errPeerClosed = errors.New("peer closed")
	_             = errTooBig
)

// feed processes bytes read from the connection. A returned *closeErr asks
// for a close with its code; errPeerClosed ends reading.
func (w *wsConn) feed(data []byte, sc *scratch) error {
	if w.part == nil {
		sc.part = partial{}
		w.part = &sc.part
	}
	err := w.feedPart(data, sc)
	if p := w.part; p != nil {
		switch {
		case p.idle():
			w.part = nil
		case p == &sc.part:
			// The read ended inside a frame: the connection keeps its
			// state until the next one.
			w.part = &partial{}
			*w.part = *p
			sc.part = partial{}
		}
	}
	return err
}

// feedPart is feed with the reader state in w.part.
func (w *wsConn) feedPart(data []byte, sc *scratch) error {
	p := w.part
	for {
		if w.stopRead {
			return nil
		}
		if p.skip > 0 {
			n := min(p.skip, int64(len(data)))
			p.skip -= n
			data = data[n:]
		}
		if len(data) == 0 {
			return nil
		}
		if len(p.rbuf) == 0 {
			used, need, err := w.consume(data, sc)
			if rest := data[used:]; err == nil && len(rest) > 0 && !w.stopRead {
				p.rbuf = make([]byte, len(rest), max(need, len(rest), 64))
				copy(p.rbuf, rest)
			}
			return err
		}
		// Top the partial frame up only to its buffer's capacity (the
		// frame's size once its header is known): append would round the
		// buffer up past one frame. What follows it is read in place on
		// the next turn.
		n := min(len(data), cap(p.rbuf)-len(p.rbuf))
		p.rbuf = append(p.rbuf, data[:n]...)
		data = data[n:]
		used, need, err := w.consume(p.rbuf, sc)
		rest := p.rbuf[used:]
		switch {
		case err != nil || len(rest) == 0:
			p.rbuf = nil // the partial frame is done; let its buffer go
		case need > cap(p.rbuf) || (cap(p.rbuf) > 4<<10 && len(rest) < cap(p.rbuf)/4):
			p.rbuf = append(make([]byte, 0, max(need, len(rest), 64)), rest...)
		case used > 0:
			p.rbuf = p.rbuf[:copy(p.rbuf, rest)]
		}
		if err != nil {
			return err
		}
	}
}

// consume handles the complete frames at the start of b and returns the
// bytes used and, when the header of the incomplete frame after them is
// known, that frame's full size.
func (w *wsConn) consume(b []byte, sc *scratch) (used, need int, err error) {
	limit := int64(w.srv.opts.MaxMessageSize)
	p := w.part
	for !w.stopRead {
		rest := b[used:]
		if len(rest) < ws.MinHeaderSize {
			return used, 0, nil
		}
		sc.rd.Reset(rest)
		h, err := ws.ReadHeaderBuffer(&sc.rd, sc.hdr[:])
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return used, 0, nil
		}
		if err != nil {
			return used, 0, &closeErr{realtime.CloseProtocolError, err.Error()}
		}
		hn := len(rest) - sc.rd.Len()
		state := ws.StateServerSide
		if p.fragging || p.dropFrags {
			state |= ws.StateFragmented
		}
		if err := ws.CheckHeader(h, state); err != nil {
			return used, 0, &closeErr{realtime.CloseProtocolError, err.Error()}
		}
		// h.Length is 0 to 2^63-1 (the reader refuses a length with its top
		// bit set): it is compared with what is allowed or here, never
		// added to, until it is known to be within the message limit.
		var reject *closeErr
		switch {
		case h.OpCode == ws.OpContinuation && p.dropFrags:
			reject = errBinary // already closing; skip the rest of the message
		case h.OpCode == ws.OpBinary:
			reject = errBinary
		case h.Length > limit || (h.OpCode == ws.OpContinuation && h.Length > limit-int64(len(p.frag))):
			reject = errTooBig
		}
		if reject != nil {
			// Close, and skip the frame without buffering it: the stream
			// stays in sync, so the client's close answer is still read.
			w.closeWithTimeout(reject.code, reject.reason)
			p.frag, p.fragging = nil, false
			if !h.OpCode.IsControl() {
				p.dropFrags = !h.Fin
			}
			if avail := int64(len(rest) - hn); avail >= h.Length {
				used += hn + int(h.Length)
			} else {
				p.skip = h.Length - avail
				used = len(b)
			}
			continue
		}
		size := hn + int(h.Length) // ≤ 14 + MaxMessageSize (≤ maxMessageLimit)
		if len(rest) < size {
			return used, size, nil
		}
		payload := rest[hn:size]
		ws.Cipher(payload, h.Mask, 0)
		used += size
		if err := w.frame(h, payload); err != nil {
			return used, 0, err
		}
	}
	return used, 0, nil
}

func (w *wsConn) frame(h ws.Header, payload []byte) error {
	p := w.part
	switch h.OpCode {
	case ws.OpPing:
		pong := ws.CompiledPong
		if len(payload) > 0 {
			pong = ws.MustCompileFrame(ws.NewPongFrame(bytes.Clone(payload)))
		}
		_ = w.link.Push(pong)
		return nil
	case ws.OpPong:
		return nil
	case ws.OpClose:
		return w.onClose(payload)
	case ws.OpText:
		if !h.Fin {
			p.fragging = true
			p.frag = append(p.frag[:0], payload...)
			return nil
		}
		return w.message(payload)
	case ws.OpContinuation:
		p.frag = append(p.frag, payload...)
		if !h.Fin {
			return nil
		}
		msg := p.frag
		p.frag, p.fragging = nil, false
		return w.message(msg)
	}
	return nil
}

func (w *wsConn) onClose(payload []byte) error {
	code := realtime.CloseNormal
	switch {
	case len(payload) == 1:
		// A close body is empty or starts with a two-byte code (RFC 6455
		// 5.5.1).
		code = realtime.CloseProtocolError
	case len(payload) >= 2:
		c, reason := ws.ParseCloseFrameDataUnsafe(payload)
		code = uint16(c)
		// Codes from 5000 up are defined by nobody (RFC 6455 7.4.2).
		if ws.CheckCloseFrameData(c, reason) != nil || c >= 5000 {
			code = realtime.CloseProtocolError
		}
	}
	w.state.Or(peerClosed)
	w.link.Conn().Close(code, "")
	if w.has(closeSent) {
		w.teardown()
	}
	return errPeerClosed
}

func (w *wsConn) message(msg []byte) error {
	c := w.link.Conn()
	if c.Closed() {
		return nil
	}
	if !utf8.Valid(msg) {
		w.closeWithTimeout(errUTF8.code, errUTF8.reason)
		return nil
	}
	if !w.allow() {
		w.srv.rateLimited.Add(1)
		if int(w.strikes) >= w.srv.opts.RateStrikes {
			w.closeWithTimeout(errTooMany.code, errTooMany.reason)
			return nil
		}
		if rl, ok := w.h.(RateLimitHandler); ok {
			rl.OnRateLimited(c)
		}
		return nil
	}
	w.h.OnMessage(c, msg)
	return nil
}

// allow runs the token bucket of the rate limit.
func (w *wsConn) allow() bool {
	o := &w.srv.opts
	now := w.srv.now()
	burst := float32(o.RateBurst)
	w.tokens = min(burst, w.tokens+float32(float64(now-w.rlLast)/1e9*o.RateLimit))
	w.rlLast = now
	if w.tokens >= burst {
		w.strikes = 0
	}
	if w.tokens >= 1 {
		w.tokens--
		return true
	}
	if w.strikes < ^uint16(0) {
		w.strikes++
	}
	return false
}

// readFailed handles an input error. After a protocol error or the peer's
// close the input is only drained (so the end of the stream is noticed);
// an I/O error ends the connection.
func (w *wsConn) readFailed(err error) {
	w.stopRead = true
	w.part = nil
	var ce *closeErr
	switch {
	case errors.As(err, &ce):
		w.closeWithTimeout(ce.code, ce.reason)
	case errors.Is(err, errPeerClosed):
	default:
		w.teardown()
	}
}

// reading reports whether the reader should go on after a feed error.
func reading(err error) bool {
	var ce *closeErr
	return errors.As(err, &ce) || errors.Is(err, errPeerClosed)
}

// internalError closes the connection with CloseInternalError after a
// panic while reading it: its reader state may be broken, so its input is
// discarded from now on, and the close frame goes out after what is queued.
// It runs on the goroutine that reads the connection.
func (w *wsConn) internalError() {
	w.stopRead = true
	w.part = nil
	w.closeWithTimeout(realtime.CloseInternalError, "internal error")
}

// closeWithTimeout closes the connection with a close frame; the writer
// tears it down once the frame is out and the client answered, or after
// CloseTimeout.
func (w *wsConn) closeWithTimeout(code uint16, reason string) {
	w.link.Conn().Close(code, reason)
}

// readLoop serves connections that have no poller: one goroutine each.
func (w *wsConn) readLoop(pending []byte) {
	defer w.srv.slowWG.Done()
	// After a panic the connection is closing and its input is no longer
	// read; the close timeout ends it.
	defer w.srv.recoverRead(w)
	sc := &scratch{buf: make([]byte, 4<<10)}
	if len(pending) > 0 && !w.srv.readPending(w, pending, sc) {
		return
	}
	for {
		n, err := w.nc.Read(sc.buf)
		if n > 0 {
			w.lastRead.Store(w.srv.now())
			if ferr := w.feed(sc.buf[:n], sc); ferr != nil {
				w.readFailed(ferr)
				if !reading(ferr) {
					return
				}
			}
		}
		if err != nil {
			w.readFailed(err)
			return
		}
	}
}

// Wake implements realtime.Transport: a pool writer drains the queue, or a
// goroutine of its own when the pool is saturated.
func (w *wsConn) Wake() {
	select {
	case w.srv.writeq <- w:
	default:
		w.srv.slowWG.Add(1)
		go func() {
			defer w.srv.slowWG.Done()
			defer w.srv.recoverWrite(w)
			w.drain(true)
		}()
	}
}

// maxIov bounds the frames per vectored write; the kernel's iovec array for
// a connection is cached by the runtime at the size of its largest write.
const maxIov = 64

// drain writes the queued frames until the queue is empty. A pool writer
// (blocking == false) only writes what the socket takes at once; when the
// socket is full it hands the rest to a goroutine that writes with a
// deadline, so one stalled client never holds a pool writer.
func (w *wsConn) drain(blocking bool) {
	if f := w.srv.opts.testBeforeDrain; f != nil {
		f(w)
	}
	for {
		b := w.link.Take()
		if b == nil {
			return
		}
		if !blocking {
			done, err := w.tryWrite(b)
			if err != nil {
				w.link.Release(b)
				w.teardown()
				return
			}
			if !done {
				w.srv.slowWG.Add(1)
				go func() {
					defer w.srv.slowWG.Done()
					defer w.srv.recoverWrite(w)
					if w.writeBlocking(b) {
						w.drain(true)
					}
				}()
				return
			}
			if !w.written(b) {
				return
			}
			continue
		}
		if !w.writeBlocking(b) {
			return
		}
	}
}

// writeBlocking writes what is left of b with the write timeout and
// reports whether the connection goes on.
func (w *wsConn) writeBlocking(b *realtime.Batch) bool {
	for len(b.Frames) > 0 {
		chunk := net.Buffers(b.Frames[:min(len(b.Frames), maxIov)])
		n := len(chunk)
		if err := w.writeWait(&chunk, w.srv.opts.WriteTimeout); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				w.slowWrite(chunk)
			} else {
				w.teardown()
			}
			w.link.Release(b)
			return false
		}
		b.Frames = b.Frames[n:]
	}
	return w.written(b)
}

// slowWrite handles a write that stayed blocked past the write timeout: the
// rest of the frame being written and a slow-consumer close frame get one
// more short chance, then the connection is dropped.
func (w *wsConn) slowWrite(rest net.Buffers) {
	closeFrame := w.link.WriteTimedOut()
	var tail net.Buffers
	if len(rest) > 0 {
		tail = append(tail, rest[0])
	}
	tail = append(tail, closeFrame)
	_ = w.writeWait(&tail, w.srv.opts.CloseTimeout)
	w.teardown()
}

// writeWait writes bufs, waiting up to d for the socket to take them; what
// it wrote is consumed from bufs. A connection served by a poller waits
// through a pollable duplicate of its descriptor (writeFD), made only when
// the socket is full.
func (w *wsConn) writeWait(bufs *net.Buffers, d time.Duration) error {
	if w.fd >= 0 {
		return w.writeFD(bufs, d)
	}
	_ = w.nc.SetWriteDeadline(time.Now().Add(d))
	_, err := bufs.WriteTo(w.nc)
	return err
}

// written finishes a batch that was written whole and reports whether the
// connection goes on.
func (w *wsConn) written(b *realtime.Batch) bool {
	final := b.Final
	w.link.Release(b)
	if !final {
		return true
	}
	w.state.Or(closeSent)
	if w.has(peerClosed) {
		w.teardown()
		return false
	}
	w.fdMu.Lock()
	if w.timer == nil && !w.has(finished) {
		w.timer = time.AfterFunc(w.srv.opts.CloseTimeout, w.teardown)
	}
	w.fdMu.Unlock()
	return false
}

// teardown ends the connection once: closes the socket, leaves all groups
// and tells the handler.
func (w *wsConn) teardown() {
	if w.state.Or(finished)&finished != 0 {
		return
	}
	// Leaving the groups and OnClose run the hub's and the consumer's code,
	// here on any goroutine (the close timer's too); the connection is gone
	// whatever they do.
	defer panics.Recover(w.srv.log, w.srv.opts.OnPanic, panics.WSReader)
	w.fdMu.Lock()
	if w.timer != nil {
		w.timer.Stop()
	}
	w.fdClosed = true
	w.closeSocket()
	w.fdMu.Unlock()
	w.srv.unregister(w)
	w.srv.limits.releaseSlot(w.slot)
	w.link.Finish()
	w.h.OnClose(w.link.Conn())
}
