package eventlog

import "context"

// Acquire takes a reader's turn, for tests that make every reader busy.
func (l *Log) Acquire(ctx context.Context) (release func(), err error) { return l.acquire(ctx) }
