package api

import (
	"net/http"
	"strconv"

	"github.com/heraldhq/herald/internal/platform"
)

// AuthMode says whether a route needs a signed-in user.
type AuthMode int

const (
	AuthNone     AuthMode = iota // anyone; a valid token is still read (drafts, own applications)
	AuthRequired                 // a valid access token
	AuthAPIKey                   // a valid API key (publishing), never a user's token
)

// Route is one operation: how it is reached, what it takes and returns (for
// the OpenAPI document), and its handler.
type Route struct {
	Method  string
	Path    string // ServeMux pattern, also the OpenAPI path: "/api/campaigns/{id}/"
	Summary string
	Tag     string
	Auth    AuthMode
	Body    any // request body type (a zero value), nil for none
	Result  any // success response type, nil for none
	List    bool
	Status  int   // success status
	Errors  []int // error statuses it may answer besides 401 for a bad token
	Query   []string
	// Credentials: the answer holds tokens or a ticket, so it is never
	// stored for an Idempotency-Key replay.
	Credentials bool
	// BodySchema, when set, documents the body instead of Body's type
	// (a body of more than one shape).
	BodySchema func(*schemaGen) map[string]any
	// Form, when set, is the type of a multipart/form-data body the route
	// also takes (an upload), besides its JSON Body.
	Form   any
	handle func(http.ResponseWriter, *http.Request) error
}

