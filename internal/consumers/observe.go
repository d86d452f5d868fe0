package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/panics"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/layer"
)

// Observe sees every event this process receives for its groups before the
// hub fans it out (and again when one is replayed to a joining connection;
// what it does is idempotent), and says whether clients get it. It keeps
// which version of each campaign object was published (for announces),
// turns the internal quest_created event into joins (the creator's open
// application connections start receiving the new quest's applications),
// retires the cached campaign_data a campaign room's event makes stale,
// closes the viewers of a campaign back to draft or deleted, and closes the
// members of a room whose history was reset.
func (c *Consumers) Observe(msg layer.Message) bool {
	if kind, id, ok := platform.ParseGroup(msg.Group); ok && kind == platform.GroupCampaign {
		c.snaps.passed(id, position{Offset: msg.Offset, Epoch: msg.Epoch})
	}
	switch msg.Type {
	case platform.EventQuestCreated:
		var ev struct {
			QuestID int64 `json:"quest_id"`
		}
		if json.Unmarshal(msg.Data, &ev) != nil || ev.QuestID <= 0 {
			c.log.Warn("realtime: malformed quest_created event", "data", string(msg.Data))
			return false
		}
		members := c.hub.Members(msg.Group)
		if len(members) > 0 {
			// Joining may subscribe through the layer, which must not be
			// called back from its own delivery.
			go c.joinQuest(members, ev.QuestID)
		}
		return false
	case platform.EventRoomReset:
		// The room's history started over (a draft was made public, or a
		// campaign made a draft again): the positions of its members are
		// void, and whoever may no longer see the room must leave it. They reconnect and resume, which tells
		// them recovered=false with a fresh campaign_data, or refuses them.
		for _, conn := range c.hub.Members(msg.Group) {
			conn.Close(realtime.CloseServiceRestart, "the room started over; reconnect and resume")
		}
		return false
	case platform.EventCampaign:
		c.campaignChanged(msg)
	case platform.EventCampaignDeleted:
		if kind, _, _ := platform.ParseGroup(msg.Group); kind == platform.GroupCampaign {
			c.campaignGone(msg.Group, 0)
			return false
		}
	case platform.EventContribution, platform.EventUpdate, platform.EventComment, platform.EventRelease, platform.EventMilestone:
		c.seen.add(msg.Group, msg.Type, msg.Data)
	case platform.EventCommentRemoved:
		// The comment is gone: no version of it is current (an announce
		// of it finds it missing). The cached snapshot needs nothing: it
		// is kept by the room's position, which the removal moved on.
		if id, ok := objectID(msg.Data); ok {
			c.seen.forget(msg.Group, platform.EventComment, id)
		}
	}
	return true
}

// campaignChanged acts on a campaign's new record (platform.EventCampaign):
// back to draft, the campaign is no longer there for anyone but its owner,
// so every other viewer of its room is told so and closed with 4404, as a
// connection to a draft is at connect. The owner stays and gets the event;
// the reset that follows it in the room closes the owner's connections to
// reconnect. Connections that only subscribed to the room (v2) are closed by
// that reset too, and their subscribing again is refused.
//
// Every process with members in the room receives the event, and a
// connection joining from before it has it replayed here while it is
// already a member, so none is left in the room past it.
func (c *Consumers) campaignChanged(msg layer.Message) {
	var ev struct {
		Owner  platform.UserRef `json:"owner"`
		Status string           `json:"status"`
	}
	if err := json.Unmarshal(msg.Data, &ev); err != nil {
		c.log.Warn("realtime: malformed campaign event", "group", msg.Group, "err", err)
		return
	}
	if ev.Status == platform.CampaignDraft {
		c.campaignGone(msg.Group, ev.Owner.ID)
	}
}

// campaignGone tells every viewer of a campaign room other than user except
// (0: nobody) that the campaign is not there for them any more and closes
// them with 4404, as at connect: made a draft again (except is its owner),
// or deleted (platform.EventCampaignDeleted, which clients never get).
func (c *Consumers) campaignGone(group string, except int64) {
	for _, conn := range c.hub.Members(group) {
		if room, ok := conn.Value.(*campaignRoom); ok && room.group == group && (except == 0 || conn.UserID() != except) {
			notFound(conn, room.id)
		}
	}
}

