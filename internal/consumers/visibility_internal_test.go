package consumers

import (
	"testing"

	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime/layer"
)

// The platform records a room's reset under the type the channel layer acts
// on; a mismatch would publish it as an ordinary event and keep the room's
// history.
func TestRoomResetIsALayerReset(t *testing.T) {
	if platform.EventRoomReset != layer.TypeReset {
		t.Fatalf("platform.EventRoomReset = %q, layer.TypeReset = %q", platform.EventRoomReset, layer.TypeReset)
	}
}

func TestValidGroup(t *testing.T) {
	for g, want := range map[string]bool{
		"campaign_1": true, "quest_42": true, "user_9223372036854775807": true,
		"campaign_01": false, "campaign_0": false, "campaign_+1": false, "campaign_-1": false,
		"campaign_9223372036854775808": false, "campaign_1 ": false, "campaign_": false,
		"ctl_user_1": false, "Campaign_1": false, "campaign__1": false, "": false,
		"campaign_99999999999999999999": false,
	} {
		if got := validGroup(g); got != want {
			t.Errorf("validGroup(%q) = %v; want %v", g, got, want)
		}
	}
}
