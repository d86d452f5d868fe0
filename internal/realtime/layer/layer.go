// Package layer defines the channel layer: the component that carries group
// events between the processes of a herald deployment, numbers them per group
// and keeps a bounded window of recent events for resume.
//
// The in-memory implementation serves a single process. A distributed
// implementation (Redis) satisfies the same interface.
package layer

import (
	"context"
	"errors"
)

// Message is one event of a group as it crosses the layer.
type Message struct {
	Group string
	Type  string
	// Data is the JSON payload ("data" of the wire message), already
	// serialized. It is never re-encoded. Publish takes ownership of it: the
	// caller must not modify it afterwards.
	Data []byte
	// Offset is per group, gap-free and starts at 1. It is assigned by the
	// layer on Publish; any value set by the caller is ignored.
	Offset uint64
	// Epoch identifies the group's history. It changes whenever that history
	// is lost (a new memory layer, an expired and dropped group, a flushed
	// Redis), so that a position (Epoch, Offset) is never ambiguous.
	Epoch string
}

// TypeReset is the type of a message that starts its group's history over
// instead of adding to it: publishing one drops the group's window and gives
// the group a new epoch, whose first event is offset 1, so no position from
// before it can be resumed. Subscribers receive it in order with the group's
// events, at offset 0 of the new epoch; it is never in the history and never
// for clients. Publish returns offset 0 for it.
const TypeReset = "room_reset"

// Redacting says which messages withdraw earlier events of their group:
// the platform rewrote those events in the Log in the transaction that
// recorded the message (a removed comment's events become its removal, at
// their own positions), so the copies a layer keeps are stale. Publishing
// or receiving such a message drops the group's window (and a Redis
// subscription's recent events) before the message joins it: what came
// before it is read from the Log again, or, without a Log, a resume from
// before it is not recovered (the client reloads its state). Layers know
// nothing of what a message withdraws; the caller says which do (nil: none).
type Redacting func(Message) bool

// Syncer is implemented by layers whose Position answers from what this
// process has delivered, which may lag behind the latest publish (Redis).
// Sync returns the group's position once this process has delivered every
// event published before the call, resets included; it fails if that takes
// too long. Position of the other layers is never behind.
type Syncer interface {
	Sync(ctx context.Context, group string) (Position, error)
}

// BatchPublisher is implemented by layers that publish several messages in
// one round trip (Redis, in one pipeline). PublishBatch publishes msgs in
// order, msgs[i] with the publish key keys[i] ("" for none; see
// WithPublishKey), and returns the offsets of the messages published: all
// of them, or on an error those before the first that failed. Messages
// after a failed one may have been published too; publishing them again
// with the same keys publishes each once.
type BatchPublisher interface {
	PublishBatch(ctx context.Context, msgs []Message, keys []string) ([]uint64, error)
}

// Position is where a group stands: the offset of its latest message and
// its epoch ((0, "") for a group with no messages yet).
type Position struct {
	Offset uint64
	Epoch  string
}

// BatchPositioner is implemented by layers that read several groups'
// positions in one round trip (Redis, in one pipeline). Positions returns
// them in the order of groups, each as Position would.
type BatchPositioner interface {
	Positions(ctx context.Context, groups []string) ([]Position, error)
}

// Layer carries group events.
//
// The handler given to a Layer's constructor receives the messages of the
// groups this process subscribed to, in publish order per group. It must not
// block for long and must not call Publish for the same group synchronously.
type Layer interface {
	// Publish assigns the next offset of msg.Group and delivers the message to
	// every subscriber of the group (on every process, for distributed
	// layers). It returns the assigned offset.
	Publish(ctx context.Context, msg Message) (offset uint64, err error)
	// Subscribe tells the layer this process has local members of group; only
	// subscribed groups are delivered to the handler.
	Subscribe(ctx context.Context, group string) error
	// Unsubscribe tells the layer this process no longer has local members of
	// group.
	Unsubscribe(ctx context.Context, group string) error
	// History returns the messages of group with offset > since, oldest
	// first, if they are all still in the window. ok is false when the
	// position is outside the window or epoch differs from the group's
	// current epoch.
	History(ctx context.Context, group string, since uint64, epoch string) (msgs []Message, ok bool, err error)
	// Position returns the offset of the group's latest message and its
	// epoch: where a client that has seen everything so far stands. A group
	// with no messages yet is at (0, ""), which History reads as "from the
	// start"; one reset since its last message is at (0, new epoch).
	Position(ctx context.Context, group string) (offset uint64, epoch string, err error)
	// Close releases the layer's resources. Calls after Close return
	// ErrClosed.
	Close() error
}

// ErrClosed is returned by the methods of a closed Layer.
var ErrClosed = errors.New("layer: closed")

// Log is the durable record of every group's events that a layer falls back
// on for what it does not hold: the database's outbox (eventlog.Log), where
// each event got its offset and epoch in its write's transaction. Messages
// published with those positions (Offset > 0, or a reset with its Epoch)
// keep them; a layer then is a transport and a cache, and losing its data
// (a restarted process, an emptied Redis) loses no event.
type Log interface {
	// Read returns the events of group in epoch with offsets in (since,
	// upTo], oldest first, or ok false when epoch is not the group's
	// current one or some of them are no longer kept. An empty epoch with
	// since 0 means from the start of the group's current epoch. upTo 0
	// means up to the group's last published event.
	Read(ctx context.Context, group, epoch string, since, upTo uint64) (msgs []Message, ok bool, err error)
	// Positions returns where each group stands among its published events,
	// as Layer.Position answers: (0, "") for a group with no events.
	Positions(ctx context.Context, groups []string) ([]Position, error)
}
