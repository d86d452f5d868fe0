package consumers

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald/internal/apptoken"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/groups"
	"github.com/heraldhq/herald/internal/money"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/layer"
	"github.com/heraldhq/herald/internal/store"
)

// FuzzSubscribeV2 sends a v2 connection a few arbitrary messages (one per
// line of the input) on both endpoints, as an anonymous client, a campaign
// and quest owner or another user. Whatever they say, nothing panics, the
// connection stays open and it ends up only in groups its user may watch,
// each named in its one canonical form.
func FuzzSubscribeV2(f *testing.F) {
	for _, s := range []string{
		`{"type":"subscribe","data":{"group":"campaign_1"}}`,
		`{"type":"subscribe","data":{"group":"campaign_1"},"id":1}`,
		`{"type":"subscribe","data":{"group":"campaign_1","epoch":"x","offset":0},"id":"a"}`,
		`{"type":"subscribe","data":{"group":"campaign_1","epoch":"x","offset":18446744073709551615}}`,
		`{"type":"subscribe","data":{"group":"campaign_1","epoch":"x","offset":18446744073709551616}}`,
		`{"type":"subscribe","data":{"group":"campaign_1","offset":-1}}`,
		`{"type":"subscribe","data":{"group":"campaign_2"}}`,
		`{"type":"subscribe","data":{"group":"quest_1"}}`,
		`{"type":"subscribe","data":{"group":"user_1"}}`,
		`{"type":"subscribe","data":{"group":"user_2"}}`,
		`{"type":"subscribe","data":{"group":"user_0"}}`,
		`{"type":"subscribe","data":{"group":"campaign_9223372036854775807"}}`,
		`{"type":"subscribe","data":{"group":"campaign_9223372036854775808"}}`,
		`{"type":"subscribe","data":{"group":"campaign_"}}`,
		`{"type":"subscribe","data":{"group":"campaign"}}`,
		`{"type":"subscribe","data":{"group":"campaign_1_1"}}`,
		`{"type":"subscribe","data":{"group":"Campaign_1"}}`,
		`{"type":"subscribe","data":{"group":"campaign_+1"}}`,
		`{"type":"subscribe","data":{"group":"campaign_0001"}}`,
		`{"type":"subscribe","data":{"group":"campaign_01"},"id":1}`,
		`{"type":"subscribe","data":{"group":"quest_01"}}`,
		`{"type":"subscribe","data":{"group":"user_01"}}`,
		`{"type":"subscribe","data":{"group":"campaign_1","epoch":"x","offset":9223372036854775808}}`,
		`{"type":"subscribe","data":{"group":"` + strings.Repeat("g", 65) + `"}}`,
		`{"type":"subscribe","data":{"group":"campaign_1","epoch":"` + strings.Repeat("e", 65) + `"}}`,
		`{"type":"subscribe","data":{"group":1}}`,
		`{"type":"subscribe","data":null}`,
		`{"type":"subscribe"}`,
		`{"type":"subscribe","data":{"group":"campaign_1"},"id":"` + strings.Repeat("i", 200) + `"}`,
		`{"type":"unsubscribe","data":{"group":"campaign_1"},"id":2}`,
		`{"type":"unsubscribe","data":{"group":"campaign_5"}}`,
		`{"type":"comment","data":{"id":1}}`,
		"{\"type\":\"subscribe\",\"data\":{\"group\":\"campaign_1\"}}\n{\"type\":\"unsubscribe\",\"data\":{\"group\":\"campaign_1\"}}",
		"{\"type\":\"subscribe\",\"data\":{\"group\":\"campaign_1\"}}\n{\"type\":\"subscribe\",\"data\":{\"group\":\"campaign_1\"}}",
		"{\"type\":\"subscribe\",\"data\":{\"group\":\"quest_1\"}}\n{\"type\":\"subscribe\",\"data\":{\"group\":\"user_1\"}}\n{\"type\":\"subscribe\",\"data\":{\"group\":\"campaign_2\"}}",
		`{`, `null`, `[]`, "\x00",
		// A configured namespace open to anyone and one that wants the
		// app's token (fuzzSecret signs the ones below, for chat:lobby).
		`{"type":"subscribe","data":{"group":"open_x"},"id":1}`,
		`{"type":"subscribe","data":{"group":"chat:lobby"}}`,
		`{"type":"subscribe","data":{"group":"chat:lobby","token":"` + fuzzToken(f, "", "chat:lobby") + `"}}`,
		`{"type":"subscribe","data":{"group":"chat:lobby","token":"` + fuzzToken(f, "1", "chat:lobby") + `"}}`,
		`{"type":"subscribe","data":{"group":"chat:other","token":"` + fuzzToken(f, "", "chat:lobby") + `"}}`,
		`{"type":"subscribe","data":{"group":"chat:lobby","token":"x.y.z"}}`,
		`{"type":"subscribe","data":{"group":"chat:lobby","token":1}}`,
		`{"type":"publish","data":{"group":"chat:lobby","type":"m","data":{}},"id":3}`,
		`{"type":"publish","data":{"group":"open_x","type":"m","data":1}}`,
		`{"type":"publish","data":{"group":"chat:lobby","type":"room_reset","data":{}}}`,
		`{"type":"publish","data":null}`,
		"{\"type\":\"subscribe\",\"data\":{\"group\":\"chat:lobby\",\"token\":\"" + fuzzToken(f, "", "chat:lobby") + "\"}}\n{\"type\":\"publish\",\"data\":{\"group\":\"chat:lobby\",\"type\":\"m\",\"data\":2}}",
	} {
		for who := range uint8(3) {
			f.Add([]byte(s), who)
		}
	}
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, input []byte, who uint8) {
		uid := e.users[int(who)%len(e.users)]
		msgs := bytes.SplitN(input, []byte("\n"), 8)
		for _, h := range []interface {
			OnMessage(*realtime.Conn, []byte)
		}{e.room, applicationHandler{e.c}} {
			link := e.hub.Attach(realtime.ConnConfig{UserID: uid, Version: 2}, nopTransport{})
			conn := link.Conn()
			for _, m := range msgs {
				h.OnMessage(conn, m)
				for b := link.Take(); b != nil; b = link.Take() {
					link.Release(b)
				}
			}
			if conn.Closed() {
				t.Fatalf("user %d: %q closed the connection", uid, input)
			}
			for _, g := range conn.Groups() {
				if ns, _, ok := e.c.groups.Lookup(g); ok && ns.Subscribe != groups.Platform {
					// Anyone's, or the one group a token was signed for.
					if ns.Name == "chat" && g != "chat:lobby" {
						t.Fatalf("user %d: %q joined %q, for which no token was signed", uid, input, g)
					}
					continue
				}
				if !namedCanonically(g) {
					t.Fatalf("user %d: %q joined the non-canonical group %q", uid, input, g)
				}
				if !e.mayWatch[uid][g] {
					t.Fatalf("user %d: %q joined %q, which is not theirs to watch", uid, input, g)
				}
			}
			e.c.forget(conn)
			link.Finish()
		}
	})
}

