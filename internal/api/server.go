// Package api is herald's REST API: Django REST framework-style JSON over
// HTTP for accounts, campaigns and quests, with errors as
// application/problem+json. Handlers decode and check input, call one
// platform method and write its result with the platform's serializers.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/apikey"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/groups"
	"github.com/heraldhq/herald/internal/media"
	"github.com/heraldhq/herald/internal/platform"
)

// Config wires a Server.
type Config struct {
	Platform *platform.Platform
	Tokens   *auth.Issuer
	Throttle *auth.Throttle
	// RegistrationsPerHour bounds the accounts one client address may
	// create in an hour: 0 for DefaultRegistrationsPerHour, -1 for no limit.
	RegistrationsPerHour int
	// AllowedOrigins are the origins, besides the server's own, whose pages
	// may write with the session cookie ("*" any, "https://*.example.com"
	// any subdomain), as --allowed-origins says.
	AllowedOrigins []string
	Logger         *slog.Logger
	// TrustProxy takes the client address and scheme from X-Forwarded-For
	// and X-Forwarded-Proto (only behind a proxy that sets them).
	TrustProxy bool
	// Admins are the usernames allowed to read /api/ops/.
	Admins []string
	// Demo says herald's demo data is on (--demo): GET /api/auth/session/
	// says so, and the web app's sign-in page lists the demo accounts.
	Demo bool
	// OpsStats reports the running server for /api/ops/.
	OpsStats func(context.Context) OpsStats
	// APIKeys checks the keys of POST /api/publish/; nil refuses every
	// key.
	APIKeys *apikey.Store
	// PublishMaxData bounds one published event's data, in bytes: 0 for
	// DefaultPublishMaxData.
	PublishMaxData int
	// PublishRate is the events per second one API key may publish
	// (bursts of twice that, at least a whole batch): 0 for
	// DefaultPublishRate, -1 for no limit.
	PublishRate int
	// PublishWait bounds how long a publish's answer waits for the relay
	// to number its events: 0 for DefaultPublishWait.
	PublishWait time.Duration
	// Groups are the groups events may be published to; nil is the
	// built-in namespaces alone.
	Groups *groups.Registry
	// Media stores uploaded images; nil refuses uploads.
	Media media.Storage
	// MaxImageBytes bounds an uploaded image: 0 for media.DefaultMaxBytes.
	MaxImageBytes int64
	// ImageLimits bound an image's dimensions and the decodes run at once.
	ImageLimits media.Limits
}

// Server serves the REST API.
type Server struct {
	p        *platform.Platform
	tokens   *auth.Issuer
	throttle *auth.Throttle
	// registrations counts accounts created per client address.
	registrations *auth.Throttle
	origins       []string
	log           *slog.Logger
	trustProxy    bool
	admins        []string
	demo          bool
	opsStats      func(context.Context) OpsStats
	mux           *http.ServeMux
	routes        []Route
	keys          *apikey.Store
	// publishMaxData and publishLimit bound what one API key publishes.
	publishMaxData int
	publishLimit   *keyLimiter
	publishWait    time.Duration
	waiters        positionWaiters
	groups         *groups.Registry
	// media stores uploads, images checks them.
	media         media.Storage
	images        *media.Checker
	maxImageBytes int64

	schemaOnce sync.Once
	schemaJSON []byte
}

// New builds the API's handler.
func New(cfg Config) (*Server, error) {
	if cfg.Platform == nil || cfg.Tokens == nil {
		return nil, errors.New("api: platform and token issuer are required")
	}
	s := &Server{
		p: cfg.Platform, tokens: cfg.Tokens, throttle: cfg.Throttle, log: cfg.Logger,
		trustProxy: cfg.TrustProxy, mux: http.NewServeMux(), admins: cfg.Admins, demo: cfg.Demo, opsStats: cfg.OpsStats,
		registrations: newRegistrationThrottle(cfg.RegistrationsPerHour), origins: cfg.AllowedOrigins,
		keys: cfg.APIKeys, publishMaxData: cfg.PublishMaxData, publishWait: cfg.PublishWait,
		media: cfg.Media, images: media.NewChecker(cfg.ImageLimits), maxImageBytes: cfg.MaxImageBytes,
	}
	if s.maxImageBytes <= 0 {
		s.maxImageBytes = media.DefaultMaxBytes
	}
	if s.groups = cfg.Groups; s.groups == nil {
		s.groups = groups.Default()
	}
	if s.publishMaxData <= 0 {
		s.publishMaxData = DefaultPublishMaxData
	}
	if s.publishWait <= 0 {
		s.publishWait = DefaultPublishWait
	}
	rate := cfg.PublishRate
	if rate == 0 {
		rate = DefaultPublishRate
	}
	s.publishLimit = newKeyLimiter(rate)
	if s.throttle == nil {
		s.throttle = auth.NewThrottle(auth.ThrottleConfig{})
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.routes = s.routeTable()
	byPath := map[string][]Route{}
	var order []string
	for _, rt := range s.routes {
		if _, ok := byPath[rt.Path]; !ok {
			order = append(order, rt.Path)
		}
		byPath[rt.Path] = append(byPath[rt.Path], rt)
	}
	for _, path := range order {
		// A pattern ending in "/" matches every path below it as well; {$}
		// anchors it, so /api/campaigns/1/bogus/ is a 404 and not campaign 1.
		pattern := path
		if strings.HasSuffix(pattern, "/") {
			pattern += "{$}"
		}
		s.mux.Handle(pattern, s.dispatch(byPath[path]))
	}
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		s.writeProblem(w, r, problem(http.StatusNotFound, "not_found", "no API endpoint at "+r.URL.Path))
	})
	return s, nil
}

