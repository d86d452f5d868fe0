package platform

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/heraldhq/herald/internal/money"
	"github.com/heraldhq/herald/internal/store"
)

const (
	contributionSelect = `SELECT x.id, x.campaign_id, x.user_id, u.username, x.amount_cents, x.currency, x.created_at
		FROM contributions x JOIN users u ON u.id = x.user_id`
	updateSelect  = `SELECT x.id, x.campaign_id, x.title, x.content, x.image, x.created_at, x.updated_at FROM updates x`
	commentSelect = `SELECT x.id, x.campaign_id, x.user_id, u.username, x.content, x.created_at, x.updated_at
		FROM (SELECT * FROM comments WHERE removed_at IS NULL) x JOIN users u ON u.id = x.user_id`
	releaseSelect   = `SELECT x.id, x.campaign_id, x.version, x.title, x.notes, x.released_at, x.updated_at FROM releases x`
	milestoneSelect = `SELECT x.id, x.campaign_id, x.title, x.description, x.target_cents, x.reached, x.due_date, x.created_at, x.updated_at
		FROM milestones x`
)

func scanContribution(s scanner) (Contribution, error) {
	var c Contribution
	err := s.Scan(&c.ID, &c.Campaign, &c.User.ID, &c.User.Username, &c.Amount, &c.Currency, &c.CreatedAt.Time)
	return c, err
}

func scanUpdate(s scanner) (Update, error) {
	var u Update
	var image string
	err := s.Scan(&u.ID, &u.Campaign, &u.Title, &u.Content, &image, &u.CreatedAt.Time, &u.UpdatedAt.Time)
	u.Image = imageOf(image)
	return u, err
}

// scanComment reads a row of commentSelect. Removed comments
// (moderation.go) are no comments: every read of comments goes through
// commentSelect, which leaves them out.
func scanComment(s scanner) (Comment, error) {
	var c Comment
	err := s.Scan(&c.ID, &c.Campaign, &c.User.ID, &c.User.Username, &c.Content, &c.CreatedAt.Time, &c.UpdatedAt.Time)
	return c, err
}

func scanRelease(s scanner) (Release, error) {
	var r Release
	err := s.Scan(&r.ID, &r.Campaign, &r.Version, &r.Title, &r.Notes, &r.ReleasedAt.Time, &r.UpdatedAt.Time)
	return r, err
}

func scanMilestone(s scanner) (Milestone, error) {
	var m Milestone
	var due sql.NullTime
	err := s.Scan(&m.ID, &m.Campaign, &m.Title, &m.Description, &m.TargetAmount, &m.Reached, &due, &m.CreatedAt.Time, &m.UpdatedAt.Time)
	if due.Valid {
		m.DueDate = &Date{due.Time.UTC()}
	}
	return m, err
}

// ContributionInput is the input of Contribute.
type ContributionInput struct {
	Amount   *money.Cents `json:"amount"`
	Currency string       `json:"currency"`
}

// Contribute adds userID's contribution to an active campaign. The raised
// total grows in the same transaction (exact under any concurrency: the row
// is locked), and milestones it reaches are marked and announced.
func (p *Platform) Contribute(ctx context.Context, userID, campaignID int64, in ContributionInput) (Contribution, error) {
	if err := requireUser(userID); err != nil {
		return Contribution{}, err
	}
	f := fieldErrors{}
	if in.Amount == nil {
		f.add("amount", "this field is required")
	} else if *in.Amount <= 0 || *in.Amount > money.Max {
		f.add("amount", "must be greater than 0.00 and at most %s", money.Max)
	}
	if in.Currency != "" && !money.ValidCurrency(in.Currency) {
		f.add("currency", "must be a three-letter ISO 4217 code such as USD")
	}
	if err := f.err(); err != nil {
		return Contribution{}, err
	}
	var c Contribution
	err := p.write(ctx, func(tx *sql.Tx) error {
		camp, err := p.campaignForWrite(ctx, tx, userID, campaignID, false)
		if err != nil {
			return err
		}
		if camp.Status != CampaignActive {
			return conflict("this campaign is %s and does not accept contributions", camp.Status)
		}
		if in.Currency != "" && in.Currency != camp.Currency {
			return invalid("currency", "this campaign collects %s", camp.Currency)
		}
		if camp.RaisedAmount+*in.Amount > money.Max {
			return invalid("amount", "the campaign's total would exceed %s", money.Max)
		}
		now := p.now()
		var id int64
		if err := tx.QueryRowContext(ctx,
			"INSERT INTO contributions (campaign_id, user_id, amount_cents, currency, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
			campaignID, userID, *in.Amount, camp.Currency, now).Scan(&id); err != nil {
			return fmt.Errorf("contribute to campaign %d: %w", campaignID, err)
		}
		var raised money.Cents
		if err := tx.QueryRowContext(ctx,
			"UPDATE campaigns SET raised_cents = raised_cents + $1, updated_at = $2 WHERE id = $3 RETURNING raised_cents",
			*in.Amount, now, campaignID).Scan(&raised); err != nil {
			return fmt.Errorf("contribute to campaign %d: raise total: %w", campaignID, err)
		}
		if c, err = scanContribution(tx.QueryRowContext(ctx, contributionSelect+" WHERE x.id = $1", id)); err != nil {
			return fmt.Errorf("contribute to campaign %d: reload: %w", campaignID, err)
		}
		if err := p.record(ctx, tx, CampaignGroup(campaignID), EventContribution, c); err != nil {
			return err
		}
		return p.reachMilestones(ctx, tx, campaignID, raised, now)
	})
	return c, err
}

