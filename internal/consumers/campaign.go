package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	v, resume, ok := c.request(k, w, r)
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
	// A v2 client resuming within the window gets exactly what it missed
	// and no snapshot, so none is read for it: whether it may see the room
	// from its position is checked without one (mayResume). Whether the
	// position is within the window is asked before accepting, so a layer
	// that cannot tell (Redis unreachable) refuses the handshake and the
	// client retries, as when the position cannot be read, instead of being
	// told its events are lost.
	p, asked := resume[room.group]
	var (
		inWindow bool
		start    position
		detail   snapshot
		loadErr  error
	)
	if asked {
		var may bool
		if may, loadErr = c.mayResume(r.Context(), uid, id, room.group, p); loadErr == nil && may {
			if _, inWindow, err = c.hub.Layer().History(r.Context(), room.group, p.Offset, p.Epoch); err != nil {
				c.failed(w, "history", layerError{err})
				return
			}
		}
	}
	if loadErr == nil && !inWindow {
		start, detail, loadErr = c.view(r.Context(), uid, id, room.group)
	}
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
	cfg := transport.ConnConfig{UserID: uid, Version: v, Value: room, Handler: room, Addr: c.clientAddr(r)}
	// What the connection is sent first goes out with the handshake.
	c.accept(k, w, r, cfg, func(conn *realtime.Conn) {
		if loadErr != nil {
			notFound(conn, id)
			return
		}
		// Whenever the join cannot replay (the window moved on meanwhile,
		// the room started over), the state is read again while the
		// room's events are held back: subscribed, campaign_data, then
		// only the events after it.
		cu := realtime.Catchup{Fresh: c.freshCampaign(conn, uid, room)}
		from := start
		switch {
		case inWindow:
			from = p
			cu.Replayed = func(at position) { sendSubscribed(conn, room.group, true, at) }
		case asked:
			// Not resumable: told so, then the snapshot is its fresh state.
			sendSubscribed(conn, room.group, false, start)
		case conn.Version() >= 2:
			// A fresh start: where campaign_data and the replay behind it
			// leave the client.
			cu.Replayed = func(at position) { sendSubscribed(conn, room.group, true, at) }
		}
		if from.Epoch == "" {
			cu.Joined = c.fromTheStart(conn, uid, room.id, room.group, func() { notFound(conn, room.id) })
		}
		if !inWindow && !detail.send(conn) {
			return
		}
		if _, ok := c.joinFrom(r.Context(), conn, room.group, from, cu); ok {
			c.presence.watch(room.group)
		}
	})
}

// mayResume says whether viewer uid may resume the room of campaign id from
// p, without reading the campaign's snapshot. The owner may resume any
// position (History then tells whether it is still there). Anyone else
// only a position in an epoch that began after the campaign was made
// public (publicPosition), or from the start ("" epoch) once the room's
// current epoch is such a one: an epoch this process already found public
// is answered from memory (had the campaign gone back to draft since, the
// epoch ends with the event that closes its viewers, which the resume
// replays or receives, and the reset after it leaves nothing to resume);
// otherwise the campaign's visibility is read, without its relations.
// false means the position cannot be resumed (recovered=false and a fresh
// snapshot); a campaign the viewer may not see is a not-found error.
func (c *Consumers) mayResume(ctx context.Context, uid, id int64, group string, p position) (bool, error) {
	if p.Epoch != "" && c.public.has(group, p.Epoch) {
		return true, nil
	}
	// Where the room stands is taken before the campaign is found public
	// (publicPosition).
	at, err := c.positionNow(ctx, group)
	if err != nil {
		return false, err
	}
	cp, err := c.p.Campaign(ctx, uid, id)
	if err != nil {
		return false, err
	}
	if cp.Owner.ID == uid {
		return true, nil
	}
	public, err := c.publicPosition(ctx, id, group, at, false)
	if err != nil {
		return false, err
	}
	return p.Epoch == "" || p.Epoch == public.Epoch, nil
}

// fromTheStart is the Catchup.Joined of viewer uid's connection joining
// campaign id's room group from the start of its current epoch (a room
// that had no events when its position was read, or a v2 resume from the
// start). That epoch may have begun since the campaign was found public:
// when it went back to draft, the room started over as the draft's. So
// once the connection is a member, from when every change reaches it as
// an event (Observe), the epoch it starts in is checked as publicPosition
// does, unless it is still "" or known public. gone tells a connection the
// campaign is not there for it any more and closes it.
func (c *Consumers) fromTheStart(conn *realtime.Conn, uid, id int64, group string, gone func()) func(context.Context) error {
	return func(ctx context.Context) error {
		at, err := c.positionNow(ctx, group)
		if err != nil {
			return err
		}
		if at.Epoch == "" || c.public.has(group, at.Epoch) {
			return nil
		}
		cp, err := c.p.Campaign(ctx, uid, id)
		if err == nil && cp.Owner.ID == uid {
			return nil
		}
		if err == nil {
			_, err = c.publicPosition(ctx, id, group, at, false)
		}
		switch {
		case err == nil:
			return nil
		case platform.KindOf(err) == platform.KindNotFound:
			gone()
		case errors.Is(err, errResetPending):
			conn.Close(realtime.CloseServiceRestart, "the room started over; reconnect and resume")
		default:
			return err
		}
		return fmt.Errorf("campaign %d: %w", id, realtime.ErrClosed)
	}
}

// freshCampaign is the Catchup.Fresh of a connection to room: campaign_data
// as uid may see it, read while the room's events are held back, after a
// subscribed recovered=false for a v2 client; it closes the connection if
// the campaign is no longer there for it.
func (c *Consumers) freshCampaign(conn *realtime.Conn, uid int64, room *campaignRoom) func(context.Context) (position, error) {
	return func(ctx context.Context) (position, error) {
		at, snap, err := c.view(ctx, uid, room.id, room.group)
		switch {
		case err == nil:
		case platform.KindOf(err) == platform.KindNotFound:
			notFound(conn, room.id)
			return position{}, fmt.Errorf("campaign %d: %w", room.id, realtime.ErrClosed)
		case errors.Is(err, errResetPending):
			conn.Close(realtime.CloseServiceRestart, "the room started over; reconnect and resume")
			return position{}, fmt.Errorf("campaign %d: %w", room.id, realtime.ErrClosed)
		default:
			return position{}, fmt.Errorf("load campaign %d: %w", room.id, err)
		}
		if conn.Version() >= 2 {
			sendSubscribed(conn, room.group, false, at)
		}
		snap.send(conn)
		return at, nil
	}
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
	public, err := c.publicPosition(ctx, id, group, at, snap.resetOut)
	if err != nil || public == at {
		return at, snap, err
	}
	snap, err = c.snapshot(ctx, uid, id, public)
	return public, snap, err
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

func (room *campaignRoom) OnClose(conn *realtime.Conn) { room.c.forget(conn) }

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
