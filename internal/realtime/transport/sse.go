package transport

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/internal/panics"
	"github.com/heraldhq/herald/internal/realtime"
)

// SSEOptions configures an SSE server. Zero values take the defaults.
type SSEOptions struct {
	// Heartbeat is how often a comment line is sent on a quiet stream, so
	// proxies keep it open and dead clients are noticed (default 15 s).
	Heartbeat time.Duration
	// Retry is the reconnect delay advised to the browser (default 2 s).
	Retry time.Duration
	// WriteTimeout bounds one write; a client that does not read for that
	// long is closed as a slow consumer (default DefaultWriteTimeout).
	WriteTimeout time.Duration
	// AllowedOrigins, MaxConnsPerAddr, HandshakeRate, HandshakeBurst and
	// Limits work as in Options: give both transports one Limits.
	AllowedOrigins  []string
	MaxConnsPerAddr int
	HandshakeRate   float64
	HandshakeBurst  int
	Limits          *AddrLimiter
	Logger          *slog.Logger
	// OnPanic, if set, is told of each panic recovered while serving a
	// stream (panics.SSE); the panic ended only that stream.
	OnPanic func(where string)

	// testBeforeDrain, set by tests, runs before each drain of a stream's
	// queue (to make a write panic).
	testBeforeDrain func(*SSEStream)
}

// SSE serves Server-Sent Events streams for a hub: the fallback for clients
// that cannot open a WebSocket. Each stream is one HTTP response held open,
// so it has a goroutine (the request's); it has the same bounded queue,
// limits and close reasons as a WebSocket connection.
type SSE struct {
	hub     *realtime.Hub
	opts    SSEOptions
	limits  *AddrLimiter
	active  atomic.Int64
	refused atomic.Uint64

	mu      sync.Mutex
	streams map[*SSEStream]struct{}
	closing bool
	done    chan struct{}
	wg      sync.WaitGroup
}

// NewSSE returns an SSE server for hub.
func NewSSE(hub *realtime.Hub, opts SSEOptions) *SSE {
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 15 * time.Second
	}
	if opts.Retry <= 0 {
		opts.Retry = 2 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.MaxConnsPerAddr == 0 {
		opts.MaxConnsPerAddr = DefaultMaxConnsPerAddr
	}
	if opts.HandshakeRate == 0 {
		opts.HandshakeRate = DefaultHandshakeRate
	}
	if opts.HandshakeBurst <= 0 {
		opts.HandshakeBurst = DefaultHandshakeBurst
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	limits := opts.Limits
	if limits == nil {
		limits = newAddrLimiter(opts.MaxConnsPerAddr, opts.HandshakeRate, opts.HandshakeBurst)
	}
	return &SSE{
		hub: hub, opts: opts, limits: limits,
		streams: make(map[*SSEStream]struct{}),
		done:    make(chan struct{}),
	}
}

// Conns returns the number of open streams.
func (s *SSE) Conns() int { return int(s.active.Load()) }

// Refused returns the number of streams refused by the per-address limits.
func (s *SSE) Refused() uint64 { return s.refused.Load() }

// SSEStream is one open event stream.
type SSEStream struct {
	srv  *SSE
	link realtime.Link
	w    http.ResponseWriter
	rc   *http.ResponseController
	cfg  ConnConfig
	wake chan struct{}
	// positions is the stream's place in each of its groups, written as
	// every event's id so that the browser's Last-Event-ID resumes them all.
	positions map[string]*[]byte // group → "epoch:offset"
	order     []string
	id        []byte
	// buf holds one drain's output; it is kept between drains (and let go
	// when a burst made it large) so writing an event allocates nothing.
	buf []byte
}

// Accept answers r with the headers of an event stream and registers the
// connection; the consumer then joins groups and sends its first messages,
// and calls Serve, which holds the stream open until it ends. On error the
// HTTP response has been written.
func (s *SSE) Accept(w http.ResponseWriter, r *http.Request, cfg ConnConfig) (*SSEStream, error) {
	if o := r.Header.Get("Origin"); !originOK(s.opts.AllowedOrigins, o, r.Host) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return nil, ErrOriginNotAllowed
	}
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return nil, ErrServerClosed
	}
	addr := cfg.Addr
	if !addr.IsValid() {
		addr = remoteAddr(r)
	}
	cfg.Addr = addr
	if ok, why, retry := s.limits.admit(addr, s.limits.now()); !ok {
		s.refused.Add(1)
		tooMany(w, why, retry)
		return nil, ErrTooManyConnections
	}
	rc := http.NewResponseController(w)
	// The server's WriteTimeout is meant for ordinary responses; a stream
	// sets a deadline per write instead.
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	st := &SSEStream{srv: s, w: w, rc: rc, cfg: cfg, wake: make(chan struct{}, 1), positions: map[string]*[]byte{}}
	st.link = s.hub.Attach(realtime.ConnConfig{UserID: cfg.UserID, Version: 2, SSE: true, Value: cfg.Value}, st)
	if _, err := w.Write([]byte("retry: " + strconv.FormatInt(s.opts.Retry.Milliseconds(), 10) + "\n\n")); err != nil || rc.Flush() != nil {
		st.finish()
		return nil, errors.New("transport: sse: client went away")
	}
	// Registered under the lock Shutdown sets closing under, so that a
	// stream is either counted before Shutdown waits or refused.
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		st.finish()
		return nil, ErrServerClosed
	}
	s.streams[st] = struct{}{}
	s.active.Add(1)
	s.wg.Add(1)
	s.mu.Unlock()
	return st, nil
}