// reachMilestones marks the milestones the raised total has reached.
func (p *Platform) reachMilestones(ctx context.Context, tx *sql.Tx, campaignID int64, raised money.Cents, now time.Time) error {
	ids, err := collect(ctx, tx, func(s scanner) (int64, error) {
		var id int64
		return id, s.Scan(&id)
	}, "UPDATE milestones SET reached = TRUE, updated_at = $1 WHERE campaign_id = $2 AND NOT reached AND target_cents <= $3 RETURNING id",
		now, campaignID, raised)
	if err != nil {
		return fmt.Errorf("reach milestones of campaign %d: %w", campaignID, err)
	}
	// Announced in the order they are listed (target, then id): RETURNING
	// gives no order.
	slices.Sort(ids)
	reached := make([]Milestone, 0, len(ids))
	for _, id := range ids {
		m, err := scanMilestone(tx.QueryRowContext(ctx, milestoneSelect+" WHERE x.id = $1", id))
		if err != nil {
			return fmt.Errorf("reload milestone %d: %w", id, err)
		}
		reached = append(reached, m)
	}
	slices.SortStableFunc(reached, func(a, b Milestone) int { return cmp.Compare(a.TargetAmount, b.TargetAmount) })
	for _, m := range reached {
		if err := p.record(ctx, tx, CampaignGroup(campaignID), EventMilestone, m); err != nil {
			return err
		}
	}
	return nil
}

// UpdateInput posts or edits a campaign update.
type UpdateInput struct {
	Title   *string    `json:"title"`
	Content *string    `json:"content"`
	Image   ImageInput `json:"image"`
}

func (in UpdateInput) apply(f fieldErrors, u *Update, create bool) {
	if in.Title != nil || create {
		u.Title = text(f, "title", deref(in.Title), true, 200)
	}
	if in.Content != nil || create {
		u.Content = text(f, "content", deref(in.Content), true, 20000)
	}
	in.Image.apply(f, &u.Image)
}

// PostUpdate publishes news on a campaign; only its owner may.
func (p *Platform) PostUpdate(ctx context.Context, userID, campaignID int64, in UpdateInput) (Update, error) {
	var u Update
	f := fieldErrors{}
	in.apply(f, &u, true)
	if err := requireUser(userID); err != nil {
		return Update{}, err
	}
	if err := f.err(); err != nil {
		return Update{}, err
	}
	err := p.write(ctx, func(tx *sql.Tx) error {
		if _, err := p.campaignForNewChild(ctx, tx, userID, campaignID, true); err != nil {
			return err
		}
		now := p.now()
		var id int64
		if err := tx.QueryRowContext(ctx,
			"INSERT INTO updates (campaign_id, title, content, image, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
			campaignID, u.Title, u.Content, imageColumn(u.Image), now).Scan(&id); err != nil {
			return fmt.Errorf("post update on campaign %d: %w", campaignID, err)
		}
		u = Update{ID: id, Campaign: campaignID, Title: u.Title, Content: u.Content, Image: u.Image, CreatedAt: Time{now}, UpdatedAt: Time{now}}
		return p.record(ctx, tx, CampaignGroup(campaignID), EventUpdate, u)
	})
	return u, err
}

