package platform

import (
	"encoding/json"
	"reflect"
	"strconv"
	"time"

	"github.com/heraldhq/herald/internal/money"
)

// These types are herald's one serializer per object: the REST API writes
// them, and the real-time events carry the very same JSON, as the seeds'
// "same serializers for REST and WebSocket" promises.

// UserRef is a user as nested in other objects.
type UserRef struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
}

// User is the signed-in user's own view of their account.
type User struct {
	ID        int64  `json:"id"`
	Username  string `json:"username"`
	Email     string `json:"email"`
	CreatedAt Time   `json:"created_at"`
}

// Quest is a task posted on the marketplace.
type Quest struct {
	ID                int64   `json:"id"`
	Creator           UserRef `json:"creator"`
	Title             string  `json:"title"`
	Description       string  `json:"description"`
	Status            string  `json:"status"`
	ApplicationsCount int64   `json:"applications_count"`
	CreatedAt         Time    `json:"created_at"`
	UpdatedAt         Time    `json:"updated_at"`
}

// Application is a user's application to a quest.
type Application struct {
	ID         int64   `json:"id"`
	Quest      int64   `json:"quest"`
	QuestTitle string  `json:"quest_title"`
	Applicant  UserRef `json:"applicant"`
	Message    string  `json:"message"`
	Status     string  `json:"status"`
	CreatedAt  Time    `json:"created_at"`
	UpdatedAt  Time    `json:"updated_at"`
}

// Campaign is a crowdfunding campaign as listed (no nested relations).
type Campaign struct {
	ID                 int64       `json:"id"`
	Owner              UserRef     `json:"owner"`
	Title              string      `json:"title"`
	Description        string      `json:"description"`
	GoalAmount         money.Cents `json:"goal_amount"`
	RaisedAmount       money.Cents `json:"raised_amount"`
	Currency           string      `json:"currency"`
	Status             string      `json:"status"`
	ContributionsCount int64       `json:"contributions_count"`
	CreatedAt          Time        `json:"created_at"`
	UpdatedAt          Time        `json:"updated_at"`
}

// CampaignDetail is a campaign with its relations nested, newest first and
// at most NestedLimit of each (the full lists paginate under the campaign).
// The WebSocket campaign_data snapshot is exactly this JSON.
type CampaignDetail struct {
	Campaign
	UpdatesCount  int64          `json:"updates_count"`
	CommentsCount int64          `json:"comments_count"`
	Contributions []Contribution `json:"contributions"`
	Updates       []Update       `json:"updates"`
	Comments      []Comment      `json:"comments"`
	Releases      []Release      `json:"releases"`
	Milestones    []Milestone    `json:"milestones"`
}

// NestedLimit bounds each nested list of a CampaignDetail, so a campaign's
// snapshot stays small however popular it gets.
const NestedLimit = 50

// Contribution is money pledged to a campaign.
type Contribution struct {
	ID        int64       `json:"id"`
	Campaign  int64       `json:"campaign"`
	User      UserRef     `json:"user"`
	Amount    money.Cents `json:"amount"`
	Currency  string      `json:"currency"`
	CreatedAt Time        `json:"created_at"`
}

// Update is news the campaign's owner posts. Its Image is the URL path of
// its uploaded image (/media/…), null when there is none.
type Update struct {
	ID        int64   `json:"id"`
	Campaign  int64   `json:"campaign"`
	Title     string  `json:"title"`
	Content   string  `json:"content"`
	Image     *string `json:"image"`
	CreatedAt Time    `json:"created_at"`
	UpdatedAt Time    `json:"updated_at"`
}

// Comment is a user's remark on a campaign.
type Comment struct {
	ID        int64   `json:"id"`
	Campaign  int64   `json:"campaign"`
	User      UserRef `json:"user"`
	Content   string  `json:"content"`
	CreatedAt Time    `json:"created_at"`
	UpdatedAt Time    `json:"updated_at"`
}

// Release is a version of what the campaign builds.
type Release struct {
	ID         int64  `json:"id"`
	Campaign   int64  `json:"campaign"`
	Version    string `json:"version"`
	Title      string `json:"title"`
	Notes      string `json:"notes"`
	ReleasedAt Time   `json:"released_at"`
	UpdatedAt  Time   `json:"updated_at"`
}

// Milestone is a funding target of a campaign; it is reached automatically
// when the raised total gets there, or marked by the owner.
type Milestone struct {
	ID           int64       `json:"id"`
	Campaign     int64       `json:"campaign"`
	Title        string      `json:"title"`
	Description  string      `json:"description"`
	TargetAmount money.Cents `json:"target_amount"`
	Reached      bool        `json:"reached"`
	DueDate      *Date       `json:"due_date"`
	CreatedAt    Time        `json:"created_at"`
	UpdatedAt    Time        `json:"updated_at"`
}

// Page is a slice of a list and the list's full length.
type Page[T any] struct {
	Count   int64
	Results []T
}

// PageRequest asks for page Number (from 1) of Size items.
type PageRequest struct {
	Number int
	Size   int
}

func (p PageRequest) offset() int { return (p.Number - 1) * p.Size }

// Time is a UTC instant written as Django REST framework writes one:
// ISO 8601 with microseconds when there are any, and "Z".
type Time struct{ time.Time }

// MarshalJSON writes t as "2023-05-15T14:30:00Z" or "…:00.123456Z".
func (t Time) MarshalJSON() ([]byte, error) {
	return []byte(`"` + t.String() + `"`), nil
}

func (t Time) String() string {
	u := t.UTC()
	if u.Nanosecond() == 0 {
		return u.Format("2006-01-02T15:04:05Z")
	}
	return u.Format("2006-01-02T15:04:05.000000Z")
}

// UnmarshalJSON reads an RFC 3339 time ("2023-05-15T14:30:00Z"). Its
// offset may move it out of the years 0000-9999, which RFC 3339 cannot
// write: such a time is refused, or it would be written back as
// "10000-01-01T…" that no client (nor herald) reads.
func (t *Time) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &json.UnmarshalTypeError{Value: "non-string", Type: reflect.TypeFor[Time]()}
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if y := v.UTC().Year(); err != nil || y < 0 || y > 9999 {
		return &json.UnmarshalTypeError{Value: "string " + strconv.Quote(s), Type: reflect.TypeFor[Time]()}
	}
	t.Time = v.UTC().Truncate(time.Microsecond)
	return nil
}

// Date is a calendar day, written "2006-01-02".
type Date struct{ time.Time }

// MarshalJSON writes d as "2006-01-02".
func (d Date) MarshalJSON() ([]byte, error) {
	return []byte(`"` + d.UTC().Format(time.DateOnly) + `"`), nil
}

// ParseDate reads "2006-01-02".
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, err
	}
	return Date{t}, nil
}