// fuzzSecret signs the app's tokens of the fuzz tests.
const fuzzSecret = "the fuzzed app's secret, 32 bytes or more"

// fuzzToken is the app's subscription token for sub and group, valid for a
// day.
func fuzzToken(f *testing.F, sub, group string) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "channel": group, "exp": time.Now().Add(24 * time.Hour).Unix()}).
		SignedString([]byte(fuzzSecret))
	if err != nil {
		f.Fatal(err)
	}
	return s
}

// namedCanonically reports whether g is kind_id written back from its parsed
// parts: the one name under which its events are published.
func namedCanonically(g string) bool {
	kind, num, ok := strings.Cut(g, "_")
	id, err := strconv.ParseInt(num, 10, 64)
	if !ok || err != nil || id <= 0 {
		return false
	}
	switch kind {
	case "campaign":
		return g == platform.CampaignGroup(id)
	case "quest":
		return g == platform.QuestGroup(id)
	case "user":
		return g == platform.UserGroup(id)
	}
	return false
}

// fuzzEnv is a real database with an owner (user 1) of an active campaign
// (1, with a comment in its history), a draft (2) and a quest (1), another
// user (2), and a hub on the in-memory layer.
type fuzzEnv struct {
	c    *Consumers
	hub  *realtime.Hub
	room *campaignRoom
	// users are the senders tried: anonymous, the owner, the other user.
	users []int64
	// mayWatch is the groups each of them may join.
	mayWatch map[int64]map[string]bool
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		f.Fatal(err)
	}
	p, err := platform.New(db, platform.Options{Hasher: auth.Hasher{Params: auth.PasswordParams{Memory: 64, Time: 1, Threads: 1}}})
	if err != nil {
		f.Fatal(err)
	}
	owner, err := p.Register(ctx, platform.Registration{Username: "owner", Password: "owner password"})
	if err != nil {
		f.Fatal(err)
	}
	other, err := p.Register(ctx, platform.Registration{Username: "other", Password: "other password"})
	if err != nil {
		f.Fatal(err)
	}
	title, goal := "Fuzz", money.Cents(100)
	var camps []platform.CampaignDetail
	for _, status := range []string{platform.CampaignActive, platform.CampaignDraft} {
		c, err := p.CreateCampaign(ctx, owner.ID, platform.CampaignInput{Title: &title, GoalAmount: &goal, Status: &status})
		if err != nil {
			f.Fatal(err)
		}
		camps = append(camps, c)
	}
	content := "hello"
	if _, err := p.PostComment(ctx, owner.ID, camps[0].ID, platform.CommentInput{Content: &content}); err != nil {
		f.Fatal(err)
	}
	quest, err := p.CreateQuest(ctx, owner.ID, platform.QuestInput{Title: &title})
	if err != nil {
		f.Fatal(err)
	}
	hub, err := realtime.NewHub(realtime.HubOptions{Logger: slog.New(slog.DiscardHandler)}, func(d func(layer.Message)) (layer.Layer, error) {
		return layer.NewMemory(d, layer.MemoryOptions{}), nil
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { hub.Close() })
	if _, err := hub.Publish(ctx, platform.CampaignGroup(camps[0].ID), "comment", []byte(`{"id":1}`)); err != nil {
		f.Fatal(err)
	}
	reg, err := groups.New([]groups.Namespace{
		{Name: "open", Sep: '_', Subscribe: groups.Anyone, Publish: groups.Anyone},
		{Name: "chat", Subscribe: groups.TokenHolder, Publish: groups.TokenHolder},
	})
	if err != nil {
		f.Fatal(err)
	}
	verifier, err := apptoken.New(apptoken.Config{HMACSecret: []byte(fuzzSecret)})
	if err != nil {
		f.Fatal(err)
	}
	c := New(Config{Platform: p, Hub: hub, Logger: slog.New(slog.DiscardHandler), Groups: reg, AppTokens: verifier})
	active := platform.CampaignGroup(camps[0].ID)
	return &fuzzEnv{
		c: c, hub: hub, room: &campaignRoom{c: c, id: camps[0].ID, group: active},
		users: []int64{0, owner.ID, other.ID},
		mayWatch: map[int64]map[string]bool{
			0: {active: true},
			owner.ID: {
				active: true, platform.CampaignGroup(camps[1].ID): true,
				platform.QuestGroup(quest.ID): true, platform.UserGroup(owner.ID): true,
			},
			other.ID: {active: true, platform.UserGroup(other.ID): true},
		},
	}
}
