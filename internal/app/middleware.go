package app

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/origin"
	"github.com/heraldhq/herald/internal/panics"
)

// chain wraps h with herald's HTTP middleware, outermost first: request id,
// access log (with the client's address, from X-Forwarded-For with
// trustProxy) and Connection: close while draining (nil: never), panic
// recovery, CORS.
func chain(h http.Handler, log *slog.Logger, m *metrics.Metrics, origins []string, draining *atomic.Bool, trustProxy bool) http.Handler {
	return logRequests(log, m, draining, trustProxy, recoverPanics(log, m.Panicked, cors(origins, h)))
}

type statusWriter struct {
	http.ResponseWriter
	status   int
	bytes    int
	draining *atomic.Bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.start(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.start(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

// start records the response's status as its header is about to go out.
// Once the server drains, that header says Connection: close, also for a
// request that was in flight when the draining began: net/http then closes
// the connection after this response, and the client sends its next request
// on a new connection, to another process.
func (w *statusWriter) start(code int) {
	w.status = code
	if w.draining != nil && w.draining.Load() {
		w.Header().Set("Connection", "close")
	}
}

// Unwrap lets http.ResponseController reach Flush and Hijack underneath.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// statusClientClosed is the status logged for a request whose client went
// away before anything was answered.
const statusClientClosed = 499

// logRequests logs each request once answered: remote is the TCP peer (a
// proxy, behind one) and client the address herald counts the request
// against, the one auth.ClientIP gives (the per-address limits' too).
func logRequests(log *slog.Logger, m *metrics.Metrics, draining *atomic.Bool, trustProxy bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		sw := &statusWriter{ResponseWriter: w, draining: draining}
		start := time.Now()
		next.ServeHTTP(sw, r)
		elapsed := time.Since(start)
		switch {
		case sw.status != 0:
		case r.Context().Err() != nil:
			// Nothing was answered to a client that went away: recorded as
			// nginx does, "client closed request".
			sw.status = statusClientClosed
		default:
			sw.status = http.StatusSwitchingProtocols // hijacked: a real-time upgrade
		}
		// ServeMux records the matched pattern on the request: a bounded
		// label set, unlike raw paths.
		m.ObserveHTTP(r.Pattern, r.Method, sw.status, elapsed)
		level := slog.LevelDebug
		switch {
		case sw.status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") != "":
			// Load shed on purpose (a full password-hashing gate, a room
			// still being reset): a storm of these is not a server fault.
			level = slog.LevelWarn
		case sw.status >= 500:
			level = slog.LevelError
		}
		// Most lines are at debug level, which is usually off: skip
		// building them (the arguments' boxing, the client's address).
		if log.Enabled(r.Context(), level) {
			log.Log(r.Context(), level, "http request", "id", id, "method", r.Method, "path", r.URL.Path,
				"status", sw.status, "bytes", sw.bytes, "duration", elapsed, "remote", r.RemoteAddr, "client", auth.ClientIP(r, trustProxy))
		}
	})
}

// internalError is the problem document of a request whose handler
// panicked (api.Problem's shape).
const internalError = `{"type":"about:blank","title":"Internal Server Error","status":500,"detail":"internal error","code":"error"}` + "\n"

// recoverPanics fails a request whose handler panicked with 500 (a
// problem document), logs the panic with its stack and tells onPanic. When
// the response had already started, the connection is cut instead (as
// net/http does with ErrAbortHandler), so the client sees it incomplete;
// when it was taken over (a WebSocket), it is the taker's.
func recoverPanics(log *slog.Logger, onPanic func(string), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &startWriter{ResponseWriter: w}
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				panic(p)
			}
			panics.Report(log.With("method", r.Method, "path", r.URL.Path), onPanic, panics.HTTP, p)
			switch {
			case rw.hijacked:
			case rw.started:
				panic(http.ErrAbortHandler)
			default:
				h := w.Header()
				h.Del("Content-Length") // what the handler meant to send
				h.Del("Content-Encoding")
				h.Set("Content-Type", "application/problem+json")
				h.Set("X-Content-Type-Options", "nosniff")
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = io.WriteString(w, internalError)
			}
		}()
		next.ServeHTTP(rw, r)
	})
}

// startWriter records whether the response was started (its header sent)
// or the connection taken over.
type startWriter struct {
	http.ResponseWriter
	started, hijacked bool
}

func (w *startWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.started = true // 1xx informational headers may be followed by the real ones
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *startWriter) Write(b []byte) (int, error) {
	w.started = true
	return w.ResponseWriter.Write(b)
}

// FlushError sends the header (and what is buffered): the response has
// started.
func (w *startWriter) FlushError() error {
	w.started = true
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack takes the connection over; a panic after it leaves the response
// alone.
func (w *startWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return nc, rw, err
}

// Unwrap lets http.ResponseController reach the deadlines underneath.
func (w *startWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// cors lets browsers on the allowed origins call the API with credentials.
// Same-origin requests (the embedded web app) need none of it.
func cors(origins []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o := r.Header.Get("Origin")
		if o == "" || !origin.Allowed(origins, o) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Allow-Origin", o)
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Access-Control-Expose-Headers", "Retry-After, X-Request-Id, Idempotent-Replayed")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Methods", "GET, POST, PATCH, PUT, DELETE, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-Id, Idempotency-Key")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}
