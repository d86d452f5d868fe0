// Package hostile holds the hostile-input suite: TestHostile builds the
// herald binary, starts one `herald serve` process on SQLite with the demo
// data, and sends it what an attacker would: broken and oversized WebSocket
// frames over raw sockets, malformed JSON messages, malformed and oversized
// HTTP requests and headers, forged tokens, absurd resume positions and
// sign-in storms. It then checks that the process is still serving, that no
// answer was a server error, that its log has no panic or error, and that
// its goroutines, descriptors and memory came back near where they started.
//
// Each family of cases is a table in its own file; a case is a name and a
// function, so adding one is adding a line or a few.
package hostile
