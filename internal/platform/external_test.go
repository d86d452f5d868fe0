package platform_test

import (
	"context"
	"testing"

	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/testenv"
)

// RecordExternal records another system's event in its group's log, after
// the group's own events, and refuses what is not a client event of a
// group herald serves.
func TestRecordExternal(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		p := open(t, dsn)
		ctx := context.Background()
		alice := mustUser(t, p, "alice")
		room := platform.CampaignGroup(activeCampaign(t, p, alice, "10.00"))
		sequence(t, p)
		before := logOf(t, p.DB(), room)
		if err := p.RecordExternal(ctx, room, "contribution", []byte(`{"id":9,"amount":"1.50"}`)); err != nil {
			t.Fatal(err)
		}
		if err := p.RecordExternal(ctx, "quest_77", "new_application", []byte(`{"application_id":1}`)); err != nil {
			t.Fatal(err)
		}
		sequence(t, p)
		after := logOf(t, p.DB(), room)
		if len(after) != len(before)+1 {
			t.Fatalf("%d events, want %d", len(after), len(before)+1)
		}
		last := after[len(after)-1]
		if last.typ != "contribution" || len(before) > 0 && (last.off != before[len(before)-1].off+1 || last.epoch != before[len(before)-1].epoch) {
			t.Errorf("recorded %+v after %+v", last, before)
		}
		if q := logOf(t, p.DB(), "quest_77"); len(q) != 1 || q[0].off != 1 || q[0].epoch == "" {
			t.Errorf("a new group's log: %+v", q)
		}
		var data string
		if err := p.DB().QueryRow("SELECT data FROM outbox WHERE grp = $1 AND type = 'contribution' ORDER BY id DESC LIMIT 1", room).Scan(&data); err != nil || data != `{"id":9,"amount":"1.50"}` {
			t.Errorf("data %q, %v", data, err)
		}
		for _, bad := range []struct{ group, typ, data string }{
			{"quest_05", "new_application", `{}`},
			{"ctl_user_1", "quest_created", `{"quest_id":1}`},
			{"chat_lobby", "message", `{}`},
			{room, "room_reset", `{}`},
			{room, "quest_created", `{}`},
			{room, "campaign_data", `{}`},
			{room, "subscribed", `{}`},
			{room, "", `{}`},
			{room, "comment", `{"id":`},
		} {
			err := p.RecordExternal(ctx, bad.group, bad.typ, []byte(bad.data))
			if platform.KindOf(err) != platform.KindInvalid {
				t.Errorf("%s %s %s: %v, want an invalid error", bad.group, bad.typ, bad.data, err)
			}
		}
		if n := len(logOf(t, p.DB(), room)); n != len(after) {
			t.Errorf("refused events were recorded: %d events", n)
		}
	})
}
