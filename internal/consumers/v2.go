package consumers

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/heraldhq/herald/internal/groups"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime"
)

// reply answers one client message. A v2 client that gave its message an
// "id" gets an ack, or errors carrying that id, so it can match answers to
// what it sent; v1 clients get the seeds' plain errors and no acks.
type reply struct {
	conn *realtime.Conn
	id   json.RawMessage
}

func newReply(conn *realtime.Conn, m message) reply {
	if conn.Version() < 2 || len(m.ID) == 0 || len(m.ID) > 128 {
		return reply{conn: conn}
	}
	return reply{conn: conn, id: m.ID}
}

func (r reply) error(code, msg string) {
	b, _ := json.Marshal(struct {
		Type string    `json:"type"`
		Data errorData `json:"data"`
	}{"error", errorData{code, msg, r.id}})
	_ = r.conn.SendJSON(b)
}

// errorData is the data of an error message; ID only answers a v2 message
// that had one.
type errorData struct {
	Code    string          `json:"code"`
	Message string          `json:"message"`
	ID      json.RawMessage `json:"id,omitempty"`
}

func (r reply) ack() {
	if r.id == nil {
		return
	}
	b := make([]byte, 0, 40+len(r.id))
	b = append(b, `{"type":"ack","data":{"id":`...)
	b = append(b, r.id...)
	b = append(b, "}}"...)
	_ = r.conn.SendJSON(b)
}

// onlyV2 handles a message on an endpoint that takes nothing but the v2
// messages (handleV2): any other type is answered unknown_type, with
// unknown's explanation of the JSON-quoted type.
func (c *Consumers) onlyV2(conn *realtime.Conn, data []byte, unknown func(typ string) string) {
	m, ok := parseMessage(conn, data)
	if !ok {
		return
	}
	rep := newReply(conn, m)
	if c.handleV2(conn, m, rep) {
		return
	}
	typ, _ := json.Marshal(m.Type)
	rep.error(CodeUnknownType, unknown(string(typ)))
}

// subscription is the data of subscribe and unsubscribe: a group, and for
// subscribe optionally the position to resume it from. An epoch given
// empty is a position too: the start of a group that had no events yet
// when the client was told where it stood.
type subscription struct {
	Group  string  `json:"group"`
	Epoch  *string `json:"epoch"`
	Offset uint64  `json:"offset"`
	// Token is the app's subscription token for the group.
	Token string `json:"token"`
}

// maxTokenLen bounds a subscription token (apptoken refuses longer ones
// too; this keeps the message check cheap).
const maxTokenLen = 8 << 10

