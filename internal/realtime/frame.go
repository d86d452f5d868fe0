package realtime

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/internal/jsonstr"
	"github.com/heraldhq/herald/internal/realtime/layer"
)

// Close codes sent to clients. The 1xxx codes are RFC 6455's; the 4xxx codes
// are herald's own (the private range), documented for client authors.
const (
	// CloseNormal ends a connection that fulfilled its purpose.
	CloseNormal uint16 = 1000
	// CloseGoingAway is sent when the server or client goes away for good
	// (idle timeout, process exit without restart).
	CloseGoingAway uint16 = 1001
	// CloseProtocolError is sent for frames that break RFC 6455.
	CloseProtocolError uint16 = 1002
	// CloseUnsupportedData is sent for binary messages: herald speaks JSON
	// text only.
	CloseUnsupportedData uint16 = 1003
	// CloseInvalidPayload is sent for text messages that are not UTF-8.
	CloseInvalidPayload uint16 = 1007
	// ClosePolicyViolation is sent when a client breaks a rule that has no
	// more specific code (e.g. a forbidden origin after upgrade).
	ClosePolicyViolation uint16 = 1008
	// CloseMessageTooBig is sent when a client message exceeds the size limit.
	CloseMessageTooBig uint16 = 1009
	// CloseInternalError is sent when the server cannot go on serving the
	// connection because of its own failure.
	CloseInternalError uint16 = 1011
	// CloseServiceRestart is sent on graceful shutdown: reconnect (to this or
	// another process) after a short random delay.
	CloseServiceRestart uint16 = 1012
	// CloseSlowConsumer is sent when the client did not read fast enough and
	// its send queue overflowed or a write stayed blocked: reconnect and
	// resume from the last offsets seen.
	CloseSlowConsumer uint16 = 4000
	// CloseAuthExpired is sent when the credentials of the connection
	// expired: refresh the token, then reconnect.
	CloseAuthExpired uint16 = 4401
	// CloseForbidden is sent when the user may not see what the connection is
	// about (e.g. a private campaign of someone else).
	CloseForbidden uint16 = 4403
	// CloseNotFound is sent when the object of the connection does not exist.
	CloseNotFound uint16 = 4404
	// CloseTooManyMessages is sent when a client keeps sending faster than the
	// rate limit after being told so.
	CloseTooManyMessages uint16 = 4429
)

// Frame is a prepared, immutable unit of output for a connection: for
// WebSocket connections a complete frame (header and payload). One Frame may
// be queued on any number of connections.
type Frame struct{ b []byte }

// Len reports the size of the frame in bytes.
func (f Frame) Len() int { return len(f.b) }

// Bytes returns the frame's bytes. They must not be modified.
func (f Frame) Bytes() []byte { return f.b }

// NewTextFrame returns a WebSocket text frame carrying payload, typically a
// complete JSON message such as {"type":"error","data":{...}}. The payload is
// copied.
func NewTextFrame(payload []byte) Frame {
	return Frame{b: finishTextFrame(append(newFrameBuf(len(payload)), payload...))}
}

// NewSSEMessage returns a Server-Sent Events message without an id, for a
// one-off JSON message {"type":T,"data":D} (a snapshot, an error): event T,
// data D. Compact JSON never holds a raw newline, so data fits one line.
func NewSSEMessage(payload []byte) Frame {
	var m struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(payload, &m) != nil || m.Type == "" {
		m.Type, m.Data = "message", payload
	}
	b := make([]byte, 0, 20+len(m.Type)+len(m.Data))
	b = append(b, "event: "...)
	b = append(b, m.Type...)
	b = append(b, "\ndata: "...)
	b = append(b, bytes.ReplaceAll(m.Data, []byte("\n"), nil)...)
	return Frame{b: append(b, "\n\n"...)}
}

// NewSSEMessageAt is NewSSEMessage with the id of group's position at. The
// SSE transport writes it as the stream's position in all its groups, as it
// does an event's, so a message telling the client where it stands in a
// group (subscribed) also moves the browser's Last-Event-ID there.
func NewSSEMessageAt(payload []byte, group string, at layer.Position) Frame {
	m := NewSSEMessage(payload).b
	b := make([]byte, 0, 26+len(group)+len(at.Epoch)+len(m))
	b = append(b, "id: "...)
	b = append(b, group...)
	b = append(b, ':')
	b = append(b, at.Epoch...)
	b = append(b, ':')
	b = strconv.AppendUint(b, at.Offset, 10)
	b = append(b, '\n')
	return Frame{b: append(b, m...)}
}

