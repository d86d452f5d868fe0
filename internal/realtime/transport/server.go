// Package transport serves realtime connections over WebSocket.
//
// On Linux an idle connection costs no goroutine: a few poller goroutines
// wait on epoll for readable sockets and hand them to a bounded pool of
// reader workers, which read without blocking and call the Handler. Writes
// are started only when a connection's send queue becomes non-empty: a small
// pool of writers tries one non-blocking vectored write, and a connection
// whose socket is full continues in a goroutine of its own that writes with
// a deadline. Elsewhere (and for connections without a raw file descriptor,
// such as TLS ones) each connection has one reader goroutine.
//
// Liveness: the server pings every connection every PingInterval (25 s by
// default, which also keeps proxies and load balancers from dropping quiet
// connections) and closes a connection it has not heard from (any frame,
// pongs included) for IdleTimeout.
//
// The SSE transport will live beside this one and attach to the same hub
// with realtime.Hub.Attach.
package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/internal/panics"
	"github.com/heraldhq/herald/internal/realtime"
)

// Defaults of Options.
const (
	DefaultMaxMessageSize   = 64 << 10
	DefaultRateLimit        = 20
	DefaultRateBurst        = 40
	DefaultRateStrikes      = 20
	DefaultWriteTimeout     = 10 * time.Second
	DefaultPingInterval     = 25 * time.Second
	DefaultIdleTimeout      = 75 * time.Second
	DefaultCloseTimeout     = 2 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultDrainPeriod      = 10 * time.Second
)

// Options configures a Server. Zero values take the defaults.
type Options struct {
	// MaxMessageSize bounds a client message (all its fragments); a larger
	// one closes the connection with CloseMessageTooBig.
	MaxMessageSize int
	// RateLimit is the sustained number of client messages per second and
	// RateBurst the bucket size. A message over the limit is dropped and
	// reported to the handler (RateLimitHandler).
	RateLimit float64
	RateBurst int
	// RateStrikes is the number of dropped messages, without a pause long
	// enough to refill the bucket, after which the connection is closed with
	// CloseTooManyMessages.
	RateStrikes int
	// WriteTimeout bounds one blocked write; a client that does not read for
	// that long is closed as a slow consumer.
	WriteTimeout time.Duration
	// PingInterval is how often the server pings; IdleTimeout is how long a
	// connection may stay silent (not even a pong) before it is closed.
	PingInterval time.Duration
	IdleTimeout  time.Duration
	// CloseTimeout is how long the server waits for the client's close frame
	// after sending its own.
	CloseTimeout time.Duration
	// HandshakeTimeout bounds writing the upgrade response.
	HandshakeTimeout time.Duration
	// DrainPeriod is the time over which Shutdown spreads the 1012 closes,
	// so clients do not all reconnect at once. It is cut to the context's
	// deadline.
	DrainPeriod time.Duration
	// AllowedOrigins lists the Origin header values accepted on upgrade
	// ("https://app.example.com", "https://*.example.com" or "*"). Empty
	// accepts every origin. Requests without an Origin header (non-browser
	// clients) are accepted.
	AllowedOrigins []string
	// SendBuffer sets SO_SNDBUF of each connection; 0 keeps the OS default.
	// Kernel buffers are not in the process RSS but are per connection
	// memory too.
	SendBuffer int
	// MaxConnsPerAddr bounds the open connections of one client address
	// (IPv6: one /64); HandshakeRate and HandshakeBurst bound its new
	// connections per second. Over a limit the handshake is refused with 429
	// and Retry-After. Negative values disable a limit; zero takes the
	// default.
	MaxConnsPerAddr int
	HandshakeRate   float64
	HandshakeBurst  int
	// Limits, when set, is the per-address limiter to use instead of one
	// built from the three fields above. Give the SSE transport the same one
	// so that an address's WebSocket connections and event streams count
	// together.
	Limits *AddrLimiter
	// Readers is the number of reader workers (default 8 per CPU, at least
	// 16); OnMessage runs on them. Writers is the number of pool writers
	// (default 1 per CPU). Pollers is the number of epoll loops (default 1;
	// negative: no epoll, one reader goroutine per connection, as on other
	// systems).
	Readers, Writers, Pollers int
	// Logger receives the transport's logs (default slog.Default()).
	Logger *slog.Logger
	// OnPanic, if set, is told of each panic the server recovered, by its
	// panics.Wheres name. A panic while reading a connection or in its
	// handler closes that connection with CloseInternalError; one while
	// writing it drops it. Every other connection is served on.
	OnPanic func(where string)

	// testBeforeDrain, set by tests, runs before each drain of a
	// connection's queue (to make a writer panic).
	testBeforeDrain func(*wsConn)
}

