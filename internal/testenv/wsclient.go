package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// WSClient is a real WebSocket client for tests.
type WSClient struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
	// CloseCode is the code of the server's close frame, once one arrived.
	CloseCode ws.StatusCode
	// Ignore lists message types NextEvent and NoMessage pass over (e.g.
	// "presence", which a v2 room sends whenever its audience changes).
	Ignore []string
}

func (c *WSClient) ignored(raw []byte) bool {
	if len(c.Ignore) == 0 {
		return false
	}
	var m struct{ Type string }
	_ = json.Unmarshal(raw, &m)
	return slices.Contains(c.Ignore, m.Type)
}

// DialWS opens a WebSocket to url ("ws://…") with extra request headers.
// It returns the handshake's HTTP status on refusal.
func DialWS(t testing.TB, url string, header http.Header) (*WSClient, int, error) {
	t.Helper()
	d := ws.Dialer{Timeout: 5 * time.Second}
	if header != nil {
		d.Header = ws.HandshakeHeaderHTTP(header)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, br, _, err := d.Dial(ctx, url)
	if err != nil {
		var se ws.StatusError
		if errors.As(err, &se) {
			return nil, int(se), err
		}
		return nil, 0, err
	}
	t.Cleanup(func() { conn.Close() })
	if br == nil {
		br = bufio.NewReader(conn)
	}
	// A non-nil br holds frames that arrived with the handshake response;
	// reading on through it keeps them.
	return &WSClient{t: t, conn: conn, br: br}, http.StatusSwitchingProtocols, nil
}

// MustDialWS dials and fails the test unless the upgrade succeeds.
func MustDialWS(t testing.TB, url string, header http.Header) *WSClient {
	t.Helper()
	c, _, err := DialWS(t, url, header)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return c
}

// ErrClosed is returned by Next once the server sent its close frame.
var ErrClosed = errors.New("server closed the connection")

// Next reads the next text message within timeout, answering pings. It
// returns ErrClosed (and sets CloseCode) when the server closed the
// connection. Frames are read by hand rather than with wsutil, which
// refuses close codes it does not know, such as 1012.
func (c *WSClient) Next(timeout time.Duration) ([]byte, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	var msg []byte
	for {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			return nil, err
		}
		if h.Length > 16<<20 {
			return nil, fmt.Errorf("frame of %d bytes", h.Length)
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, payload); err != nil {
			return nil, err
		}
		if h.Masked {
			ws.Cipher(payload, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpClose:
			code, _ := ws.ParseCloseFrameData(payload)
			c.CloseCode = code
			_ = ws.WriteFrame(c.conn, ws.MaskFrame(ws.NewCloseFrame(payload)))
			return nil, ErrClosed
		case ws.OpPing:
			_ = ws.WriteFrame(c.conn, ws.MaskFrame(ws.NewPongFrame(payload)))
		case ws.OpPong:
		case ws.OpText, ws.OpContinuation:
			msg = append(msg, payload...)
			if h.Fin {
				return msg, nil
			}
		default:
			return nil, fmt.Errorf("unexpected %v frame", h.OpCode)
		}
	}
}

// Event is a decoded server message.
type Event struct {
	Type   string          `json:"type"`
	Data   json.RawMessage `json:"data"`
	Group  string          `json:"group,omitempty"`
	Offset uint64          `json:"offset,omitempty"`
	Epoch  string          `json:"epoch,omitempty"`
}

// NextEvent reads and decodes the next message, failing the test if none
// comes within timeout.
func (c *WSClient) NextEvent(timeout time.Duration) Event {
	c.t.Helper()
	raw, err := c.Next(timeout)
	for err == nil && c.ignored(raw) {
		raw, err = c.Next(timeout)
	}
	if err != nil {
		c.t.Fatalf("no message within %v: %v (close code %d)", timeout, err, c.CloseCode)
	}
	var e Event
	if err := json.Unmarshal(raw, &e); err != nil {
		c.t.Fatalf("message is not JSON: %s", raw)
	}
	return e
}

// NoMessage asserts that nothing arrives within d.
func (c *WSClient) NoMessage(d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	raw, err := c.Next(d)
	for err == nil && c.ignored(raw) && time.Now().Before(deadline) {
		raw, err = c.Next(time.Until(deadline))
	}
	if err == nil {
		c.t.Fatalf("unexpected message: %s", raw)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Fatalf("connection ended instead of staying quiet: %v (close code %d)", err, c.CloseCode)
	}
}

// WaitClose reads until the server closes and returns its close code.
func (c *WSClient) WaitClose(timeout time.Duration) ws.StatusCode {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := c.Next(time.Until(deadline)); err != nil {
			return c.CloseCode
		}
	}
	c.t.Fatalf("server did not close within %v", timeout)
	return 0
}

// Send writes a text message.
func (c *WSClient) Send(v any) {
	c.t.Helper()
	var b []byte
	switch x := v.(type) {
	case string:
		b = []byte(x)
	case []byte:
		b = x
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			c.t.Fatal(err)
		}
	}
	if err := wsutil.WriteClientText(c.conn, b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// Close closes the connection without a handshake (a dropped network).
func (c *WSClient) Close() { c.conn.Close() }

// String describes the client for messages.
func (c *WSClient) String() string { return fmt.Sprintf("ws client %s", c.conn.LocalAddr()) }
