// Package consumers serves the seeds' real-time endpoints on top of the hub:
// who may connect, which groups a connection joins, the snapshot it gets on
// connect and what it may send. It is the one place that knows both the
// platform's domain and the real-time machinery.
package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/heraldhq/herald/internal/apptoken"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/connect"
	"github.com/heraldhq/herald/internal/groups"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/transport"
	"github.com/heraldhq/herald/internal/store"
)

// Config wires the consumers.
type Config struct {
	Platform  *platform.Platform
	Tokens    *auth.Issuer
	Hub       *realtime.Hub
	WebSocket *transport.Server
	// SSE serves the /sse/ endpoints; nil leaves them out.
	SSE    *transport.SSE
	Logger *slog.Logger
	// TrustProxy takes the client address from X-Forwarded-For for the
	// per-address connection limits.
	TrustProxy bool
	// OnPanic, if set, is told of each panic recovered in Run's loop
	// (panics.Presence), which goes on, or while joining the connections of
	// a quest's creator to the new quest (panics.Hub).
	OnPanic func(where string)
	// MaxGroups bounds the groups a v2 client may subscribe to on one
	// connection (DefaultMaxGroups when 0): anyone signed in can start
	// campaigns, so without it one connection could join them all.
	MaxGroups int
	// Groups are the namespaces clients may join groups of; nil is the
	// built-in ones alone.
	Groups *groups.Registry
	// AppTokens verifies the app's connection and subscription tokens;
	// nil takes none.
	AppTokens *apptoken.Verifier
	// Connect, if set, asks the app who a client of /ws/ or /sse/ without
	// a token is, and serves every path below them.
	Connect *connect.Client

	hooks *testHooks
}

// testHooks let tests act at the points of a join that only a race reaches
// otherwise (export_test.go sets them).
type testHooks struct {
	// beforeJoin runs before a connection joins group (for a resume, after
	// its position was found within the window).
	beforeJoin func(group string)
	// beforeFresh runs when a join could not replay, before the fresh
	// state is read.
	beforeFresh func(group string)
	// announced runs once the connections following a quest announcement
	// were handled.
	announced func(questID int64)
	// consumers is set by New, for the tests' counters.
	consumers *Consumers
}

// DefaultMaxGroups is Config.MaxGroups's default.
const DefaultMaxGroups = 1000

// Consumers serves /ws/applications/, /ws/campaign/<id>/ and /ws/ (the
// endpoint of other apps' clients), and their /sse/ twins.
type Consumers struct {
	p         *platform.Platform
	tokens    *auth.Issuer
	hub       *realtime.Hub
	ws        *transport.Server
	sse       *transport.SSE
	log       *slog.Logger
	onPanic   func(string)
	proxy     bool
	maxGroups int
	seen      versions
	presence  presence
	snaps     snapshots
	public    publicEpochs
	hooks     *testHooks
	groups    *groups.Registry
	appTokens *apptoken.Verifier
	connect   *connect.Client
	grants    grants
}

// New returns the consumers.
func New(cfg Config) *Consumers {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	maxGroups := cfg.MaxGroups
	if maxGroups <= 0 {
		maxGroups = DefaultMaxGroups
	}
	c := &Consumers{p: cfg.Platform, tokens: cfg.Tokens, hub: cfg.Hub, ws: cfg.WebSocket, sse: cfg.SSE, log: log, onPanic: cfg.OnPanic, proxy: cfg.TrustProxy,
		maxGroups: maxGroups, groups: cfg.Groups, appTokens: cfg.AppTokens, connect: cfg.Connect}
	if c.groups == nil {
		c.groups = groups.Default()
	}
	if cfg.hooks != nil {
		c.hooks = cfg.hooks
		c.hooks.consumers = c
	}
	return c
}

// Register adds the endpoints to mux.
func (c *Consumers) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /ws/applications/{$}", func(w http.ResponseWriter, r *http.Request) { c.applications(viaWebSocket, w, r) })
	mux.HandleFunc("GET /ws/campaign/{id}/{$}", func(w http.ResponseWriter, r *http.Request) { c.campaign(viaWebSocket, w, r) })
	if c.sse != nil {
		mux.HandleFunc("GET /sse/applications/{$}", func(w http.ResponseWriter, r *http.Request) { c.applications(viaSSE, w, r) })
		mux.HandleFunc("GET /sse/campaign/{id}/{$}", func(w http.ResponseWriter, r *http.Request) { c.campaign(viaSSE, w, r) })
		mux.HandleFunc("GET /sse/{path...}", func(w http.ResponseWriter, r *http.Request) { c.app(viaSSE, w, r) })
	}
	mux.HandleFunc("GET /ws/{path...}", func(w http.ResponseWriter, r *http.Request) { c.app(viaWebSocket, w, r) })
}

// errAuth is an authentication that was attempted and failed.
var errAuth = errors.New("invalid credentials")

// authenticate finds the user of a real-time request: a one-use ?ticket=,
// then an access token from the Authorization header, the session cookie or
// ?token= (the seeds' hook). No credentials at all is anonymous (0, nil).
func (c *Consumers) authenticate(r *http.Request) (int64, error) {
	return c.authenticateToken(r, auth.TokenFromRequest(r, true))
}

// heraldToken reports whether tok is an access token herald issued, still
// valid or expired.
func (c *Consumers) heraldToken(tok string) bool {
	_, err := c.tokens.ParseAccess(tok)
	return err == nil || errors.Is(err, auth.ErrTokenExpired)
}

