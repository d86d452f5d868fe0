// Package metrics exposes herald's Prometheus metrics. Counters that the
// real-time core already keeps (connections, groups, frames) are read from it
// at scrape time, so the hot paths pay nothing for them; latencies are
// observed where they happen.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heraldhq/herald/internal/panics"
	"github.com/heraldhq/herald/internal/realtime"
)

// Sources are the live parts the metrics read at scrape time. Any may be nil.
type Sources struct {
	Hub *realtime.Hub
	// WebSocket reports the WebSocket transport's counters.
	WebSocket interface {
		Conns() int
		RateLimited() uint64
		Refused() uint64
	}
	// SSE reports the Server-Sent Events transport's counters.
	SSE interface {
		Conns() int
		Refused() uint64
	}
	// Ready is the check /readyz answers with: nil when this process
	// should get new clients. herald_ready runs it at scrape time, within
	// ReadyTimeout.
	Ready func(context.Context) error
}

// ReadyTimeout bounds the readiness check a scrape runs, as /readyz's.
const ReadyTimeout = 2 * time.Second

// Metrics holds herald's registry and the metrics observed directly.
type Metrics struct {
	reg *prometheus.Registry

	httpDuration   *prometheus.HistogramVec
	publishDelay   *prometheus.HistogramVec
	published      *prometheus.CounterVec
	publishFailure prometheus.Counter
	panics         *prometheus.CounterVec

	// The outbox's backlog as the relay last saw it (OutboxBacklog):
	// unpublished events, and the commit time of the oldest in Unix
	// nanoseconds (0 for none).
	outboxPending atomic.Int64
	outboxOldest  atomic.Int64
	now           func() time.Time
}

// latencyBuckets spans 100 µs to 10 s.
var latencyBuckets = prometheus.ExponentialBucketsRange(0.0001, 10, 16)

// New registers herald's metrics, and the Go runtime's and process's, in a
// registry of its own. The parts that report panics are built with Panicked
// as their hook, so the metrics exist before them; Watch adds what is read
// from those parts at scrape time.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), now: time.Now}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "herald_http_request_duration_seconds", Help: "HTTP requests by route pattern, method and status code.",
		Buckets: latencyBuckets,
	}, []string{"route", "method", "code"})
	m.publishDelay = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "herald_event_publish_delay_seconds", Help: "Time from an event's commit to its publication to the channel layer.",
		Buckets: latencyBuckets,
	}, []string{"type"})
	m.published = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_events_published_total", Help: "Events the outbox relay published, by type.",
	}, []string{"type"})
	m.publishFailure = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_event_publish_failures_total", Help: "Relay rounds that failed to publish (events stay in the outbox).",
	})
	m.panics = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_panics_total", Help: "Panics recovered, by boundary: each ended only its connection, request or loop turn.",
	}, []string{"where"})
	for _, w := range panics.Wheres() {
		m.panics.WithLabelValues(w) // every boundary shows, at 0, before its first panic
	}
	m.reg.MustRegister(m.httpDuration, m.publishDelay, m.published, m.publishFailure, m.panics,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "herald_outbox_pending_events",
			Help: "Events committed and not yet published, as this process's relay last saw them (counted up to 100,000)."},
			func() float64 { return float64(m.outboxPending.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "herald_outbox_oldest_pending_age_seconds",
			Help: "Age of the oldest event committed and not yet published, as this process's relay last saw it; 0 when none waits."},
			m.oldestPendingAge),
	)
	return m
}

