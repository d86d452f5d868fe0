package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/heraldhq/herald/internal/apptoken"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/connect"
	"github.com/heraldhq/herald/internal/groups"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/transport"
)

// identity is who a client of /ws/ or /sse/ is, and the groups the app
// admitted it to.
type identity struct {
	uid     int64  // a herald user, 0 otherwise
	subject string // the app's user, or the herald user's id in decimal
	granted []string
}

// app serves /ws/ and /sse/ (and, with a connect URL, every other path
// below them): the endpoint of other apps' clients. A client is a herald
// user (herald's own credentials), the app's user (its connection token,
// or the app's answer to the connect callback) or anonymous; it joins the
// groups the app granted and those it asks for with ?group= that their
// namespace lets it join, and a v2 client subscribes to more.
func (c *Consumers) app(k kind, w http.ResponseWriter, r *http.Request) {
	if r.PathValue("path") != "" && c.connect == nil {
		// Only the app knows what its own paths mean.
		http.NotFound(w, r)
		return
	}
	v, resume, ok := c.request(k, w, r)
	if !ok {
		return
	}
	who, ok := c.identify(k, w, r)
	if !ok {
		return
	}
	asked := r.URL.Query()["group"]
	if len(asked)+len(who.granted) > c.maxGroups {
		http.Error(w, "too many groups: a connection may be in at most "+strconv.Itoa(c.maxGroups), http.StatusBadRequest)
		return
	}
	join := slices.Clone(who.granted)
	for _, g := range asked {
		if slices.Contains(join, g) {
			continue
		}
		ns, _, ok := c.groups.Lookup(g)
		if !ok {
			http.Error(w, "group "+strconv.Quote(truncate(g))+": "+c.groups.Rule(), http.StatusBadRequest)
			return
		}
		if d := c.mayJoinAtConnect(who, ns.Subscribe, g); d != "" {
			refuse(w, d)
			return
		}
		join = append(join, g)
	}
	start, err := c.positionsNow(r.Context(), join)
	if err != nil {
		c.failed(w, "position", err)
		return
	}
	cfg := transport.ConnConfig{UserID: who.uid, Version: v, Handler: appHandler{c}, Addr: c.clientAddr(r)}
	c.accept(k, w, r, cfg, func(conn *realtime.Conn) {
		c.setAccess(conn, who.subject, who.granted)
		for i, g := range join {
			from, resumed := resume[g]
			if !resumed {
				from = start[i]
			}
			if _, ok := c.joinFrom(r.Context(), conn, g, from, c.tell(conn, g, nil)); !ok {
				return
			}
			if ns, _, ok := c.groups.Lookup(g); ok {
				c.watchPresence(ns, g)
			}
		}
	})
}

