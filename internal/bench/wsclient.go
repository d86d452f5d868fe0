package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// handler receives what a client connection reads. Both run on the
// connection's reader goroutine.
type handler interface {
	// message gets the first bytes of a text message (all of it when it fits
	// the read buffer) and its full length; head is valid during the call.
	message(c *client, head []byte, n int)
	// closed is called once when the connection ends: code is the server's
	// close code (0 without a close frame).
	closed(c *client, code int, err error)
}

// client is one WebSocket connection of the load generator: a small read
// buffer and one goroutine that reads frames in place (no copy for frames
// that fit the buffer) and answers pings.
type client struct {
	conn net.Conn
	br   *bufio.Reader
	src  io.Reader // what br reads from
	h    handler
	id   int32 // index in its scenario
	wmu  sync.Mutex
	shut atomic.Bool
	// state belongs to the scenario (the fanout's received-ids bitset).
	state any
}

// dialer opens client connections to the targets, connection i to target
// i mod len(targets).
type dialer struct {
	targets []Target
	src     *Sources
	timeout time.Duration
	bufSize int
	open    *atomic.Int64 // connections currently open
	// perTarget counts the connections made to each target.
	perTarget []atomic.Int64
	// offset is added to a connection's number to choose its target (a
	// generator child's clients are numbered from 0).
	offset int
}

// prefixReader serves what the handshake reader had already buffered, then
// the connection.
type prefixReader struct {
	pre  []byte
	conn net.Conn
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		if len(p.pre) == 0 {
			p.pre = nil
		}
		return n, nil
	}
	return p.conn.Read(b)
}

// dial connects connection number i to path ("/ws/campaign/1/?token=…")
// from its source address and upgrades it.
func (d *dialer) dial(path string, i int, h handler) (*client, error) {
	return d.dialTarget((i+d.offset)%len(d.targets), path, i, h)
}

// dialTarget is dial to target t.
func (d *dialer) dialTarget(t int, path string, i int, h handler) (*client, error) {
	local := d.src.At(i)
	wd := ws.Dialer{
		Timeout:         d.timeout,
		ReadBufferSize:  512,
		WriteBufferSize: 512,
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			// No TCP keep-alive: four socket options fewer per connection,
			// CPU the load generator would take from the server.
			nd := net.Dialer{Timeout: d.timeout, KeepAlive: -1}
			if local != nil {
				nd.LocalAddr = local
			}
			return nd.DialContext(ctx, network, addr)
		},
	}
	conn, hbr, _, err := wd.Dial(context.Background(), d.targets[t].WS+path)
	if err != nil {
		return nil, err
	}
	var r io.Reader = conn
	if hbr != nil {
		pre := make([]byte, hbr.Buffered())
		_, _ = io.ReadFull(hbr, pre)
		ws.PutReader(hbr)
		r = &prefixReader{pre: pre, conn: conn}
	}
	d.open.Add(1)
	if d.perTarget != nil {
		d.perTarget[t].Add(1)
	}
	return &client{conn: conn, br: bufio.NewReaderSize(r, d.bufSize), src: r, h: h, id: int32(i)}, nil
}

// errClosed is a close frame from the server.
type errClosed struct{ code int }

func (e errClosed) Error() string {
	return fmt.Sprintf("server closed the connection (code %d)", e.code)
}

// errMasked is a masked frame from the server, which RFC 6455 forbids.
var errMasked = errors.New("server sent a masked frame")

// frame reads the next frame header: opcode, fin bit, payload length.
func (c *client) frame() (ws.OpCode, bool, int, error) {
	b, err := c.br.Peek(2)
	if err != nil {
		return 0, false, 0, err
	}
	fin, op := b[0]&0x80 != 0, ws.OpCode(b[0]&0x0f)
	if b[1]&0x80 != 0 {
		return 0, false, 0, errMasked
	}
	n, hl := int(b[1]&0x7f), 2
	switch n {
	case 126:
		hl = 4
	case 127:
		hl = 10
	}
	if hl > 2 {
		if b, err = c.br.Peek(hl); err != nil {
			return 0, false, 0, err
		}
		if hl == 4 {
			n = int(binary.BigEndian.Uint16(b[2:4]))
		} else {
			v := binary.BigEndian.Uint64(b[2:10])
			if v > 1<<30 {
				return 0, false, 0, fmt.Errorf("frame of %d bytes", v)
			}
			n = int(v)
		}
	}
	_, err = c.br.Discard(hl)
	return op, fin, n, err
}