// EditUpdate changes an update; only the campaign's owner may. previous is
// the image the edit removed or replaced, once it is committed ("" when
// the image is unchanged), for the caller to delete.
func (p *Platform) EditUpdate(ctx context.Context, userID, campaignID, updateID int64, in UpdateInput) (u Update, previous string, err error) {
	u, err = editChild(ctx, p, userID, campaignID, updateID, true, "update", EventUpdate,
		updateSelect, scanUpdate, func(u *Update) int64 { return u.Campaign },
		func(tx *sql.Tx, u *Update, f fieldErrors) error {
			before := imageColumn(u.Image)
			in.apply(f, u, false)
			if err := f.err(); err != nil {
				return err
			}
			if after := imageColumn(u.Image); after != before {
				previous = before
			} else {
				previous = ""
			}
			u.UpdatedAt = Time{p.now()}
			_, err := tx.ExecContext(ctx, "UPDATE updates SET title = $1, content = $2, image = $3, updated_at = $4 WHERE id = $5",
				u.Title, u.Content, imageColumn(u.Image), u.UpdatedAt.Time, u.ID)
			return err
		})
	if err != nil {
		return Update{}, "", err
	}
	return u, previous, nil
}

// CommentInput posts or edits a comment.
type CommentInput struct {
	Content *string `json:"content"`
}

// PostComment adds userID's comment to a campaign they can see.
func (p *Platform) PostComment(ctx context.Context, userID, campaignID int64, in CommentInput) (Comment, error) {
	if err := requireUser(userID); err != nil {
		return Comment{}, err
	}
	f := fieldErrors{}
	content := text(f, "content", deref(in.Content), true, 5000)
	if err := f.err(); err != nil {
		return Comment{}, err
	}
	var c Comment
	err := p.write(ctx, func(tx *sql.Tx) error {
		camp, err := p.campaignForNewChild(ctx, tx, userID, campaignID, false)
		if err != nil {
			return err
		}
		if camp.Status == CampaignClosed {
			return conflict("this campaign is closed to comments")
		}
		now := p.now()
		var id int64
		if err := tx.QueryRowContext(ctx,
			"INSERT INTO comments (campaign_id, user_id, content, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) RETURNING id",
			campaignID, userID, content, now).Scan(&id); err != nil {
			return fmt.Errorf("comment on campaign %d: %w", campaignID, err)
		}
		c = Comment{ID: id, Campaign: campaignID, User: camp.Author, Content: content, CreatedAt: Time{now}, UpdatedAt: Time{now}}
		return p.record(ctx, tx, CampaignGroup(campaignID), EventComment, c)
	})
	return c, err
}

// EditComment changes a comment; only its author may.
func (p *Platform) EditComment(ctx context.Context, userID, campaignID, commentID int64, in CommentInput) (Comment, error) {
	return editChild(ctx, p, userID, campaignID, commentID, false, "comment", EventComment,
		commentSelect, scanComment, func(c *Comment) int64 { return c.Campaign },
		func(tx *sql.Tx, c *Comment, f fieldErrors) error {
			if c.User.ID != userID {
				return forbidden("only the comment's author may edit it")
			}
			if in.Content != nil {
				c.Content = text(f, "content", *in.Content, true, 5000)
			}
			if err := f.err(); err != nil {
				return err
			}
			c.UpdatedAt = Time{p.now()}
			_, err := tx.ExecContext(ctx, "UPDATE comments SET content = $1, updated_at = $2 WHERE id = $3", c.Content, c.UpdatedAt.Time, c.ID)
			return err
		})
}

// ReleaseInput creates or edits a release.
type ReleaseInput struct {
	Version    *string `json:"version"`
	Title      *string `json:"title"`
	Notes      *string `json:"notes"`
	ReleasedAt *Time   `json:"released_at"`
}

func (in ReleaseInput) apply(f fieldErrors, r *Release, create bool) {
	if in.Version != nil || create {
		r.Version = text(f, "version", deref(in.Version), true, 50)
	}
	if in.Title != nil || create {
		r.Title = text(f, "title", deref(in.Title), true, 200)
	}
	if in.Notes != nil {
		r.Notes = text(f, "notes", *in.Notes, false, 20000)
	}
	if in.ReleasedAt != nil {
		r.ReleasedAt = Time{in.ReleasedAt.UTC().Truncate(time.Microsecond)}
	}
}

