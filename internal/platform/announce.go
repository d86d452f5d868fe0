package platform

import (
	"context"
	"encoding/json"
	"fmt"
)

// AnnounceTypes are the event types a campaign room's client may announce,
// as the seeds' front end does after creating an object through REST.
var AnnounceTypes = []string{EventContribution, EventUpdate, EventComment, EventRelease, EventMilestone}

// ObjectJSON returns the current REST JSON of one of a campaign's objects, by
// event type, if viewerID may see the campaign and the object belongs to it.
// The campaign room announces exactly these bytes, so an announce of a
// version already published is recognised byte for byte.
func (p *Platform) ObjectJSON(ctx context.Context, viewerID, campaignID int64, typ string, id int64) ([]byte, error) {
	var v any
	var err error
	switch typ {
	case EventContribution:
		v, err = p.Contribution(ctx, viewerID, campaignID, id)
	case EventUpdate:
		v, err = p.Update(ctx, viewerID, campaignID, id)
	case EventComment:
		v, err = p.Comment(ctx, viewerID, campaignID, id)
	case EventRelease:
		v, err = p.Release(ctx, viewerID, campaignID, id)
	case EventMilestone:
		v, err = p.Milestone(ctx, viewerID, campaignID, id)
	default:
		return nil, invalid("type", "%q cannot be announced", typ)
	}
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s %d: %w", typ, id, err)
	}
	return b, nil
}

// EventPending reports whether the outbox still holds this exact event: it
// is committed and about to be published, so announcing it would duplicate it.
func (p *Platform) EventPending(ctx context.Context, group, typ string, data []byte) (bool, error) {
	var n int64
	err := p.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM outbox WHERE grp = $1 AND type = $2 AND data = $3",
		group, typ, string(data)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look up pending %s event in %s: %w", typ, group, err)
	}
	return n > 0, nil
}
