package realtime

import (
	"errors"
	"slices"
	"sync"

	"github.com/heraldhq/herald/internal/realtime/layer"
)

// Errors returned by Conn.Send and Hub.Join.
var (
	// ErrClosed means the connection is closing or closed.
	ErrClosed = errors.New("realtime: connection closed")
	// ErrSlowConsumer means the frame did not fit the connection's send
	// queue; the connection is being closed with CloseSlowConsumer.
	ErrSlowConsumer = errors.New("realtime: slow consumer")
	// ErrAlreadyJoined means JoinFrom was called for a group the
	// connection is in or is being joined to.
	ErrAlreadyJoined = errors.New("realtime: already in group")
)

// ConnConfig describes a connection to the hub. The consumer fills it after
// authenticating the request.
type ConnConfig struct {
	// UserID is the authenticated user, 0 for anonymous.
	UserID int64
	// Version is the protocol version, 1 (default) or 2.
	Version int
	// SSE selects the Server-Sent Events encoding (which always carries
	// positions, like v2).
	SSE bool
	// Value is the consumer's per-connection state, available as Conn.Value.
	Value any
}

// Transport is the network side of a Conn, implemented by the transport
// packages.
type Transport interface {
	// Wake is called, without locks held, when the send queue of a Conn goes
	// from empty to non-empty while no drain is in progress. The transport
	// then calls Link.Take until it returns nil. Wake must not block and
	// must not call Link.Finish synchronously.
	Wake()
}

type connState uint8

const (
	stateOpen connState = iota
	stateClosing
	stateClosed
)

// Conn is the transport-independent state of one client connection: who it
// is, which groups it is in and the frames waiting to be written. An idle
// Conn holds no buffers and no goroutine.
type Conn struct {
	// Value is the consumer's per-connection state (ConnConfig.Value). The
	// hub never touches it.
	Value any

	hub       *Hub
	transport Transport
	userID    int64

	joinMu sync.Mutex // serializes Join/Leave of this connection
	mu     sync.Mutex // guards the fields below
	q      *Batch     // nil while nothing is queued
	groups []string
	// join is what resumes need while they run and until their replay is
	// written; nil otherwise (TestConnSize).
	join     *joining
	qBytes   int   // bytes in q
	queued   int32 // frames in q
	inflight int32 // frames taken by the transport and not yet released
	enc      Encoding
	state    connState
	// writing is set from the Wake that starts a drain until Take finds the
	// queue empty.
	writing    bool
	slowLogged bool
	final      bool // q ends with the close frame
}

// joining is a Conn's state of its resumes (guarded by its mu).
type joining struct {
	holds []*hold // groups being joined by JoinFrom
	// credit is how far a resume's replay may take the queue past its
	// bounds: the frames and bytes of the replay not yet written. It lets a
	// client catch up on a backlog larger than the live bounds without
	// being cut off, and shrinks to nothing as the replay is written.
	credit      int32
	creditBytes int32
}

// joinState returns c's resume state, making it on first need; c.mu is
// held.
func (c *Conn) joinState() *joining {
	if c.join == nil {
		c.join = &joining{}
	}
	return c.join
}

// joiningLocked reports whether a JoinFrom of group is under way on c;
// c.mu is held.
func (c *Conn) joiningLocked(group string) bool {
	if c.join == nil {
		return false
	}
	return slices.ContainsFunc(c.join.holds, func(hd *hold) bool { return hd.group == group })
}

// joinDone drops c's resume state once nothing is held and no credit is
// left; c.mu is held.
func (c *Conn) joinDone() {
	if j := c.join; j != nil && len(j.holds) == 0 && j.credit == 0 {
		c.join = nil
	}
}

// hold keeps the live events of a group aside while its history is replayed.
type hold struct {
	group string
	msgs  []layer.Message
	// overflow is set when more arrived than a replay may queue
	// (HubOptions.MaxReplayFrames); the rest were not kept.
	overflow bool
}

// UserID returns the authenticated user id, 0 for anonymous.
func (c *Conn) UserID() int64 { return c.userID }

// Version returns the protocol version, 1 or 2.
func (c *Conn) Version() int {
	if c.enc == EncodingWebSocketV2 || c.enc == EncodingSSE {
		return 2
	}
	return 1
}