// Routes lists every operation the API serves (the OpenAPI document is made
// from the same table).
func (s *Server) Routes() []Route { return s.routes }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// dispatch picks the route for the request's method, answering 405 with an
// Allow header as problem+json when there is none.
func (s *Server) dispatch(routes []Route) http.Handler {
	allow := make([]string, 0, len(routes)+1)
	for _, rt := range routes {
		allow = append(allow, rt.Method)
	}
	allow = append(allow, http.MethodOptions)
	allowHeader := strings.Join(allow, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet
		}
		for _, rt := range routes {
			if rt.Method == method {
				s.serveRoute(w, r, rt)
				return
			}
		}
		w.Header().Set("Allow", allowHeader)
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		s.writeProblem(w, r, problem(http.StatusMethodNotAllowed, "method_not_allowed",
			"method "+r.Method+" is not allowed here; allowed: "+allowHeader))
	})
}

type ctxKey int

const (
	userKey   ctxKey = iota
	apiKeyKey        // the apikey.Key of a publish
)

// serveRoute authenticates the request as the route requires and runs it.
func (s *Server) serveRoute(w http.ResponseWriter, r *http.Request, rt Route) {
	r, err := s.authenticate(r, rt)
	if err == nil {
		if rt.Method == http.MethodPost {
			err = s.serveIdempotent(w, r, rt)
		} else {
			err = rt.handle(w, r)
		}
	}
	if err != nil {
		s.writeProblem(w, r, err)
	}
}

// authenticate checks that a write could not have been forged by another
// site, then resolves the request's access token (header or cookie) to a
// user who still exists, returning r with that user in its context. A token
// that is present but bad is refused even where none is needed, as Django
// REST framework does, so a client learns its token has expired.
func (s *Server) authenticate(r *http.Request, rt Route) (*http.Request, error) {
	if rt.Auth == AuthAPIKey {
		// No cookie authenticates these routes, so no page can forge them.
		return s.authenticateKey(r)
	}
	if err := s.checkForgery(r, rt); err != nil {
		return r, err
	}
	tok := auth.TokenFromRequest(r, false)
	if tok == "" {
		if rt.Auth == AuthRequired {
			return r, problem(http.StatusUnauthorized, "not_authenticated", "authentication credentials were not provided")
		}
		return r, nil
	}
	uid, err := s.tokens.ParseAccess(tok)
	if err != nil {
		msg := "the access token is invalid"
		if errors.Is(err, auth.ErrTokenExpired) {
			msg = "the access token has expired; refresh it at /api/auth/token/refresh/"
		}
		return r, problem(http.StatusUnauthorized, "token_not_valid", msg)
	}
	// A token outlives its user when the database is reset or the user is
	// removed; without this check every write would fail on a foreign key.
	ok, err := s.p.UserExists(r.Context(), uid)
	if err != nil {
		return r, err
	}
	if !ok {
		return r, problem(http.StatusUnauthorized, "token_not_valid", "the token's user no longer exists")
	}
	return r.WithContext(context.WithValue(r.Context(), userKey, uid)), nil
}

// userID is the authenticated user of r, 0 if anonymous.
func userID(r *http.Request) int64 {
	id, _ := r.Context().Value(userKey).(int64)
	return id
}

// pathID reads a positive integer path parameter; anything else is a 404,
// as no object has such an id.
func pathID(r *http.Request, name string) (int64, error) {
	v, ok := platform.ParseID(r.PathValue(name))
	if !ok {
		return 0, problem(http.StatusNotFound, "not_found", "no object with id "+strconv.Quote(r.PathValue(name)))
	}
	return v, nil
}

// pathIDs reads the ids of a campaign's object from a path
// .../{id}/<kind>/{oid}/.
func pathIDs(r *http.Request) (id, oid int64, err error) {
	if id, err = pathID(r, "id"); err != nil {
		return 0, 0, err
	}
	oid, err = pathID(r, "oid")
	return id, oid, err
}