// identify finds who the client of r is: a herald access token or ticket
// makes it a herald user; the app's connection token (?token= or
// Authorization: Bearer) its user; otherwise the connect callback, when
// there is one, asks the app; no credentials at all is anonymous. A
// refused or failed request is answered here (ok=false).
func (c *Consumers) identify(k kind, w http.ResponseWriter, r *http.Request) (identity, bool) {
	// A token the client names (Authorization, then ?token=) comes before
	// herald's session cookie, which a browser sends whatever the page.
	tok := auth.TokenFromRequest(r, false)
	named := r.Header.Get("Authorization") != ""
	if q := r.URL.Query().Get("token"); q != "" && !named {
		tok, named = q, true
	}
	herald := tok != "" && c.heraldToken(tok)
	if tok != "" && !named && !herald {
		// A stale session cookie of herald's own is no credential, and no
		// app token either: the client is who the rest makes it.
		tok = ""
	}
	if r.URL.Query().Get("ticket") != "" || herald {
		uid, err := c.authenticateToken(r, tok)
		switch {
		case errors.Is(err, errAuth):
			refuse(w, "invalid or expired credentials")
			return identity{}, false
		case err != nil:
			c.failed(w, "authenticate", err)
			return identity{}, false
		}
		return identity{uid: uid, subject: itoa(uid)}, true
	}
	if tok != "" {
		if c.appTokens == nil {
			refuse(w, "invalid credentials: the token is not herald's, and this server takes no app tokens")
			return identity{}, false
		}
		cl, err := c.appTokens.Connection(tok)
		switch {
		case errors.Is(err, apptoken.ErrExpired):
			refuse(w, "token_expired: the connection token expired; ask the app for a new one")
			return identity{}, false
		case err != nil:
			refuse(w, "invalid_token: "+err.Error())
			return identity{}, false
		}
		for _, g := range cl.Channels {
			if c.groups.Valid(g) != nil {
				refuse(w, "invalid_token: the token names "+strconv.Quote(truncate(g))+", which is not a group herald serves")
				return identity{}, false
			}
		}
		return identity{subject: cl.Subject, granted: cl.Channels}, true
	}
	if c.connect == nil {
		return identity{}, true
	}
	transportName := "websocket"
	if k == viaSSE {
		transportName = "sse"
	}
	ans, err := c.connect.Authorize(r.Context(), r, connect.Request{
		Transport: transportName, Path: r.URL.Path, Query: r.URL.RawQuery, Client: auth.ClientIP(r, c.proxy),
	})
	switch {
	case errors.Is(err, connect.ErrDenied):
		refuse(w, err.Error())
		return identity{}, false
	case err != nil:
		c.log.Warn("realtime: connect callback", "err", err)
		w.Header().Set("Retry-After", "2")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return identity{}, false
	}
	var granted []string
	for _, g := range ans.Groups {
		if c.groups.Valid(g) != nil {
			c.log.Warn("realtime: connect callback answered a group herald does not serve", "group", truncate(g))
			http.Error(w, "the app's connect callback named "+strconv.Quote(truncate(g))+", which is not a group herald serves", http.StatusBadGateway)
			return identity{}, false
		}
		if !slices.Contains(granted, g) {
			granted = append(granted, g)
		}
	}
	return identity{subject: ans.User, granted: granted}, true
}

// mayJoinAtConnect says why a client who asked for group with ?group=
// may not join it ("" when it may): no subscription token can come with a
// handshake, so only the namespaces open to anyone or to signed-in users
// admit such a join.
func (c *Consumers) mayJoinAtConnect(who identity, p groups.Policy, group string) string {
	switch {
	case p == groups.Anyone:
		return ""
	case p == groups.SignedIn && who.subject != "":
		return ""
	case p == groups.SignedIn:
		return "the groups of " + group + "'s namespace are for signed-in users"
	}
	return "joining " + group + " needs the app's grant: its connection token or connect answer must name it, or subscribe with a subscription token (v2)"
}

// appHandler answers what a client of /ws/ sends: a v2 client subscribes,
// unsubscribes and publishes; a v1 client sends nothing.
type appHandler struct{ c *Consumers }

func (h appHandler) OnMessage(conn *realtime.Conn, data []byte) {
	h.c.onlyV2(conn, data, func(typ string) string {
		return "unknown message type " + typ + "; a v2 client may send subscribe, unsubscribe and publish"
	})
}

func (h appHandler) OnClose(conn *realtime.Conn) { h.c.forget(conn) }

func (appHandler) OnRateLimited(conn *realtime.Conn) { rateLimited(conn) }

// publication is the data of a v2 client's publish message.
type publication struct {
	Group string          `json:"group"`
	Type  string          `json:"type"`
	Data  json.RawMessage `json:"data"`
}

// publish records a v2 client's event in group, as the publish API would,
// when the group's namespace lets this client publish.
func (c *Consumers) publish(conn *realtime.Conn, m message, rep reply) {
	var pub publication
	if len(m.Data) == 0 || json.Unmarshal(m.Data, &pub) != nil || pub.Type == "" || len(pub.Data) == 0 {
		rep.error(CodeInvalidMessage, `"data" must be {"group": "<name>", "type": "<event type>", "data": <JSON>}`)
		return
	}
	ns, _, ok := c.groups.Lookup(pub.Group)
	if !ok {
		rep.error(CodeInvalidGroup, c.groups.Rule())
		return
	}
	if d := c.mayPublish(conn, ns, pub.Group); d != nil {
		rep.error(d.code, d.msg)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.p.RecordExternal(ctx, pub.Group, pub.Type, pub.Data); err != nil {
		if platform.KindOf(err) == platform.KindInvalid {
			rep.error(CodeInvalidMessage, err.Error())
			return
		}
		c.log.Error("realtime: publish", "group", pub.Group, "err", err)
		rep.error(CodeInternal, "could not publish; try again")
		return
	}
	rep.ack()
}
