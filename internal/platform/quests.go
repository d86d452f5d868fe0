package platform

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/heraldhq/herald/internal/store"
)

// Quest and application statuses.
const (
	QuestOpen   = "open"
	QuestClosed = "closed"

	ApplicationPending   = "pending"
	ApplicationApproved  = "approved"
	ApplicationRejected  = "rejected"
	ApplicationWithdrawn = "withdrawn"
)

// QuestInput creates a quest, or with nil fields left alone, edits one.
type QuestInput struct {
	Title       *string `json:"title"`
	Description *string `json:"description"`
	Status      *string `json:"status"`
}

const questSelect = `SELECT q.id, q.creator_id, u.username, q.title, q.description, q.status, q.created_at, q.updated_at,
	(SELECT COUNT(*) FROM applications a WHERE a.quest_id = q.id)
	FROM quests q JOIN users u ON u.id = q.creator_id`

func scanQuest(s scanner) (Quest, error) {
	var q Quest
	err := s.Scan(&q.ID, &q.Creator.ID, &q.Creator.Username, &q.Title, &q.Description, &q.Status,
		&q.CreatedAt.Time, &q.UpdatedAt.Time, &q.ApplicationsCount)
	return q, err
}

func (in QuestInput) validate(create bool) (title, desc, status *string, err error) {
	f := fieldErrors{}
	if in.Title != nil || create {
		t := text(f, "title", deref(in.Title), true, 200)
		title = &t
	}
	if in.Description != nil {
		d := text(f, "description", *in.Description, false, 10000)
		desc = &d
	} else if create {
		d := ""
		desc = &d
	}
	if in.Status != nil {
		if *in.Status != QuestOpen && *in.Status != QuestClosed {
			f.add("status", "%q is not a valid choice (open, closed)", *in.Status)
		}
		status = in.Status
	} else if create {
		s := QuestOpen
		status = &s
	}
	return title, desc, status, f.err()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// CreateQuest posts a quest by userID.
func (p *Platform) CreateQuest(ctx context.Context, userID int64, in QuestInput) (Quest, error) {
	if err := requireUser(userID); err != nil {
		return Quest{}, err
	}
	title, desc, status, err := in.validate(true)
	if err != nil {
		return Quest{}, err
	}
	var q Quest
	err = p.write(ctx, func(tx *sql.Tx) error {
		now := p.now()
		var id int64
		if err := tx.QueryRowContext(ctx,
			"INSERT INTO quests (creator_id, title, description, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
			userID, *title, *desc, *status, now).Scan(&id); err != nil {
			return fmt.Errorf("create quest: %w", err)
		}
		var err error
		if q, err = scanQuest(tx.QueryRowContext(ctx, questSelect+" WHERE q.id = $1", id)); err != nil {
			return fmt.Errorf("create quest: reload: %w", err)
		}
		return p.record(ctx, tx, ControlGroup(userID), EventQuestCreated, map[string]int64{"quest_id": id})
	})
	return q, err
}

// UpdateQuest edits a quest; only its creator may.
func (p *Platform) UpdateQuest(ctx context.Context, userID, questID int64, in QuestInput) (Quest, error) {
	if err := requireUser(userID); err != nil {
		return Quest{}, err
	}
	title, desc, status, err := in.validate(false)
	if err != nil {
		return Quest{}, err
	}
	var q Quest
	err = p.write(ctx, func(tx *sql.Tx) error {
		cur, err := scanQuest(tx.QueryRowContext(ctx, questSelect+" WHERE q.id = $1", questID))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("quest")
		}
		if err != nil {
			return fmt.Errorf("update quest %d: %w", questID, err)
		}
		if cur.Creator.ID != userID {
			return forbidden("only the quest's creator may edit it")
		}
		if title == nil {
			title = &cur.Title
		}
		if desc == nil {
			desc = &cur.Description
		}
		if status == nil {
			status = &cur.Status
		}
		if _, err := tx.ExecContext(ctx, "UPDATE quests SET title = $1, description = $2, status = $3, updated_at = $4 WHERE id = $5",
			*title, *desc, *status, p.now(), questID); err != nil {
			return fmt.Errorf("update quest %d: %w", questID, err)
		}
		q, err = scanQuest(tx.QueryRowContext(ctx, questSelect+" WHERE q.id = $1", questID))
		return err
	})
	return q, err
}

// Quest returns one quest; quests are public.
func (p *Platform) Quest(ctx context.Context, questID int64) (Quest, error) {
	q, err := scanQuest(p.db.QueryRowContext(ctx, questSelect+" WHERE q.id = $1", questID))
	if errors.Is(err, sql.ErrNoRows) {
		return Quest{}, notFound("quest")
	}
	if err != nil {
		return Quest{}, fmt.Errorf("load quest %d: %w", questID, err)
	}
	return q, nil
}

// QuestFilter narrows ListQuests.
type QuestFilter struct {
	Status    string // "" for any
	CreatorID int64  // 0 for any
}