func (s *Server) routeTable() []Route {
	const (
		read   = http.StatusOK
		made   = http.StatusCreated
		bad    = http.StatusBadRequest
		unauth = http.StatusUnauthorized
		forb   = http.StatusForbidden
		nf     = http.StatusNotFound
		confl  = http.StatusConflict
	)
	pageQ := []string{"page", "page_size"}
	// What an upload may also be answered.
	upload := []int{http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusServiceUnavailable}
	return []Route{
		{Method: "POST", Path: "/api/auth/register/", Summary: "Create an account", Tag: "auth",
			Body: platform.Registration{}, Result: platform.User{}, Status: made, Errors: []int{bad, http.StatusTooManyRequests, http.StatusServiceUnavailable}, handle: s.register},
		{Method: "POST", Path: "/api/auth/token/", Summary: "Sign in: get an access and a refresh token", Tag: "auth",
			Body: credentials{}, Result: tokenPair{}, Status: read, Errors: []int{bad, unauth, http.StatusTooManyRequests, http.StatusServiceUnavailable}, Credentials: true, handle: s.token},
		{Method: "POST", Path: "/api/auth/token/refresh/", Summary: "Get a new access token for a refresh token", Tag: "auth",
			Body: refreshRequest{}, Result: accessToken{}, Status: read, Errors: []int{bad, unauth}, Credentials: true, handle: s.refresh},
		{Method: "GET", Path: "/api/auth/session/", Summary: "Who is signed in: {\"user\": null} for visitors", Tag: "auth",
			Result: currentSession{}, Status: read, handle: s.getSession},
		{Method: "POST", Path: "/api/auth/session/", Summary: "Sign in with HttpOnly cookies (the web app's session)", Tag: "auth",
			Body: credentials{}, Result: session{}, Status: read, Errors: []int{bad, unauth, http.StatusTooManyRequests, http.StatusServiceUnavailable}, Credentials: true, handle: s.createSession},
		{Method: "POST", Path: "/api/auth/session/refresh/", Summary: "Renew the session's access cookie", Tag: "auth",
			Result: session{}, Status: read, Errors: []int{unauth}, Credentials: true, handle: s.refreshSession},
		{Method: "DELETE", Path: "/api/auth/session/", Summary: "Sign out: clear the session cookies", Tag: "auth",
			Status: http.StatusNoContent, handle: s.deleteSession},
		{Method: "POST", Path: "/api/ws-ticket/", Summary: "A one-use ticket (valid 30 s) for ?ticket= on a real-time endpoint", Tag: "auth", Auth: AuthRequired,
			Result: ticket{}, Status: made, Errors: []int{unauth}, Credentials: true, handle: s.wsTicket},
		{Method: "GET", Path: "/api/auth/me/", Summary: "The signed-in user, and whether they are an administrator (is_staff)", Tag: "auth", Auth: AuthRequired,
			Result: account{}, Status: read, Errors: []int{unauth}, handle: s.me},

		{Method: "GET", Path: "/api/campaigns/", Summary: "List campaigns (drafts only to their owner)", Tag: "campaigns",
			Result: platform.Campaign{}, List: true, Status: read, Errors: []int{bad, nf}, Query: append([]string{"status", "owner"}, pageQ...), handle: s.listCampaigns},
		{Method: "POST", Path: "/api/campaigns/", Summary: "Start a campaign", Tag: "campaigns", Auth: AuthRequired,
			Body: platform.CampaignInput{}, Result: platform.CampaignDetail{}, Status: made, Errors: []int{bad, unauth}, handle: withBody(made, s.p.CreateCampaign)},
		{Method: "GET", Path: "/api/campaigns/{id}/", Summary: "A campaign with its relations nested (the WebSocket snapshot)", Tag: "campaigns",
			Result: platform.CampaignDetail{}, Status: read, Errors: []int{nf}, handle: withID(s.p.CampaignDetail)},
		{Method: "PATCH", Path: "/api/campaigns/{id}/", Summary: "Edit a campaign (owner): its room is sent a campaign event; back to draft hides it again", Tag: "campaigns", Auth: AuthRequired,
			Body: platform.CampaignInput{}, Result: platform.CampaignDetail{}, Status: read, Errors: []int{bad, unauth, forb, nf}, handle: withIDBody(read, s.p.UpdateCampaign)},
		{Method: "DELETE", Path: "/api/campaigns/{id}/", Summary: "Delete a campaign (owner) with its updates, comments, releases and milestones: its viewers are closed with 4404; refused (409 has_contributions) once it has contributions", Tag: "campaigns", Auth: AuthRequired,
			Status: http.StatusNoContent, Errors: []int{unauth, forb, nf, confl}, handle: s.deleteCampaign},

		{Method: "GET", Path: "/api/campaigns/{id}/contributions/", Summary: "List a campaign's contributions", Tag: "campaigns",
			Result: platform.Contribution{}, List: true, Status: read, Errors: []int{bad, nf}, Query: pageQ,
			handle: withIDList(s, s.p.Contributions)},
		{Method: "POST", Path: "/api/campaigns/{id}/contributions/", Summary: "Contribute to an active campaign", Tag: "campaigns", Auth: AuthRequired,
			Body: platform.ContributionInput{}, Result: platform.Contribution{}, Status: made, Errors: []int{bad, unauth, nf, confl},
			handle: withIDBody(made, s.p.Contribute)},
		{Method: "GET", Path: "/api/campaigns/{id}/contributions/{oid}/", Summary: "A contribution", Tag: "campaigns",
			Result: platform.Contribution{}, Status: read, Errors: []int{nf}, handle: withIDs(s.p.Contribution)},

		{Method: "GET", Path: "/api/campaigns/{id}/updates/", Summary: "List a campaign's updates", Tag: "campaigns",
			Result: platform.Update{}, List: true, Status: read, Errors: []int{bad, nf}, Query: pageQ, handle: withIDList(s, s.p.Updates)},
		{Method: "POST", Path: "/api/campaigns/{id}/updates/", Summary: "Post an update (owner), with an image as multipart/form-data", Tag: "campaigns", Auth: AuthRequired,
			Body: platform.UpdateInput{}, Form: UpdateForm{}, Result: platform.Update{}, Status: made, Errors: append([]int{bad, unauth, forb, nf}, upload...),
			handle: s.postUpdate},
		{Method: "GET", Path: "/api/campaigns/{id}/updates/{oid}/", Summary: "An update", Tag: "campaigns",
			Result: platform.Update{}, Status: read, Errors: []int{nf}, handle: withIDs(s.p.Update)},
		{Method: "PATCH", Path: "/api/campaigns/{id}/updates/{oid}/", Summary: "Edit an update (owner); a new image as multipart/form-data replaces the old one", Tag: "campaigns", Auth: AuthRequired,
			Body: platform.UpdateInput{}, Form: UpdateForm{}, Result: platform.Update{}, Status: read, Errors: append([]int{bad, unauth, forb, nf}, upload...),
			handle: s.editUpdate},

		{Method: "GET", Path: "/api/campaigns/{id}/comments/", Summary: "List a campaign's comments", Tag: "campaigns",
			Result: platform.Comment{}, List: true, Status: read, Errors: []int{bad, nf}, Query: pageQ, handle: withIDList(s, s.p.Comments)},
		{Method: "POST", Path: "/api/campaigns/{id}/comments/", Summary: "Comment on a campaign", Tag: "campaigns", Auth: AuthRequired,
			Body: platform.CommentInput{}, Result: platform.Comment{}, Status: made, Errors: []int{bad, unauth, nf, confl},
			handle: withIDBody(made, s.p.PostComment)},
		{Method: "GET", Path: "/api/campaigns/{id}/comments/{oid}/", Summary: "A comment", Tag: "campaigns",
			Result: platform.Comment{}, Status: read, Errors: []int{nf}, handle: withIDs(s.p.Comment)},
		{Method: "PATCH", Path: "/api/campaigns/{id}/comments/{oid}/", Summary: "Edit a comment (author)", Tag: "campaigns", Auth: AuthRequired,
			Body: platform.CommentInput{}, Result: platform.Comment{}, Status: read, Errors: []int{bad, unauth, forb, nf},
			handle: withIDsBody(http.StatusOK, s.p.EditComment)},
		{Method: "DELETE", Path: "/api/campaigns/{id}/comments/{oid}/", Summary: "Delete your comment (author): it leaves every list and the room is sent comment_removed", Tag: "campaigns", Auth: AuthRequired,
			Status: http.StatusNoContent, Errors: []int{unauth, forb, nf}, handle: withIDsNoContent(s.p.DeleteComment)},
		{Method: "POST", Path: "/api/campaigns/{id}/comments/{oid}/hide/", Summary: "Hide a comment (the campaign's owner): it leaves every list and the room is sent comment_removed", Tag: "campaigns", Auth: AuthRequired,
			Status: http.StatusNoContent, Errors: []int{unauth, forb, nf}, handle: withIDsNoContent(s.p.HideComment)},
		{Method: "POST", Path: "/api/campaigns/{id}/comments/{oid}/report/", Summary: "Report a comment to the campaign's owner (once per comment; not your own)", Tag: "campaigns", Auth: AuthRequired,
			Body: platform.ReportInput{}, Result: platform.CommentReport{}, Status: made, Errors: []int{bad, unauth, forb, nf, confl}, handle: withIDsBody(made, s.p.ReportComment)},
		{Method: "GET", Path: "/api/campaigns/{id}/reports/", Summary: "The campaign's reported comments, most recently reported first (owner)", Tag: "campaigns", Auth: AuthRequired,
			Result: platform.ReportedComment{}, List: true, Status: read, Errors: []int{bad, unauth, forb, nf}, Query: pageQ, handle: withIDList(s, s.p.CommentReports)},

		{Method: "GET", Path: "/api/campaigns/{id}/releases/", Summary: "List a campaign's releases", Tag: "campaigns",
			Result: platform.Release{}, List: true, Status: read, Errors: []int{bad, nf}, Query: pageQ, handle: withIDList(s, s.p.Releases)},
		{Method: "POST", Path: "/api/campaigns/{id}/releases/", Summary: "Publish a release (owner)", Tag: "campaigns", Auth: AuthRequired,
			Body: platform.ReleaseInput{}, Result: platform.Release{}, Status: made, Errors: []int{bad, unauth, forb, nf},
			handle: withIDBody(made, s.p.CreateRelease)},
		{Method: "GET", Path: "/api/campaigns/{id}/releases/{oid}/", Summary: "A release", Tag: "campaigns",
			Result: platform.Release{}, Status: read, Errors: []int{nf}, handle: withIDs(s.p.Release)},
		{Method: "PATCH", Path: "/api/campaigns/{id}/releases/{oid}/", Summary: "Edit a release (owner)", Tag: "campaigns", Auth: AuthRequired,
			Body: platform.ReleaseInput{}, Result: platform.Release{}, Status: read, Errors: []int{bad, unauth, forb, nf},
			handle: withIDsBody(http.StatusOK, s.p.EditRelease)},

		{Method: "GET", Path: "/api/campaigns/{id}/milestones/", Summary: "List a campaign's milestones", Tag: "campaigns",
			Result: platform.Milestone{}, List: true, Status: read, Errors: []int{bad, nf}, Query: pageQ, handle: withIDList(s, s.p.Milestones)},
		{Method: "POST", Path: "/api/campaigns/{id}/milestones/", Summary: "Add a milestone (owner)", Tag: "campaigns", Auth: AuthRequired,
			Body: platform.MilestoneInput{}, Result: platform.Milestone{}, Status: made, Errors: []int{bad, unauth, forb, nf},
			handle: withIDBody(made, s.p.CreateMilestone)},
		{Method: "GET", Path: "/api/campaigns/{id}/milestones/{oid}/", Summary: "A milestone", Tag: "campaigns",
			Result: platform.Milestone{}, Status: read, Errors: []int{nf}, handle: withIDs(s.p.Milestone)},
		{Method: "PATCH", Path: "/api/campaigns/{id}/milestones/{oid}/", Summary: "Edit a milestone (owner)", Tag: "campaigns", Auth: AuthRequired,
			Body: platform.MilestoneInput{}, Result: platform.Milestone{}, Status: read, Errors: []int{bad, unauth, forb, nf},
			handle: withIDsBody(http.StatusOK, s.p.EditMilestone)},

		{Method: "GET", Path: "/api/quests/", Summary: "List quests", Tag: "quests",
			Result: platform.Quest{}, List: true, Status: read, Errors: []int{bad, nf}, Query: append([]string{"status", "creator"}, pageQ...), handle: s.listQuests},
		{Method: "POST", Path: "/api/quests/", Summary: "Post a quest", Tag: "quests", Auth: AuthRequired,
			Body: platform.QuestInput{}, Result: platform.Quest{}, Status: made, Errors: []int{bad, unauth}, handle: withBody(made, s.p.CreateQuest)},
		{Method: "GET", Path: "/api/quests/{id}/", Summary: "A quest", Tag: "quests",
			Result: platform.Quest{}, Status: read, Errors: []int{nf}, handle: withID(func(c ctx, _, id int64) (platform.Quest, error) { return s.p.Quest(c, id) })},
		{Method: "PATCH", Path: "/api/quests/{id}/", Summary: "Edit a quest (creator)", Tag: "quests", Auth: AuthRequired,
			Body: platform.QuestInput{}, Result: platform.Quest{}, Status: read, Errors: []int{bad, unauth, forb, nf}, handle: withIDBody(read, s.p.UpdateQuest)},
		{Method: "GET", Path: "/api/quests/{id}/applications/", Summary: "A quest's applications (all to its creator, your own to others)", Tag: "quests", Auth: AuthRequired,
			Result: platform.Application{}, List: true, Status: read, Errors: []int{bad, unauth, nf}, Query: pageQ, handle: withIDList(s, s.p.QuestApplications)},
		{Method: "POST", Path: "/api/quests/{id}/applications/", Summary: "Apply to an open quest (once)", Tag: "quests", Auth: AuthRequired,
			Body: platform.ApplicationInput{}, Result: platform.Application{}, Status: made, Errors: []int{bad, unauth, forb, nf, confl}, handle: withIDBody(made, s.p.Apply)},
		{Method: "GET", Path: "/api/applications/", Summary: "Your applications", Tag: "quests", Auth: AuthRequired,
			Result: platform.Application{}, List: true, Status: read, Errors: []int{bad, unauth, nf}, Query: pageQ, handle: s.myApplications},
		{Method: "GET", Path: "/api/applications/{id}/", Summary: "An application (its applicant or the quest's creator)", Tag: "quests", Auth: AuthRequired,
			Result: platform.Application{}, Status: read, Errors: []int{unauth, nf}, handle: withID(s.p.Application)},
		{Method: "PATCH", Path: "/api/applications/{id}/", Summary: "Approve or reject (creator) or withdraw (applicant)", Tag: "quests", Auth: AuthRequired,
			Body: statusChange{}, Result: platform.Application{}, Status: read, Errors: []int{bad, unauth, forb, nf, confl}, handle: withIDBody(read, s.setApplicationStatus)},

		{Method: "POST", Path: "/api/publish/", Summary: "Publish events to groups with an API key (docs/publish.md): one event, or a batch of up to 100 recorded all or none", Tag: "publish", Auth: AuthAPIKey,
			Body: publishRequest{}, BodySchema: publishSchema, Result: PublishResult{}, Status: made,
			Errors: []int{bad, unauth, forb, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusTooManyRequests}, handle: s.publish},

		{Method: "GET", Path: "/api/ops/", Summary: "A snapshot of the running server for the operations page (administrators): its version and commit, connections, groups and event counters", Tag: "meta", Auth: AuthRequired,
			Result: OpsStats{}, Status: read, Errors: []int{unauth, forb, nf}, handle: s.ops},
		{Method: "GET", Path: "/api/schema/", Summary: "This OpenAPI 3.1 document", Tag: "meta",
			Status: read, handle: s.schema},
	}
}

func queryID(r *http.Request, name string) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, ok := platform.ParseID(v)
	if !ok {
		return 0, fieldProblem(name, "must be a positive integer id without sign or leading zeros")
	}
	return n, nil
}

func queryChoice(r *http.Request, name string, choices ...string) (string, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return "", nil
	}
	for _, c := range choices {
		if v == c {
			return v, nil
		}
	}
	return "", fieldProblem(name, strconv.Quote(v)+" is not a valid choice")
}
