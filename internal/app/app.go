// Package app assembles herald from its parts: database, platform, REST API,
// and the HTTP server around them. cmd/herald and end-to-end tests both
// start herald through it.
package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/apikey"
	"github.com/heraldhq/herald/internal/apptoken"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/channelsredis"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/connect"
	"github.com/heraldhq/herald/internal/consumers"
	"github.com/heraldhq/herald/internal/demo"
	"github.com/heraldhq/herald/internal/eventlog"
	"github.com/heraldhq/herald/internal/groups"
	"github.com/heraldhq/herald/internal/media"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/panics"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/layer"
	"github.com/heraldhq/herald/internal/realtime/transport"
	"github.com/heraldhq/herald/internal/relay"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/version"
	"github.com/heraldhq/herald/web"
)

// Option adjusts how New builds an App.
type Option func(*App)

// WithPasswordParams sets the argon2id cost (tests use a cheap one; hashes
// keep their own parameters, so any cost verifies later).
func WithPasswordParams(p auth.PasswordParams) Option {
	return func(a *App) { a.hasher = auth.Hasher{Params: p} }
}

// WithWebSocketOptions adjusts the WebSocket transport's options after
// herald set them from its configuration. Tests lengthen its timeouts, so
// that on a busy machine what they test, not the clock, ends a connection.
func WithWebSocketOptions(f func(*transport.Options)) Option {
	return func(a *App) { a.tuneWS = f }
}

// WithConsumersConfig adjusts the real-time endpoints' configuration after
// herald set it (tests lower its bounds).
func WithConsumersConfig(f func(*consumers.Config)) Option {
	return func(a *App) { a.tuneConsumers = f }
}

// WithImageLimits bounds uploaded images' dimensions and concurrent decodes
// (fuzzing lowers them, so each input is quick).
func WithImageLimits(l media.Limits) Option {
	return func(a *App) { a.imageLimits = l }
}

// App is a running herald's parts.
type App struct {
	hasher    auth.Hasher
	cfg       config.Config
	log       *slog.Logger
	db        *store.DB
	platform  *platform.Platform
	api       *api.Server
	hub       *realtime.Hub
	ws        *transport.Server
	sse       *transport.SSE
	consumers *consumers.Consumers
	relay     *relay.Relay
	// channels is the membership of a Django app's channel layer, when
	// --channels-redis names one.
	channels *channelsredis.Member
	eventLog *eventlog.Log
	metrics  *metrics.Metrics
	// groups are the namespaces: the built-in ones and the config file's.
	groups    *groups.Registry
	started   time.Time
	published atomic.Uint64
	handler   http.Handler
	media     *media.Dir // uploaded images (--media-dir)
	// imageLimits bound what an upload may decode to (WithImageLimits).
	imageLimits media.Limits
	// draining is set when shutdown begins: responses say Connection:
	// close and /readyz answers 503.
	draining atomic.Bool
	// readyFlight is the readiness check in flight, which /readyz and
	// herald_ready calls share (sharedCheck).
	readyFlight singleflight.Group

	// What WithWebSocketOptions and WithConsumersConfig adjust.
	tuneWS        func(*transport.Options)
	tuneConsumers func(*consumers.Config)
}

// New opens the database, migrates it, loads demo data when asked and builds
// the HTTP handler. Close releases what it opened.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opts ...Option) (*App, error) {
	db, err := OpenDB(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: log, db: db}
	for _, o := range opts {
		o(a)
	}
	if err := a.init(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return a, nil
}

// OpenDB opens the database cfg names, with at most cfg.DBMaxConns
// connections. The folder of a SQLite file is created when missing, which
// log says.
func OpenDB(ctx context.Context, cfg config.Config, log *slog.Logger) (*store.DB, error) {
	if path, ok := strings.CutPrefix(cfg.DB, "sqlite:"); ok && path != "" && path != ":memory:" {
		dir := filepath.Dir(path)
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("create the database's folder: %w", err)
			}
			log.Info("created the database's folder", "path", dir)
		}
	}
	db, err := store.Open(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	if cfg.DBMaxConns > 0 {
		db.SetMaxConns(cfg.DBMaxConns)
	}
	return db, nil
}

