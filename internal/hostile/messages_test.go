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

const applicationsV2 = "applications v2"

// msgCase sends one JSON message over a valid connection and checks the
// first answer: an error code, "ack", or "close <code>".
type msgCase struct {
	name     string
	endpoint string
	send     string
	want     []string
}

func (mc msgCase) hcase() hcase {
	return hcase{name: "messages/" + mc.endpoint + "/" + mc.name, run: mc.run}
}

func (h *herald) msgPath(endpoint string) string {
	if endpoint == applicationsV2 {
		return "/ws/applications/?v=2&token=" + h.fixture.alice
	}
	return h.wsPath(endpoint)
}

func (mc msgCase) run(t *testing.T, h *herald) {
	w := dialOK(t, h.client(t), h.msgPath(mc.endpoint))
	if err := w.sendText(mc.send); err != nil {
		t.Fatal(err)
	}
	got, isError, err := firstAnswer(w)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(mc.want, got) && !(isError && slices.Contains(mc.want, anyError)) {
		t.Errorf("answered %s, want one of %q", got, mc.want)
	}
}

// dialOK opens a WebSocket that must be accepted.
func dialOK(t *testing.T, c *client, path string) *wsConn {
	t.Helper()
	w, err := c.ws(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	if !w.upgraded() {
		t.Fatalf("handshake refused: %d %s", w.status, w.body)
	}
	return w
}

// firstAnswer is how the server answered: an error's code (isError set),
// "ack", another message's type, or "close <code>" once the server has
// dropped the connection.
func firstAnswer(w *wsConn) (answer string, isError bool, err error) {
	m, err := w.message(15*time.Second, not("campaign_data", "presence", "subscribed"))
	if errors.Is(err, errClosed) {
		if _, err := w.awaitClose(15 * time.Second); err != nil {
			return "", false, err
		}
		return fmt.Sprintf("close %d", w.closeCode), false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("no answer: %w", err)
	}
	if c := m.errorCode(); c != "" {
		return c, true, nil
	}
	return m.Type, false, nil
}

// anyError in a msgCase's want accepts an error message of any code.
const anyError = "any error"

func subscribe(group string) string {
	return `{"type":"subscribe","id":"h","data":{"group":"` + group + `"}}`
}

// messageCases are the JSON message cases.
func messageCases() []hcase {
	var mcs []msgCase
	add := func(endpoint, name, send string, want ...string) {
		mcs = append(mcs, msgCase{name: name, endpoint: endpoint, send: send, want: want})
	}
	invalid := []string{"invalid_json", "invalid_message"}

	for _, ep := range []string{campaignV1, campaignV2, applications} {
		add(ep, "not JSON", "hello", "invalid_json")
		add(ep, "an unclosed object", "{", "invalid_json")
		add(ep, "a NUL", "\x00", "invalid_json")
		add(ep, "60k [", strings.Repeat("[", 60_000), invalid...)
		add(ep, "100k [", strings.Repeat("[", 100_000), "close 1009")
		add(ep, "null", "null", "invalid_message")
		add(ep, "an array", "[]", "invalid_message")
		add(ep, "a number", "42", "invalid_message")
		add(ep, "an empty object", "{}", "invalid_message")
	}

	// Deep or huge values inside a well-formed message.
	add(campaignV1, "12k [ in data", `{"type":"comment","data":`+strings.Repeat("[", 12_000), invalid...)
	for _, id := range []string{"1e400", "99999999999999999999", "9223372036854775808", "-1", "0", "1.5", "-0", "true", `{"id":1}`} {
		add(campaignV1, "id "+id, `{"type":"comment","data":{"id":`+id+`}}`, "invalid_message")
	}
	add(campaignV1, "id 2^63-1", `{"type":"comment","data":{"id":9223372036854775807}}`, "not_found")

	// Wrong types and unknown types.
	for _, typ := range []string{"5", "null", `["comment"]`, `""`, `{"a":1}`} {
		add(campaignV1, "type "+typ, `{"type":`+typ+`,"data":{"id":1}}`, "invalid_message")
	}
	for _, data := range []string{`"x"`, `[1]`, `null`, `5`} {
		add(campaignV1, "data "+data, `{"type":"comment","data":`+data+`}`, "invalid_message")
	}
	add(campaignV1, "no data", `{"type":"comment"}`, "invalid_message")
	for _, typ := range []string{"subscribe", "__proto__", "campaign_data", "error", "ack", strings.Repeat("t", 60_000), `\ud800`} {
		add(campaignV1, "type "+clip(typ, 20), `{"type":"`+typ+`","data":{"id":1}}`, "unknown_type")
	}
	add(applications, "an announce", `{"type":"comment","data":{"id":1}}`, "unknown_type")
	add(applicationsV2, "an announce", `{"type":"comment","id":"h","data":{"id":1}}`, "unknown_type")
	// JSON's corners where parsers differ: a repeated key (Go keeps the
	// last) and keys in another case (Go matches them).
	add(campaignV1, "repeated type", `{"type":"ping","type":"comment","data":{"id":3}}`, "not_found", "invalid_message")
	add(campaignV1, "upper-case keys", `{"TYPE":"comment","DATA":{"ID":3}}`, "not_found", "invalid_message")

	// Announces of another campaign's objects (demo ids: comment 3 and
	// contribution 5 are the mural's, update 2, release 2 and milestone 4
	// the notebook app's).
	for _, ep := range []string{campaignV1, campaignV2} {
		for _, a := range []string{"comment 3", "contribution 5", "contribution 4", "update 2", "release 2", "milestone 4"} {
			typ, id, _ := strings.Cut(a, " ")
			add(ep, "announce of another campaign's "+a, `{"type":"`+typ+`","id":"h","data":{"id":`+id+`}}`, "not_found")
		}
	}

	// v2 subscribe with groups that are not canonical, not there, or not
	// the user's; an anonymous room and a signed-in alice (user 1).
	notAllowed := []string{anyError}
	for _, ep := range []string{campaignV2, applicationsV2} {
		for _, g := range []string{
			"campaign_0001", "campaign_01", "campaign_-1", "campaign_0", "campaign_", "campaign_1_2",
			"campaign_99999999999999999999", "campaign_9223372036854775807", "Campaign_1", "campaign 1",
			"campaign_3", "user_2", "user_02", "quest_1", "quest_3", "quest_0001", "other_1", "_1", "",
			strings.Repeat("campaign_", 1200),
		} {
			if ep == applicationsV2 && g == "campaign_3" {
				continue // alice's own draft: hers to watch
			}
			add(ep, "subscribe "+clip(g, 20), subscribe(g), notAllowed...)
		}
		add(ep, "subscribe to a number", `{"type":"subscribe","id":"h","data":{"group":5}}`, "invalid_message")
		add(ep, "subscribe without data", `{"type":"subscribe","id":"h"}`, "invalid_message")
		add(ep, "subscribe with a string as data", `{"type":"subscribe","id":"h","data":"campaign_1"}`, "invalid_message")
		add(ep, "subscribe with offset -1", `{"type":"subscribe","id":"h","data":{"group":"campaign_2","epoch":"x","offset":-1}}`, "invalid_message")
		add(ep, "subscribe with offset 1e30", `{"type":"subscribe","id":"h","data":{"group":"campaign_2","epoch":"x","offset":1e30}}`, "invalid_message")
		add(ep, "subscribe with a 10k epoch", `{"type":"subscribe","id":"h","data":{"group":"campaign_2","epoch":"`+strings.Repeat("e", 10_000)+`","offset":1}}`, "invalid_message")
		add(ep, "subscribe from offset 2^64-1", `{"type":"subscribe","id":"h","data":{"group":"campaign_2","epoch":"x","offset":18446744073709551615}}`, "ack", anyError)
		add(ep, "subscribe with a 10k id", `{"type":"subscribe","id":"`+strings.Repeat("i", 10_000)+`","data":{"group":"user_2"}}`, notAllowed...)
		add(ep, "unsubscribe campaign_0001", `{"type":"unsubscribe","id":"h","data":{"group":"campaign_0001"}}`, "ack", anyError)
		add(ep, "unsubscribe a 10k group", `{"type":"unsubscribe","id":"h","data":{"group":"`+strings.Repeat("g", 10_000)+`"}}`, anyError)
	}

	out := make([]hcase, 0, len(mcs)+8)
	for _, mc := range mcs {
		out = append(out, mc.hcase())
	}
	for _, ep := range []string{campaignV1, campaignV2, applications} {
		out = append(out, hcase{name: "messages/" + ep + "/flood", run: func(t *testing.T, h *herald) { flood(t, h, ep, `{"type":"ping"}`) }})
	}
	out = append(out,
		hcase{name: "messages/" + campaignV2 + "/subscribe flood", run: func(t *testing.T, h *herald) { flood(t, h, campaignV2, subscribe("campaign_2")) }},
		hcase{name: "messages/" + campaignV1 + "/ping flood", run: pingFlood},
	)
	return out
}

// flood sends 200 messages at once: the ones over the rate limit are
// answered rate_limited, and the connection is closed with 4429.
func flood(t *testing.T, h *herald, endpoint, m string) {
	w := dialOK(t, h.client(t), h.msgPath(endpoint))
	one := frame(0x81, true, []byte(m))
	_ = w.send(bytes.Repeat(one, 200)) // the server may close before it read them all
	limited := 0
	for {
		m, err := w.message(15*time.Second, nil)
		if errors.Is(err, errClosed) {
			break
		}
		if err != nil {
			t.Fatalf("no close after the flood: %v (%d rate_limited answers)", err, limited)
		}
		if m.errorCode() == "rate_limited" {
			limited++
		}
	}
	if _, err := w.awaitClose(15 * time.Second); err != nil {
		t.Error(err)
	}
	if w.closeCode != 4429 || limited == 0 {
		t.Errorf("closed with %d after %d rate_limited answers; want 4429 after at least one", w.closeCode, limited)
	}
}

// pingFlood sends 20,000 pings in one write without reading: the server
// answers them all or closes the connection, and stays up.
func pingFlood(t *testing.T, h *herald) {
	w := dialOK(t, h.client(t), h.wsPath(campaignV1))
	const n = 20_000
	_ = w.send(bytes.Repeat(frame(0x89, true, nil), n))
	pongs := 0
	deadline := time.Now().Add(20 * time.Second)
	for pongs < n {
		f, err := w.next(time.Until(deadline))
		if err != nil {
			t.Fatalf("after %d pongs: %v", pongs, err)
		}
		switch f.op {
		case ws.OpPong:
			pongs++
		case ws.OpClose:
			if w.closeCode != 4000 && w.closeCode != 4429 && w.closeCode != 1008 {
				t.Errorf("closed with %d after %d pongs", w.closeCode, pongs)
			}
			return
		}
	}
}