// ListQuests lists quests, newest first.
func (p *Platform) ListQuests(ctx context.Context, filter QuestFilter, page PageRequest) (Page[Quest], error) {
	page = normPage(page)
	where := " WHERE ($1 = '' OR q.status = $1) AND ($2 = 0 OR q.creator_id = $2)"
	n, err := count(ctx, p.db, "SELECT COUNT(*) FROM quests q"+where, filter.Status, filter.CreatorID)
	if err != nil {
		return Page[Quest]{}, fmt.Errorf("count quests: %w", err)
	}
	qs, err := collect(ctx, p.db, scanQuest, questSelect+where+" ORDER BY q.id DESC LIMIT $3 OFFSET $4",
		filter.Status, filter.CreatorID, page.Size, page.offset())
	if err != nil {
		return Page[Quest]{}, fmt.Errorf("list quests: %w", err)
	}
	return Page[Quest]{Count: n, Results: qs}, nil
}

// QuestIDsByCreator lists the ids of every quest userID created: the quest
// groups their application connection joins.
func (p *Platform) QuestIDsByCreator(ctx context.Context, userID int64) ([]int64, error) {
	ids, err := collect(ctx, p.db, func(s scanner) (int64, error) {
		var id int64
		return id, s.Scan(&id)
	}, "SELECT id FROM quests WHERE creator_id = $1 ORDER BY id", userID)
	if err != nil {
		return nil, fmt.Errorf("list quests of user %d: %w", userID, err)
	}
	return ids, nil
}

const applicationSelect = `SELECT a.id, a.quest_id, q.title, a.applicant_id, u.username, a.message, a.status, a.created_at, a.updated_at
	FROM applications a JOIN quests q ON q.id = a.quest_id JOIN users u ON u.id = a.applicant_id`

func scanApplication(s scanner) (Application, error) {
	var a Application
	err := s.Scan(&a.ID, &a.Quest, &a.QuestTitle, &a.Applicant.ID, &a.Applicant.Username, &a.Message, &a.Status,
		&a.CreatedAt.Time, &a.UpdatedAt.Time)
	return a, err
}

// ApplicationInput is the input of Apply.
type ApplicationInput struct {
	Message string `json:"message"`
}

// newApplicationEvent is new_application's data, exactly as in the seed.
type newApplicationEvent struct {
	ApplicationID int64  `json:"application_id"`
	Applicant     string `json:"applicant"`
	QuestTitle    string `json:"quest_title"`
	Status        string `json:"status"`
}

// applicationUpdateEvent is application_update's data, exactly as in the seed.
type applicationUpdateEvent struct {
	ApplicationID int64  `json:"application_id"`
	QuestTitle    string `json:"quest_title"`
	Status        string `json:"status"`
	UpdatedAt     Time   `json:"updated_at"`
}

// Apply applies userID to an open quest, once; the quest's creator is told.
func (p *Platform) Apply(ctx context.Context, userID, questID int64, in ApplicationInput) (Application, error) {
	if err := requireUser(userID); err != nil {
		return Application{}, err
	}
	f := fieldErrors{}
	msg := text(f, "message", in.Message, false, 2000)
	if err := f.err(); err != nil {
		return Application{}, err
	}
	var a Application
	err := p.write(ctx, func(tx *sql.Tx) error {
		// Locking the quest row orders this quest's events by commit.
		var creator int64
		var status string
		err := tx.QueryRowContext(ctx, "SELECT creator_id, status FROM quests WHERE id = $1"+p.db.ForUpdate(), questID).Scan(&creator, &status)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("quest")
		}
		if err != nil {
			return fmt.Errorf("apply to quest %d: %w", questID, err)
		}
		if status != QuestOpen {
			return conflict("this quest is closed to applications")
		}
		if creator == userID {
			return forbidden("you cannot apply to your own quest")
		}
		now := p.now()
		var id int64
		err = tx.QueryRowContext(ctx,
			"INSERT INTO applications (quest_id, applicant_id, message, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
			questID, userID, msg, ApplicationPending, now).Scan(&id)
		if store.IsUniqueViolation(err) {
			return conflict("you have already applied to this quest")
		}
		if err != nil {
			return fmt.Errorf("apply to quest %d: %w", questID, err)
		}
		if a, err = scanApplication(tx.QueryRowContext(ctx, applicationSelect+" WHERE a.id = $1", id)); err != nil {
			return fmt.Errorf("apply to quest %d: reload: %w", questID, err)
		}
		return p.record(ctx, tx, QuestGroup(questID), EventNewApplication, newApplicationEvent{
			ApplicationID: a.ID, Applicant: a.Applicant.Username, QuestTitle: a.QuestTitle, Status: a.Status,
		})
	})
	return a, err
}

// Application returns one application, to its applicant or the quest's creator.
func (p *Platform) Application(ctx context.Context, userID, appID int64) (Application, error) {
	if err := requireUser(userID); err != nil {
		return Application{}, err
	}
	a, creator, err := p.loadApplication(ctx, p.db, appID, false)
	if err != nil {
		return Application{}, err
	}
	if a.Applicant.ID != userID && creator != userID {
		return Application{}, notFound("application")
	}
	return a, nil
}