func (a *App) init(ctx context.Context) error {
	applied, err := a.db.Migrate(ctx)
	if err != nil {
		return err
	}
	for _, m := range applied {
		a.log.Info("applied migration", "name", m)
	}
	secret := []byte(a.cfg.JWTSecret)
	if len(secret) == 0 {
		if secret, err = auth.LoadOrCreateSecret(a.cfg.SecretPath()); err != nil {
			return fmt.Errorf("jwt secret: %w", err)
		}
	}
	tokens, err := auth.NewIssuer(secret, a.cfg.AccessTTL, a.cfg.RefreshTTL)
	if err != nil {
		return fmt.Errorf("jwt issuer: %w", err)
	}
	if a.groups, err = groups.New(a.cfg.Namespaces); err != nil {
		return fmt.Errorf("namespaces: %w", err)
	}
	a.platform, err = platform.New(a.db, platform.Options{
		Hasher: a.hasher, ValidatePassword: auth.ValidatePassword,
		HashGate:  auth.NewHashGate(a.cfg.PasswordHashes, auth.DefaultHashWait),
		Committed: func(parts uint64) { a.relay.NotifyParts(parts) },
		Parts:     a.cfg.OutboxPartitions,
		Groups:    a.groups,
	})
	if err != nil {
		return err
	}
	if err := a.initRealtime(tokens); err != nil {
		return err
	}
	if err := a.initChannelsRedis(ctx); err != nil {
		return err
	}
	if a.cfg.Demo {
		loaded, err := demo.Load(ctx, a.platform)
		if err != nil {
			return err
		}
		if loaded {
			a.log.Info("loaded demo data", "users", demo.Users, "password", demo.Password)
		}
	}
	if a.media, err = media.OpenDir(a.cfg.MediaPath()); err != nil {
		return err
	}
	a.api, err = api.New(api.Config{
		Platform: a.platform, Tokens: tokens, Logger: a.log, TrustProxy: a.cfg.TrustProxy,
		Throttle:             auth.NewThrottle(auth.ThrottleConfig{}),
		RegistrationsPerHour: a.cfg.RegistrationsPerHour,
		Demo:                 a.cfg.Demo,
		AllowedOrigins:       a.cfg.AllowedOrigins,
		APIKeys:              apikey.New(a.db, a.groups, nil),
		Groups:               a.groups,
		PublishMaxData:       a.cfg.PublishMaxData,
		PublishRate:          a.cfg.PublishRate,
		Media:                a.media,
		MaxImageBytes:        a.cfg.MaxImageBytes,
		ImageLimits:          a.imageLimits,
		Admins:               a.cfg.Admins, OpsStats: a.opsStats,
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", a.api)
	a.consumers.Register(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", a.ready)
	mux.Handle(media.URLPrefix, media.Handler(a.media, a.log))
	if a.cfg.PublicMetrics {
		mux.Handle("GET /metrics", a.metrics.Handler())
	} else {
		mux.Handle("GET /metrics", http.NotFoundHandler()) // on the admin address only
	}
	// Everything else is the web app (its pages route in the browser).
	mux.Handle("/", web.Handler())
	a.handler = chain(mux, a.log, a.metrics, a.cfg.AllowedOrigins, &a.draining, a.cfg.TrustProxy)
	return nil
}

// initRealtime builds the hub on the configured channel layer, the WebSocket
// transport, the seeds' consumers and the outbox relay that feeds them.
func (a *App) initRealtime(tokens *auth.Issuer) error {
	var err error
	// The parts below count the panics they recover here.
	a.metrics = metrics.New()
	// The database is the event log; the channel layer reads from it what
	// it does not hold.
	// Each group keeps the history window of its namespace.
	window := a.groups.Window
	largest := layer.DefaultHistorySize
	for _, ns := range a.cfg.Namespaces {
		largest = max(largest, ns.HistorySize)
	}
	a.eventLog = eventlog.New(a.db, eventlog.Options{Window: window, MaxEvents: 2 * largest})
	a.hub, err = realtime.NewHub(realtime.HubOptions{
		// A resume may replay a whole history window (1,000 events, or a
		// namespace's larger one) on top of the live queue bound; a client
		// cut off at the live bound can therefore always catch up on what
		// it lost while it is in the window.
		MaxReplayFrames: 2 * largest,
		MaxReplayBytes:  16 << 20,
		Logger:          a.log,
		Observe:         func(m layer.Message) bool { return a.consumers.Observe(m) },
		// With Redis, a room whose clients all dropped at once stays
		// subscribed while they come back, so their resumes are replayed
		// here instead of from Redis.
		UnsubscribeDelay: a.unsubscribeDelay(),
		OnPanic:          a.metrics.Panicked,
	}, a.newLayer)
	if err != nil {
		return err
	}
	burst := a.cfg.HandshakeRate * 2
	if a.cfg.HandshakeRate < 0 {
		burst = 0
	}
	// One limiter: an address's WebSocket connections and event streams
	// count together.
	limits := transport.NewAddrLimiter(a.cfg.MaxConnsPerAddr, float64(a.cfg.HandshakeRate), burst)
	wo := transport.Options{
		AllowedOrigins: a.cfg.AllowedOrigins,
		Limits:         limits,
		Logger:         a.log,
		OnPanic:        a.metrics.Panicked,
		// The closes are spread over the whole grace period (less the part
		// Shutdown keeps for the last close handshakes).
		DrainPeriod: a.cfg.ShutdownGrace,
	}
	if wo.DrainPeriod <= 0 {
		wo.DrainPeriod = -1 // no grace: close at once
	}
	if a.tuneWS != nil {
		a.tuneWS(&wo)
	}
	a.ws, err = transport.NewServer(a.hub, wo)
	if err != nil {
		a.hub.Close()
		return fmt.Errorf("websocket server: %w", err)
	}
	a.sse = transport.NewSSE(a.hub, transport.SSEOptions{
		AllowedOrigins: a.cfg.AllowedOrigins,
		Limits:         limits,
		Logger:         a.log,
		OnPanic:        a.metrics.Panicked,
	})
	cc := consumers.Config{Platform: a.platform, Tokens: tokens, Hub: a.hub, WebSocket: a.ws, SSE: a.sse, Logger: a.log, TrustProxy: a.cfg.TrustProxy,
		OnPanic: a.metrics.Panicked, Groups: a.groups}
	if a.cfg.AppTokenSecret != "" || len(a.cfg.AppTokenKeyPEM) > 0 {
		if cc.AppTokens, err = apptoken.New(apptoken.Config{
			HMACSecret: []byte(a.cfg.AppTokenSecret), PublicKeysPEM: a.cfg.AppTokenKeyPEM,
			Issuer: a.cfg.AppTokenIssuer, Audience: a.cfg.AppTokenAudience,
		}); err != nil {
			a.hub.Close()
			return fmt.Errorf("app tokens: %w", err)
		}
	}
	if a.cfg.ConnectURL != "" {
		cc.Connect = connect.New(a.cfg.ConnectURL, connect.Options{Timeout: a.cfg.ConnectTimeout, MaxGroups: consumers.DefaultMaxGroups})
	}
	if a.tuneConsumers != nil {
		a.tuneConsumers(&cc)
	}
	a.consumers = consumers.New(cc)
	a.metrics.Watch(metrics.Sources{Hub: a.hub, WebSocket: a.ws, SSE: a.sse, Ready: a.readiness})
	a.relay = relay.New(a.db, a.hub, relay.Options{Logger: a.log, Failed: a.metrics.PublishFailed, OnPanic: a.metrics.Panicked,
		Window: a.groups.Window, Backlog: a.metrics.OutboxBacklog, Partitions: a.cfg.OutboxPartitions,
		// A publish's answer gives its events' positions. The API is
		// built after the relay, and before the relay runs.
		Numbered: func(id int64, group, epoch string, offset int64) {
			if a.api != nil {
				a.api.Numbered(id, group, epoch, offset)
			}
		},
		Published: func(typ string, delay time.Duration) {
			a.published.Add(1)
			a.metrics.Published(typ, delay)
		}})
	a.started = time.Now()
	return nil
}

// opsStats is the snapshot behind the operations page.
func (a *App) opsStats(ctx context.Context) api.OpsStats {
	hs := a.hub.Stats()
	st := api.OpsStats{
		UptimeSeconds:     time.Since(a.started).Seconds(),
		Connections:       map[string]int{"websocket": a.ws.Conns(), "sse": a.sse.Conns()},
		Groups:            hs.Groups,
		EventsPublished:   a.published.Load(),
		EventsReceived:    hs.EventsIn,
		Deliveries:        hs.FramesOut,
		Dropped:           hs.Dropped,
		SlowConsumers:     hs.SlowConsumers,
		RateLimited:       a.ws.RateLimited(),
		HandshakesRefused: a.ws.Refused() + a.sse.Refused(),
	}
	_ = a.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM outbox WHERE NOT published").Scan(&st.OutboxPending)
	return st
}

// inMemoryLayer reports whether the configured channel layer is the
// in-process one.
func (a *App) inMemoryLayer() bool { return a.cfg.Layer == "" || a.cfg.Layer == "memory" }

// unsubscribeDelay is how long a group with no local members stays
// subscribed to the channel layer: a while on Redis, where subscribing
// again costs round trips and misses what was published meanwhile; not at
// all on the in-memory layer, where it costs neither.
func (a *App) unsubscribeDelay() time.Duration {
	if a.inMemoryLayer() {
		return 0
	}
	return 10 * time.Second
}

// newLayer builds the configured channel layer around the hub's delivery
// function.
func (a *App) newLayer(deliver func(layer.Message)) (layer.Layer, error) {
	if a.inMemoryLayer() {
		return layer.NewMemory(deliver, layer.MemoryOptions{Logger: a.log, OnPanic: a.metrics.Panicked, Log: a.eventLog, Window: a.groups.Window,
			Redacts: redacts}), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return layer.NewRedis(ctx, a.cfg.Layer, deliver, layer.RedisOptions{
		Prefix:  a.cfg.RedisPrefix,
		Sharded: a.cfg.RedisSharded,
		Log:     a.eventLog,
		Window:  a.groups.Window,
		Redacts: redacts,
		Logger:  a.log,
		OnPanic: a.metrics.Panicked,
		// Events this process could not receive are gone for its members:
		// they reconnect (1012, after a random delay) and resume, which
		// tells them recovered=false where they missed something.
		OnLost: func(group string) {
			for _, c := range a.hub.Members(group) {
				c.Close(realtime.CloseServiceRestart, "event history lost; reconnect and resume")
			}
		},
	})
}

// redacts says which events withdraw earlier ones of their group: a removed
// comment's and a deleted campaign's, whose earlier events the platform
// rewrote in the event log (platform.removeComment, DeleteCampaign). The
// layers drop the group's cached window as they pass, so a replay reads the
// rewritten log.
func redacts(m layer.Message) bool {
	// Only herald records these in a campaign's room
	// (platform.checkExternal); elsewhere the types are any app's own.
	kind, _, _ := platform.ParseGroup(m.Group)
	return (m.Type == platform.EventCommentRemoved || m.Type == platform.EventCampaignDeleted) && kind == platform.GroupCampaign
}

// ready answers 200 when the database and the channel layer answer, 503
// naming what does not otherwise: a load balancer then sends no new clients.
func (a *App) ready(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := a.readiness(r.Context()); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintln(w, err)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// readiness is the check behind /readyz and herald_ready: nil when the
// database and the channel layer answer, else what does not (one line
// each), or that the process is shutting down.
func (a *App) readiness(ctx context.Context) error {
	if a.draining.Load() {
		// A load balancer sends no new clients to a process shutting down.
		return errors.New("shutting down")
	}
	return a.sharedCheck(ctx, a.ping)
}

// sharedCheck runs check within metrics.ReadyTimeout, or, when a run is
// already in flight, waits for that run's result: however many probes and
// scrapes come at once, one check runs at a time, holding one database
// connection and one Redis command, and none waits longer than the bound.
func (a *App) sharedCheck(ctx context.Context, check func(context.Context) error) error {
	_, err, _ := a.readyFlight.Do("", func() (any, error) {
		// The run serves every caller waiting for it, so the first one's
		// cancellation does not end it; its own bound does.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), metrics.ReadyTimeout)
		defer cancel()
		return nil, check(ctx)
	})
	return err
}

// ping asks the database and the channel layer for an answer.
func (a *App) ping(ctx context.Context) error {
	var failed []error
	if err := a.db.PingContext(ctx); err != nil {
		failed = append(failed, fmt.Errorf("database: %w", err))
	}
	if p, ok := a.hub.Layer().(interface{ Ping(context.Context) error }); ok {
		if err := p.Ping(ctx); err != nil {
			failed = append(failed, fmt.Errorf("channel layer: %w", err))
		}
	}
	return errors.Join(failed...)
}

// Handler is herald's whole HTTP surface.
func (a *App) Handler() http.Handler { return a.handler }

// Platform is the domain the app serves.
func (a *App) Platform() *platform.Platform { return a.platform }

// API is the REST API server.
func (a *App) API() *api.Server { return a.api }

// Listen opens the TCP listener for Serve on addr. Accepted connections get
// no TCP keep-alive: every kind of connection herald holds already proves
// its peer alive or times out (WebSocket pings and the idle timeout, SSE
// heartbeats, the HTTP idle timeout), and the four socket options Go would
// otherwise set are a third of the system calls of a WebSocket handshake.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// ListenURL is the URL a person can open for a server listening on addr:
// http://localhost:PORT when it listens on every interface (an empty host,
// 0.0.0.0 or ::), otherwise its address, an IPv6 one in brackets.
func ListenURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Serve accepts connections on ln until ctx ends, then shuts down gracefully.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	ln = &closeOnceListener{Listener: ln}
	conns := &httpConns{closed: make(chan struct{}, 1)}
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ConnState:         conns.track,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if a.cfg.AdminAddr != "" {
		stopAdmin, err := a.serveAdmin()
		if err != nil {
			_ = srv.Close()
			<-errc
			return err
		}
		defer stopAdmin()
	}
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	relayDone := make(chan struct{})
	go func() {
		defer close(relayDone)
		_ = a.relay.Run(relayCtx)
	}()
	presenceDone := make(chan struct{})
	go func() {
		defer close(presenceDone)
		a.consumers.Run(relayCtx)
	}()
	channelsDone := a.runChannelsRedis(relayCtx)
	keysDone := make(chan struct{})
	go func() {
		defer close(keysDone)
		a.sweepKeys(relayCtx)
	}()
	defer func() {
		stopRelay()
		<-relayDone
		<-presenceDone
		<-channelsDone
		<-keysDone
	}()
	a.log.Info("herald listening", "addr", ListenURL(ln.Addr()), "db", a.db.Dialect, "version", version.Get().String())
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	a.log.Info("shutting down", "grace", a.cfg.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownGrace)
	defer cancel()
	// From here every response says Connection: close, and no connection
	// is accepted: clients (and load balancers) go to another process.
	a.draining.Store(true)
	_ = ln.Close()
	// Real-time clients are told to reconnect elsewhere, spread over the
	// grace period.
	wsDone := make(chan error, 1)
	go func() { wsDone <- a.ws.Shutdown(sctx) }()
	a.drainKeptAlive(sctx, conns)
	// Event streams are HTTP responses still being written: ending them
	// lets srv.Shutdown finish.
	go func() { _ = a.sse.Shutdown(sctx) }()
	err := srv.Shutdown(sctx)
	<-errc
	if wsErr := <-wsDone; wsErr != nil && !errors.Is(wsErr, context.DeadlineExceeded) {
		a.log.Warn("real-time shutdown", "err", wsErr)
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// keySweepEvery is how often idempotency keys past their 24 hours are
// deleted; they are kept at least that long, so a sweep now and then is
// enough.
const keySweepEvery = 10 * time.Minute

// sweepKeys deletes expired idempotency keys at start and every
// keySweepEvery until ctx ends.
func (a *App) sweepKeys(ctx context.Context) {
	t := time.NewTicker(keySweepEvery)
	defer t.Stop()
	for {
		a.sweepKeysOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweepKeysOnce is one turn of sweepKeys, behind its recover boundary: a
// panic ends the turn, and the next one runs on time.
func (a *App) sweepKeysOnce(ctx context.Context) {
	defer panics.Recover(a.log, a.metrics.Panicked, panics.Relay)
	if n, err := a.platform.SweepIdempotencyKeys(ctx); err != nil && ctx.Err() == nil {
		a.log.Warn("sweep idempotency keys", "err", err)
	} else if n > 0 {
		a.log.Info("swept idempotency keys", "deleted", n)
	}
}

// drainKeptAlive leaves the open HTTP connections up for the first half of
// the grace period, or until none is left but event streams, before
// http.Server.Shutdown closes the idle ones. HTTP/1.1 cannot tell an idle
// connection that it is about to close, and a request a client sends on it
// as it closes is lost (net/http's Shutdown also drops a request it reads
// once it has begun): here such a request is served instead, with
// Connection: close, like the requests that were in flight, so a client
// that honours that header loses none.
func (a *App) drainKeptAlive(ctx context.Context, conns *httpConns) {
	t := time.NewTimer(a.cfg.ShutdownGrace / 2)
	defer t.Stop()
	for conns.open() > int64(a.sse.Conns()) {
		select {
		case <-conns.closed:
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// httpConns counts the HTTP connections open on a server, hijacked ones
// (WebSocket) excluded.
type httpConns struct {
	n      atomic.Int64
	closed chan struct{} // signalled (buffer 1) when one closes
}

func (c *httpConns) track(_ net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		c.n.Add(1)
	case http.StateHijacked, http.StateClosed:
		c.n.Add(-1)
		select {
		case c.closed <- struct{}{}:
		default:
		}
	}
}

func (c *httpConns) open() int64 { return c.n.Load() }

// closeOnceListener lets Serve stop accepting before http.Server.Shutdown,
// which closes the listener again.
type closeOnceListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *closeOnceListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}

// serveAdmin starts the admin listener: pprof and metrics, for operators
// only (bind it to a private address).
func (a *App) serveAdmin() (stop func(), err error) {
	ln, err := net.Listen("tcp", a.cfg.AdminAddr)
	if err != nil {
		return nil, fmt.Errorf("admin listener on %s: %w", a.cfg.AdminAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("GET /metrics", a.metrics.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	a.log.Info("admin listening", "addr", ListenURL(ln.Addr()))
	return func() {
		_ = srv.Close()
		<-done
	}, nil
}

// Close releases the real-time machinery and the database.
func (a *App) Close() error {
	if a.ws != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = a.ws.Close(ctx)
		cancel()
	}
	if a.hub != nil {
		_ = a.hub.Close()
	}
	if a.channels != nil {
		_ = a.channels.Close()
	}
	if a.media != nil {
		_ = a.media.Close()
	}
	return a.db.Close()
}

// Metrics is the app's metrics registry.
func (a *App) Metrics() *metrics.Metrics { return a.metrics }

// Hub is the real-time hub.
func (a *App) Hub() *realtime.Hub { return a.hub }

// Relay is the outbox relay (tests drive it directly).
func (a *App) Relay() *relay.Relay { return a.relay }
