package hostile

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// The real-time endpoints the frame cases open.
const (
	campaignV1   = "campaign"
	campaignV2   = "campaign v2"
	applications = "applications"
)

func (h *herald) wsPath(endpoint string) string {
	switch endpoint {
	case campaignV2:
		return "/ws/campaign/1/?v=2"
	case applications:
		return "/ws/applications/?token=" + h.fixture.alice
	}
	return "/ws/campaign/1/"
}

// frameCase opens a WebSocket and sends it raw bytes.
type frameCase struct {
	name     string
	endpoint string
	send     [][]byte      // written one after another
	gap      time.Duration // pause between writes (a slow sender)
	behind   bool          // send[0] goes out in the handshake's own write
	want     outcome
}

// outcome is what the server must do with a frame case's bytes.
type outcome struct {
	close  []int  // close the connection with one of these codes, or
	reply  string // answer with an error of this code ("*": any message) and stay open, or
	pong   bool   // answer with a pong and stay open, or
	hangup bool   // nothing: the client hangs up; the final checks see that it was cleaned up
}

func closes(codes ...int) outcome { return outcome{close: codes} }

var (
	protocolError = closes(1002)
	unsupported   = closes(1003)
	tooBig        = closes(1009)
	invalidUTF8   = closes(1007)
	answered      = outcome{reply: "*"}
	hangup        = outcome{hangup: true}
)

func (fc frameCase) hcase() hcase {
	return hcase{name: "frames/" + fc.endpoint + "/" + fc.name, run: fc.run}
}

func (fc frameCase) run(t *testing.T, h *herald) {
	c := h.client(t)
	chunks := fc.send
	var behind []byte
	if fc.behind {
		behind, chunks = chunks[0], chunks[1:]
	}
	w, err := c.ws(h.wsPath(fc.endpoint), nil, behind)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if !w.upgraded() {
		t.Fatalf("handshake refused: %d %s", w.status, w.body)
	}
	for i, b := range chunks {
		if i > 0 && fc.gap > 0 {
			time.Sleep(fc.gap) // pacing a slow sender, not waiting for the server
		}
		if err := w.send(b); err != nil {
			if len(fc.want.close) > 0 {
				break // the server may give up before it has read everything
			}
			t.Fatalf("send chunk %d: %v", i, err)
		}
	}
	fc.want.check(t, w)
}

func (o outcome) check(t *testing.T, w *wsConn) {
	t.Helper()
	const wait = 15 * time.Second
	switch {
	case o.hangup:
		return
	case o.pong:
		deadline := time.Now().Add(wait)
		for {
			f, err := w.next(time.Until(deadline))
			if err != nil {
				t.Fatalf("no pong: %v (close %d)", err, w.closeCode)
			}
			if f.op == ws.OpPong {
				return
			}
			if f.op == ws.OpClose {
				t.Fatalf("closed with %d instead of answering the ping", w.closeCode)
			}
		}
	case o.reply != "":
		m, err := w.message(wait, not("campaign_data", "presence", "subscribed"))
		if errors.Is(err, errClosed) && len(o.close) > 0 {
			break // closing is allowed too: check the code below
		}
		if err != nil {
			t.Fatalf("no answer: %v (close %d)", err, w.closeCode)
		}
		if o.reply != "*" && m.errorCode() != o.reply {
			t.Errorf("answer %s, want an error %q", clip(string(m.raw), 300), o.reply)
		}
		return
	}
	code, err := w.awaitClose(wait)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(o.close, code) {
		t.Errorf("closed with %d, want one of %v", code, o.close)
	}
}