// maxMessageLimit bounds MaxMessageSize, so that a frame's size (its header
// plus a length up to the limit) never overflows an int.
const maxMessageLimit = 1 << 30

func (o *Options) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxMessageSize, DefaultMaxMessageSize)
	o.MaxMessageSize = min(o.MaxMessageSize, maxMessageLimit)
	if o.MaxConnsPerAddr == 0 {
		o.MaxConnsPerAddr = DefaultMaxConnsPerAddr
	}
	if o.HandshakeRate == 0 {
		o.HandshakeRate = DefaultHandshakeRate
	}
	def(&o.HandshakeBurst, DefaultHandshakeBurst)
	if o.RateLimit <= 0 {
		o.RateLimit = DefaultRateLimit
	}
	def(&o.RateBurst, DefaultRateBurst)
	def(&o.RateStrikes, DefaultRateStrikes)
	defDur(&o.WriteTimeout, DefaultWriteTimeout)
	defDur(&o.PingInterval, DefaultPingInterval)
	defDur(&o.IdleTimeout, DefaultIdleTimeout)
	defDur(&o.CloseTimeout, DefaultCloseTimeout)
	defDur(&o.HandshakeTimeout, DefaultHandshakeTimeout)
	if o.DrainPeriod < 0 {
		o.DrainPeriod = 0
	} else if o.DrainPeriod == 0 {
		o.DrainPeriod = DefaultDrainPeriod
	}
	cpu := runtime.GOMAXPROCS(0)
	def(&o.Readers, max(16, 8*cpu))
	def(&o.Writers, cpu)
	if o.Pollers == 0 {
		o.Pollers = 1
	} else if o.Pollers < 0 {
		o.Pollers = 0 // reader goroutine per connection
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Handler is the consumer's side of a connection.
type Handler interface {
	// OnMessage receives a complete text message from the client. It is
	// called from a reader worker, never concurrently for one connection,
	// and may block briefly (a database lookup). data is only valid until
	// OnMessage returns.
	OnMessage(c *realtime.Conn, data []byte)
	// OnClose is called once when the connection is gone, after it left all
	// its groups.
	OnClose(c *realtime.Conn)
}

// RateLimitHandler may be implemented by a Handler to learn that a client
// message was dropped by the rate limit (to answer with a rate_limited
// error). It is called like OnMessage. After Options.RateStrikes such
// messages in a row the connection is closed with CloseTooManyMessages.
type RateLimitHandler interface {
	OnRateLimited(c *realtime.Conn)
}

// ConnConfig describes the connection being upgraded.
type ConnConfig struct {
	// UserID is the authenticated user, 0 for anonymous.
	UserID int64
	// Version is the protocol version, 1 (default) or 2.
	Version int
	// Value is the consumer's per-connection state (realtime.Conn.Value). Set
	// it here rather than after Upgrade: OnMessage may run as soon as Upgrade
	// returns.
	Value any
	// Handler receives the connection's messages and its end.
	Handler Handler
	// Open, when set, runs once the connection is registered and before
	// anything is written to it or read from it: what it sends (a snapshot,
	// replayed history) goes out in one write with the handshake response,
	// and the client's first messages are handled after it returns.
	Open func(c *realtime.Conn)
	// Addr is the client's address for the per-address limits; the zero
	// value means the request's RemoteAddr (set it from X-Forwarded-For
	// behind a trusted proxy).
	Addr netip.Addr
}

// Errors of Upgrade.
var (
	ErrServerClosed     = errors.New("transport: server closed")
	ErrOriginNotAllowed = errors.New("transport: origin not allowed")
	// ErrTooManyConnections means a per-address limit refused the handshake.
	ErrTooManyConnections = errors.New("transport: too many connections from this address")
)

const regShards = 32

// Server serves WebSocket connections for a hub.
type Server struct {
	hub   *realtime.Hub
	opts  Options
	log   *slog.Logger
	start time.Time
	ids   atomic.Uint32

	reg [regShards]struct {
		mu sync.Mutex
		m  map[uint32]*wsConn
	}
	active atomic.Int64

	readq  chan *wsConn
	writeq chan *wsConn
	// queueEmptied is when a pool writer last found writeq empty (s.now()).
	queueEmptied atomic.Int64
	done         chan struct{}
	wg           sync.WaitGroup // long-lived goroutines
	slowWG       sync.WaitGroup // per-connection goroutines (slow writers, fallback readers)

	closing  atomic.Bool
	stopOnce sync.Once
	pollers  []*poller

	rateLimited atomic.Uint64
	limits      *AddrLimiter
	refused     atomic.Uint64 // handshakes refused by the per-address limits
}

// NewServer starts the pollers and worker pools of a server for hub. Close or
// Shutdown stops them.
func NewServer(hub *realtime.Hub, opts Options) (*Server, error) {
	opts.setDefaults()
	s := &Server{
		hub:   hub,
		opts:  opts,
		log:   opts.Logger,
		start: time.Now(),
		readq: make(chan *wsConn, 1024),
		// Wakes of a whole room arrive at once; a queue holding one per
		// connection of a big room keeps them on the pool writers instead of
		// a goroutine each (8 bytes a slot).
		writeq: make(chan *wsConn, 1<<16),
		done:   make(chan struct{}),
		limits: opts.Limits,
	}
	if s.limits == nil {
		s.limits = newAddrLimiter(opts.MaxConnsPerAddr, opts.HandshakeRate, opts.HandshakeBurst)
	}
	for i := range s.reg {
		s.reg[i].m = make(map[uint32]*wsConn)
	}
	ps, err := s.startPollers(opts.Pollers)
	if err != nil {
		return nil, fmt.Errorf("transport: start pollers: %w", err)
	}
	s.pollers = ps
	for range opts.Readers {
		s.wg.Add(1)
		go s.reader()
	}
	for i := range opts.Writers {
		s.wg.Add(1)
		go s.writer(i > 0 && i == opts.Writers-1)
	}
	s.wg.Add(1)
	go s.pinger()
	return s, nil
}

// Hub returns the server's hub.
func (s *Server) Hub() *realtime.Hub { return s.hub }

// Conns returns the number of open connections.
func (s *Server) Conns() int { return int(s.active.Load()) }

// Refused returns the number of handshakes refused by the per-address limits.
func (s *Server) Refused() uint64 { return s.refused.Load() }

// RateLimited returns the number of client messages dropped by the rate
// limit.
func (s *Server) RateLimited() uint64 { return s.rateLimited.Load() }

// Upgrade answers the WebSocket handshake of r and registers the connection.
// The consumer authenticates before calling it; after it the HTTP handler
// returns without writing. On error the HTTP response has been written.
func (s *Server) Upgrade(w http.ResponseWriter, r *http.Request, cfg ConnConfig) (*realtime.Conn, error) {
	if cfg.Handler == nil {
		panic("transport: Upgrade without a Handler")
	}
	if s.closing.Load() {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return nil, ErrServerClosed
	}
	if o := r.Header.Get("Origin"); !originOK(s.opts.AllowedOrigins, o, r.Host) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return nil, ErrOriginNotAllowed
	}
	addr := cfg.Addr
	if !addr.IsValid() {
		addr = remoteAddr(r)
	}
	slot, ok, why, retry := s.limits.admitSlot(addr, s.limits.now())
	if !ok {
		s.refused.Add(1)
		tooMany(w, why, retry)
		return nil, ErrTooManyConnections
	}
	admitted := true
	defer func() {
		if admitted {
			s.limits.releaseSlot(slot) // the upgrade failed before the connection existed
		}
	}()
	// The upgrader writes its 101 response into memory, not the socket: it
	// heads the connection's queue and goes out with Open's messages in one
	// write, which saves a system call on each side of every handshake.
	hw := &heldResponse{ResponseWriter: w}
	u := ws.HTTPUpgrader{Timeout: s.opts.HandshakeTimeout}
	nc, rw, _, err := u.Upgrade(r, hw)
	if err != nil {
		if nc != nil {
			// The upgrader's error response is held too.
			_ = nc.SetWriteDeadline(time.Now().Add(s.opts.CloseTimeout))
			_, _ = nc.Write(hw.held.Bytes())
			nc.Close()
		}
		return nil, fmt.Errorf("transport: upgrade: %w", err)
	}
	// Frames the client sent right behind its handshake are in the HTTP
	// server's read buffer; keep them and let the buffer go.
	var pending []byte
	if n := rw.Reader.Buffered(); n > 0 {
		p, _ := rw.Reader.Peek(n)
		pending = append([]byte(nil), p...)
	}
	if s.opts.SendBuffer > 0 {
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetWriteBuffer(s.opts.SendBuffer)
		}
	}
	wc := &wsConn{srv: s, h: cfg.Handler, nc: nc, fd: -1, tokens: float32(s.opts.RateBurst), slot: slot}
	admitted = false // the slot is the connection's now, released by teardown
	wc.link = s.hub.Attach(realtime.ConnConfig{UserID: cfg.UserID, Version: cfg.Version, Value: cfg.Value}, wc)
	// Nothing is written until Open has returned: this goroutine drains
	// the queue then, the 101 response first.
	wc.link.Hold()
	_ = wc.link.Push(hw.held.Bytes())
	wc.lastRead.Store(s.now())
	wc.rlLast = s.now()
	s.attachFD(wc)
	s.register(wc)
	conn := wc.link.Conn()
	if s.closing.Load() {
		// Shutdown began meanwhile and may have missed this connection.
		conn.Close(realtime.CloseServiceRestart, "service restart")
	}
	if cfg.Open != nil {
		s.open(wc, cfg.Open)
	}
	s.write(wc)
	if err := s.serve(wc, pending); err != nil {
		wc.teardown()
		return nil, fmt.Errorf("transport: serve connection: %w", err)
	}
	return wc.link.Conn(), nil
}

