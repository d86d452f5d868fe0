package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/apptoken"
	"github.com/heraldhq/herald/internal/groups"
	"github.com/heraldhq/herald/internal/panics"
	"github.com/heraldhq/herald/internal/realtime"
)

// access is what the app granted one connection: who it is to the app and
// the groups it may be in by the app's word (its connection token, its
// connect answer, subscription tokens). Connections that never held a
// grant have none, so the seeds' endpoints pay nothing for it.
type access struct {
	subject string
	granted map[string]*grant
}

// grant is one group the app admitted a connection to. A grant from a
// subscription token ends with the token: the connection then leaves the
// group, told why, unless a new token came first.
type grant struct {
	expires time.Time // zero: for the connection's life
	timer   *time.Timer
}

// grants keeps the connections' access, by connection.
type grants struct {
	mu    sync.Mutex
	conns map[*realtime.Conn]*access
}

// setAccess records who conn is to the app and the groups granted for its
// whole life, at connect.
func (c *Consumers) setAccess(conn *realtime.Conn, subject string, granted []string) {
	if subject == "" && len(granted) == 0 {
		return
	}
	a := &access{subject: subject, granted: make(map[string]*grant, len(granted))}
	for _, g := range granted {
		a.granted[g] = &grant{}
	}
	c.grants.mu.Lock()
	if c.grants.conns == nil {
		c.grants.conns = make(map[*realtime.Conn]*access)
	}
	c.grants.conns[conn] = a
	c.grants.mu.Unlock()
}

// forget drops conn's access and stops its grants' timers; every
// endpoint's OnClose calls it.
func (c *Consumers) forget(conn *realtime.Conn) {
	c.grants.mu.Lock()
	a := c.grants.conns[conn]
	delete(c.grants.conns, conn)
	c.grants.mu.Unlock()
	if a == nil {
		return
	}
	for _, g := range a.granted {
		if g.timer != nil {
			g.timer.Stop()
		}
	}
}

// subject is who conn is to the app: the app's user id from its token or
// connect answer, a herald user's id in decimal, "" for anonymous.
func (c *Consumers) subject(conn *realtime.Conn) string {
	c.grants.mu.Lock()
	a := c.grants.conns[conn]
	c.grants.mu.Unlock()
	if a != nil && a.subject != "" {
		return a.subject
	}
	if uid := conn.UserID(); uid != 0 {
		return itoa(uid)
	}
	return ""
}

// granted reports whether the app admitted conn to group and the grant
// has not ended.
func (c *Consumers) granted(conn *realtime.Conn, group string) bool {
	c.grants.mu.Lock()
	defer c.grants.mu.Unlock()
	a := c.grants.conns[conn]
	if a == nil {
		return false
	}
	g := a.granted[group]
	return g != nil && (g.expires.IsZero() || time.Now().Before(g.expires))
}

// grantUntil records that conn holds group until expires (a subscription
// token's expiry), replacing an earlier token's grant; a grant for the
// connection's life is kept as it is. When the time comes, the connection
// leaves the group and is told so. It returns the grant recorded, nil if
// the connection's own was kept.
func (c *Consumers) grantUntil(conn *realtime.Conn, group string, expires time.Time) *grant {
	c.grants.mu.Lock()
	defer c.grants.mu.Unlock()
	if c.grants.conns == nil {
		c.grants.conns = make(map[*realtime.Conn]*access)
	}
	a := c.grants.conns[conn]
	if a == nil {
		a = &access{granted: map[string]*grant{}}
		c.grants.conns[conn] = a
	}
	g := a.granted[group]
	if g != nil && g.expires.IsZero() {
		return nil
	}
	if g != nil && g.timer != nil {
		g.timer.Stop()
	}
	g = &grant{expires: expires}
	g.timer = time.AfterFunc(time.Until(expires), func() { c.expire(conn, group, g) })
	a.granted[group] = g
	return g
}

// holds says whether g is still conn's grant of group: not expired, nor
// replaced or revoked.
func (c *Consumers) holds(conn *realtime.Conn, group string, g *grant) bool {
	c.grants.mu.Lock()
	defer c.grants.mu.Unlock()
	a := c.grants.conns[conn]
	return a != nil && a.granted[group] == g
}

// revoke drops conn's grant of group, if it came from a token (an
// unsubscribe).
func (c *Consumers) revoke(conn *realtime.Conn, group string) {
	c.grants.mu.Lock()
	defer c.grants.mu.Unlock()
	a := c.grants.conns[conn]
	if a == nil {
		return
	}
	if g := a.granted[group]; g != nil && !g.expires.IsZero() {
		g.timer.Stop()
		delete(a.granted, group)
	}
}