// CreateRelease records a release; only the campaign's owner may.
func (p *Platform) CreateRelease(ctx context.Context, userID, campaignID int64, in ReleaseInput) (Release, error) {
	if err := requireUser(userID); err != nil {
		return Release{}, err
	}
	var r Release
	f := fieldErrors{}
	in.apply(f, &r, true)
	if err := f.err(); err != nil {
		return Release{}, err
	}
	err := p.write(ctx, func(tx *sql.Tx) error {
		if _, err := p.campaignForNewChild(ctx, tx, userID, campaignID, true); err != nil {
			return err
		}
		now := p.now()
		if r.ReleasedAt.IsZero() {
			r.ReleasedAt = Time{now}
		}
		var id int64
		err := tx.QueryRowContext(ctx,
			"INSERT INTO releases (campaign_id, version, title, notes, released_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
			campaignID, r.Version, r.Title, r.Notes, r.ReleasedAt.Time, now).Scan(&id)
		if store.IsUniqueViolation(err) {
			return invalid("version", "this campaign already has a release %q", r.Version)
		}
		if err != nil {
			return fmt.Errorf("create release on campaign %d: %w", campaignID, err)
		}
		r.ID, r.Campaign, r.UpdatedAt = id, campaignID, Time{now}
		return p.record(ctx, tx, CampaignGroup(campaignID), EventRelease, r)
	})
	return r, err
}

// EditRelease changes a release; only the campaign's owner may.
func (p *Platform) EditRelease(ctx context.Context, userID, campaignID, releaseID int64, in ReleaseInput) (Release, error) {
	return editChild(ctx, p, userID, campaignID, releaseID, true, "release", EventRelease,
		releaseSelect, scanRelease, func(r *Release) int64 { return r.Campaign },
		func(tx *sql.Tx, r *Release, f fieldErrors) error {
			in.apply(f, r, false)
			if err := f.err(); err != nil {
				return err
			}
			r.UpdatedAt = Time{p.now()}
			_, err := tx.ExecContext(ctx, "UPDATE releases SET version = $1, title = $2, notes = $3, released_at = $4, updated_at = $5 WHERE id = $6",
				r.Version, r.Title, r.Notes, r.ReleasedAt.Time, r.UpdatedAt.Time, r.ID)
			if store.IsUniqueViolation(err) {
				return invalid("version", "this campaign already has a release %q", r.Version)
			}
			return err
		})
}

// MilestoneInput creates or edits a milestone. DueDate is "YYYY-MM-DD", or
// "" to clear it.
type MilestoneInput struct {
	Title        *string      `json:"title"`
	Description  *string      `json:"description"`
	TargetAmount *money.Cents `json:"target_amount"`
	Reached      *bool        `json:"reached"`
	DueDate      *string      `json:"due_date"`
}

func (in MilestoneInput) apply(f fieldErrors, m *Milestone, create bool) {
	if in.Title != nil || create {
		m.Title = text(f, "title", deref(in.Title), true, 200)
	}
	if in.Description != nil {
		m.Description = text(f, "description", *in.Description, false, 5000)
	}
	if in.TargetAmount != nil {
		if m.TargetAmount = *in.TargetAmount; m.TargetAmount <= 0 || m.TargetAmount > money.Max {
			f.add("target_amount", "must be greater than 0.00 and at most %s", money.Max)
		}
	} else if create {
		f.add("target_amount", "this field is required")
	}
	if in.Reached != nil {
		m.Reached = *in.Reached
	}
	if in.DueDate != nil {
		if *in.DueDate == "" {
			m.DueDate = nil
		} else if d, err := ParseDate(*in.DueDate); err != nil {
			f.add("due_date", "date has wrong format; use YYYY-MM-DD")
		} else {
			m.DueDate = &d
		}
	}
}

func (m *Milestone) dueArg() any {
	if m.DueDate == nil {
		return nil
	}
	return m.DueDate.Time
}