// open runs the consumer's Open on the handshake's goroutine. A panic in it
// closes the connection with CloseInternalError, after the handshake
// response and whatever Open queued before it panicked.
func (s *Server) open(wc *wsConn, open func(*realtime.Conn)) {
	defer s.recoverOpen(wc)
	open(wc.link.Conn())
}

func (s *Server) recoverOpen(wc *wsConn) {
	if p := recover(); p != nil {
		s.panicked(panics.Handshake, p)
		wc.link.Conn().Close(realtime.CloseInternalError, "internal error")
	}
}

// serve starts reading wc: through a poller when the socket's descriptor is
// usable, else with a reader goroutine.
func (s *Server) serve(wc *wsConn, pending []byte) error {
	if ok, err := s.pollConn(wc, pending); ok || err != nil {
		return err
	}
	s.slowWG.Add(1)
	go wc.readLoop(pending)
	return nil
}

// heldResponse lets the WebSocket upgrader hijack the connection but keeps
// what it then writes (the 101 response, or an error response) in held.
type heldResponse struct {
	http.ResponseWriter
	held bytes.Buffer
}

func (h *heldResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err == nil {
		h.held.Grow(160) // a 101 response is ~130 bytes
		rw.Writer.Reset(&h.held)
	}
	return nc, rw, err
}

