package api

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/platform"
)

type ctx = context.Context

type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type tokenPair struct {
	Access  string `json:"access"`
	Refresh string `json:"refresh"`
}

type refreshRequest struct {
	Refresh string `json:"refresh"`
}

type accessToken struct {
	Access string `json:"access"`
}

type statusChange struct {
	Status string `json:"status"`
}

// token signs a user in. Failed attempts are throttled per account and per
// client address before the password is even checked.
func (s *Server) token(w http.ResponseWriter, r *http.Request) error {
	var in credentials
	if err := decode(w, r, &in); err != nil {
		return err
	}
	u, err := s.signIn(w, r, in)
	if err != nil {
		return err
	}
	access, refresh, err := s.tokens.Pair(u.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tokenPair{Access: access, Refresh: refresh})
	return nil
}

// signIn checks credentials. Failed attempts are throttled per account and
// per client address before the password is even checked.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request, in credentials) (platform.User, error) {
	// Authenticate ignores surrounding spaces, so the throttle must too, or
	// padding the name would buy a fresh set of guesses at the same account.
	in.Username = strings.TrimSpace(in.Username)
	f := map[string][]string{}
	if in.Username == "" {
		f["username"] = []string{"this field may not be blank"}
	}
	if in.Password == "" {
		f["password"] = []string{"this field may not be blank"}
	}
	if len(f) > 0 {
		p := problem(http.StatusBadRequest, "invalid", "the request has invalid fields")
		p.Errors = f
		return platform.User{}, p
	}
	attempt, refused, ok := s.throttle.Begin(in.Username, auth.ClientIP(r, s.trustProxy))
	if !ok {
		if !refused.Locked {
			return platform.User{}, throttled(w, refused.RetryAfter, "other sign-ins to this account or from this address are being checked")
		}
		return platform.User{}, throttled(w, refused.RetryAfter, "too many failed sign-ins")
	}
	u, err := s.p.Authenticate(r.Context(), in.Username, in.Password)
	switch {
	case platform.KindOf(err) == platform.KindUnauthorized:
		attempt.Count()
		return platform.User{}, problem(http.StatusUnauthorized, "no_active_account", "no active account found with the given credentials")
	case err != nil:
		// No password was checked (the server was too busy, or failed).
		attempt.Release()
		return platform.User{}, busy(w, err)
	}
	attempt.Succeed()
	return u, nil
}

// DefaultRegistrationsPerHour is how many accounts one client address may
// create in an hour.
const DefaultRegistrationsPerHour = 10

// newRegistrationThrottle counts the accounts created per client address
// (IPv6 by /64), allowing perHour in an hour (0 for the default, -1 for no
// limit).
func newRegistrationThrottle(perHour int) *auth.Throttle {
	switch {
	case perHour == 0:
		perHour = DefaultRegistrationsPerHour
	case perHour < 0:
		perHour = math.MaxInt
	}
	return auth.NewThrottle(auth.ThrottleConfig{MaxPerAddress: perHour, Window: time.Hour})
}

// register creates an account. Registrations are counted per client address
// before the password is hashed; only those that create an account stay
// counted.
func (s *Server) register(w http.ResponseWriter, r *http.Request) error {
	var in platform.Registration
	if err := decode(w, r, &in); err != nil {
		return err
	}
	attempt, refused, ok := s.registrations.Begin("", auth.ClientIP(r, s.trustProxy))
	if !ok {
		if !refused.Locked {
			return throttled(w, refused.RetryAfter, "other registrations from this address are being made")
		}
		return throttled(w, refused.RetryAfter, "too many accounts created from this address")
	}
	u, err := s.p.Register(r.Context(), in)
	if err != nil {
		attempt.Release()
		return busy(w, err)
	}
	attempt.Count()
	writeJSON(w, http.StatusCreated, u)
	return nil
}

