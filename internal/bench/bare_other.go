//go:build !linux

package bench

import (
	"context"
	"errors"
)

// BareOptions configures the bare server (herald bench bare-server).
type BareOptions struct {
	Addr, AdminAddr string
	SnapshotBytes   int
	Pollers         int
}

// ServeBare needs epoll: Linux only.
func ServeBare(context.Context, BareOptions, func(addr string)) error {
	return errors.New("bare-server: Linux only (epoll)")
}
