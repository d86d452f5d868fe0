package platform

import (
	"context"
	"database/sql"
	"encoding/json"
	"slices"
)

// reservedTypes are the event types another system may not record: herald's
// internal events, which change groups and histories instead of reaching
// clients, and the messages of herald's own protocol.
var reservedTypes = []string{
	EventRoomReset, EventQuestCreated,
	"campaign_data", "error", "subscribed", "ack", "presence",
}

// RecordExternal records an event that another system sent to group (a
// Django app's group_send, through its channel layer), in one transaction,
// so that it reaches herald's clients like the events of herald's own
// writes: with the group's next offset and its epoch, through the relay,
// in the history and on resume. data is the event's JSON as clients get
// it. A group herald does not serve, a reserved type or data that is not
// JSON is refused as KindInvalid.
func (p *Platform) RecordExternal(ctx context.Context, group, typ string, data []byte) error {
	if _, _, ok := ParseGroup(group); !ok {
		return invalid("group", "%q is not a group herald serves", group)
	}
	if typ == "" || slices.Contains(reservedTypes, typ) {
		return invalid("type", "%q cannot be recorded from outside", typ)
	}
	if !json.Valid(data) {
		return invalid("data", "not JSON")
	}
	return p.write(ctx, func(tx *sql.Tx) error {
		return p.record(ctx, tx, group, typ, json.RawMessage(data))
	})
}
