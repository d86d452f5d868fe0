package api

import (
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/heraldhq/herald/internal/origin"
	"github.com/heraldhq/herald/internal/platform"
)

const maxPageSize = 100

// pageRequest reads ?page= and ?page_size=.
func pageRequest(r *http.Request) (platform.PageRequest, error) {
	pr := platform.PageRequest{Number: 1, Size: 20}
	q := r.URL.Query()
	if v := q.Get("page"); v != "" {
		n, ok := platform.ParseID(v)
		if !ok {
			return pr, fieldProblem("page", "must be a positive integer without sign or leading zeros")
		}
		pr.Number = int(n)
	}
	if v := q.Get("page_size"); v != "" {
		n, ok := platform.ParseID(v)
		if !ok || n > maxPageSize {
			return pr, fieldProblem("page_size", "must be an integer from 1 to "+strconv.Itoa(maxPageSize))
		}
		pr.Size = int(n)
	}
	// No list is long enough to reach such a page, and its offset would
	// overflow: it is past the end like any other page beyond the last.
	if pr.Number > math.MaxInt/pr.Size {
		return pr, problem(http.StatusNotFound, "not_found", "invalid page: there is no page "+strconv.Itoa(pr.Number))
	}
	return pr, nil
}

// writePage answers a list page with next/previous links, absolute where
// the request's host is known to be herald's (see linkHost), else relative.
// A page past the end is a 404, as in Django REST framework.
func (s *Server) writePage(w http.ResponseWriter, r *http.Request, pr platform.PageRequest, count int64, results any, n int) error {
	if pr.Number > 1 && n == 0 {
		return problem(http.StatusNotFound, "not_found", "invalid page: there is no page "+strconv.Itoa(pr.Number))
	}
	link := func(page int) *string {
		u := url.URL{Path: r.URL.Path}
		if host := s.linkHost(r); host != "" {
			u.Scheme, u.Host = s.scheme(r), host
		}
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(page))
		u.RawQuery = q.Encode()
		str := u.String()
		return &str
	}
	var next, prev *string
	// pageRequest bounds Number*Size to an int, so this cannot overflow.
	if int64(pr.Number)*int64(pr.Size) < count {
		next = link(pr.Number + 1)
	}
	if pr.Number > 1 {
		prev = link(pr.Number - 1)
	}
	writeJSON(w, http.StatusOK, struct {
		Count    int64   `json:"count"`
		Next     *string `json:"next"`
		Previous *string `json:"previous"`
		Results  any     `json:"results"`
	}{count, next, prev, results})
	return nil
}

// linkHost is the host for absolute links in r's answer, or "" for
// relative ones. The Host header is the client's to choose, and a shared
// cache or a proxy could hand a link built from a forged one to others; as
// Django checks the host against ALLOWED_HOSTS, herald uses it only if it is
// the host of an allowed origin or the address the connection came in on.
func (s *Server) linkHost(r *http.Request) string {
	host := r.Host
	if host == "" {
		return ""
	}
	if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && strings.EqualFold(local.String(), host) {
		return host
	}
	if origin.HostAllowed(s.origins, host) {
		return host
	}
	return ""
}

func (s *Server) scheme(r *http.Request) string {
	if s.trustProxy {
		if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
			return p
		}
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// listPage runs a platform list call and answers it.
func listPage[T any](s *Server, w http.ResponseWriter, r *http.Request, list func(platform.PageRequest) (platform.Page[T], error)) error {
	pr, err := pageRequest(r)
	if err != nil {
		return err
	}
	pg, err := list(pr)
	if err != nil {
		return err
	}
	return s.writePage(w, r, pr, pg.Count, pg.Results, len(pg.Results))
}
