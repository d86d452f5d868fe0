package platform

import (
	"context"
	"database/sql"
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

// Announce records data as a typ event of group, unless the log already
// holds that exact event (committed, waiting or published within the
// history window): an announce of a version its own write already recorded,
// or that another client announced, adds nothing. It reports whether it
// recorded the event. The check and the record hold a lock of the group's
// announces, so concurrent announces on any process record a version once.
func (p *Platform) Announce(ctx context.Context, group, typ string, data []byte) (recorded bool, err error) {
	err = p.write(ctx, func(tx *sql.Tx) error {
		if err := p.lockAnnounces(ctx, tx, group); err != nil {
			return err
		}
		kind, id, _ := ParseGroup(group)
		if kind == GroupCampaign {
			// Read before the lock, the object's campaign may have been
			// deleted since (DeleteCampaign holds the same lock): nothing
			// of it is recorded again.
			n, err := count(ctx, tx, "SELECT COUNT(*) FROM campaigns WHERE id = $1 AND deleted_at IS NULL", id)
			if err != nil {
				return fmt.Errorf("look up campaign %d: %w", id, err)
			}
			if n == 0 {
				return notFound("campaign")
			}
		}
		if kind == GroupCampaign && typ == EventComment {
			// Read before the lock, the comment may have been removed
			// since (removeComment holds the same lock): it is not
			// recorded again.
			live, err := commentLive(ctx, tx, data)
			if err != nil {
				return err
			}
			if !live {
				return notFound("comment")
			}
		}
		var n int64
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM outbox WHERE grp = $1 AND type = $2 AND data = $3",
			group, typ, string(data)).Scan(&n); err != nil {
			return fmt.Errorf("look up %s event in %s: %w", typ, group, err)
		}
		if n > 0 {
			return nil
		}
		recorded = true
		return p.record(ctx, tx, group, typ, json.RawMessage(data))
	})
	return recorded, err
}
