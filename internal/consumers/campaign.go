package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/transport"
)

// campaign serves /ws/campaign/<id>/ and /sse/campaign/<id>/: anyone who
// may see the campaign (its owner only while it is a draft) joins its room
// and first receives campaign_data, the REST detail JSON.
func (c *Consumers) campaign(k kind, w http.ResponseWriter, r *http.Request) {
	id, ok := platform.ParseID(r.PathValue("id"))
	if !ok {
		http.NotFound(w, r) // as Channels' URL router: only digits match
		return
	}
	v, resume, ok := request(k, w, r)
	if !ok {
		return
	}
	uid, err := c.authenticate(r)
	if errors.Is(err, errAuth) {
		refuse(w, "invalid or expired credentials")
		return
	}
	if err != nil {
		c.failed(w, "authenticate", err)
		return
	}
	room := &campaignRoom{c: c, id: id, group: platform.CampaignGroup(id)}
	start, detail, loadErr := c.view(r.Context(), uid, id, room.group)
	switch {
	case errors.Is(loadErr, errResetPending):
		w.Header().Set("Retry-After", "1")
		http.Error(w, loadErr.Error(), http.StatusServiceUnavailable)
		return
	case loadErr != nil && platform.KindOf(loadErr) != platform.KindNotFound:
		c.failed(w, "load campaign", loadErr, "campaign_id", id)
		return
	case loadErr != nil && k == viaSSE:
		// An event stream answered with an error status is not retried by
		// the browser, which is right for a campaign that is not there.
		http.Error(w, "campaign not found", http.StatusNotFound)
		return
	}
	// Whether a resume is within the window is asked before accepting, so
	// a layer that cannot tell (Redis unreachable) refuses the handshake
	// and the client retries, as when the position cannot be read, instead
	// of being told its events are lost.
	p, asked := resume[room.group]
	inWindow := false
	if asked && loadErr == nil {
		if _, inWindow, err = c.hub.Layer().History(r.Context(), room.group, p.Offset, p.Epoch); err != nil {
			c.failed(w, "history", err)
			return
		}
	}
	cfg := transport.ConnConfig{UserID: uid, Version: v, Value: room, Handler: room, Addr: c.clientAddr(r)}
	// What the connection is sent first goes out with the handshake.
	c.accept(k, w, r, cfg, func(acc accepted) {
		conn := acc.conn
		if loadErr != nil {
			notFound(conn, id)
			return
		}
		// A v2 client resuming within the window gets exactly what it
		// missed and no snapshot; otherwise the snapshot is its fresh state.
		if asked {
			if inWindow {
				recovered, ok := c.joinFrom(r.Context(), conn, room.group, p)
				if !ok {
					return
				}
				c.presence.watch(room.group)
				if recovered {
					acc.position(room.group, p)
					sendSubscribed(conn, room.group, true)
					return
				}
				// The window moved on meanwhile: joined live; the snapshot
				// below brings the state up to date.
				sendSubscribed(conn, room.group, false)
				c.sendFresh(r.Context(), conn, uid, room)
				return
			}
			sendSubscribed(conn, room.group, false)
		}
		if !detail.send(conn) {
			return
		}
		recovered, ok := c.joinFrom(r.Context(), conn, room.group, start)
		if !ok {
			return
		}
		c.presence.watch(room.group)
		if !recovered {
			// The room started over between the snapshot and the join (a
			// reset, a Redis that lost its data): what came in between was
			// not replayed, so the state is sent again.
			c.sendFresh(r.Context(), conn, uid, room)
			return
		}
		acc.position(room.group, start)
	})
}

// view is what a connection to campaign id starts from: the room's
// position and, read after it, campaign_data as viewer uid may see it. A
// viewer who is not the owner starts from a position after the campaign
// was made public (publicPosition), so nothing from its draft reaches them.
func (c *Consumers) view(ctx context.Context, uid, id int64, group string) (position, snapshot, error) {
	// The room's position is taken before the snapshot is read: every event
	// after it is replayed behind the snapshot, so none falls in between
	// (one already in the snapshot may come again; clients key by id).
	at, err := c.positionNow(ctx, group)
	if err != nil {
		return position{}, snapshot{}, err
	}
	snap, err := c.snapshot(ctx, uid, id, at)
	if err != nil || snap.owner == uid {
		return at, snap, err
	}
	public, err := c.publicPosition(ctx, group, at, snap.resetOut)
	if err != nil || public == at {
		return at, snap, err
	}
	snap, err = c.snapshot(ctx, uid, id, public)
	return public, snap, err
}

