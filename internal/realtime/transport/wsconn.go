package transport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
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
// few and small: an idle connection is this struct, the realtime.Conn and
// the net.Conn, nothing else.
type wsConn struct {
	srv  *Server
	link realtime.Link
	h    Handler
	nc   net.Conn
	id   uint32
	fd   int32 // raw descriptor when served by a poller, else -1
	p    *poller
	addr netip.Addr // the client's address, for the per-address limits

	// rstate guards against two workers reading one connection: 0 idle,
	// 1 being read, 2 being read and readable again.
	rstate atomic.Uint32
	// fdMu keeps the descriptor open while it is used directly (raw reads
	// and writes); teardown takes it exclusively before closing.
	fdMu     sync.RWMutex
	fdClosed bool

	lastRead atomic.Int64 // server clock of the last frame read

	// Reader state, touched only by the goroutine reading the connection.
	rbuf     []byte // bytes of an incomplete frame; nil when none
	frag     []byte // payload of an incomplete fragmented message
	fragging bool
	// dropFrags marks the continuation frames of a rejected fragmented
	// message, which are skipped too.
	dropFrags bool
	stopRead  bool  // the stream is unusable or the peer closed: discard input
	skip      int64 // bytes of a rejected frame still to discard
	rlLast    int64 // rate limit: server clock of the last refill
	tokens    float32
	strikes   uint16

	closeSent  atomic.Bool
	peerClosed atomic.Bool
	finished   atomic.Bool
	timerMu    sync.Mutex
	timer      *time.Timer
}

// scratch is a reader worker's reusable memory.
type scratch struct {
	buf []byte
	rd  bytes.Reader
	hdr [ws.MaxHeaderSize]byte
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
	for {
		if w.stopRead {
			return nil
		}
		if w.skip > 0 {
			n := min(w.skip, int64(len(data)))
			w.skip -= n
			data = data[n:]
		}
		if len(data) == 0 {
			return nil
		}
		if len(w.rbuf) == 0 {
			used, need, err := w.consume(data, sc)
			if rest := data[used:]; err == nil && len(rest) > 0 && !w.stopRead {
				w.rbuf = make([]byte, len(rest), max(need, len(rest), 64))
				copy(w.rbuf, rest)
			}
			return err
		}
		// Top the partial frame up only to its buffer's capacity (the
		// frame's size once its header is known): append would round the
		// buffer up past one frame. What follows it is read in place on
		// the next turn.
		n := min(len(data), cap(w.rbuf)-len(w.rbuf))
		w.rbuf = append(w.rbuf, data[:n]...)
		data = data[n:]
		used, need, err := w.consume(w.rbuf, sc)
		rest := w.rbuf[used:]
		switch {
		case err != nil || len(rest) == 0:
			w.rbuf = nil // the partial frame is done; let its buffer go
		case need > cap(w.rbuf) || (cap(w.rbuf) > 4<<10 && len(rest) < cap(w.rbuf)/4):
			w.rbuf = append(make([]byte, 0, max(need, len(rest), 64)), rest...)
		case used > 0:
			w.rbuf = w.rbuf[:copy(w.rbuf, rest)]
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
		if w.fragging || w.dropFrags {
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
		case h.OpCode == ws.OpContinuation && w.dropFrags:
			reject = errBinary // already closing; skip the rest of the message
		case h.OpCode == ws.OpBinary:
			reject = errBinary
		case h.Length > limit || (h.OpCode == ws.OpContinuation && h.Length > limit-int64(len(w.frag))):
			reject = errTooBig
		}
		if reject != nil {
			// Close, and skip the frame without buffering it: the stream
			// stays in sync, so the client's close answer is still read.
			w.closeWithTimeout(reject.code, reject.reason)
			w.frag, w.fragging = nil, false
			if !h.OpCode.IsControl() {
				w.dropFrags = !h.Fin
			}
			if avail := int64(len(rest) - hn); avail >= h.Length {
				used += hn + int(h.Length)
			} else {
				w.skip = h.Length - avail
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
			w.fragging = true
			w.frag = append(w.frag[:0], payload...)
			return nil
		}
		return w.message(payload)
	case ws.OpContinuation:
		w.frag = append(w.frag, payload...)
		if !h.Fin {
			return nil
		}
		msg := w.frag
		w.frag, w.fragging = nil, false
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
	w.peerClosed.Store(true)
	w.link.Conn().Close(code, "")
	if w.closeSent.Load() {
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
	w.rbuf, w.frag = nil, nil
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
	w.rbuf, w.frag, w.skip = nil, nil, 0
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
		_ = w.nc.SetWriteDeadline(time.Now().Add(w.srv.opts.WriteTimeout))
		_, err := chunk.WriteTo(w.nc)
		if err != nil {
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
	_ = w.nc.SetWriteDeadline(time.Now().Add(w.srv.opts.CloseTimeout))
	_, _ = tail.WriteTo(w.nc)
	w.teardown()
}

// written finishes a batch that was written whole and reports whether the
// connection goes on.
func (w *wsConn) written(b *realtime.Batch) bool {
	final := b.Final
	w.link.Release(b)
	if !final {
		return true
	}
	w.closeSent.Store(true)
	if w.peerClosed.Load() {
		w.teardown()
		return false
	}
	w.timerMu.Lock()
	if w.timer == nil && !w.finished.Load() {
		w.timer = time.AfterFunc(w.srv.opts.CloseTimeout, w.teardown)
	}
	w.timerMu.Unlock()
	return false
}

// teardown ends the connection once: closes the socket, leaves all groups
// and tells the handler.
func (w *wsConn) teardown() {
	if w.finished.Swap(true) {
		return
	}
	// Leaving the groups and OnClose run the hub's and the consumer's code,
	// here on any goroutine (the close timer's too); the connection is gone
	// whatever they do.
	defer panics.Recover(w.srv.log, w.srv.opts.OnPanic, panics.WSReader)
	w.timerMu.Lock()
	if w.timer != nil {
		w.timer.Stop()
	}
	w.timerMu.Unlock()
	w.fdMu.Lock()
	w.fdClosed = true
	if w.p != nil {
		w.p.remove(w)
	}
	_ = w.nc.Close()
	w.fdMu.Unlock()
	w.srv.unregister(w)
	w.srv.limits.release(w.addr)
	w.link.Finish()
	w.h.OnClose(w.link.Conn())
}