// throttled answers a request refused by a throttle for wait.
func throttled(w http.ResponseWriter, wait time.Duration, why string) error {
	secs := int(wait/time.Second) + 1
	w.Header().Set("Retry-After", itoa(secs))
	return problem(http.StatusTooManyRequests, "throttled", why+"; try again in "+itoa(secs)+" seconds")
}

// busy answers a request that found no free password-hashing slot with
// 503; any other error is returned as it is.
func busy(w http.ResponseWriter, err error) error {
	if !errors.Is(err, auth.ErrBusy) {
		return err
	}
	w.Header().Set("Retry-After", "1")
	return problem(http.StatusServiceUnavailable, "busy", "the server is busy checking other passwords; try again in a moment")
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request) error {
	var in refreshRequest
	if err := decode(w, r, &in); err != nil {
		return err
	}
	if in.Refresh == "" {
		return fieldProblem("refresh", "this field may not be blank")
	}
	uid, err := s.tokens.ParseRefresh(in.Refresh)
	if err != nil {
		msg := "the refresh token is invalid"
		if errors.Is(err, auth.ErrTokenExpired) {
			msg = "the refresh token has expired; sign in again"
		}
		return problem(http.StatusUnauthorized, "token_not_valid", msg)
	}
	if _, err := s.p.UserByID(r.Context(), uid); err != nil {
		if platform.KindOf(err) == platform.KindNotFound {
			return problem(http.StatusUnauthorized, "token_not_valid", "the refresh token's user no longer exists")
		}
		return err
	}
	access, err := s.tokens.Access(uid)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, accessToken{Access: access})
	return nil
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) error {
	u, err := s.p.UserByID(r.Context(), userID(r))
	if platform.KindOf(err) == platform.KindNotFound {
		return problem(http.StatusUnauthorized, "token_not_valid", "the token's user no longer exists")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.account(u))
	return nil
}

var campaignStatuses = []string{platform.CampaignDraft, platform.CampaignActive, platform.CampaignClosed}

func (s *Server) listCampaigns(w http.ResponseWriter, r *http.Request) error {
	status, err := queryChoice(r, "status", campaignStatuses...)
	if err != nil {
		return err
	}
	owner, err := queryID(r, "owner")
	if err != nil {
		return err
	}
	return listPage(s, w, r, func(pr platform.PageRequest) (platform.Page[platform.Campaign], error) {
		return s.p.ListCampaigns(r.Context(), userID(r), platform.CampaignFilter{Status: status, OwnerID: owner}, pr)
	})
}

// deleteCampaign deletes a campaign (its owner), then the images of its
// updates, which nothing serves any more.
func (s *Server) deleteCampaign(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	images, err := s.p.DeleteCampaign(r.Context(), userID(r), id)
	if err != nil {
		return err
	}
	for _, url := range images {
		s.discard(r.Context(), url)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listQuests(w http.ResponseWriter, r *http.Request) error {
	status, err := queryChoice(r, "status", platform.QuestOpen, platform.QuestClosed)
	if err != nil {
		return err
	}
	creator, err := queryID(r, "creator")
	if err != nil {
		return err
	}
	return listPage(s, w, r, func(pr platform.PageRequest) (platform.Page[platform.Quest], error) {
		return s.p.ListQuests(r.Context(), platform.QuestFilter{Status: status, CreatorID: creator}, pr)
	})
}

func (s *Server) myApplications(w http.ResponseWriter, r *http.Request) error {
	return listPage(s, w, r, func(pr platform.PageRequest) (platform.Page[platform.Application], error) {
		return s.p.MyApplications(r.Context(), userID(r), pr)
	})
}

// setApplicationStatus moves an application to the status the body names.
func (s *Server) setApplicationStatus(c ctx, user, id int64, in statusChange) (platform.Application, error) {
	if in.Status == "" {
		return platform.Application{}, fieldProblem("status", "this field is required")
	}
	return s.p.SetApplicationStatus(c, user, id, in.Status)
}

func itoa(n int) string { return strconv.Itoa(n) }
