package api

import (
	"mime"
	"net/http"
	"strings"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/origin"
)

// checkForgery refuses a write that another site's page could have made
// with the browser's session cookie. Browsers send the session cookie (Lax)
// with requests from any page of the same site, another port of the same
// host included, and a "no-cors" fetch may send any body under a simple
// content type. So a write that does not carry its own credentials in the
// Authorization header must come from an allowed origin and, if it has a
// body, say it is JSON, which no page can do cross-origin without a CORS
// preflight that herald only grants to allowed origins. A route that takes
// an upload (Route.Form) also takes multipart/form-data, which any page
// may send: there the origin check alone refuses a forgery (browsers send
// Origin, or Sec-Fetch-Site, with every cross-origin write).
//
// Requests with an Authorization header are left alone: a page cannot add
// that header to a cross-origin request without a preflight either.
func (s *Server) checkForgery(r *http.Request, rt Route) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	if len(r.Header.Values("Authorization")) > 0 {
		return nil
	}
	if !s.sameOriginRequest(r) {
		return problem(http.StatusForbidden, "origin_not_allowed",
			"this write comes from a page whose origin is not allowed; send it from an allowed origin or with an Authorization header")
	}
	if ct := r.Header.Get("Content-Type"); hasBody(r) && !jsonContentType(ct) && (rt.Form == nil || !formContentType(ct)) {
		return unsupportedMediaType(ct)
	}
	return nil
}

// sameOriginRequest reports whether r comes from the server's own origin or
// an allowed one. Browsers send Origin with every write; where it is missing
// (older browsers on same-origin requests) Sec-Fetch-Site tells. A request
// with neither comes from a program, not a page, and is trusted only if it
// carries no session cookie, since then nothing ambient authenticates it.
func (s *Server) sameOriginRequest(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		return origin.Same(o, r.Host) || origin.Allowed(s.origins, o)
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	return !hasSessionCookie(r)
}

func hasSessionCookie(r *http.Request) bool {
	for _, name := range []string{auth.CookieName, refreshCookie} {
		if _, err := r.Cookie(name); err == nil {
			return true
		}
	}
	return false
}

// hasBody reports whether r says it carries a body.
func hasBody(r *http.Request) bool {
	return r.ContentLength != 0 || len(r.TransferEncoding) > 0
}

// formContentType reports whether ct is multipart/form-data.
func formContentType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "multipart/form-data"
}

// jsonContentType reports whether ct names JSON: application/json or a
// +json type, with any parameters.
func jsonContentType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}
