package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/layer"
)

// position is where a client stands in a group: the offset of the last event
// it has, in the group's epoch.
type position = layer.Position

// maxResume bounds the positions one connection may resume.
const maxResume = 256

// parseResume reads ?resume=group:epoch:offset[,group:epoch:offset…], the
// compact form of a client's positions (v2). Groups and epochs never
// contain ',', epochs and offsets never ':' (a group may: chat:lobby), so
// each position is read from its end.
func (c *Consumers) parseResume(v string) (map[string]position, error) {
	if v == "" {
		return nil, nil
	}
	// Count before splitting: a value of commas or colons must cost no more
	// than its own length.
	n := strings.Count(v, ",") + 1
	if n > maxResume {
		return nil, fmt.Errorf("resume: at most %d positions", maxResume)
	}
	out := make(map[string]position, n)
	for p := range strings.SplitSeq(v, ",") {
		var fields [3]string
		rest, offText, ok1 := cutLast(p, ':')
		group, epoch, ok2 := cutLast(rest, ':')
		fields[0], fields[1], fields[2] = group, epoch, offText
		if !ok1 || !ok2 || !validEpoch(fields[1]) {
			return nil, fmt.Errorf("resume: %q is not group:epoch:offset", truncate(p))
		}
		if c.groups.Valid(fields[0]) != nil {
			return nil, fmt.Errorf("resume: %q: %s", truncate(p), c.groups.Rule())
		}
		off, ok := parseOffset(fields[2])
		if !ok {
			return nil, fmt.Errorf("resume: offset in %q is not a number from 0 to %d", truncate(p), maxOffset)
		}
		out[fields[0]] = position{Offset: off, Epoch: fields[1]}
	}
	return out, nil
}

// cutLast cuts s around its last sep.
func cutLast(s string, sep byte) (before, after string, found bool) {
	if i := strings.LastIndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// maxOffset bounds the offsets a client may name: offsets are counted in
// int64 in Redis, and the layers add to the one a client resumes from.
const maxOffset = math.MaxInt64

// parseOffset reads an offset in decimal digits (ParseUint takes no sign),
// at most maxOffset.
func parseOffset(s string) (uint64, bool) {
	if len(s) > 19 {
		return 0, false
	}
	off, err := strconv.ParseUint(s, 10, 64)
	return off, err == nil && off <= maxOffset
}

// validEpoch accepts what a layer may have minted as an epoch (letters,
// digits, '.', '-', '_'; at most 64 bytes), or "" for "from the start".
func validEpoch(e string) bool {
	if len(e) > 64 {
		return false
	}
	for i := 0; i < len(e); i++ {
		c := e[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// positionNow is where group stands now; a client joining from here misses
// nothing published after this call.
func (c *Consumers) positionNow(ctx context.Context, group string) (position, error) {
	off, epoch, err := c.hub.Layer().Position(ctx, group)
	if err != nil {
		return position{}, fmt.Errorf("position of %s: %w", group, layerError{err})
	}
	return position{Offset: off, Epoch: epoch}, nil
}

// positionsNow is positionNow for several groups, in one round trip when
// the layer can read them together.
func (c *Consumers) positionsNow(ctx context.Context, groups []string) ([]position, error) {
	if bp, ok := c.hub.Layer().(layer.BatchPositioner); ok && len(groups) > 1 {
		ps, err := bp.Positions(ctx, groups)
		if err != nil {
			return nil, fmt.Errorf("positions of %d groups: %w", len(groups), layerError{err})
		}
		return ps, nil
	}
	out := make([]position, len(groups))
	for i, g := range groups {
		var err error
		if out[i], err = c.positionNow(ctx, g); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// joinFrom joins conn to group from p (Hub.JoinFromWith): it replays what
// the client missed since p, so an event published between the handshake
// and the join is never lost, and runs cu before the live events.
func (c *Consumers) joinFrom(ctx context.Context, conn *realtime.Conn, group string, p position, cu realtime.Catchup) (recovered bool, ok bool) {
	if h := c.hooks; h != nil {
		if h.beforeJoin != nil {
			h.beforeJoin(group)
		}
		if fresh := cu.Fresh; fresh != nil && h.beforeFresh != nil {
			cu.Fresh = func(ctx context.Context) (position, error) {
				h.beforeFresh(group)
				return fresh(ctx)
			}
		}
	}
	recovered, err := c.hub.JoinFromWith(ctx, conn, group, p, cu)
	if errors.Is(err, realtime.ErrAlreadyJoined) {
		// Another join of the group on this connection has it (a quest's
		// announcement, met by the client's subscribe) and tells the
		// client where it stands.
		return false, true
	}
	if err != nil {
		if !errors.Is(err, realtime.ErrClosed) {
			c.logFailure("join group", err, "group", group)
			conn.Close(realtime.CloseInternalError, "cannot join "+group)
		}
		return false, false
	}
	return recovered, true
}

// tell is the Catchup of a group whose fresh state the server does not send
// (the groups of /ws/applications/, a subscribe): a v2 client is told where
// it stands once the join replayed what it missed, or, when it could not,
// that events were lost (it reloads through REST) and from where the live
// events follow. before, if set, runs just ahead of that (a subscribe's
// ack). v1 clients are told nothing and get every event held during the
// join.
func (c *Consumers) tell(conn *realtime.Conn, group string, before func()) realtime.Catchup {
	if conn.Version() < 2 {
		return realtime.Catchup{}
	}
	if before == nil {
		before = func() {}
	}
	return realtime.Catchup{
		Replayed: func(at position) {
			before()
			sendSubscribed(conn, group, true, at)
		},
		Fresh: func(ctx context.Context) (position, error) {
			at, err := c.positionNow(ctx, group)
			if err != nil {
				return position{}, err
			}
			before()
			sendSubscribed(conn, group, false, at)
			return at, nil
		},
	}
}

// subscribedData is the data of a subscribed message: a v2 client's place
// in a group it joined. recovered=false means events were lost for it:
// reload state through REST (or use the campaign_data that follows). Every
// later event of the group comes after epoch:offset.
type subscribedData struct {
	Group     string `json:"group"`
	Recovered bool   `json:"recovered"`
	Epoch     string `json:"epoch"`
	Offset    uint64 `json:"offset"`
}

// sendSubscribed tells a v2 client where it stands in group. On an event
// stream the message carries the position as its id too, so the browser's
// Last-Event-ID covers the group before its first event.
func sendSubscribed(conn *realtime.Conn, group string, recovered bool, at position) {
	b, _ := json.Marshal(struct {
		Type string         `json:"type"`
		Data subscribedData `json:"data"`
	}{"subscribed", subscribedData{group, recovered, at.Epoch, at.Offset}})
	if conn.Encoding() == realtime.EncodingSSE {
		_ = conn.Send(realtime.NewSSEMessageAt(b, group, at))
		return
	}
	_ = conn.SendJSON(b)
}