// expire ends conn's subscription to group whose token ran out, unless
// another grant replaced g meanwhile.
func (c *Consumers) expire(conn *realtime.Conn, group string, g *grant) {
	// It runs on a timer's goroutine: a panic here must cost this
	// subscription, not the process.
	defer panics.Recover(c.log, c.onPanic, panics.Grants)
	c.grants.mu.Lock()
	a := c.grants.conns[conn]
	current := a != nil && a.granted[group] == g
	if current {
		delete(a.granted, group)
	}
	c.grants.mu.Unlock()
	if current {
		c.leaveExpired(conn, group)
	}
}

// leaveExpired takes conn out of group, whose token ran out, and tells it
// so.
func (c *Consumers) leaveExpired(conn *realtime.Conn, group string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.hub.Leave(ctx, conn, group); err != nil {
		if !errors.Is(err, realtime.ErrClosed) {
			c.logFailure("leave group on token expiry", err, "group", group)
			conn.Close(realtime.CloseInternalError, "cannot leave "+group)
		}
		return
	}
	sendUnsubscribed(conn, group, CodeTokenExpired, "the subscription token for "+group+" expired; subscribe again with a new one to go on from where you stand")
}

// sendUnsubscribed tells a client the server ended its subscription to
// group, and why.
func sendUnsubscribed(conn *realtime.Conn, group, code, msg string) {
	type unsubscribedData struct {
		Group   string `json:"group"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	b, _ := json.Marshal(struct {
		Type string           `json:"type"`
		Data unsubscribedData `json:"data"`
	}{"unsubscribed", unsubscribedData{group, code, msg}})
	if conn.Encoding() == realtime.EncodingSSE {
		_ = conn.Send(realtime.NewSSEMessage(b))
		return
	}
	_ = conn.SendJSON(b)
}

// denial is why a client may not do what it asked: an error code and a
// message for it.
type denial struct{ code, msg string }

// checkToken verifies a subscription token for group on conn's behalf:
// it must name group and conn's user.
func (c *Consumers) checkToken(conn *realtime.Conn, group, token string) (time.Time, *denial) {
	if c.appTokens == nil {
		return time.Time{}, &denial{CodeInvalidToken, "this server takes no subscription tokens (it has no --app-token-secret or --app-token-key)"}
	}
	cl, err := c.appTokens.Subscription(token)
	switch {
	case errors.Is(err, apptoken.ErrExpired) || err == nil && !cl.Expires.After(time.Now()):
		// A token within the clock-skew leeway is no grant either: its
		// subscription would end as it began.
		return time.Time{}, &denial{CodeTokenExpired, "the subscription token expired; ask the app for a new one"}
	case err != nil:
		return time.Time{}, &denial{CodeInvalidToken, err.Error()}
	case cl.Subject != c.subject(conn):
		return time.Time{}, &denial{CodeForbidden, "the subscription token is for another user than this connection's"}
	}
	for _, ch := range cl.Channels {
		if ch == group {
			return cl.Expires, nil
		}
	}
	return time.Time{}, &denial{CodeForbidden, "the subscription token does not name " + group}
}

// mayJoin says whether conn may subscribe to group of the configured
// namespace ns, with token if it gave one. expires is set when the
// subscription rests on the token and ends with it.
func (c *Consumers) mayJoin(conn *realtime.Conn, ns *groups.Namespace, group, token string) (expires time.Time, d *denial) {
	if token != "" {
		exp, d := c.checkToken(conn, group, token)
		if d != nil {
			return time.Time{}, d
		}
		if ns.Subscribe == groups.TokenHolder || ns.Subscribe == groups.Platform ||
			(ns.Subscribe == groups.SignedIn && c.subject(conn) == "") {
			return exp, nil
		}
		return time.Time{}, nil
	}
	if c.granted(conn, group) {
		return time.Time{}, nil
	}
	switch ns.Subscribe {
	case groups.Anyone:
		return time.Time{}, nil
	case groups.SignedIn:
		if c.subject(conn) != "" {
			return time.Time{}, nil
		}
		return time.Time{}, &denial{CodeForbidden, "the groups of " + ns.Name + " are for signed-in users"}
	}
	return time.Time{}, &denial{CodeForbidden, "subscribing to " + group + " needs a subscription token from the app"}
}

// mayPublish says whether conn may publish to group of ns from the client.
func (c *Consumers) mayPublish(conn *realtime.Conn, ns *groups.Namespace, group string) *denial {
	switch ns.Publish {
	case groups.Anyone:
		return nil
	case groups.SignedIn:
		if c.subject(conn) != "" {
			return nil
		}
		return &denial{CodeForbidden, "publishing to " + ns.Name + " is for signed-in users"}
	case groups.TokenHolder:
		if c.granted(conn, group) {
			return nil
		}
		return &denial{CodeForbidden, "publishing to " + group + " needs the app's grant: a subscription token for it, or a connection the app admitted to it"}
	}
	return &denial{CodeForbidden, "clients may not publish to " + ns.Name + "; the app publishes through herald's publish API"}
}