// Conn is the stream's hub connection.
func (st *SSEStream) Conn() *realtime.Conn { return st.link.Conn() }

// Wake implements realtime.Transport.
func (st *SSEStream) Wake() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// Open runs f, the consumer's first work on the stream (its first messages,
// joining its groups), before Serve. A panic in f closes the connection, so
// Serve then ends the stream at once.
func (st *SSEStream) Open(f func()) {
	defer st.recoverOpen()
	f()
}

func (st *SSEStream) recoverOpen() {
	if p := recover(); p != nil {
		st.srv.panicked(p)
		st.link.Conn().Close(realtime.CloseInternalError, "internal error")
	}
}

// Serve writes the stream until the client goes away, the connection is
// closed (slow consumer, shutdown) or ctx ends. A panic while serving it
// ends only this stream: the browser reconnects with its Last-Event-ID.
func (st *SSEStream) Serve(ctx context.Context) {
	// Deferred before finish, so a panic in the handler's OnClose is
	// caught too.
	defer panics.Recover(st.srv.opts.Logger, st.srv.opts.OnPanic, panics.SSE)
	defer st.finish()
	heartbeat := time.NewTicker(st.srv.opts.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-st.srv.done:
			// Shutdown: what is queued goes out, then the stream ends and the
			// browser reconnects (elsewhere) with its Last-Event-ID.
			st.drain()
			return
		case <-heartbeat.C:
			if !st.write([]byte(": ping\n\n")) {
				return
			}
		case <-st.wake:
			if !st.drain() {
				return
			}
		}
	}
}

// drain writes everything queued; false ends the stream.
func (st *SSEStream) drain() bool {
	if f := st.srv.opts.testBeforeDrain; f != nil {
		f(st)
	}
	for {
		b := st.link.Take()
		if b == nil {
			return true
		}
		frames := b.Frames
		final := b.Final
		if final && len(frames) > 0 {
			frames = frames[:len(frames)-1] // the WebSocket close frame: ending the response is SSE's close
		}
		st.buf = st.buf[:0]
		for _, f := range frames {
			st.buf = st.appendFrame(st.buf, f)
		}
		ok := len(st.buf) == 0 || st.write(st.buf)
		if cap(st.buf) > 64<<10 {
			st.buf = nil
		}
		st.link.Release(b)
		if !ok || final {
			return false
		}
	}
}

// appendFrame appends one message to dst, replacing an event's own
// position ("id: group:epoch:offset") by the stream's position in all its
// groups.
func (st *SSEStream) appendFrame(dst, f []byte) []byte {
	if !bytes.HasPrefix(f, []byte("id: ")) {
		return append(dst, f...)
	}
	line, rest, _ := bytes.Cut(f[4:], []byte("\n"))
	if group, pos, ok := bytes.Cut(line, []byte(":")); ok {
		st.setPosition(group, pos)
	}
	st.id = st.id[:0]
	for i, g := range st.order {
		if i > 0 {
			st.id = append(st.id, ',')
		}
		st.id = append(st.id, g...)
		st.id = append(st.id, ':')
		st.id = append(st.id, *st.positions[g]...)
	}
	dst = append(dst, "id: "...)
	dst = append(dst, st.id...)
	dst = append(dst, '\n')
	return append(dst, rest...)
}

// setPosition records pos as the stream's place in group, reusing the
// group's buffer (a lookup by a []byte key allocates nothing).
func (st *SSEStream) setPosition(group, pos []byte) {
	p := st.positions[string(group)]
	if p == nil {
		p = new([]byte)
		g := string(group)
		st.positions[g] = p
		st.order = append(st.order, g)
	}
	*p = append((*p)[:0], pos...)
}

func (st *SSEStream) write(p []byte) bool {
	_ = st.rc.SetWriteDeadline(time.Now().Add(st.srv.opts.WriteTimeout))
	if _, err := st.w.Write(p); err != nil {
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			st.link.WriteTimedOut()
		}
		return false
	}
	return st.rc.Flush() == nil
}

func (s *SSE) panicked(p any) {
	panics.Report(s.opts.Logger, s.opts.OnPanic, panics.SSE, p)
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func (st *SSEStream) finish() {
	// The stream's slot and registration are given back even if leaving
	// the groups or OnClose panics.
	defer st.forget()
	st.link.Finish()
	if st.cfg.Handler != nil {
		st.cfg.Handler.OnClose(st.link.Conn())
	}
}

// forget releases the stream's per-address slot and unregisters it.
func (st *SSEStream) forget() {
	st.srv.limits.release(st.cfg.Addr)
	st.srv.mu.Lock()
	_, registered := st.srv.streams[st]
	delete(st.srv.streams, st)
	st.srv.mu.Unlock()
	if registered {
		st.srv.active.Add(-1)
		st.srv.wg.Done()
	}
}

// Shutdown ends every stream (each writes what it has queued first; the
// browsers reconnect with their Last-Event-ID) and waits for them, or for
// ctx.
func (s *SSE) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		close(s.done)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
