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

// accepted is a connection the transport took over.
type accepted struct {
	conn *realtime.Conn
	// serve holds an SSE stream open until it ends; nil for WebSocket,
	// whose connections live on without the HTTP handler.
	serve func()
	// position records a group's starting place in an SSE stream's ids.
	position func(group string, p position)
}

// accept hands the request to the endpoint's transport.
func (c *Consumers) accept(k kind, w http.ResponseWriter, r *http.Request, cfg transport.ConnConfig) (accepted, bool) {
	if k == viaWebSocket {
		conn, err := c.ws.Upgrade(w, r, cfg)
		return accepted{conn: conn, position: func(string, position) {}}, err == nil
	}
	if c.sse == nil {
		http.Error(w, "server-sent events are not enabled", http.StatusNotFound)
		return accepted{}, false
	}
	st, err := c.sse.Accept(w, r, cfg)
	if err != nil {
		return accepted{}, false
	}
	return accepted{
		conn:     st.Conn(),
		serve:    func() { st.Serve(r.Context()) },
		position: func(g string, p position) { st.SetPosition(g, p.Epoch, p.Offset) },
	}, true
}

// request reads what both endpoints share from a real-time request: the
// protocol version and the positions to resume. For SSE they come from the
// browser's Last-Event-ID (or ?resume=, for a first connection that already
// has positions), and positions are always on.
func request(k kind, w http.ResponseWriter, r *http.Request) (version int, resume map[string]position, ok bool) {
	if k == viaSSE {
		v := r.Header.Get("Last-Event-ID")
		if v == "" {
			v = r.URL.Query().Get("resume")
		}
		resume, err := parseResume(v)
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
	resume, err := parseResume(r.URL.Query().Get("resume"))
	if err == nil && resume != nil && version != 2 {
		err = errors.New("resume needs protocol v2 (?v=2)")
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return 0, nil, false
	}
	return version, resume, true
}