// CreateMilestone adds a funding milestone; only the campaign's owner may. A
// target the campaign has already raised is reached at once.
func (p *Platform) CreateMilestone(ctx context.Context, userID, campaignID int64, in MilestoneInput) (Milestone, error) {
	if err := requireUser(userID); err != nil {
		return Milestone{}, err
	}
	var m Milestone
	f := fieldErrors{}
	in.apply(f, &m, true)
	if err := f.err(); err != nil {
		return Milestone{}, err
	}
	err := p.write(ctx, func(tx *sql.Tx) error {
		camp, err := p.campaignForWrite(ctx, tx, userID, campaignID, true)
		if err != nil {
			return err
		}
		if camp.RaisedAmount >= m.TargetAmount {
			m.Reached = true
		}
		now := p.now()
		var id int64
		if err := tx.QueryRowContext(ctx,
			`INSERT INTO milestones (campaign_id, title, description, target_cents, reached, due_date, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id`,
			campaignID, m.Title, m.Description, m.TargetAmount, m.Reached, m.dueArg(), now).Scan(&id); err != nil {
			return fmt.Errorf("create milestone on campaign %d: %w", campaignID, err)
		}
		m.ID, m.Campaign, m.CreatedAt, m.UpdatedAt = id, campaignID, Time{now}, Time{now}
		return p.record(ctx, tx, CampaignGroup(campaignID), EventMilestone, m)
	})
	return m, err
}

// EditMilestone changes a milestone; only the campaign's owner may.
func (p *Platform) EditMilestone(ctx context.Context, userID, campaignID, milestoneID int64, in MilestoneInput) (Milestone, error) {
	return editChild(ctx, p, userID, campaignID, milestoneID, true, "milestone", EventMilestone,
		milestoneSelect, scanMilestone, func(m *Milestone) int64 { return m.Campaign },
		func(tx *sql.Tx, m *Milestone, f fieldErrors) error {
			in.apply(f, m, false)
			if err := f.err(); err != nil {
				return err
			}
			// A target lowered to what is already raised is reached now, as
			// at creation, unless the owner explicitly says otherwise.
			if in.Reached == nil && !m.Reached {
				var raised money.Cents
				if err := tx.QueryRowContext(ctx, "SELECT raised_cents FROM campaigns WHERE id = $1", campaignID).Scan(&raised); err != nil {
					return err
				}
				m.Reached = raised >= m.TargetAmount
			}
			m.UpdatedAt = Time{p.now()}
			_, err := tx.ExecContext(ctx, `UPDATE milestones SET title = $1, description = $2, target_cents = $3, reached = $4,
				due_date = $5, updated_at = $6 WHERE id = $7`,
				m.Title, m.Description, m.TargetAmount, m.Reached, m.dueArg(), m.UpdatedAt.Time, m.ID)
			return err
		})
}

// editChild is the shared shape of editing one of a campaign's objects: lock
// the campaign, load the object, check it belongs there, change it, record
// the event with the new JSON.
func editChild[T any](ctx context.Context, p *Platform, userID, campaignID, id int64, ownerOnly bool, what, event, query string,
	scan func(scanner) (T, error), campaignOf func(*T) int64, change func(*sql.Tx, *T, fieldErrors) error) (T, error) {
	var obj T
	if err := requireUser(userID); err != nil {
		return obj, err
	}
	err := p.write(ctx, func(tx *sql.Tx) error {
		if _, err := p.campaignForWrite(ctx, tx, userID, campaignID, ownerOnly); err != nil {
			return err
		}
		var err error
		obj, err = scan(tx.QueryRowContext(ctx, query+" WHERE x.id = $1", id))
		if errors.Is(err, sql.ErrNoRows) || (err == nil && campaignOf(&obj) != campaignID) {
			return notFound(what)
		}
		if err != nil {
			return fmt.Errorf("load %s %d: %w", what, id, err)
		}
		if err := change(tx, &obj, fieldErrors{}); err != nil {
			if KindOf(err) != 0 {
				return err
			}
			return fmt.Errorf("edit %s %d: %w", what, id, err)
		}
		return p.record(ctx, tx, CampaignGroup(campaignID), event, obj)
	})
	return obj, err
}

// Lists of a campaign's objects, newest first, for a viewer who may see the
// campaign.

func (p *Platform) Contributions(ctx context.Context, viewerID, campaignID int64, page PageRequest) (Page[Contribution], error) {
	return listChild(ctx, p, viewerID, campaignID, page, "contributions", contributionSelect, "x.id DESC", scanContribution)
}

