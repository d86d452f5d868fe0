// Package panics reports the panics herald recovers at its boundaries: the
// goroutines that serve a connection, a request or a long-lived loop. A
// recovered panic ends only what it happened in (a connection, a request, one
// turn of a loop), is logged once with its stack and is counted by the
// boundary's name in herald_panics_total.
package panics

import (
	"log/slog"
	"runtime/debug"
)

// The boundaries, the where label of herald_panics_total.
const (
	HTTP      = "http"      // an HTTP handler; the request fails with 500
	Handshake = "handshake" // a WebSocket upgrade after the connection was taken over
	WSReader  = "ws_reader" // reading a WebSocket connection and its handler's callbacks
	WSWriter  = "ws_writer" // writing a WebSocket connection, and its pings
	SSE       = "sse"       // an event stream
	Hub       = "hub"       // the hub's fan-out of an event
	Layer     = "layer"     // the channel layer's readers and background loops
	Relay     = "relay"     // the outbox relay
	Presence  = "presence"  // the presence counts loop
	Grants    = "grants"    // ending a subscription whose token expired
	// ChannelsRedis is herald's membership of a Django app's channel layer.
	ChannelsRedis = "channels_redis"
)

// Wheres lists the boundaries, for metrics that start each at zero.
func Wheres() []string {
	return []string{HTTP, Handshake, WSReader, WSWriter, SSE, Hub, Layer, Relay, Presence, Grants, ChannelsRedis}
}

// Recover, deferred directly by one turn of a loop or a goroutine of its
// own, recovers a panic and reports it (Report): the turn or the goroutine
// ends, and whatever runs it goes on. Boundaries that must also close a
// connection or fail a request recover themselves and call Report.
func Recover(log *slog.Logger, onPanic func(where string), where string) {
	if p := recover(); p != nil {
		Report(log, onPanic, where, p)
	}
}

// Report logs p, a panic recovered at the boundary where, at ERROR with the
// stack of the goroutine that panicked, and tells onPanic (which may be
// nil). Call it from the deferred function that recovered p.
func Report(log *slog.Logger, onPanic func(where string), where string, p any) {
	if log == nil {
		log = slog.Default()
	}
	log.Error("panic recovered", "where", where, "panic", p, "stack", string(debug.Stack()))
	if onPanic != nil {
		onPanic(where)
	}
}