func (p *Platform) loadApplication(ctx context.Context, q querier, appID int64, lock bool) (Application, int64, error) {
	query := applicationSelect + " WHERE a.id = $1"
	a, err := scanApplication(q.QueryRowContext(ctx, query, appID))
	if errors.Is(err, sql.ErrNoRows) {
		return Application{}, 0, notFound("application")
	}
	if err != nil {
		return Application{}, 0, fmt.Errorf("load application %d: %w", appID, err)
	}
	var creator int64
	// Locking the applicant's row orders the events of their user group.
	if lock {
		if err := q.QueryRowContext(ctx, "SELECT id FROM users WHERE id = $1"+p.db.ForUpdate(), a.Applicant.ID).Scan(new(int64)); err != nil {
			return Application{}, 0, fmt.Errorf("lock applicant of application %d: %w", appID, err)
		}
	}
	if err := q.QueryRowContext(ctx, "SELECT creator_id FROM quests WHERE id = $1", a.Quest).Scan(&creator); err != nil {
		return Application{}, 0, fmt.Errorf("load quest of application %d: %w", appID, err)
	}
	return a, creator, nil
}

// SetApplicationStatus moves an application: the quest's creator approves or
// rejects it; the applicant withdraws it. The applicant is told.
func (p *Platform) SetApplicationStatus(ctx context.Context, userID, appID int64, status string) (Application, error) {
	if err := requireUser(userID); err != nil {
		return Application{}, err
	}
	switch status {
	case ApplicationApproved, ApplicationRejected, ApplicationWithdrawn, ApplicationPending:
	default:
		return Application{}, invalid("status", "%q is not a valid choice (approved, rejected, withdrawn)", status)
	}
	var a Application
	err := p.write(ctx, func(tx *sql.Tx) error {
		cur, creator, err := p.loadApplication(ctx, tx, appID, true)
		if err != nil {
			return err
		}
		isApplicant, isCreator := cur.Applicant.ID == userID, creator == userID
		if !isApplicant && !isCreator {
			return notFound("application")
		}
		switch {
		case cur.Status == ApplicationWithdrawn:
			return conflict("this application was withdrawn and can no longer change")
		case status == ApplicationWithdrawn && !isApplicant:
			return forbidden("only the applicant may withdraw an application")
		case (status == ApplicationApproved || status == ApplicationRejected) && !isCreator:
			return forbidden("only the quest's creator may approve or reject an application")
		case status == ApplicationPending:
			return invalid("status", "an application cannot be moved back to pending")
		}
		if cur.Status == status {
			a = cur
			return nil // nothing changed, nothing to tell
		}
		now := p.now()
		if _, err := tx.ExecContext(ctx, "UPDATE applications SET status = $1, updated_at = $2 WHERE id = $3", status, now, appID); err != nil {
			return fmt.Errorf("set status of application %d: %w", appID, err)
		}
		a = cur
		a.Status, a.UpdatedAt = status, Time{now}
		return p.record(ctx, tx, UserGroup(a.Applicant.ID), EventApplicationUpdate, applicationUpdateEvent{
			ApplicationID: a.ID, QuestTitle: a.QuestTitle, Status: a.Status, UpdatedAt: a.UpdatedAt,
		})
	})
	return a, err
}

// QuestApplications lists a quest's applications: all of them to its
// creator, only their own to anyone else.
func (p *Platform) QuestApplications(ctx context.Context, userID, questID int64, page PageRequest) (Page[Application], error) {
	if err := requireUser(userID); err != nil {
		return Page[Application]{}, err
	}
	q, err := p.Quest(ctx, questID)
	if err != nil {
		return Page[Application]{}, err
	}
	applicant := userID
	if q.Creator.ID == userID {
		applicant = 0
	}
	return p.listApplications(ctx, " WHERE a.quest_id = $1 AND ($2 = 0 OR a.applicant_id = $2)", questID, applicant, page)
}

// MyApplications lists the applications userID made.
func (p *Platform) MyApplications(ctx context.Context, userID int64, page PageRequest) (Page[Application], error) {
	if err := requireUser(userID); err != nil {
		return Page[Application]{}, err
	}
	return p.listApplications(ctx, " WHERE a.applicant_id = $1 AND $2 = 0", userID, 0, page)
}

func (p *Platform) listApplications(ctx context.Context, where string, a1, a2 int64, page PageRequest) (Page[Application], error) {
	page = normPage(page)
	n, err := count(ctx, p.db, "SELECT COUNT(*) FROM applications a"+where, a1, a2)
	if err != nil {
		return Page[Application]{}, fmt.Errorf("count applications: %w", err)
	}
	as, err := collect(ctx, p.db, scanApplication, applicationSelect+where+" ORDER BY a.id DESC LIMIT $3 OFFSET $4", a1, a2, page.Size, page.offset())
	if err != nil {
		return Page[Application]{}, fmt.Errorf("list applications: %w", err)
	}
	return Page[Application]{Count: n, Results: as}, nil
}