func (p *Platform) Updates(ctx context.Context, viewerID, campaignID int64, page PageRequest) (Page[Update], error) {
	return listChild(ctx, p, viewerID, campaignID, page, "updates", updateSelect, "x.id DESC", scanUpdate)
}

func (p *Platform) Comments(ctx context.Context, viewerID, campaignID int64, page PageRequest) (Page[Comment], error) {
	return listChild(ctx, p, viewerID, campaignID, page, "comments", commentSelect, "x.id DESC", scanComment)
}

func (p *Platform) Releases(ctx context.Context, viewerID, campaignID int64, page PageRequest) (Page[Release], error) {
	return listChild(ctx, p, viewerID, campaignID, page, "releases", releaseSelect, "x.released_at DESC, x.id DESC", scanRelease)
}

func (p *Platform) Milestones(ctx context.Context, viewerID, campaignID int64, page PageRequest) (Page[Milestone], error) {
	return listChild(ctx, p, viewerID, campaignID, page, "milestones", milestoneSelect, "x.target_cents, x.id", scanMilestone)
}

func listChild[T any](ctx context.Context, p *Platform, viewerID, campaignID int64, page PageRequest, table, query, order string,
	scan func(scanner) (T, error)) (Page[T], error) {
	if _, err := p.Campaign(ctx, viewerID, campaignID); err != nil {
		return Page[T]{}, err
	}
	page = normPage(page)
	where := " WHERE campaign_id = $1"
	if table == "comments" {
		where += " AND removed_at IS NULL" // as commentSelect
	}
	n, err := count(ctx, p.db, "SELECT COUNT(*) FROM "+table+where, campaignID)
	if err != nil {
		return Page[T]{}, fmt.Errorf("count %s of campaign %d: %w", table, campaignID, err)
	}
	items, err := collect(ctx, p.db, scan, query+" WHERE x.campaign_id = $1 ORDER BY "+order+" LIMIT $2 OFFSET $3", campaignID, page.Size, page.offset())
	if err != nil {
		return Page[T]{}, fmt.Errorf("list %s of campaign %d: %w", table, campaignID, err)
	}
	return Page[T]{Count: n, Results: items}, nil
}

// One of a campaign's objects, for a viewer who may see the campaign.

func (p *Platform) Contribution(ctx context.Context, viewerID, campaignID, id int64) (Contribution, error) {
	return getChild(ctx, p, viewerID, campaignID, id, "contribution", contributionSelect, scanContribution)
}

func (p *Platform) Update(ctx context.Context, viewerID, campaignID, id int64) (Update, error) {
	return getChild(ctx, p, viewerID, campaignID, id, "update", updateSelect, scanUpdate)
}

func (p *Platform) Comment(ctx context.Context, viewerID, campaignID, id int64) (Comment, error) {
	return getChild(ctx, p, viewerID, campaignID, id, "comment", commentSelect, scanComment)
}

func (p *Platform) Release(ctx context.Context, viewerID, campaignID, id int64) (Release, error) {
	return getChild(ctx, p, viewerID, campaignID, id, "release", releaseSelect, scanRelease)
}

func (p *Platform) Milestone(ctx context.Context, viewerID, campaignID, id int64) (Milestone, error) {
	return getChild(ctx, p, viewerID, campaignID, id, "milestone", milestoneSelect, scanMilestone)
}

func getChild[T any](ctx context.Context, p *Platform, viewerID, campaignID, id int64, what, query string, scan func(scanner) (T, error)) (T, error) {
	if _, err := p.Campaign(ctx, viewerID, campaignID); err != nil {
		var zero T
		return zero, err
	}
	return childIn(ctx, p.db, campaignID, id, what, query, scan)
}

// childIn reads object id of campaign (its query selects one kind of
// object as x): not found unless it is that campaign's.
func childIn[T any](ctx context.Context, q querier, campaignID, id int64, what, query string, scan func(scanner) (T, error)) (T, error) {
	obj, err := scan(q.QueryRowContext(ctx, query+" WHERE x.id = $1 AND x.campaign_id = $2", id, campaignID))
	if errors.Is(err, sql.ErrNoRows) {
		return obj, notFound(what)
	}
	if err != nil {
		return obj, fmt.Errorf("load %s %d: %w", what, id, err)
	}
	return obj, nil
}
