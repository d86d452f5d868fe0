package transport

import (
	"sync/atomic"
	"testing"
	"time"
)

// bareServer is enough of a Server for the pool writers' queue policy.
func bareServer() *Server {
	return &Server{writeq: make(chan *wsConn, 4), done: make(chan struct{}), start: time.Now()}
}

// A writer that waited on an empty queue marks the queue as just emptied:
// a burst after a quiet spell does not count the quiet time as busy, so the
// reserve writer helps with it.
func TestNextWriteAfterAQuietSpell(t *testing.T) {
	s := bareServer()
	wc := &wsConn{}
	// Queue busy (never found empty) since the server started.
	s.queueEmptied.Store(0)
	time.Sleep(2 * writerBurst)

	// Work already queued does not mean the queue was empty.
	s.writeq <- wc
	if got, ok := s.nextWrite(); !ok || got != wc {
		t.Fatalf("nextWrite = %p, %v; want the queued connection", got, ok)
	}
	if e := s.queueEmptied.Load(); e != 0 {
		t.Fatalf("taking queued work marked the queue emptied (at %v)", time.Duration(e))
	}

	// An empty queue waited on is a break, up to the moment work came.
	var queuedAt atomic.Int64
	go func() {
		time.Sleep(10 * time.Millisecond)
		queuedAt.Store(s.now())
		s.writeq <- wc
	}()
	if got, ok := s.nextWrite(); !ok || got != wc {
		t.Fatalf("nextWrite = %p, %v; want the connection queued later", got, ok)
	}
	if e, q := s.queueEmptied.Load(), queuedAt.Load(); e < q {
		t.Fatalf("queue marked emptied at %v, before the wait ended at %v; the reserve would rest", time.Duration(e), time.Duration(q))
	}
	close(s.done)
	if _, ok := s.nextWrite(); ok {
		t.Fatal("nextWrite after the server stopped returned work")
	}
}

// The reserve writer rests while the queue stays busy past writerBurst and
// goes back to work once a writer found it empty.
func TestReserveWriterRestsWhileBusy(t *testing.T) {
	rest := time.NewTimer(time.Hour)
	rest.Stop()
	// Just emptied: no rest. The server is stopped, so a rest would end at
	// once and report it.
	quiet := bareServer()
	close(quiet.done)
	quiet.queueEmptied.Store(quiet.now())
	if !quiet.restWhileBusy(rest) {
		t.Fatal("the reserve rested although the queue was just empty")
	}

	s := bareServer()
	// Busy for longer than writerBurst: it rests until the queue empties.
	s.queueEmptied.Store(s.now() - int64(2*writerBurst))
	emptied := make(chan int64, 1)
	go func() {
		time.Sleep(5 * reserveRest)
		now := s.now()
		s.queueEmptied.Store(now)
		emptied <- now
	}()
	if !s.restWhileBusy(rest) {
		t.Fatal("restWhileBusy reported the server stopped")
	}
	returned := s.now()
	if at := <-emptied; returned < at {
		t.Fatalf("the reserve went back to work %v before the queue emptied", time.Duration(at-returned))
	}

	// A stopping server ends the rest.
	s.queueEmptied.Store(s.now() - int64(2*writerBurst))
	close(s.done)
	if s.restWhileBusy(rest) {
		t.Fatal("restWhileBusy kept the reserve after the server stopped")
	}
}
