//go:build !linux

package transport

import "github.com/heraldhq/herald/internal/realtime"

// Without epoll every connection has a reader goroutine (readLoop) and
// writes go through the blocking path.

const wakeID uint32 = 1<<31 - 1

type poller struct{}

func (s *Server) startPollers(int) ([]*poller, error)    { return nil, nil }
func (s *Server) stopPollers()                           {}
func (s *Server) closePollers()                          {}
func (s *Server) attachFD(*wsConn)                       {}
func (s *Server) pollConn(*wsConn, []byte) (bool, error) { return false, nil }
func (p *poller) remove(*wsConn)                         {}
func (w *wsConn) onReadable(*scratch)                    {}
func (w *wsConn) tryWrite(*realtime.Batch) (bool, error) { return false, nil }
