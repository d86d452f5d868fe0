//go:build !linux

package transport

import (
	"errors"
	"net"
	"time"

	"github.com/heraldhq/herald/internal/realtime"
)

// Without epoll every connection has a reader goroutine (readLoop) and
// writes go through the blocking path.

const wakeID uint32 = 1<<31 - 1

type poller struct{}

func (s *Server) startPollers(int) ([]*poller, error)    { return nil, nil }
func (s *Server) stopPollers()                           {}
func (s *Server) closePollers()                          {}
func (s *Server) attachFD(*wsConn)                       {}
func (s *Server) pollConn(*wsConn, []byte) (bool, error) { return false, nil }
func (w *wsConn) onReadable(*scratch)                    {}
func (w *wsConn) tryWrite(*realtime.Batch) (bool, error) { return false, nil }

// closeSocket closes the connection's net.Conn (there are no descriptors of
// its own here).
func (w *wsConn) closeSocket() { _ = w.nc.Close() }

func (w *wsConn) writeFD(*net.Buffers, time.Duration) error {
	return errors.New("transport: no descriptors on this system")
}
