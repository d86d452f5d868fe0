package api

import (
	"net/http"
	"time"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/platform"
)

// refreshCookie holds the refresh token of a cookie session. It is sent only
// to the session endpoints.
const refreshCookie = "herald_refresh"

type ticket struct {
	Ticket    string `json:"ticket"`
	ExpiresIn int    `json:"expires_in"`
}

type session struct {
	User account `json:"user"`
}

// currentSession is who is signed in, if anyone, and whether the demo
// data is on (its accounts are listed on the sign-in page only then).
type currentSession struct {
	User *account `json:"user"`
	Demo bool     `json:"demo"`
}

// account is the signed-in user as /api/auth/me/ and the session endpoints
// answer it: the user, and whether they are one of the administrators named
// by --admins, who may open the operations page (is_staff, as Django's user
// says it), so a page shows them what only they can open.
type account struct {
	platform.User
	IsStaff bool `json:"is_staff"`
}

func (s *Server) account(u platform.User) account {
	return account{User: u, IsStaff: s.isAdmin(u.Username)}
}

// getSession tells a page who is signed in without an error status for
// visitors: {"user": null} when nobody is (a 401 from /api/auth/me/ would
// show in the browser's console on every page load).
func (s *Server) getSession(w http.ResponseWriter, r *http.Request) error {
	out := currentSession{Demo: s.demo}
	if uid := userID(r); uid > 0 {
		u, err := s.p.UserByID(r.Context(), uid)
		if err != nil && platform.KindOf(err) != platform.KindNotFound {
			return err
		}
		if err == nil {
			a := s.account(u)
			out.User = &a
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// wsTicket issues a one-use ticket for ?ticket= on a real-time endpoint.
func (s *Server) wsTicket(w http.ResponseWriter, r *http.Request) error {
	t, err := s.p.IssueTicket(r.Context(), userID(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, ticket{Ticket: t, ExpiresIn: int(platform.TicketTTL / time.Second)})
	return nil
}

// createSession signs in like /api/auth/token/ but keeps the tokens in
// HttpOnly cookies, for the web app: script on the page never sees them.
// Cookie-authenticated writes are safe from cross-site forgery because the
// cookies are SameSite and every write must carry a JSON body, which a
// cross-site form cannot send.
func (s *Server) createSession(w http.ResponseWriter, r *http.Request) error {
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
	s.setCookies(w, r, access, refresh)
	writeJSON(w, http.StatusOK, session{User: s.account(u)})
	return nil
}

// refreshSession renews the access cookie from the refresh cookie.
func (s *Server) refreshSession(w http.ResponseWriter, r *http.Request) error {
	c, err := r.Cookie(refreshCookie)
	if err != nil || c.Value == "" {
		return problem(http.StatusUnauthorized, "not_authenticated", "no session; sign in at /api/auth/session/")
	}
	uid, err := s.tokens.ParseRefresh(c.Value)
	if err != nil {
		return problem(http.StatusUnauthorized, "token_not_valid", "the session has expired; sign in again")
	}
	u, err := s.p.UserByID(r.Context(), uid)
	if platform.KindOf(err) == platform.KindNotFound {
		return problem(http.StatusUnauthorized, "token_not_valid", "the session's user no longer exists")
	}
	if err != nil {
		return err
	}
	access, err := s.tokens.Access(uid)
	if err != nil {
		return err
	}
	s.setCookies(w, r, access, "")
	writeJSON(w, http.StatusOK, session{User: s.account(u)})
	return nil
}

// deleteSession signs out: both cookies are cleared.
func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) error {
	secure := s.scheme(r) == "https"
	http.SetCookie(w, &http.Cookie{Name: auth.CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
	http.SetCookie(w, &http.Cookie{Name: refreshCookie, Value: "", Path: "/api/auth/session/", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) setCookies(w http.ResponseWriter, r *http.Request, access, refresh string) {
	secure := s.scheme(r) == "https"
	http.SetCookie(w, &http.Cookie{Name: auth.CookieName, Value: access, Path: "/", MaxAge: int(s.tokens.AccessTTL() / time.Second),
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
	if refresh != "" {
		http.SetCookie(w, &http.Cookie{Name: refreshCookie, Value: refresh, Path: "/api/auth/session/", MaxAge: int(s.tokens.RefreshTTL() / time.Second),
			HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode})
	}
}
