package consumers

import (
	"errors"
	"net/http"
	"slices"
	"sync/atomic"

	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/transport"
)

// applications serves /ws/applications/ and /sse/applications/: a signed-in
// user's own group and the groups of every quest they created (joined live
// as they create more).
func (c *Consumers) applications(k kind, w http.ResponseWriter, r *http.Request) {
	v, resume, ok := c.request(k, w, r)
	if !ok {
		return
	}
	uid, err := c.authenticate(r)
	if errors.Is(err, errAuth) || (err == nil && uid == 0) {
		refuse(w, "authentication required: pass ?token=<access token>, a ticket, or the session cookie")
		return
	}
	if err != nil {
		c.failed(w, "authenticate", err)
		return
	}
	quests, err := c.p.QuestIDsByCreator(r.Context(), uid)
	if err != nil {
		c.failed(w, "load quests", err, "user_id", uid)
		return
	}
	groups := make([]string, 0, len(quests)+1)
	groups = append(groups, platform.UserGroup(uid))
	for _, q := range quests {
		groups = append(groups, platform.QuestGroup(q))
	}
	// Positions are taken before the handshake completes: whatever is
	// published from here on reaches the connection, even before its joins.
	start, err := c.positionsNow(r.Context(), groups)
	if err != nil {
		c.failed(w, "position", err)
		return
	}
	follower := &questFollower{}
	cfg := transport.ConnConfig{UserID: uid, Version: v, Value: follower, Handler: applicationHandler{c}, Addr: c.clientAddr(r)}
	c.accept(k, w, r, cfg, func(conn *realtime.Conn) {
		// Quests created from now on are announced on the control group;
		// those created since the list above was read are found by reading
		// it again.
		if !c.joinAll(r.Context(), conn, platform.ControlGroup(uid)) {
			return
		}
		// A v2 client resumes each group it names and starts the others
		// where they stood at the handshake; it is told where it stands in
		// each (subscribed) before any of the group's live events.
		for i, g := range groups {
			from, asked := resume[g]
			if !asked {
				from = start[i]
			}
			if _, ok := c.joinFrom(r.Context(), conn, g, from, c.tell(conn, g, nil)); !ok {
				return
			}
		}
		// Announcements from here on are followed; one that came before
		// is of a quest committed before this read, which finds it.
		follower.following.Store(true)
		again, err := c.p.QuestIDsByCreator(r.Context(), uid)
		if err != nil {
			c.logFailure("load quests", err, "user_id", uid)
			conn.Close(realtime.CloseInternalError, "cannot load quests")
			return
		}
		for _, q := range again {
			if !slices.Contains(quests, q) {
				c.followQuest(r.Context(), conn, q)
			}
		}
	})
}

// questFollower is an applications connection's state: whether it follows
// the quests announced on its control group yet. Until its groups are
// joined at connect it does not: an announced quest may be one of them,
// and joined by the announcement from its first event, it would replay to
// a resuming client what it has, and refuse the client's own join.
type questFollower struct {
	following atomic.Bool
}

// applicationHandler answers what a client sends on /ws/applications/. The
// seeds' consumer ignores client messages; herald tells the client it
// expects none rather than dropping them silently (v2 clients may
// subscribe and unsubscribe).
type applicationHandler struct{ c *Consumers }

func (h applicationHandler) OnMessage(conn *realtime.Conn, data []byte) {
	h.c.onlyV2(conn, data, func(typ string) string {
		return "this endpoint accepts no " + typ + " messages; it only sends events"
	})
}

func (h applicationHandler) OnClose(conn *realtime.Conn) { h.c.forget(conn) }

func (applicationHandler) OnRateLimited(conn *realtime.Conn) { rateLimited(conn) }