func (h *heldResponse) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// now returns the server's monotonic clock in nanoseconds.
func (s *Server) now() int64 { return int64(time.Since(s.start)) }

func (s *Server) register(wc *wsConn) {
	id := s.ids.Add(1)
	for id == 0 || id == wakeID {
		id = s.ids.Add(1)
	}
	wc.id = id
	sh := &s.reg[id%regShards]
	sh.mu.Lock()
	sh.m[id] = wc
	sh.mu.Unlock()
	s.active.Add(1)
}

func (s *Server) unregister(wc *wsConn) {
	sh := &s.reg[wc.id%regShards]
	sh.mu.Lock()
	if sh.m[wc.id] == wc {
		delete(sh.m, wc.id)
	}
	sh.mu.Unlock()
	s.active.Add(-1)
}

func (s *Server) lookup(id uint32) *wsConn {
	sh := &s.reg[id%regShards]
	sh.mu.Lock()
	wc := sh.m[id]
	sh.mu.Unlock()
	return wc
}

// snapshot returns the connections of registry shard i (all shards for -1).
func (s *Server) snapshot(i int) []*wsConn {
	var out []*wsConn
	for j := range s.reg {
		if i >= 0 && j != i {
			continue
		}
		sh := &s.reg[j]
		sh.mu.Lock()
		for _, wc := range sh.m {
			out = append(out, wc)
		}
		sh.mu.Unlock()
	}
	return out
}