// frameCases are the raw WebSocket frame cases.
func frameCases() []hcase {
	var fcs []frameCase
	add := func(endpoint, name string, want outcome, send ...[]byte) {
		fcs = append(fcs, frameCase{name: name, endpoint: endpoint, send: send, want: want})
	}
	text := func(s string) []byte { return frame(0x81, true, []byte(s)) }

	// The crash of issue 13: a masked header announcing 2^63-14 bytes or
	// more made the reader's length arithmetic overflow and panic. Every
	// endpoint, anonymous or not, as a whole binary or text frame, as the
	// start of a message and as its continuation, and right behind the
	// handshake (a separate code path).
	for _, ep := range []string{campaignV1, campaignV2, applications} {
		for _, n := range []struct {
			name string
			n    uint64
		}{{"2^63-1", 1<<63 - 1}, {"2^63-14", 1<<63 - 14}} {
			add(ep, "binary of "+n.name, unsupported, header(0x82, true, n.n, 0))
			add(ep, "text of "+n.name, tooBig, header(0x81, true, n.n, 0))
			add(ep, "unfinished text of "+n.name, tooBig, header(0x01, true, n.n, 0))
			add(ep, "continuation of "+n.name, tooBig, frame(0x01, true, []byte(`{"type":`)), header(0x80, true, n.n, 0))
		}
		fcs = append(fcs, frameCase{name: "binary of 2^63-1 behind the handshake", endpoint: ep, behind: true,
			send: [][]byte{header(0x82, true, 1<<63-1, 0)}, want: unsupported})
	}

	// Lengths at every edge of the three encodings and of the 64 KiB limit.
	add(campaignV1, "empty text", outcome{reply: "invalid_json"}, text(""))
	for _, n := range []int{125, 126, 65535, 65536} {
		add(campaignV1, fmt.Sprintf("text of %d", n), answered, text(padded(n)))
	}
	add(campaignV1, "text of 125 in the 16-bit form", outcome{reply: "*", close: []int{1002}},
		append(header(0x81, true, 125, 16), maskBytes(true, []byte(padded(125)))...))
	add(campaignV1, "text of 40 in the 64-bit form", outcome{reply: "*", close: []int{1002}},
		append(header(0x81, true, 40, 64), maskBytes(true, []byte(padded(40)))...))
	for _, n := range []uint64{65537, 1<<31 - 1, 1 << 32, 1<<32 + 1, 1 << 62} {
		add(campaignV1, fmt.Sprintf("text of %d", n), tooBig, header(0x81, true, n, 0))
	}
	add(campaignV1, "text of 2^63", protocolError, header(0x81, true, 1<<63, 0))
	add(campaignV1, "text of 2^64-1", protocolError, header(0x81, true, 1<<64-1, 0))
	add(campaignV1, "binary of 2^64-1", protocolError, header(0x82, true, 1<<64-1, 0))
	add(campaignV1, "ping of 125", outcome{pong: true}, frame(0x89, true, bytes.Repeat([]byte("p"), 125)))
	add(campaignV1, "ping of 126", protocolError, frame(0x89, true, bytes.Repeat([]byte("p"), 126)))
	add(campaignV1, "ping of 2^63-1", protocolError, header(0x89, true, 1<<63-1, 0))
	add(campaignV1, "close of 2^63-1", protocolError, header(0x88, true, 1<<63-1, 0))
	add(campaignV1, "pong of 2^64-1", protocolError, header(0x8A, true, 1<<64-1, 0))
	add(campaignV1, "pong of 126", protocolError, frame(0x8A, true, bytes.Repeat([]byte("p"), 126)))
	add(campaignV1, "close of 126", protocolError, frame(0x88, true, closePayload(1000, strings.Repeat("r", 124))))

	// Reserved bits and opcodes.
	for _, b0 := range []byte{0xC1, 0xA1, 0x91, 0xF1, 0xC9} {
		add(campaignV1, fmt.Sprintf("reserved bits %#x on opcode %d", b0&0x70, b0&0xF), protocolError, frame(b0, true, []byte(`{"type":"ping"}`)))
	}
	for op := byte(3); op <= 0xF; op++ {
		if op >= 8 && op <= 0xA {
			continue
		}
		add(campaignV1, fmt.Sprintf("opcode %#x", op), protocolError, frame(0x80|op, true, []byte("x")))
	}
	add(applications, "reserved bit", protocolError, frame(0xC1, true, []byte(`{}`)))

	// Fragmented control frames and unmasked client frames.
	add(campaignV1, "unfinished ping", protocolError, frame(0x09, true, []byte("p")))
	add(campaignV1, "unfinished pong", protocolError, frame(0x0A, true, []byte("p")))
	add(campaignV1, "unfinished close", protocolError, frame(0x08, true, closePayload(1000, "")))
	add(campaignV1, "unmasked text", protocolError, frame(0x81, false, []byte(`{"type":"ping"}`)))
	add(campaignV1, "unmasked ping", protocolError, frame(0x89, false, nil))
	add(campaignV1, "unmasked close", protocolError, frame(0x88, false, closePayload(1000, "")))
	add(campaignV1, "unmasked binary of 2^63-1", protocolError, header(0x82, false, 1<<63-1, 0))
	add(applications, "unmasked text", protocolError, frame(0x81, false, []byte(`{}`)))

	// Close frames: codes no endpoint may send are answered with 1002,
	// valid ones echoed.
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999} {
		add(campaignV1, fmt.Sprintf("close with code %d", code), protocolError, frame(0x88, true, closePayload(code, "")))
	}
	// RFC 6455 defines no codes from 5000: refusing or echoing them are
	// both seen in the wild.
	for _, code := range []uint16{5000, 65535} {
		add(campaignV1, fmt.Sprintf("close with code %d", code), closes(1002, int(code)), frame(0x88, true, closePayload(code, "")))
	}
	add(campaignV1, "close with a 1-byte payload", protocolError, frame(0x88, true, []byte{3}))
	add(campaignV1, "close with an invalid UTF-8 reason", closes(1002, 1007), frame(0x88, true, closePayload(1000, "bye \xff\xfe")))
	for _, code := range []uint16{1000, 3000, 4999} {
		add(campaignV1, fmt.Sprintf("close with code %d", code), closes(int(code)), frame(0x88, true, closePayload(code, "bye")))
	}
	add(campaignV1, "empty close", closes(1000, 1005), frame(0x88, true, nil))
	add(campaignV1, "text after close", closes(1000), frame(0x88, true, closePayload(1000, "")), text(`{"type":"ping"}`))

	// Text that is not UTF-8, whole or split across fragments; UTF-8 split
	// across fragments is fine.
	for name, s := range map[string]string{
		"0xff": "\xff", "overlong slash": "\xc0\xaf", "surrogate": "\xed\xa0\x80",
		"cut short": "{\"type\":\"\xe2\x82", "above U+10FFFF": "\xf4\x90\x80\x80",
	} {
		add(campaignV1, "text with invalid UTF-8: "+name, invalidUTF8, text(s))
	}
	add(campaignV1, "invalid UTF-8 across fragments", invalidUTF8,
		frame(0x01, true, []byte("{\"type\":\"\xe2")), frame(0x80, true, []byte("\x28\xa1\"}")))
	add(campaignV1, "UTF-8 split across fragments", answered,
		frame(0x01, true, []byte("{\"type\":\"\xe2\x82")), frame(0x80, true, []byte("\xac\"}")))
	add(campaignV2, "text with invalid UTF-8", invalidUTF8, text("\xff"))
	add(applications, "text with invalid UTF-8", invalidUTF8, text("\xff"))

	// Fragmentation out of order.
	add(campaignV1, "continuation without a start", protocolError, frame(0x80, true, []byte(`{}`)))
	add(campaignV1, "unfinished continuation without a start", protocolError, frame(0x00, true, []byte(`{`)))
	add(campaignV1, "text inside a fragmented message", protocolError,
		frame(0x01, true, []byte(`{"type":`)), text(`{"type":"ping"}`))
	add(campaignV1, "binary inside a fragmented message", protocolError,
		frame(0x01, true, []byte(`{"type":`)), frame(0x82, true, []byte("x")))
	add(campaignV1, "binary", unsupported, frame(0x82, true, []byte(`{"type":"ping"}`)))
	add(campaignV1, "fragmented binary", unsupported, frame(0x02, true, []byte("x")), frame(0x80, true, []byte("y")))
	add(campaignV1, "ping inside a fragmented message", answered,
		frame(0x01, true, []byte(`{"type":`)), frame(0x89, true, []byte("p")), frame(0x80, true, []byte(`"ping"}`)))
	add(campaignV1, "one byte per fragment", answered, fragments([]byte(`{"type":"ping"}`), 1))
	add(campaignV1, "64 KiB in 1 KiB fragments", answered, fragments([]byte(padded(64<<10)), 1<<10))

	// A megabyte, whole and in fragments.
	mib := []byte(padded(1 << 20))
	add(campaignV1, "1 MiB text", tooBig, frame(0x81, true, mib))
	add(campaignV1, "1 MiB in 64 KiB fragments", tooBig, fragments(mib, 64<<10))
	add(campaignV1, "1 MiB binary", unsupported, frame(0x82, true, mib))
	add(applications, "1 MiB text", tooBig, frame(0x81, true, mib))

	// Something other than frames after the handshake.
	add(campaignV1, "an HTTP request after the handshake", protocolError, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	add(campaignV1, "0xff bytes after the handshake", protocolError, bytes.Repeat([]byte{0xff}, 100))

	// Slow senders: a frame a byte at a time, and a header cut in two.
	slow := frame(0x81, true, []byte(padded(40)))
	var bytewise [][]byte
	for i := range slow {
		bytewise = append(bytewise, slow[i:i+1])
	}
	fcs = append(fcs, frameCase{name: "a frame one byte at a time", endpoint: campaignV1, send: bytewise, gap: time.Millisecond, want: answered})
	fcs = append(fcs, frameCase{name: "a header in two writes", endpoint: applications, send: [][]byte{slow[:1], slow[1:]}, gap: 300 * time.Millisecond, want: answered})

	// Half-sent frames, then the client is gone.
	big := frame(0x81, true, []byte(padded(60<<10)))
	add(campaignV1, "hang up after one header byte", hangup, slow[:1])
	add(campaignV1, "hang up after the header", hangup, slow[:8])
	add(campaignV1, "hang up in the payload", hangup, slow[:30])
	add(campaignV1, "hang up in a 60 KiB payload", hangup, big[:50<<10])
	add(campaignV1, "hang up in a fragmented message", hangup, frame(0x01, true, []byte(`{"type":`)), slow[:20])
	add(campaignV2, "hang up in the payload", hangup, slow[:30])
	add(applications, "hang up in the payload", hangup, slow[:30])

	out := make([]hcase, len(fcs))
	for i, fc := range fcs {
		out[i] = fc.hcase()
	}
	return out
}

// fragments splits a text message into masked fragments of at most n bytes,
// concatenated into one write.
func fragments(msg []byte, n int) []byte {
	var b []byte
	for i := 0; i < len(msg); i += n {
		end := min(i+n, len(msg))
		op := byte(0x00)
		if i == 0 {
			op = 0x01
		}
		if end == len(msg) {
			op |= 0x80
		}
		b = append(b, frame(op, true, msg[i:end])...)
	}
	return b
}
