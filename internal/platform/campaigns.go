package platform

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/heraldhq/herald/internal/money"
	"github.com/heraldhq/herald/internal/store"
)

// Campaign statuses.
const (
	CampaignDraft  = "draft"
	CampaignActive = "active"
	CampaignClosed = "closed"
)

// EventRoomReset starts a campaign room's history over when who may see the
// campaign changes (a draft made public), in the commit order of the room's
// events: no event from before it can be replayed to anyone afterwards. The
// channel layer acts on it (its layer.TypeReset); clients never receive it.
const EventRoomReset = "room_reset"

// EventCampaign tells a campaign's room that the campaign's own fields
// changed (its title, description, goal, currency or status): its data is
// the campaign's REST JSON without the nested lists (Campaign). A
// contribution, which changes the raised total, sends none: its own event
// carries the amount. Only herald records it in a campaign's room.
const EventCampaign = "campaign"

// roomReset is the data of EventRoomReset.
type roomReset struct {
	CampaignID int64  `json:"campaign_id"`
	Status     string `json:"status"`
}

// CampaignInput creates a campaign, or with nil fields left alone, edits one.
type CampaignInput struct {
	Title       *string      `json:"title"`
	Description *string      `json:"description"`
	GoalAmount  *money.Cents `json:"goal_amount"`
	Currency    *string      `json:"currency"`
	Status      *string      `json:"status"`
}

// campaignSelect reads campaigns as c. A deleted campaign's row is a
// tombstone (DeleteCampaign) that the join leaves out of every read.
const campaignSelect = `SELECT c.id, c.owner_id, u.username, c.title, c.description, c.goal_cents, c.raised_cents,
	c.currency, c.status, c.created_at, c.updated_at,
	(SELECT COUNT(*) FROM contributions x WHERE x.campaign_id = c.id)
	FROM campaigns c JOIN users u ON u.id = c.owner_id AND c.deleted_at IS NULL`

// visibleTo is the WHERE clause part that hides drafts from all but their owner.
const visibleTo = "(c.status <> 'draft' OR c.owner_id = $%d)"

func scanCampaign(s scanner) (Campaign, error) {
	var c Campaign
	err := s.Scan(&c.ID, &c.Owner.ID, &c.Owner.Username, &c.Title, &c.Description, &c.GoalAmount, &c.RaisedAmount,
		&c.Currency, &c.Status, &c.CreatedAt.Time, &c.UpdatedAt.Time, &c.ContributionsCount)
	return c, err
}

// CreateCampaign starts a campaign owned by userID (a draft unless the input
// says active).
func (p *Platform) CreateCampaign(ctx context.Context, userID int64, in CampaignInput) (CampaignDetail, error) {
	if err := requireUser(userID); err != nil {
		return CampaignDetail{}, err
	}
	f := fieldErrors{}
	title := text(f, "title", deref(in.Title), true, 200)
	desc := text(f, "description", deref(in.Description), false, 20000)
	var goal money.Cents
	if in.GoalAmount == nil {
		f.add("goal_amount", "this field is required")
	} else if goal = *in.GoalAmount; goal <= 0 || goal > money.Max {
		f.add("goal_amount", "must be greater than 0.00 and at most %s", money.Max)
	}
	currency := "USD"
	if in.Currency != nil {
		if currency = *in.Currency; !money.ValidCurrency(currency) {
			f.add("currency", "must be a three-letter ISO 4217 code such as USD")
		}
	}
	status := CampaignDraft
	if in.Status != nil {
		if status = *in.Status; status != CampaignDraft && status != CampaignActive {
			f.add("status", "a new campaign is draft or active")
		}
	}
	if err := f.err(); err != nil {
		return CampaignDetail{}, err
	}
	var id int64
	now := p.now()
	// A write like the others: SQLite's writes queue in Tx, and an
	// idempotency key is recorded with the campaign.
	err := p.write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx,
			`INSERT INTO campaigns (owner_id, title, description, goal_cents, currency, raised_cents, status, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $7) RETURNING id`,
			userID, title, desc, goal, currency, status, now).Scan(&id)
	})
	if err != nil {
		return CampaignDetail{}, fmt.Errorf("create campaign: %w", err)
	}
	return p.CampaignDetail(ctx, userID, id)
}