// NewCloseFrame returns a WebSocket close frame with code and reason; the
// reason is cut to fit a control frame.
func NewCloseFrame(code uint16, reason string) Frame {
	const maxReason = ws.MaxControlFramePayloadSize - 2
	if len(reason) > maxReason {
		reason = reason[:maxReason]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	return Frame{b: ws.MustCompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(code), reason)))}
}

// Encoding is the wire format of a connection. Every event is encoded at
// most once per encoding, however many connections receive it.
type Encoding uint8

// Encodings.
const (
	// EncodingWebSocketV1 is the seeds' protocol: {"type":T,"data":D}.
	EncodingWebSocketV1 Encoding = iota
	// EncodingWebSocketV2 adds the event's position:
	// {"type":T,"data":D,"group":G,"offset":N,"epoch":E}.
	EncodingWebSocketV2
	// EncodingSSE is a Server-Sent Events message:
	// "id: G:E:N\nevent: T\ndata: D\n\n". The SSE transport rewrites the id
	// line into the connection's full position before writing it.
	EncodingSSE
	encodingCount
)

// Encode returns msg encoded for e.
func (e Encoding) Encode(msg *layer.Message) []byte {
	var dst []byte
	switch e {
	case EncodingWebSocketV2:
		dst = newFrameBuf(80 + len(msg.Type) + len(msg.Data) + len(msg.Group) + len(msg.Epoch))
		dst = append(dst, `{"type":`...)
		dst = jsonstr.Append(dst, msg.Type)
		dst = append(dst, `,"data":`...)
		dst = append(dst, msg.Data...)
		dst = append(dst, `,"group":`...)
		dst = jsonstr.Append(dst, msg.Group)
		dst = append(dst, `,"offset":`...)
		dst = strconv.AppendUint(dst, msg.Offset, 10)
		dst = append(dst, `,"epoch":`...)
		dst = jsonstr.Append(dst, msg.Epoch)
	case EncodingSSE:
		dst = make([]byte, 0, 32+len(msg.Group)+len(msg.Epoch)+len(msg.Type)+len(msg.Data))
		dst = append(dst, "id: "...)
		dst = append(dst, msg.Group...)
		dst = append(dst, ':')
		dst = append(dst, msg.Epoch...)
		dst = append(dst, ':')
		dst = strconv.AppendUint(dst, msg.Offset, 10)
		dst = append(dst, "\nevent: "...)
		dst = append(dst, msg.Type...)
		dst = append(dst, "\ndata: "...)
		dst = append(dst, msg.Data...)
		return append(dst, "\n\n"...)
	default:
		dst = newFrameBuf(20 + len(msg.Type) + len(msg.Data))
		dst = append(dst, `{"type":`...)
		dst = jsonstr.Append(dst, msg.Type)
		dst = append(dst, `,"data":`...)
		dst = append(dst, msg.Data...)
	}
	return finishTextFrame(append(dst, '}'))
}

// newFrameBuf returns a buffer with room reserved for the largest frame
// header; the payload is appended to it and finishTextFrame puts the real
// header right before the payload, so a frame is built in one allocation
// without copying the payload.
func newFrameBuf(payloadHint int) []byte {
	return make([]byte, ws.MaxHeaderSize, ws.MaxHeaderSize+payloadHint)
}

func finishTextFrame(buf []byte) []byte {
	h := ws.Header{Fin: true, OpCode: ws.OpText, Length: int64(len(buf) - ws.MaxHeaderSize)}
	n := ws.HeaderSize(h)
	// The header is written into the reserved room first, then moved to end
	// where the payload starts.
	if err := ws.WriteHeaderBuffer(discard{}, h, buf[:ws.MaxHeaderSize]); err != nil {
		panic("realtime: frame header: " + err.Error()) // only for lengths beyond 2^63
	}
	start := ws.MaxHeaderSize - n
	copy(buf[start:ws.MaxHeaderSize], buf[:n])
	return buf[start:]
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