// Encoding returns the wire format of the connection.
func (c *Conn) Encoding() Encoding { return c.enc }

// Groups returns a copy of the groups the connection is in.
func (c *Conn) Groups() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.groups)
}

// InGroup reports whether the connection is in group.
func (c *Conn) InGroup(group string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.groups, group)
}

// Send queues a one-off frame (a snapshot, an error, an acknowledgement) for
// this connection only. It never blocks. It returns ErrClosed once the
// connection is closing and ErrSlowConsumer when the queue is full, in which
// case the connection is being closed with CloseSlowConsumer.
func (c *Conn) Send(f Frame) error {
	return c.push(f.b)
}

// SendJSON queues payload, a complete JSON message, encoded for the
// connection's wire format.
func (c *Conn) SendJSON(payload []byte) error {
	if c.enc == EncodingSSE {
		return c.Send(NewSSEMessage(payload))
	}
	return c.Send(NewTextFrame(payload))
}

// Close queues a close frame with code and reason after the frames already
// queued and closes the connection once it is written and the client
// answered (or a short timeout passed). Frames sent after Close are dropped.
// Calling Close again has no effect.
func (c *Conn) Close(code uint16, reason string) {
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return
	}
	c.state = stateClosing
	wake := c.appendLocked(NewCloseFrame(code, reason).b)
	c.final = true
	c.mu.Unlock()
	if wake {
		c.transport.Wake()
	}
}

// Closed reports whether the connection is closing or closed.
func (c *Conn) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state != stateOpen
}

func (c *Conn) push(frame []byte) error {
	return c.pushEvent(frame, nil)
}

// pushEvent queues frame, or keeps msg aside while a JoinFrom of its group
// is replaying history.
func (c *Conn) pushEvent(frame []byte, msg *layer.Message) error {
	wake, err := c.queue(frame, msg)
	if err == ErrSlowConsumer {
		c.hub.reportSlow(c, "send queue full", c.hub.maxFrames)
	}
	if wake {
		c.transport.Wake()
	}
	return err
}

// queue is pushEvent's part under c.mu. It calls out to nothing (the
// transport is woken after it), so it releases the lock without a defer,
// which the fan-out would pay for every receiver.
func (c *Conn) queue(frame []byte, msg *layer.Message) (wake bool, err error) {
	c.mu.Lock()
	if msg != nil && c.join != nil {
		for _, h := range c.join.holds {
			if h.group == msg.Group {
				if len(h.msgs) < c.hub.maxReplayFrames {
					h.msgs = append(h.msgs, *msg)
				} else {
					h.overflow = true
				}
				c.mu.Unlock()
				return false, nil
			}
		}
	}
	wake, err = c.pushLocked(frame)
	c.mu.Unlock()
	return wake, err
}

// abandon closes c with CloseInternalError after queuing an event to it
// panicked. If closing panics too (its transport's Wake), c is left closing,
// which is enough: nothing is queued to it any more. A queue lock the panic
// left held (a bug in the queue itself) is left alone rather than waited
// for.
func (c *Conn) abandon() {
	defer func() { _ = recover() }()
	if !c.mu.TryLock() {
		return
	}
	c.mu.Unlock()
	c.Close(CloseInternalError, "internal error")
}

// pushLocked queues frame within the queue bounds; on overflow the queue is
// replaced by the slow-consumer close frame.
func (c *Conn) pushLocked(frame []byte) (wake bool, err error) {
	if c.state != stateOpen {
		return false, ErrClosed
	}
	pending := int(c.queued + c.inflight)
	var credit, creditBytes int32
	if j := c.join; j != nil {
		credit, creditBytes = j.credit, j.creditBytes
	}
	if pending > 0 && (pending >= c.hub.maxFrames+int(credit) || c.qBytes+len(frame) > c.hub.maxBytes+int(creditBytes)) {
		return c.overflowLocked(), ErrSlowConsumer
	}
	return c.appendLocked(frame), nil
}

// appendLocked queues frame and reports whether the transport must be woken.
func (c *Conn) appendLocked(frame []byte) bool {
	if c.q == nil {
		c.q = getBatch()
	}
	c.q.Frames = append(c.q.Frames, frame)
	c.queued++
	c.qBytes += len(frame)
	if c.writing {
		return false
	}
	c.writing = true
	return true
}