// Watch registers the metrics read from src's parts at scrape time. Call it
// once, when they exist.
func (m *Metrics) Watch(src Sources) {
	if h := src.Hub; h != nil {
		stat := func(f func(realtime.Stats) float64) func() float64 {
			return func() float64 { return f(h.Stats()) }
		}
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "herald_realtime_groups", Help: "Groups with members on this process."},
				stat(func(s realtime.Stats) float64 { return float64(s.Groups) })),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "herald_realtime_events_received_total", Help: "Events received from the channel layer for local groups."},
				stat(func(s realtime.Stats) float64 { return float64(s.EventsIn) })),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "herald_realtime_deliveries_total", Help: "Event frames queued to connections (one per receiver)."},
				stat(func(s realtime.Stats) float64 { return float64(s.FramesOut) })),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "herald_realtime_dropped_total", Help: "Event frames not queued because the connection was closing or overflowing."},
				stat(func(s realtime.Stats) float64 { return float64(s.Dropped) })),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "herald_realtime_slow_consumers_total", Help: "Connections closed (4000) because their send queue overflowed or a write stalled."},
				stat(func(s realtime.Stats) float64 { return float64(s.SlowConsumers) })),
		)
	}
	if ws := src.WebSocket; ws != nil {
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "herald_realtime_connections", Help: "Open real-time connections by transport.",
				ConstLabels: prometheus.Labels{"transport": "websocket"}}, func() float64 { return float64(ws.Conns()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "herald_realtime_rate_limited_total", Help: "Client messages dropped by the per-connection rate limit.",
				ConstLabels: prometheus.Labels{"transport": "websocket"}}, func() float64 { return float64(ws.RateLimited()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "herald_realtime_handshakes_refused_total", Help: "Handshakes refused by the per-address limits.",
				ConstLabels: prometheus.Labels{"transport": "websocket"}}, func() float64 { return float64(ws.Refused()) }),
		)
	}
	if ready := src.Ready; ready != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "herald_ready",
			Help: "1 when /readyz would answer 200 (the database and the channel layer answer, not shutting down), else 0."},
			func() float64 {
				ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
				defer cancel()
				if ready(ctx) != nil {
					return 0
				}
				return 1
			}))
	}
	if sse := src.SSE; sse != nil {
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "herald_realtime_connections", Help: "Open real-time connections by transport.",
				ConstLabels: prometheus.Labels{"transport": "sse"}}, func() float64 { return float64(sse.Conns()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "herald_realtime_handshakes_refused_total", Help: "Handshakes refused by the per-address limits.",
				ConstLabels: prometheus.Labels{"transport": "sse"}}, func() float64 { return float64(sse.Refused()) }),
		)
	}
}

// OutboxBacklog records what the relay saw unpublished in the outbox:
// pending events, the oldest committed at oldest (zero for none). It is the
// relay's Backlog hook.
func (m *Metrics) OutboxBacklog(pending int, oldest time.Time) {
	var ns int64
	if pending > 0 && !oldest.IsZero() {
		ns = oldest.UnixNano()
	}
	m.outboxOldest.Store(ns)
	m.outboxPending.Store(int64(pending))
}

// oldestPendingAge is the age, now, of the oldest event OutboxBacklog last
// saw waiting: it grows while the relay does not get it out, even when the
// relay is stuck and reports nothing.
func (m *Metrics) oldestPendingAge() float64 {
	ns := m.outboxOldest.Load()
	if ns == 0 {
		return 0
	}
	return max(m.now().Sub(time.Unix(0, ns)).Seconds(), 0)
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the registry (tests read it directly).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveHTTP records one HTTP request.
func (m *Metrics) ObserveHTTP(route, method string, code int, d time.Duration) {
	if route == "" {
		route = "other"
	}
	m.httpDuration.WithLabelValues(route, methodLabel(method), strconv.Itoa(code)).Observe(d.Seconds())
}

// methodLabel is an HTTP method as a label value: one of the standard
// methods, else "other". A client may send any token as its method, and
// net/http hands it over as a substring of the whole request line (up to
// the header limit): as a label, each new one would add a series that keeps
// its request line alive for as long as the process runs.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet:
		return http.MethodGet
	case http.MethodHead:
		return http.MethodHead
	case http.MethodPost:
		return http.MethodPost
	case http.MethodPut:
		return http.MethodPut
	case http.MethodPatch:
		return http.MethodPatch
	case http.MethodDelete:
		return http.MethodDelete
	case http.MethodOptions:
		return http.MethodOptions
	case http.MethodConnect:
		return http.MethodConnect
	case http.MethodTrace:
		return http.MethodTrace
	}
	return "other"
}

// Published records an event the relay published, committed delay ago. The
// delay is recorded before the event is counted, so whoever saw the count
// finds the delay's sample when it reads the histogram next.
func (m *Metrics) Published(typ string, delay time.Duration) {
	m.publishDelay.WithLabelValues(typ).Observe(max(delay, 0).Seconds())
	m.published.WithLabelValues(typ).Inc()
}

// PublishFailed records a failed relay round.
func (m *Metrics) PublishFailed() { m.publishFailure.Inc() }

// Panicked counts a panic recovered at the boundary where (a panics.Wheres
// name); it is the OnPanic hook of the parts that recover.
func (m *Metrics) Panicked(where string) { m.panics.WithLabelValues(where).Inc() }