func (s *Server) reader() {
	defer s.wg.Done()
	sc := newScratch()
	for {
		select {
		case wc := <-s.readq:
			s.read(wc, sc)
		case <-s.done:
			return
		}
	}
}

// read serves a readable connection on a reader worker.
func (s *Server) read(wc *wsConn, sc *scratch) {
	defer s.recoverRead(wc)
	wc.onReadable(sc)
}

// readPending handles the frames the client sent right behind its
// handshake, before anything else reads the connection; false when reading
// is over.
func (s *Server) readPending(wc *wsConn, pending []byte, sc *scratch) (more bool) {
	more = true
	defer s.recoverRead(wc)
	if err := wc.feed(pending, sc); err != nil {
		wc.readFailed(err)
		more = reading(err)
	}
	return more
}

// recoverRead is deferred by whatever reads a connection: a panic in the
// frame reader or in the handler's OnMessage closes that connection with
// CloseInternalError, and the goroutine goes on with the others.
func (s *Server) recoverRead(wc *wsConn) {
	if p := recover(); p != nil {
		s.panicked(panics.WSReader, p)
		wc.internalError()
	}
}

// write drains wc's queue without blocking (a pool writer, or the
// handshake's goroutine).
func (s *Server) write(wc *wsConn) {
	defer s.recoverWrite(wc)
	wc.drain(false)
}

// recoverWrite is deferred by whatever writes a connection: after a panic
// the connection is dropped, since its stream may have stopped in the
// middle of a frame and no close frame can follow that.
func (s *Server) recoverWrite(wc *wsConn) {
	if p := recover(); p != nil {
		s.panicked(panics.WSWriter, p)
		wc.teardown()
	}
}

func (s *Server) panicked(where string, p any) {
	panics.Report(s.log, s.opts.OnPanic, where, p)
}

// Pool writers never block, so with one per P a long fan-out keeps every P
// busy, and the goroutines waiting for the network (the REST request that
// writes the next event, the database's and Redis's answers, the relay)
// only run when the runtime's monitor polls for them, every 10 ms, for each
// step. One writer is therefore a reserve: it helps with bursts, but once
// the queue has not been empty for writerBurst it steps back, leaving a P
// to the rest of the pipeline until the queue empties again. At 10,000
// subscribers and 15 events/s on two cores that halved a REST write's
// median time or better and cut the fan-out's p99 by about a fifth, while
// a short burst (a quiet room's event) still gets every writer.
const (
	writerBurst = 20 * time.Millisecond
	reserveRest = time.Millisecond
)

func (s *Server) writer(reserve bool) {
	defer s.wg.Done()
	var rest *time.Timer
	if reserve {
		rest = time.NewTimer(reserveRest)
		rest.Stop()
	}
	for {
		wc, ok := s.nextWrite()
		if !ok {
			return
		}
		s.write(wc)
		if reserve && !s.restWhileBusy(rest) {
			return
		}
	}
}

// nextWrite returns the next connection with frames to write, waiting for
// one; false once the server stops.
func (s *Server) nextWrite() (*wsConn, bool) {
	select {
	case wc := <-s.writeq:
		return wc, true
	default:
	}
	select {
	case wc := <-s.writeq:
		s.queueEmptied.Store(s.now()) // it was empty until now
		return wc, true
	case <-s.done:
		return nil, false
	}
}

// restWhileBusy holds the reserve writer back while the queue has not been
// empty for writerBurst; false once the server stops.
func (s *Server) restWhileBusy(rest *time.Timer) bool {
	for time.Duration(s.now()-s.queueEmptied.Load()) > writerBurst {
		rest.Reset(reserveRest)
		select {
		case <-rest.C:
		case <-s.done:
			return false
		}
	}
	return true
}

