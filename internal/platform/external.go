package platform

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"
)

// reservedTypes are the event types another system may not record: herald's
// internal events, which change groups and histories instead of reaching
// clients, and the messages of herald's own protocol.
var reservedTypes = []string{
	EventRoomReset, EventQuestCreated,
	"campaign_data", "error", "subscribed", "unsubscribed", "ack", "presence",
}

// campaignRoomTypes are the types only herald records in a campaign's
// room: clients take a campaign event as the campaign's own record (and the
// consumers close its viewers when it says draft), a comment_removed event
// erases the comment on their screens and the room's cached history, and a
// campaign_deleted event closes every viewer and erases that history.
var campaignRoomTypes = []string{EventCampaign, EventCommentRemoved, EventCampaignDeleted}

// ReservedType reports whether typ is one of herald's own message types,
// which no other system may record.
func ReservedType(typ string) bool { return slices.Contains(reservedTypes, typ) }

// ExternalEvent is an event another system sends to one of herald's
// groups: Data is its JSON as clients get it.
type ExternalEvent struct {
	Group string
	Type  string
	Data  []byte
}

// MaxExternalBatch bounds the events RecordExternalBatch records at once.
const MaxExternalBatch = 100

// RecordExternal records an event that another system sent to group (a
// Django app's group_send, through its channel layer), in one transaction,
// so that it reaches herald's clients like the events of herald's own
// writes: numbered in its group by the relay, in the history and on resume. data is the event's JSON as clients get
// it. A group herald does not serve, a reserved type or data that is not
// JSON is refused as KindInvalid.
func (p *Platform) RecordExternal(ctx context.Context, group, typ string, data []byte) error {
	f := fieldErrors{}
	p.checkExternal(f, "", ExternalEvent{group, typ, data})
	if err := f.err(); err != nil {
		return err
	}
	return p.write(ctx, func(tx *sql.Tx) error {
		return p.record(ctx, tx, group, typ, json.RawMessage(data))
	})
}

// RecordExternalBatch records events as RecordExternal does, all in one
// transaction (all or none), each group's in the order given, and returns
// their ids in that order. A refused event is named in the KindInvalid
// error's fields by its index: events[i].group.
func (p *Platform) RecordExternalBatch(ctx context.Context, events []ExternalEvent) ([]Recorded, error) {
	if len(events) == 0 || len(events) > MaxExternalBatch {
		return nil, invalid("events", "a batch holds 1 to %d events", MaxExternalBatch)
	}
	f := fieldErrors{}
	for i, e := range events {
		p.checkExternal(f, fmt.Sprintf("events[%d].", i), e)
	}
	if err := f.err(); err != nil {
		return nil, err
	}
	out := make([]Recorded, len(events))
	err := p.write(ctx, func(tx *sql.Tx) error {
		for i, e := range events {
			rec, err := p.recordAt(ctx, tx, e.Group, e.Type, json.RawMessage(e.Data))
			if err != nil {
				return err
			}
			out[i] = rec
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// checkExternal adds to f what is wrong with e, its fields named after
// prefix.
func (p *Platform) checkExternal(f fieldErrors, prefix string, e ExternalEvent) {
	if err := p.groups.Valid(e.Group); err != nil {
		f.add(prefix+"group", "%q is not a group herald serves: %v", clip(e.Group), err)
	}
	if e.Type == "" || ReservedType(e.Type) {
		f.add(prefix+"type", "%q cannot be recorded from outside", clip(e.Type))
	} else if kind, _, _ := ParseGroup(e.Group); kind == GroupCampaign && slices.Contains(campaignRoomTypes, e.Type) {
		f.add(prefix+"type", "%q events of a campaign's room are herald's own", e.Type)
	}
	// Clients get data in WebSocket text frames, which must be UTF-8: one
	// invalid byte would make browsers drop the connection of everyone in
	// the group.
	if !json.Valid(e.Data) || !utf8.Valid(e.Data) {
		f.add(prefix+"data", "not JSON in UTF-8")
	}
}

// clip shortens a value from outside for an error message.
func clip(s string) string {
	if len(s) <= 80 {
		return s
	}
	for i := 80; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "…"
		}
	}
	return ""
}