func (c *Consumers) joinQuest(members []*realtime.Conn, questID int64) {
	// A goroutine of its own: a panic ends only these joins.
	defer panics.Recover(c.log, c.onPanic, panics.Hub)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, conn := range members {
		if f, ok := conn.Value.(*questFollower); ok && !f.following.Load() {
			continue // its connect reads the quests again once joined
		}
		c.followQuest(ctx, conn, questID)
	}
	if h := c.hooks; h != nil && h.announced != nil {
		h.announced(questID)
	}
}

// followQuest joins conn to a quest created after it connected, replaying
// the quest's events from its first, so an application made before the join
// still arrives (a v2 client is told its position, as for its other
// groups). Joining twice is harmless.
func (c *Consumers) followQuest(ctx context.Context, conn *realtime.Conn, questID int64) {
	group := platform.QuestGroup(questID)
	if conn.InGroup(group) {
		return
	}
	if _, err := c.hub.JoinFromWith(ctx, conn, group, position{}, c.tell(conn, group, nil)); err != nil &&
		!errors.Is(err, realtime.ErrAlreadyJoined) && !errors.Is(err, realtime.ErrClosed) {
		// Without the quest's events the connection would go on as if it
		// had them all; closed, the client connects again and joins the
		// quest with its other groups.
		c.logFailure("follow new quest", err, "group", group)
		conn.Close(realtime.CloseInternalError, "cannot join "+group)
	}
}

// versions remembers, per campaign object, a hash of the last JSON published
// for it. It is bounded: past maxVersions entries, arbitrary ones are
// forgotten (an object announced again after that is published again, which
// clients see as a repeated, identical event).
type versions struct {
	once sync.Once
	seed maphash.Seed
	mu   sync.Mutex
	m    map[versionKey]uint64
}

// versionKey names a campaign object by numbers and a constant, never by
// the strings of the event it was seen in: a layer may hand those out as
// substrings of the whole payload it read, which an entry would keep alive
// as long as it is remembered. (Cloning them instead would cost an
// allocation per event, since assigning to a map replaces its string keys.)
type versionKey struct {
	campaign, id int64
	typ          string // one of platform.AnnounceTypes
}

const maxVersions = 100_000

// keyOf is the key of object id of type typ published to group, if group is
// a campaign room and typ a type of its objects.
func keyOf(group, typ string, id int64) (versionKey, bool) {
	kind, campaign, ok := platform.ParseGroup(group)
	i := slices.Index(platform.AnnounceTypes, typ)
	if !ok || kind != platform.GroupCampaign || i < 0 {
		return versionKey{}, false
	}
	return versionKey{campaign: campaign, id: id, typ: platform.AnnounceTypes[i]}, true
}

func (v *versions) init() {
	v.once.Do(func() {
		v.seed = maphash.MakeSeed()
		v.m = make(map[versionKey]uint64)
	})
}

func (v *versions) add(group, typ string, data []byte) {
	id, ok := objectID(data)
	if !ok {
		return
	}
	k, ok := keyOf(group, typ, id)
	if !ok {
		return
	}
	v.init()
	h := maphash.Bytes(v.seed, data)
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.m) >= maxVersions {
		n := 0
		for k := range v.m {
			delete(v.m, k)
			if n++; n >= maxVersions/10 {
				break
			}
		}
	}
	v.m[k] = h
}

// forget drops what v remembers of object id of type typ in group.
func (v *versions) forget(group, typ string, id int64) {
	k, ok := keyOf(group, typ, id)
	if !ok {
		return
	}
	v.init()
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.m, k)
}

func (v *versions) has(group, typ string, id int64, data []byte) bool {
	k, ok := keyOf(group, typ, id)
	if !ok {
		return false
	}
	v.init()
	h := maphash.Bytes(v.seed, data)
	v.mu.Lock()
	defer v.mu.Unlock()
	got, ok := v.m[k]
	return ok && got == h
}

// objectID reads the leading "id" of an object's JSON ({"id":123,…}), which
// every campaign object's serializer writes first.
func objectID(data []byte) (int64, bool) {
	const prefix = `{"id":`
	if len(data) < len(prefix) || string(data[:len(prefix)]) != prefix {
		return 0, false
	}
	rest := data[len(prefix):]
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	id, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	return id, err == nil
}