// authenticateToken is authenticate with the access token tok ("" for
// none) in place of the one r carries.
func (c *Consumers) authenticateToken(r *http.Request, tok string) (int64, error) {
	if t := r.URL.Query().Get("ticket"); t != "" {
		uid, err := c.p.RedeemTicket(r.Context(), t)
		if err != nil {
			if platform.KindOf(err) == platform.KindUnauthorized {
				return 0, errAuth
			}
			return 0, err
		}
		return uid, nil
	}
	if tok == "" {
		return 0, nil
	}
	uid, err := c.tokens.ParseAccess(tok)
	if err != nil {
		return 0, errAuth
	}
	// A token outlives its user when the database was reset under a kept
	// secret: such a token is no credential.
	found, err := c.p.UserExists(r.Context(), uid)
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, errAuth
	}
	return uid, nil
}

// refuse answers a handshake that will not be upgraded, as Channels does
// when a consumer closes before accepting: HTTP 403.
func refuse(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write([]byte(msg + "\n"))
}

// versionOf reads ?v=: 1 (the seeds' protocol, the default) or 2.
func versionOf(r *http.Request) (int, bool) {
	switch r.URL.Query().Get("v") {
	case "", "1":
		return 1, true
	case "2":
		return 2, true
	}
	return 0, false
}

// Error codes of {"type":"error","data":{"code":…}} messages.
const (
	CodeInvalidJSON    = "invalid_json"
	CodeInvalidMessage = "invalid_message"
	CodeInvalidGroup   = "invalid_group"
	CodeUnknownType    = "unknown_type"
	CodeNotFound       = "not_found"
	CodeForbidden      = "forbidden"
	CodeRateLimited    = "rate_limited"
	CodeInternal       = "internal_error"
	CodeTooManyGroups  = "too_many_groups"
	CodeTokenExpired   = "token_expired"
	CodeInvalidToken   = "invalid_token"
)

// sendError tells the client what was wrong with what it sent.
func sendError(conn *realtime.Conn, code, msg string) {
	reply{conn: conn}.error(code, msg)
}

// failed answers a handshake the server could not serve, and logs why. A
// client that went away meanwhile is not answered. A failure of the
// channel layer (this process cannot reach Redis) is answered 503 with
// Retry-After: the process cannot take real-time clients now, another may
// (a load balancer passes the handshake on: nginx's proxy_next_upstream
// http_503), and the client tries again. So is a database outage; anything
// else is a 500.
func (c *Consumers) failed(w http.ResponseWriter, what string, err error, attrs ...any) {
	if c.logFailure(what, err, attrs...) {
		return
	}
	switch {
	case errors.As(err, new(layerError)):
		w.Header().Set("Retry-After", "1")
		http.Error(w, "the channel layer is unavailable on this server; try again", http.StatusServiceUnavailable)
	case store.IsUnavailable(err):
		// As the REST API answers a database outage.
		w.Header().Set("Retry-After", "1")
		http.Error(w, "the database is unavailable; try again in a moment", http.StatusServiceUnavailable)
	default:
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
}

// layerError is an error of the channel layer: reading a group's position
// or history, which a handshake needs before it is answered.
type layerError struct{ err error }

func (e layerError) Error() string { return e.err.Error() }
func (e layerError) Unwrap() error { return e.err }

// logFailure logs why a connection could not be served, at ERROR unless
// err only says that the client went away mid-connect (its request's
// context was canceled, which nothing else cancels): that is logged at
// debug level, being no fault of the server, and reported.
func (c *Consumers) logFailure(what string, err error, attrs ...any) (clientGone bool) {
	clientGone = errors.Is(err, context.Canceled)
	level := slog.LevelError
	if clientGone {
		level = slog.LevelDebug
	}
	c.log.Log(context.Background(), level, "realtime: "+what, append(attrs, "err", err)...)
	return clientGone
}

// message is what a client may send: {"type": …, "data": {"id": N}}.
type message struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
	// ID is a v2 client's own id for the message, echoed in the answer.
	ID json.RawMessage `json:"id"`
}

// parseMessage decodes a client message, answering the client itself when it
// is not a JSON object with a string type.
func parseMessage(conn *realtime.Conn, raw []byte) (message, bool) {
	var m message
	if err := json.Unmarshal(raw, &m); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			sendError(conn, CodeInvalidMessage, "a message is a JSON object {\"type\": string, \"data\": object}")
		} else {
			sendError(conn, CodeInvalidJSON, "the message is not valid JSON")
		}
		return m, false
	}
	if m.Type == "" {
		sendError(conn, CodeInvalidMessage, "the message has no \"type\"")
		return m, false
	}
	return m, true
}

// rateLimited answers a message the transport dropped for coming too fast.
func rateLimited(conn *realtime.Conn) {
	sendError(conn, CodeRateLimited, "too many messages; slow down or the connection will be closed")
}

// joinAll joins conn to groups, closing it if the hub refuses.
func (c *Consumers) joinAll(ctx context.Context, conn *realtime.Conn, groups ...string) bool {
	for _, g := range groups {
		if err := c.hub.Join(ctx, conn, g); err != nil {
			if !errors.Is(err, realtime.ErrClosed) {
				c.logFailure("join group", err, "group", g)
				conn.Close(realtime.CloseInternalError, "cannot join "+g)
			}
			return false
		}
	}
	return true
}

// clientAddr is the address the per-address limits count r against.
func (c *Consumers) clientAddr(r *http.Request) netip.Addr {
	a, _ := netip.ParseAddr(auth.ClientIP(r, c.proxy))
	return a
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
