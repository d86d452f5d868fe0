package api

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/version"
)

// OpsStats is a snapshot of a running herald for the operations page: the
// page polls it and charts the differences between snapshots.
type OpsStats struct {
	Time              platform.Time  `json:"time"`
	Version           version.Build  `json:"version"` // the running build: version, commit (internal/version)
	UptimeSeconds     float64        `json:"uptime_seconds"`
	Connections       map[string]int `json:"connections"`
	Groups            int            `json:"groups"`
	EventsPublished   uint64         `json:"events_published"`
	EventsReceived    uint64         `json:"events_received"`
	Deliveries        uint64         `json:"deliveries"`
	Dropped           uint64         `json:"dropped"`
	SlowConsumers     uint64         `json:"slow_consumers"`
	RateLimited       uint64         `json:"rate_limited"`
	HandshakesRefused uint64         `json:"handshakes_refused"`
	OutboxPending     int            `json:"outbox_pending"`
}

// isAdmin is whether username is one of the administrators (--admins).
func (s *Server) isAdmin(username string) bool {
	return slices.ContainsFunc(s.admins, func(a string) bool { return strings.EqualFold(a, username) })
}

// ops answers the operations snapshot, to administrators only.
func (s *Server) ops(w http.ResponseWriter, r *http.Request) error {
	u, err := s.p.UserByID(r.Context(), userID(r))
	if err != nil {
		return err
	}
	if !s.isAdmin(u.Username) {
		return problem(http.StatusForbidden, "permission_denied", "the operations page is for administrators (--admins)")
	}
	if s.opsStats == nil {
		return problem(http.StatusNotFound, "not_found", "no operations data in this server")
	}
	st := s.opsStats(r.Context())
	st.Time = platform.Time{Time: time.Now().UTC().Truncate(time.Microsecond)}
	st.Version = version.Get()
	writeJSON(w, http.StatusOK, st)
	return nil
}