// pinger pings every connection once per PingInterval, one registry shard
// at a time so the pings (and the writes they cause) are spread out, and
// closes connections silent for longer than IdleTimeout.
func (s *Server) pinger() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.PingInterval / regShards)
	defer t.Stop()
	for i := 0; ; i = (i + 1) % regShards {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		s.ping(i)
	}
}

// ping pings the connections of registry shard i and closes the silent
// ones.
func (s *Server) ping(i int) {
	defer panics.Recover(s.log, s.opts.OnPanic, panics.WSWriter)
	now := s.now()
	for _, wc := range s.snapshot(i) {
		if time.Duration(now-wc.lastRead.Load()) > s.opts.IdleTimeout {
			wc.closeWithTimeout(realtime.CloseGoingAway, "idle timeout")
			continue
		}
		_ = wc.link.Push(ws.CompiledPing)
	}
}

// Shutdown stops accepting connections, closes every connection with
// CloseServiceRestart spread over the drain period (cut to ctx's deadline),
// waits for them to end and stops all goroutines. Connections still open
// when ctx is done are dropped, and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.shutdown(ctx, s.opts.DrainPeriod)
}

// Close is Shutdown without spreading: every connection is sent
// CloseServiceRestart at once.
func (s *Server) Close(ctx context.Context) error {
	return s.shutdown(ctx, 0)
}

func (s *Server) shutdown(ctx context.Context, period time.Duration) error {
	s.closing.Store(true)
	conns := s.snapshot(-1)
	if dl, ok := ctx.Deadline(); ok {
		// Leave a fifth of the time for the last clients to answer.
		period = min(period, time.Until(dl)*4/5)
	}
	s.closeSpread(ctx, conns, period)
	var err error
	// Wait for the close handshakes; each one is bounded by the close and
	// write timeouts.
	for s.active.Load() > 0 {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			for _, wc := range s.snapshot(-1) {
				wc.teardown()
			}
		case <-time.After(5 * time.Millisecond):
		}
	}
	s.stop()
	return err
}

// minCloseGap is the least time between two batches of closes: one timer
// wake per batch, not per connection, however many connections there are.
const minCloseGap = 10 * time.Millisecond

// closeBatches is how many batches closeSpread sends n closes in over
// period: one per connection while they are at least minCloseGap apart,
// fewer and bigger beyond that, one when there is no time to spread over.
func closeBatches(n int, period time.Duration) int {
	return max(1, min(n, int(period/minCloseGap)))
}

// closeSpread sends CloseServiceRestart to conns in closeBatches batches
// spread evenly over period: batch k of b goes out at period·k/b after the
// start, so the first closes at once and the last a batch's gap before
// period ends, whatever the count. Each batch waits for its own time, not
// for a tick after the previous one, so slow wakes do not add up. When ctx
// ends, the rest are closed at once.
func (s *Server) closeSpread(ctx context.Context, conns []*wsConn, period time.Duration) {
	n := len(conns)
	if n == 0 {
		return
	}
	b := closeBatches(n, period)
	start := time.Now()
	timer := time.NewTimer(period)
	defer timer.Stop()
	for k := range b {
		if wait := time.Until(start.Add(batchAt(k, b, period))); wait > 0 && ctx.Err() == nil {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
		}
		for _, wc := range conns[k*n/b : (k+1)*n/b] {
			wc.closeWithTimeout(realtime.CloseServiceRestart, "service restart")
		}
	}
}

// batchAt is when batch k of b is due, counted from the start of a spread
// over period.
func batchAt(k, b int, period time.Duration) time.Duration {
	return time.Duration(int64(period) * int64(k) / int64(b))
}

func (s *Server) stop() {
	s.stopOnce.Do(func() {
		close(s.done)
		s.stopPollers()
		s.wg.Wait()
		s.closePollers()
		// Any connection that slipped in has been torn down by now or is
		// torn down here; its goroutines end with it.
		for _, wc := range s.snapshot(-1) {
			wc.teardown()
		}
		s.slowWG.Wait()
	})
}
