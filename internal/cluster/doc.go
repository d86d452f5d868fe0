// Package cluster holds the tests that run several `herald serve` processes
// as one deployment: one PostgreSQL database, one Redis channel layer, and
// real WebSocket clients moving between the processes. The tests build the
// herald binary once and start, stop and kill its processes (and, for the
// fault tests, a redis-server of their own). See docs/deployment.md.
package cluster