// UpdateCampaign edits a campaign; only its owner may. Status moves
// forward, draft → active → closed (or draft → closed), or back to draft,
// which hides the campaign from everyone but its owner again. The room is
// sent the campaign's new JSON (EventCampaign) in the same transaction.
func (p *Platform) UpdateCampaign(ctx context.Context, userID, campaignID int64, in CampaignInput) (CampaignDetail, error) {
	if err := requireUser(userID); err != nil {
		return CampaignDetail{}, err
	}
	err := p.write(ctx, func(tx *sql.Tx) error {
		cur, err := p.campaignForWrite(ctx, tx, userID, campaignID, true)
		if err != nil {
			return err
		}
		f := fieldErrors{}
		if in.Title != nil {
			cur.Title = text(f, "title", *in.Title, true, 200)
		}
		if in.Description != nil {
			cur.Description = text(f, "description", *in.Description, false, 20000)
		}
		if in.GoalAmount != nil {
			if cur.GoalAmount = *in.GoalAmount; cur.GoalAmount <= 0 || cur.GoalAmount > money.Max {
				f.add("goal_amount", "must be greater than 0.00 and at most %s", money.Max)
			}
		}
		if in.Currency != nil && *in.Currency != cur.Currency {
			switch {
			case !money.ValidCurrency(*in.Currency):
				f.add("currency", "must be a three-letter ISO 4217 code such as USD")
			case cur.ContributionsCount > 0:
				f.add("currency", "cannot change once the campaign has contributions")
			}
			cur.Currency = *in.Currency
		}
		was := cur.Status
		if in.Status != nil && *in.Status != cur.Status {
			next := *in.Status
			ok := next == CampaignDraft ||
				(cur.Status == CampaignDraft && (next == CampaignActive || next == CampaignClosed)) ||
				(cur.Status == CampaignActive && next == CampaignClosed)
			if !ok {
				f.add("status", "cannot move a campaign from %s to %q", cur.Status, next)
			}
			cur.Status = next
		}
		if err := f.err(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE campaigns SET title = $1, description = $2, goal_cents = $3, currency = $4,
			status = $5, updated_at = $6 WHERE id = $7`,
			cur.Title, cur.Description, cur.GoalAmount, cur.Currency, cur.Status, p.now(), campaignID)
		if err != nil {
			return fmt.Errorf("update campaign %d: %w", campaignID, err)
		}
		// Under the row lock, so ordered with the room's other events. The
		// event goes first, in the room's epoch as it was: a draft made
		// public tells its owner, and a campaign back to draft tells the
		// consumers to close its other viewers (as at connect, 4404),
		// before the reset starts the room over.
		c, err := scanCampaign(tx.QueryRowContext(ctx, campaignSelect+" WHERE c.id = $1", campaignID))
		if err != nil {
			return fmt.Errorf("load campaign %d: %w", campaignID, err)
		}
		if err := p.record(ctx, tx, CampaignGroup(campaignID), EventCampaign, c); err != nil {
			return err
		}
		if (was == CampaignDraft) != (cur.Status == CampaignDraft) {
			return p.record(ctx, tx, CampaignGroup(campaignID), EventRoomReset, roomReset{campaignID, cur.Status})
		}
		return nil
	})
	if err != nil {
		return CampaignDetail{}, err
	}
	return p.CampaignDetail(ctx, userID, campaignID)
}

// EventCampaignDeleted tells a campaign's room that the campaign was
// deleted: the consumers close every viewer of the room, its owner too,
// with not_found and 4404, as a connection to a campaign that does not
// exist is at connect. Its data is CampaignDeleted. Clients never receive
// it, and only herald records it in a campaign's room.
const EventCampaignDeleted = "campaign_deleted"

// CampaignDeleted is the data of EventCampaignDeleted.
type CampaignDeleted struct {
	ID int64 `json:"id"`
}

// DeleteCampaign deletes a campaign; only its owner may, with the same
// refusals as an edit, and only while it has no contributions: they are
// other people's money, kept with the campaign they paid (a conflict,
// coded CodeHasContributions; closing the campaign is what ends it then).
// Its updates, comments (and their reports), releases and milestones are
// deleted with it; images are the URLs of the updates' stored images, for
// the caller to delete once this returns.
//
// The campaign's row stays as a tombstone, its title and description
// erased, so its id is never another campaign's; no read finds it again.
// In the same transaction its room is told (EventCampaignDeleted, which
// closes its viewers with 4404 in every process) and started over
// (EventRoomReset), and, as removing a comment does, every event of the
// room still in the event log becomes the deletion at its own position, so
// no replay, from the log or a layer's window (which the deletion drops as
// it passes), brings back anything of the campaign.
func (p *Platform) DeleteCampaign(ctx context.Context, userID, campaignID int64) (images []string, err error) {
	if err := requireUser(userID); err != nil {
		return nil, err
	}
	err = p.write(ctx, func(tx *sql.Tx) error {
		cur, err := p.campaignForWrite(ctx, tx, userID, campaignID, true)
		if err != nil {
			return err
		}
		if cur.ContributionsCount > 0 {
			return &Error{Kind: KindConflict, Code: CodeHasContributions,
				Message: "a campaign with contributions cannot be deleted; close it instead"}
		}
		group := CampaignGroup(campaignID)
		// Ordered with announces of the campaign's objects (Announce).
		if err := p.lockAnnounces(ctx, tx, group); err != nil {
			return err
		}
		if images, err = collect(ctx, tx, func(s scanner) (string, error) {
			var image string
			return image, s.Scan(&image)
		}, "SELECT image FROM updates WHERE campaign_id = $1 AND image <> '' ORDER BY id", campaignID); err != nil {
			return fmt.Errorf("list the images of campaign %d: %w", campaignID, err)
		}
		// Children first: their rows reference the campaign, reports
		// reference comments.
		for _, table := range []string{"comment_reports", "comments", "updates", "releases", "milestones"} {
			if _, err := tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE campaign_id = $1", campaignID); err != nil {
				return fmt.Errorf("delete the %s of campaign %d: %w", table, campaignID, err)
			}
		}
		now := p.now()
		if _, err := tx.ExecContext(ctx, "UPDATE campaigns SET title = '', description = '', deleted_at = $1, updated_at = $1 WHERE id = $2",
			now, campaignID); err != nil {
			return fmt.Errorf("delete campaign %d: %w", campaignID, err)
		}
		deleted := CampaignDeleted{ID: campaignID}
		b, err := json.Marshal(deleted)
		if err != nil {
			return fmt.Errorf("delete campaign %d: %w", campaignID, err)
		}
		// Resets stay what they are: one not yet published still starts
		// the room over.
		if _, err := tx.ExecContext(ctx, "UPDATE outbox SET type = $1, data = $2 WHERE grp = $3 AND type <> $4",
			EventCampaignDeleted, string(b), group, EventRoomReset); err != nil {
			return fmt.Errorf("delete campaign %d from the event log: %w", campaignID, err)
		}
		if err := p.record(ctx, tx, group, EventCampaignDeleted, deleted); err != nil {
			return err
		}
		return p.record(ctx, tx, group, EventRoomReset, roomReset{campaignID, "deleted"})
	})
	if err != nil {
		return nil, err
	}
	return images, nil
}

// RoomResetPending reports whether a reset of the room group
// (EventRoomReset) is committed and not yet published: until it is, the
// channel layer still holds the room's history from before it.
func (p *Platform) RoomResetPending(ctx context.Context, group string) (bool, error) {
	var n int64
	err := p.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM outbox WHERE grp = $1 AND type = $2 AND NOT published", group, EventRoomReset).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look up a pending reset of %s: %w", group, err)
	}
	return n > 0, nil
}

// campaignForNewChild checks, for adding an object whose event is
// independent of its siblings' (a comment, an update, a release), that
// userID may add to campaignID (it exists, is not someone else's draft;
// with ownerOnly, is theirs) and share-locks its row: such writes to one
// campaign commit side by side (on PostgreSQL, in one flush to disk)
// instead of one after another, while a change to the campaign itself or
// to an existing object still waits for them. Their events may be
// numbered in another order than their commits; each is still published
// once, and no client state depends on the order of two new objects. One
// statement, which also reads userID's username for the new object.
func (p *Platform) campaignForNewChild(ctx context.Context, tx *sql.Tx, userID, campaignID int64, ownerOnly bool) (newChild, error) {
	lock := ""
	if p.db.Dialect == store.Postgres {
		// The campaign's row only: the user's is not changed by the write.
		lock = " FOR SHARE OF c"
	}
	var ch newChild
	var owner int64
	err := tx.QueryRowContext(ctx, `SELECT c.owner_id, c.status, u.username FROM campaigns c JOIN users u ON u.id = $2
		WHERE c.id = $1 AND c.deleted_at IS NULL`+lock, campaignID, userID).Scan(&owner, &ch.Status, &ch.Author.Username)
	if errors.Is(err, sql.ErrNoRows) {
		return newChild{}, notFound("campaign")
	}
	if err != nil {
		return newChild{}, fmt.Errorf("lock campaign %d: %w", campaignID, err)
	}
	if ch.Status == CampaignDraft && owner != userID {
		return newChild{}, notFound("campaign")
	}
	if ownerOnly && owner != userID {
		return newChild{}, forbidden("only the campaign's owner may do this")
	}
	ch.Author.ID = userID
	return ch, nil
}

// newChild is what campaignForNewChild found: the campaign's status and
// the new object's author.
type newChild struct {
	Status string
	Author UserRef
}

// campaignForWrite loads and locks a campaign the actor may see (and, with
// ownerOnly, owns). Locking the row serializes the writes of one campaign
// that read and change its state.
func (p *Platform) campaignForWrite(ctx context.Context, tx *sql.Tx, userID, campaignID int64, ownerOnly bool) (Campaign, error) {
	if _, err := tx.ExecContext(ctx, "SELECT id FROM campaigns WHERE id = $1"+p.db.ForUpdate(), campaignID); err != nil {
		return Campaign{}, fmt.Errorf("lock campaign %d: %w", campaignID, err)
	}
	c, err := scanCampaign(tx.QueryRowContext(ctx, campaignSelect+" WHERE c.id = $1", campaignID))
	if errors.Is(err, sql.ErrNoRows) {
		return Campaign{}, notFound("campaign")
	}
	if err != nil {
		return Campaign{}, fmt.Errorf("load campaign %d: %w", campaignID, err)
	}
	if c.Status == CampaignDraft && c.Owner.ID != userID {
		return Campaign{}, notFound("campaign")
	}
	if ownerOnly && c.Owner.ID != userID {
		return Campaign{}, forbidden("only the campaign's owner may do this")
	}
	return c, nil
}

// Campaign returns a campaign without relations, if viewerID may see it
// (viewerID 0 is anonymous).
func (p *Platform) Campaign(ctx context.Context, viewerID, campaignID int64) (Campaign, error) {
	c, err := scanCampaign(p.db.QueryRowContext(ctx, campaignSelect+" WHERE c.id = $1 AND "+fmt.Sprintf(visibleTo, 2), campaignID, viewerID))
	if errors.Is(err, sql.ErrNoRows) {
		return Campaign{}, notFound("campaign")
	}
	if err != nil {
		return Campaign{}, fmt.Errorf("load campaign %d: %w", campaignID, err)
	}
	return c, nil
}

// CampaignDetail returns a campaign with its newest relations nested: the REST
// detail and the WebSocket snapshot.
func (p *Platform) CampaignDetail(ctx context.Context, viewerID, campaignID int64) (CampaignDetail, error) {
	c, err := p.Campaign(ctx, viewerID, campaignID)
	if err != nil {
		return CampaignDetail{}, err
	}
	d := CampaignDetail{Campaign: c}
	id := c.ID
	if d.Contributions, err = collect(ctx, p.db, scanContribution, contributionSelect+" WHERE x.campaign_id = $1 ORDER BY x.id DESC LIMIT $2", id, NestedLimit); err != nil {
		return CampaignDetail{}, fmt.Errorf("load contributions of campaign %d: %w", id, err)
	}
	if d.Updates, err = collect(ctx, p.db, scanUpdate, updateSelect+" WHERE x.campaign_id = $1 ORDER BY x.id DESC LIMIT $2", id, NestedLimit); err != nil {
		return CampaignDetail{}, fmt.Errorf("load updates of campaign %d: %w", id, err)
	}
	if d.Comments, err = collect(ctx, p.db, scanComment, commentSelect+" WHERE x.campaign_id = $1 ORDER BY x.id DESC LIMIT $2", id, NestedLimit); err != nil {
		return CampaignDetail{}, fmt.Errorf("load comments of campaign %d: %w", id, err)
	}
	if d.Releases, err = collect(ctx, p.db, scanRelease, releaseSelect+" WHERE x.campaign_id = $1 ORDER BY x.released_at DESC, x.id DESC LIMIT $2", id, NestedLimit); err != nil {
		return CampaignDetail{}, fmt.Errorf("load releases of campaign %d: %w", id, err)
	}
	if d.Milestones, err = collect(ctx, p.db, scanMilestone, milestoneSelect+" WHERE x.campaign_id = $1 ORDER BY x.target_cents, x.id LIMIT $2", id, NestedLimit); err != nil {
		return CampaignDetail{}, fmt.Errorf("load milestones of campaign %d: %w", id, err)
	}
	if d.UpdatesCount, err = count(ctx, p.db, "SELECT COUNT(*) FROM updates WHERE campaign_id = $1", id); err != nil {
		return CampaignDetail{}, fmt.Errorf("count updates of campaign %d: %w", id, err)
	}
	if d.CommentsCount, err = count(ctx, p.db, "SELECT COUNT(*) FROM comments WHERE campaign_id = $1 AND removed_at IS NULL", id); err != nil {
		return CampaignDetail{}, fmt.Errorf("count comments of campaign %d: %w", id, err)
	}
	return d, nil
}

// CampaignFilter narrows ListCampaigns.
type CampaignFilter struct {
	Status  string // "" for any the viewer may see
	OwnerID int64  // 0 for any
}

// ListCampaigns lists the campaigns viewerID may see, newest first.
func (p *Platform) ListCampaigns(ctx context.Context, viewerID int64, filter CampaignFilter, page PageRequest) (Page[Campaign], error) {
	page = normPage(page)
	where := " WHERE c.deleted_at IS NULL AND " + fmt.Sprintf(visibleTo, 1) + " AND ($2 = '' OR c.status = $2) AND ($3 = 0 OR c.owner_id = $3)"
	n, err := count(ctx, p.db, "SELECT COUNT(*) FROM campaigns c"+where, viewerID, filter.Status, filter.OwnerID)
	if err != nil {
		return Page[Campaign]{}, fmt.Errorf("count campaigns: %w", err)
	}
	cs, err := collect(ctx, p.db, scanCampaign, campaignSelect+where+" ORDER BY c.id DESC LIMIT $4 OFFSET $5",
		viewerID, filter.Status, filter.OwnerID, page.Size, page.offset())
	if err != nil {
		return Page[Campaign]{}, fmt.Errorf("list campaigns: %w", err)
	}
	return Page[Campaign]{Count: n, Results: cs}, nil
}