// overflowLocked drops everything queued and queues the slow-consumer close
// frame instead; the frames already taken by the transport finish first.
func (c *Conn) overflowLocked() (wake bool) {
	c.state = stateClosing
	c.dropQueueLocked()
	wake = c.appendLocked(slowConsumerFrame.b)
	c.final = true
	return wake
}

func (c *Conn) dropQueueLocked() {
	if c.q != nil {
		putBatch(c.q)
		c.q = nil
	}
	c.queued, c.qBytes, c.final = 0, 0, false
}

var slowConsumerFrame = NewCloseFrame(CloseSlowConsumer, "slow consumer: reconnect and resume")

// Batch is a set of frames taken from a send queue, to be written in order
// with one vectored write.
type Batch struct {
	// Frames are the frames to write; the transport may reslice it.
	Frames [][]byte
	// Final is set when the last frame closes the stream: after writing it,
	// the transport closes the connection.
	Final bool
	all   [][]byte // Frames as taken, for release
}

var batchPool = sync.Pool{New: func() any { return &Batch{Frames: make([][]byte, 0, 8)} }}

func getBatch() *Batch { return batchPool.Get().(*Batch) }

func putBatch(b *Batch) {
	clear(b.Frames[:cap(b.Frames)])
	if cap(b.Frames) > 64 {
		return // a backlog's batch; let it go rather than pin it in the pool
	}
	b.Frames, b.all, b.Final = b.Frames[:0], nil, false
	batchPool.Put(b)
}

// Link is the transport's handle on a Conn: draining its queue and ending it.
// Consumers use the Conn.
type Link struct{ c *Conn }

// Conn returns the connection.
func (l Link) Conn() *Conn { return l.c }

// Hold makes the transport the connection's drainer before anything is
// queued: frames queued from now on are not announced with Wake, and the
// transport takes them with Take when it is ready (a handshake writing its
// response together with the first messages).
func (l Link) Hold() {
	l.c.mu.Lock()
	l.c.writing = true
	l.c.mu.Unlock()
}

// Take moves the queued frames out of the connection's queue. It returns nil
// when the queue is empty; the next queued frame then calls Transport.Wake
// again. The transport must call Release when it is done with the batch.
func (l Link) Take() *Batch {
	c := l.c
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.q
	if b == nil || c.state == stateClosed {
		c.writing = false
		return nil
	}
	c.q = nil
	b.Final = c.final
	b.all = b.Frames
	c.inflight = c.queued
	c.queued, c.qBytes, c.final = 0, 0, false
	return b
}

// Release returns a batch obtained from Take.
func (l Link) Release(b *Batch) {
	c := l.c
	c.mu.Lock()
	if j := c.join; j != nil && j.credit > 0 {
		// The replay is at the front of the queue: what was written spends
		// its credit first.
		j.credit -= min(j.credit, c.inflight)
		written := 0
		for _, f := range b.all {
			written += len(f)
		}
		j.creditBytes -= min(j.creditBytes, int32(min(written, 1<<30)))
		if j.credit == 0 {
			j.creditBytes = 0
			c.joinDone()
		}
	}
	c.inflight = 0
	c.mu.Unlock()
	b.Frames = b.all
	putBatch(b)
}

// WriteTimedOut records that a write to a client stayed blocked longer than
// the write timeout: the connection is a slow consumer. It drops the queue
// and returns the close frame the transport should try to write before
// closing the connection.
func (l Link) WriteTimedOut() []byte {
	c := l.c
	c.mu.Lock()
	c.state = max(c.state, stateClosing)
	c.dropQueueLocked()
	c.mu.Unlock()
	c.hub.reportSlow(c, "write timeout", 0)
	return slowConsumerFrame.b
}

// Push queues a transport-level frame (a ping or a pong) like Conn.Send.
func (l Link) Push(frame []byte) error { return l.c.push(frame) }

// Finish marks the connection closed, drops its queue and removes it from
// every group. The transport calls it once, when the network connection is
// gone; later calls do nothing.
func (l Link) Finish() {
	c := l.c
	c.mu.Lock()
	if c.state == stateClosed {
		c.mu.Unlock()
		return
	}
	c.state = stateClosed
	c.dropQueueLocked()
	c.mu.Unlock()
	c.hub.LeaveAll(c)
	c.hub.conns.Add(-1)
}
