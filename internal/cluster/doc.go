// Package cluster holds the tests that run several `herald serve` processes
// as one deployment: one PostgreSQL database, one Redis channel layer, and
// real WebSocket clients moving between the processes. The tests build the
// herald binary once and start, stop and kill its processes (and, for the
// fault tests, a redis-server of their own). See docs/deployment.md.
//
// The chaos suite (chaos_test.go) brings one fault on per scenario under
// steady writes and checks one invariant for every WebSocket and SSE
// subscriber (invariant_test.go): it received exactly the committed
// comments. See docs/reliability.md.
package cluster