// next reads frames until a text message starts, answering pings; it hands
// the message to fn and returns. A close frame is answered and returned as
// errClosed.
func (c *client) next(fn func(head []byte, n int)) error {
	for {
		op, _, n, err := c.frame()
		if err != nil {
			return err
		}
		switch op {
		case ws.OpText, ws.OpBinary:
			head, err := c.br.Peek(min(n, c.br.Size()))
			if err != nil {
				return err
			}
			fn(head, n)
			return c.skip(n)
		case ws.OpPing:
			p, err := c.br.Peek(n)
			if err != nil {
				return err
			}
			pong := ws.MaskFrame(ws.NewPongFrame(bytes.Clone(p)))
			if _, err := c.br.Discard(n); err != nil {
				return err
			}
			c.write(pong)
		case ws.OpClose:
			p, err := c.br.Peek(n)
			if err != nil {
				return err
			}
			code := 0
			if len(p) >= 2 {
				code = int(binary.BigEndian.Uint16(p))
			}
			c.write(ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(code), ""))))
			return errClosed{code}
		default: // pong, continuation of a fragmented message
			if _, err := c.br.Discard(n); err != nil {
				return err
			}
		}
	}
}

// skip consumes the next n bytes. What the small read buffer does not hold
// is read past it in as few reads as the socket allows (a 4 KB snapshot
// through a 1 KB buffer would otherwise take four system calls).
func (c *client) skip(n int) error {
	if b := c.br.Buffered(); n > b {
		_, _ = c.br.Discard(b)
		_, err := io.CopyN(io.Discard, c.src, int64(n-b))
		return err
	}
	_, err := c.br.Discard(n)
	return err
}

func (c *client) write(f ws.Frame) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = ws.WriteFrame(c.conn, f)
}

// first reads the first message within timeout (the campaign_data
// snapshot) and returns its type and length.
// A protocol v2 presence count may come before it and is skipped.
func (c *client) first(timeout time.Duration) (typ string, n int, err error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	for range 10 {
		err = c.next(func(head []byte, size int) {
			typ, n = msgType(head), size
		})
		if err != nil || typ != "presence" {
			break
		}
	}
	_ = c.conn.SetReadDeadline(time.Time{})
	return typ, n, err
}

// run reads until the connection ends, then reports how to the handler.
func (c *client) run(open *atomic.Int64) {
	var err error
	for err == nil {
		err = c.next(func(head []byte, n int) { c.h.message(c, head, n) })
	}
	c.conn.Close()
	open.Add(-1)
	var ce errClosed
	code := 0
	if errors.As(err, &ce) {
		code = ce.code
	}
	if c.shut.Load() {
		err = nil // we dropped it
	}
	c.h.closed(c, code, err)
}

// drop closes the connection at once, as a dropped network would: no close
// handshake.
func (c *client) drop() {
	c.shut.Store(true)
	c.conn.Close()
}

// msgType extracts T from a message starting {"type":"T" (herald writes
// type first), or {"type": "T" (Python's json.dumps, a Django consumer);
// "" when the message does not start that way.
func msgType(head []byte) string {
	const p = `{"type":"`
	const py = `{"type": "`
	var rest []byte
	switch {
	case bytes.HasPrefix(head, []byte(p)):
		rest = head[len(p):]
	case bytes.HasPrefix(head, []byte(py)):
		rest = head[len(py):]
	default:
		return ""
	}
	if i := bytes.IndexByte(rest, '"'); i >= 0 {
		return string(rest[:i])
	}
	return ""
}

// isType reports whether the message head is of type typ, without
// allocating.
func isType(head []byte, typ string) bool {
	const p = `{"type":"`
	return len(head) > len(p)+len(typ) && string(head[:len(p)]) == p &&
		string(head[len(p):len(p)+len(typ)]) == typ && head[len(p)+len(typ)] == '"'
}

// intAfter parses the unsigned integer following the first key in head
// (key includes the quotes and colon: `"id":`).
func intAfter(head []byte, key string) (int64, bool) {
	i := bytes.Index(head, []byte(key))
	if i < 0 {
		return 0, false
	}
	return parseUint(head[i+len(key):])
}

func parseUint(b []byte) (int64, bool) {
	var v int64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		v = v*10 + int64(b[i]-'0')
	}
	return v, i > 0
}

// failure names why a connection attempt failed, for the counts in results.
func failure(err error) string {
	var se ws.StatusError
	var ce errClosed
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("http_%d", int(se))
	case errors.As(err, &ce):
		return fmt.Sprintf("closed_%d", ce.code)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EADDRINUSE):
		return "no_source_port"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too_many_open_files"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, errUnexpectedFirst):
		return "unexpected_first_message"
	}
	return "other"
}

var errUnexpectedFirst = errors.New("first message is not campaign_data")