// sendFresh sends a joined connection campaign_data read now, which covers
// whatever it was not replayed, or closes it if the campaign is no longer
// there for it.
func (c *Consumers) sendFresh(ctx context.Context, conn *realtime.Conn, uid int64, room *campaignRoom) {
	at, err := c.positionNow(ctx, room.group)
	var snap snapshot
	if err == nil {
		snap, err = c.snapshot(ctx, uid, room.id, at)
	}
	switch {
	case err == nil:
		snap.send(conn)
	case platform.KindOf(err) == platform.KindNotFound:
		notFound(conn, room.id)
	default:
		c.logFailure("load campaign", err, "campaign_id", room.id)
		conn.Close(realtime.CloseInternalError, "cannot load campaign")
	}
}

// notFound tells a connection its campaign is not there for it and closes
// it: accepted first, so a browser client can show the reason (a refused
// handshake tells it nothing).
func notFound(conn *realtime.Conn, id int64) {
	sendError(conn, CodeNotFound, "campaign "+strconv.FormatInt(id, 10)+" does not exist or is not visible to you")
	conn.Close(realtime.CloseNotFound, "campaign not found")
}

// campaignRoom is a connection's campaign; it handles the client's announces.
type campaignRoom struct {
	c     *Consumers
	id    int64
	group string
}

func (room *campaignRoom) OnClose(*realtime.Conn) {}

func (room *campaignRoom) OnRateLimited(conn *realtime.Conn) { rateLimited(conn) }

// OnMessage handles {"type": <one of the five>, "data": {"id": N}}: the seed
// front end creates an object through REST and then announces it here. The
// object is looked up, checked to belong to this campaign and to be visible
// to the sender, and published unless this version of it was already
// published (by the outbox relay or an earlier announce), so each change
// reaches the room exactly once.
func (room *campaignRoom) OnMessage(conn *realtime.Conn, raw []byte) {
	m, ok := parseMessage(conn, raw)
	if !ok {
		return
	}
	rep := newReply(conn, m)
	if room.c.handleV2(conn, m, rep) {
		return
	}
	if !slices.Contains(platform.AnnounceTypes, m.Type) {
		typ, _ := json.Marshal(m.Type)
		rep.error(CodeUnknownType, "unknown message type "+string(typ)+"; expected contribution, update, comment, release or milestone")
		return
	}
	id, ok := announceID(rep, m)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := room.c.announce(ctx, conn.UserID(), room.id, room.group, m.Type, id); err != nil {
		switch platform.KindOf(err) {
		case platform.KindNotFound:
			rep.error(CodeNotFound, m.Type+" "+strconv.FormatInt(id, 10)+" is not in this campaign")
		case platform.KindForbidden, platform.KindUnauthorized:
			rep.error(CodeForbidden, "you may not announce this "+m.Type)
		default:
			room.c.log.Error("realtime: announce", "campaign_id", room.id, "type", m.Type, "id", id, "err", err)
			rep.error(CodeInternal, "the announcement failed; try again")
		}
		return
	}
	rep.ack()
}

// announceID reads the object id of an announce, answering the client when
// there is none.
func announceID(rep reply, m message) (int64, bool) {
	var ref struct {
		ID json.Number `json:"id"`
	}
	if len(m.Data) == 0 || json.Unmarshal(m.Data, &ref) != nil || ref.ID == "" {
		rep.error(CodeInvalidMessage, "\"data\" must be an object with the numeric \"id\" of the "+m.Type)
		return 0, false
	}
	id, err := strconv.ParseInt(string(ref.ID), 10, 64)
	if err != nil || id <= 0 {
		rep.error(CodeInvalidMessage, "\"id\" must be a positive integer")
		return 0, false
	}
	return id, true
}

// announce publishes an object's current JSON to its campaign's room unless
// that exact version is already on its way or already published.
//
// Only a public campaign's objects are announced: whatever is published
// stays in the room's history, and a draft's owner has its writes' own
// events. The campaign is found public before the object is read, so the
// version announced is one everybody could see.
func (c *Consumers) announce(ctx context.Context, userID, campaignID int64, group, typ string, id int64) error {
	_, err := c.p.Campaign(ctx, 0, campaignID)
	public := err == nil
	if err != nil && platform.KindOf(err) != platform.KindNotFound {
		return err
	}
	data, err := c.p.ObjectJSON(ctx, userID, campaignID, typ, id)
	if err != nil || !public {
		return err
	}
	// The hub's last version first (it outlives the log's window), then
	// the log, which records it unless it holds that exact event already.
	if c.seen.has(group, typ, id, data) {
		return nil
	}
	_, err = c.p.Announce(ctx, group, typ, data)
	return err
}
