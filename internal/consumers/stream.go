package consumers

import (
	"errors"
	"net/http"

	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/transport"
)

// kind is the transport an endpoint serves: WebSocket or Server-Sent Events.
type kind int

const (
	viaWebSocket kind = iota
	viaSSE
)

// accept hands the request to the endpoint's transport and runs open on the
// connection it accepted. For WebSocket, open runs while the handshake
// response is held back, so the messages open sends go out with it in one
// write; for SSE it runs before the stream is served, until it ends. When
// the transport refuses, it has answered the request and open does not run.
func (c *Consumers) accept(k kind, w http.ResponseWriter, r *http.Request, cfg transport.ConnConfig, open func(*realtime.Conn)) {
	if k == viaWebSocket {
		cfg.Open = open
		_, _ = c.ws.Upgrade(w, r, cfg)
		return
	}
	if c.sse == nil {
		http.Error(w, "server-sent events are not enabled", http.StatusNotFound)
		return
	}
	st, err := c.sse.Accept(w, r, cfg)
	if err != nil {
		return
	}
	// The stream's id names its position in each group from the subscribed
	// message that joining it sends, before the group's first event.
	st.Open(func() { open(st.Conn()) })
	st.Serve(r.Context())
}

// request reads what both endpoints share from a real-time request: the
// protocol version and the positions to resume. For SSE they come from the
// browser's Last-Event-ID (or ?resume=, for a first connection that already
// has positions), and positions are always on.
func (c *Consumers) request(k kind, w http.ResponseWriter, r *http.Request) (version int, resume map[string]position, ok bool) {
	if k == viaSSE {
		v := r.Header.Get("Last-Event-ID")
		if v == "" {
			v = r.URL.Query().Get("resume")
		}
		resume, err := c.parseResume(v)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return 0, nil, false
		}
		return 2, resume, true
	}
	version, vok := versionOf(r)
	if !vok {
		http.Error(w, "unsupported protocol version; use v=1 or v=2", http.StatusBadRequest)
		return 0, nil, false
	}
	resume, err := c.parseResume(r.URL.Query().Get("resume"))
	if err == nil && resume != nil && version != 2 {
		err = errors.New("resume needs protocol v2 (?v=2)")
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return 0, nil, false
	}
	return version, resume, true
}
