package hostile

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gobwas/ws"
)

// wsConn is a WebSocket client over a raw TCP socket: its handshake is
// written by hand and it sends whatever bytes a case gives it, so it can
// send frames no library would.
type wsConn struct {
	nc     net.Conn
	br     *bufio.Reader
	status int // the handshake's HTTP status
	body   string
	// closeCode is the code of the server's close frame once one came
	// (1005 when it had none).
	closeCode int
}

// handshake is the upgrade request for path, with extra header lines.
func (c *client) handshake(path string, header http.Header) string {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", path, c.h.addr)
	b.WriteString("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
	for k, vs := range header {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// ws opens a WebSocket on path; behind is written in the same write as the
// handshake (frames a client sends before it has the answer). A refused
// handshake is not an error: its status is in the result, whose socket is
// then closed.
func (c *client) ws(path string, header http.Header, behind []byte) (*wsConn, error) {
	nc, err := c.dialer().Dial("tcp", c.h.addr)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := nc.Write(append([]byte(c.handshake(path, header)), behind...)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("write the handshake: %w", err)
	}
	br := bufio.NewReaderSize(nc, 64<<10)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("read the handshake's answer: %w", err)
	}
	c.record("WS "+path, res)
	w := &wsConn{nc: nc, br: br, status: res.StatusCode}
	if res.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
		res.Body.Close()
		w.body = string(b)
		nc.Close()
		return w, nil
	}
	_ = nc.SetDeadline(time.Time{})
	return w, nil
}

func (w *wsConn) upgraded() bool { return w.status == http.StatusSwitchingProtocols }

func (w *wsConn) Close() { w.nc.Close() }

// send writes raw bytes.
func (w *wsConn) send(b []byte) error {
	_ = w.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := w.nc.Write(b)
	return err
}

// sendText sends one masked text message.
func (w *wsConn) sendText(s string) error {
	return w.send(frame(0x81, true, []byte(s)))
}

// inFrame is one frame from the server.
type inFrame struct {
	op      ws.OpCode
	payload []byte
}

// next reads the next frame within timeout, answering nothing.
func (w *wsConn) next(timeout time.Duration) (inFrame, error) {
	_ = w.nc.SetReadDeadline(time.Now().Add(timeout))
	h, err := ws.ReadHeader(w.br)
	if err != nil {
		return inFrame{}, err
	}
	if h.Masked {
		return inFrame{}, errors.New("the server sent a masked frame")
	}
	if h.Length > 16<<20 {
		return inFrame{}, fmt.Errorf("the server sent a frame of %d bytes", h.Length)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(w.br, p); err != nil {
		return inFrame{}, err
	}
	if h.OpCode == ws.OpClose {
		w.closeCode = 1005
		if len(p) >= 2 {
			w.closeCode = int(binary.BigEndian.Uint16(p))
		}
	}
	return inFrame{op: h.OpCode, payload: p}, nil
}

// msg is a server message.
type msg struct {
	Type   string          `json:"type"`
	Data   json.RawMessage `json:"data"`
	Group  string          `json:"group"`
	Epoch  string          `json:"epoch"`
	Offset uint64          `json:"offset"`
	raw    []byte
}

// errorCode is the code of an error message ("" for other messages).
func (m msg) errorCode() string {
	if m.Type != "error" {
		return ""
	}
	var d struct{ Code string }
	_ = json.Unmarshal(m.Data, &d)
	return d.Code
}

// replyID is the id an ack or error answers (v2).
func (m msg) replyID() string {
	var d struct{ ID json.RawMessage }
	_ = json.Unmarshal(m.Data, &d)
	return string(d.ID)
}

// errClosed is returned once the server's close frame arrived.
var errClosed = errors.New("the server closed the WebSocket")

// message reads up to the next text message that keep accepts (nil keeps
// all), within timeout. It returns errClosed at a close frame.
func (w *wsConn) message(timeout time.Duration, keep func(msg) bool) (msg, error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := w.next(time.Until(deadline))
		if err != nil {
			return msg{}, err
		}
		switch f.op {
		case ws.OpClose:
			return msg{}, errClosed
		case ws.OpText:
			var m msg
			if err := json.Unmarshal(f.payload, &m); err != nil {
				return msg{}, fmt.Errorf("the server sent text that is not JSON: %s", clip(string(f.payload), 200))
			}
			m.raw = f.payload
			if keep == nil || keep(m) {
				return m, nil
			}
		case ws.OpPing:
			_ = w.send(frame(0x8A, true, f.payload))
		case ws.OpPong:
		default:
			return msg{}, fmt.Errorf("the server sent a %v frame", f.op)
		}
	}
}

// not passes over messages of the given types.
func not(types ...string) func(msg) bool {
	return func(m msg) bool {
		for _, t := range types {
			if m.Type == t {
				return false
			}
		}
		return true
	}
}

// awaitClose reads until the server's close frame (passing over messages)
// and then until the server drops the TCP connection: a connection the
// server gave up on must not linger. It returns the close code, or 0 when
// the connection ended without one.
func (w *wsConn) awaitClose(timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for w.closeCode == 0 {
		f, err := w.next(time.Until(deadline))
		if err != nil {
			if isTimeout(err) {
				return 0, fmt.Errorf("no close frame within %v", timeout)
			}
			return 0, nil // dropped without a close frame
		}
		if f.op == ws.OpPing {
			_ = w.send(frame(0x8A, true, f.payload))
		}
	}
	_ = w.nc.SetReadDeadline(deadline)
	if _, err := io.Copy(io.Discard, w.br); err != nil {
		if isTimeout(err) {
			return w.closeCode, fmt.Errorf("close %d came but the server kept the TCP connection open for %v", w.closeCode, timeout)
		}
	}
	return w.closeCode, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// maskKey masks every client frame the suite builds.
var maskKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// frame builds a complete frame: b0 is FIN, RSV and opcode; the length is
// payload's, in its shortest form.
func frame(b0 byte, masked bool, payload []byte) []byte {
	return append(header(b0, masked, uint64(len(payload)), 0), maskBytes(masked, payload)...)
}

// header builds a frame header announcing n payload bytes. form picks the
// length encoding: 0 the shortest, 16 or 64 the 16- or 64-bit extended one
// whatever n is (non-minimal encodings included).
func header(b0 byte, masked bool, n uint64, form int) []byte {
	b := []byte{b0, 0}
	if masked {
		b[1] = 0x80
	}
	switch {
	case form == 0 && n < 126:
		b[1] |= byte(n)
	case form == 16 || (form == 0 && n <= 0xffff):
		b[1] |= 126
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b[1] |= 127
		b = binary.BigEndian.AppendUint64(b, n)
	}
	if masked {
		b = append(b, maskKey[:]...)
	}
	return b
}

// maskBytes is payload as a client sends it.
func maskBytes(masked bool, payload []byte) []byte {
	out := append([]byte(nil), payload...)
	if masked {
		ws.Cipher(out, maskKey, 0)
	}
	return out
}

// closePayload is a close frame's payload: code then reason.
func closePayload(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// padded is a JSON text message of exactly n bytes (n ≥ 30) that the
// campaign endpoint answers with an error.
func padded(n int) string {
	const head, foot = `{"type":"ping","pad":"`, `"}`
	return head + strings.Repeat("a", n-len(head)-len(foot)) + foot
}