// handleV2 handles the messages only v2 clients may send; it reports false
// for any other type.
func (c *Consumers) handleV2(conn *realtime.Conn, m message, rep reply) bool {
	if conn.Version() < 2 {
		return false
	}
	switch m.Type {
	case "subscribe", "unsubscribe":
	case "publish":
		c.publish(conn, m, rep)
		return true
	default:
		return false
	}
	var sub subscription
	if len(m.Data) == 0 || json.Unmarshal(m.Data, &sub) != nil || sub.Epoch != nil && !validEpoch(*sub.Epoch) || sub.Offset > maxOffset ||
		len(sub.Token) > maxTokenLen {
		rep.error(CodeInvalidMessage, `"data" must be {"group": "<name>"} with an optional "epoch", "offset" and "token" (at most 8 KiB)`)
		return true
	}
	ns, _, ok := c.groups.Lookup(sub.Group)
	if !ok {
		rep.error(CodeInvalidGroup, c.groups.Rule())
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if m.Type == "unsubscribe" {
		if err := c.hub.Leave(ctx, conn, sub.Group); err != nil {
			rep.error(CodeInternal, "could not leave "+sub.Group)
			return true
		}
		c.revoke(conn, sub.Group)
		rep.ack()
		return true
	}
	// The app's word (a subscription token, or its grant at connect)
	// admits a client to any group; otherwise a configured namespace's
	// policy decides, and herald's platform for its own groups.
	var expires time.Time
	appGranted := sub.Token != "" || c.granted(conn, sub.Group)
	if appGranted || ns.Subscribe != groups.Platform {
		var d *denial
		if expires, d = c.mayJoin(conn, ns, sub.Group, sub.Token); d != nil {
			rep.error(d.code, d.msg)
			return true
		}
		if conn.InGroup(sub.Group) {
			if !expires.IsZero() {
				c.grantUntil(conn, sub.Group, expires) // a renewed token
			}
			rep.ack()
			return true
		}
		if len(conn.Groups()) >= c.maxGroups {
			rep.error(CodeTooManyGroups, fmt.Sprintf("a connection may be in at most %d groups; unsubscribe from one first", c.maxGroups))
			return true
		}
		var from position
		if sub.Epoch != nil {
			from = position{Offset: sub.Offset, Epoch: *sub.Epoch}
		} else {
			var err error
			if from, err = c.positionNow(ctx, sub.Group); err != nil {
				c.log.Warn("realtime: subscribe", "group", sub.Group, "err", err)
				rep.error(CodeInternal, "could not subscribe; try again")
				return true
			}
		}
		return c.subscribeFrom(ctx, conn, ns, sub.Group, from, expires, rep)
	}
	kind, id, _ := platform.ParseGroup(sub.Group)
	public, err := c.mayWatch(ctx, conn.UserID(), kind, id)
	if err != nil {
		switch platform.KindOf(err) {
		case platform.KindNotFound:
			rep.error(CodeNotFound, err.Error())
		case platform.KindForbidden, platform.KindUnauthorized:
			rep.error(CodeForbidden, err.Error())
		default:
			c.log.Error("realtime: subscribe", "group", sub.Group, "err", err)
			rep.error(CodeInternal, "could not subscribe; try again")
		}
		return true
	}
	if conn.InGroup(sub.Group) {
		rep.ack()
		return true
	}
	if len(conn.Groups()) >= c.maxGroups {
		rep.error(CodeTooManyGroups, fmt.Sprintf("a connection may be in at most %d groups; unsubscribe from one first", c.maxGroups))
		return true
	}
	resuming := sub.Epoch != nil
	var from position
	if public || !resuming {
		if from, err = c.positionNow(ctx, sub.Group); err == nil && public {
			from, err = c.gatePublic(ctx, id, sub.Group, from)
		}
		switch {
		case err == nil:
		case platform.KindOf(err) == platform.KindNotFound: // made a draft meanwhile
			rep.error(CodeNotFound, err.Error())
			return true
		default:
			c.log.Warn("realtime: subscribe", "group", sub.Group, "err", err)
			rep.error(CodeInternal, "could not subscribe; try again")
			return true
		}
	}
	if resuming {
		from = position{Offset: sub.Offset, Epoch: *sub.Epoch}
	}
	// The ack and where the client stands come before the group's live
	// events: recovered=false when the join could not replay from there.
	ack := &subscribeAck{rep: rep}
	cu := c.tell(conn, sub.Group, ack.send)
	if public {
		// Checked again once a member, whatever the position: made a
		// draft since the check above, the room started over as the
		// draft's before this connection was in it to be closed by the
		// change, and a join that cannot replay across the new epoch
		// would start it in the draft's room (tell's Fresh checks nothing).
		// Not there any more: the subscribe is refused as at its check,
		// and the failed join leaves the group having sent nothing of it.
		cu.Joined = c.fromTheStart(conn, conn.UserID(), id, sub.Group, func() {
			rep.error(CodeNotFound, "campaign "+strconv.FormatInt(id, 10)+" does not exist or is not visible to you")
		})
	}
	if _, ok := c.joinFrom(ctx, conn, sub.Group, from, cu); ok {
		ack.ensure()
		c.watchPresence(ns, sub.Group)
	}
	return true
}

// subscribeAck is a subscribe's ack: sent by its join just before where the
// client stands (tell's before), or, when another join of the group beat
// it (joinFrom takes that as joined), once the join returns.
type subscribeAck struct {
	rep  reply
	sent bool
}

func (a *subscribeAck) send() { a.sent = true; a.rep.ack() }

// ensure sends the ack if the join did not.
func (a *subscribeAck) ensure() {
	if !a.sent {
		a.send()
	}
}

// subscribeFrom joins conn to group of ns from a position, granted until
// expires when a subscription token admitted it.
func (c *Consumers) subscribeFrom(ctx context.Context, conn *realtime.Conn, ns *groups.Namespace, group string, from position, expires time.Time, rep reply) bool {
	var g *grant
	if !expires.IsZero() {
		// Before the join: the token's end must not race past it.
		g = c.grantUntil(conn, group, expires)
	}
	ack := &subscribeAck{rep: rep}
	if _, ok := c.joinFrom(ctx, conn, group, from, c.tell(conn, group, ack.send)); ok {
		ack.ensure()
		if g != nil && !c.holds(conn, group, g) {
			// The token ran out during the join, when its end found
			// nothing to leave yet (or left before the join was done):
			// the client is told after where it stands, and leaves.
			c.leaveExpired(conn, group)
			return true
		}
		c.watchPresence(ns, group)
	}
	return true
}

// watchPresence counts group's members for its v2 members if its
// namespace has presence.
func (c *Consumers) watchPresence(ns *groups.Namespace, group string) {
	if ns.Presence {
		c.presence.watch(group)
	}
}

// subscribeWait bounds how long a subscribe waits for a room to be ready
// for the public (publicPosition): it holds a reader worker meanwhile.
const subscribeWait = 500 * time.Millisecond

// gatePublic is publicPosition for a subscribe message to campaign id's
// room, bounded by subscribeWait.
func (c *Consumers) gatePublic(ctx context.Context, id int64, group string, at position) (position, error) {
	ctx, cancel := context.WithTimeout(ctx, subscribeWait)
	defer cancel()
	return c.publicPosition(ctx, id, group, at, false)
}

// mayWatch says whether userID may receive the events of the group of kind
// and id (as platform.ParseGroup read them): a campaign's room if they may
// see the campaign, a quest's group if they created it, their own user
// group. public is set for a campaign room watched by someone other than
// its owner, who may be sent only what was published while it was public
// (publicPosition).
func (c *Consumers) mayWatch(ctx context.Context, userID int64, kind string, id int64) (public bool, err error) {
	switch kind {
	case platform.GroupCampaign:
		cp, err := c.p.Campaign(ctx, userID, id)
		if err != nil {
			return false, err
		}
		return cp.Owner.ID != userID, nil
	case platform.GroupQuest:
		q, err := c.p.Quest(ctx, id)
		if err != nil {
			return false, err
		}
		if q.Creator.ID != userID {
			return false, &platform.Error{Kind: platform.KindForbidden, Message: "only the quest's creator follows its applications"}
		}
		return false, nil
	default: // platform.GroupUser
		if id != userID {
			return false, &platform.Error{Kind: platform.KindForbidden, Message: "a user group is its user's alone"}
		}
		return false, nil
	}
}
