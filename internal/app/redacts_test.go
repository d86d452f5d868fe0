package app

import (
	"testing"

	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime/layer"
)

// Only a removal in a campaign's room drops the room's cached history:
// in any other group comment_removed is an app's own type, which would
// otherwise let any publisher empty a group's windows at will.
func TestRedactsOnlyCampaignRemovals(t *testing.T) {
	for _, c := range []struct {
		m    layer.Message
		want bool
	}{
		{layer.Message{Group: "campaign_1", Type: platform.EventCommentRemoved}, true},
		{layer.Message{Group: "campaign_1", Type: platform.EventComment}, false},
		{layer.Message{Group: "user_1", Type: platform.EventCommentRemoved}, false},
		{layer.Message{Group: "chat:lobby", Type: platform.EventCommentRemoved}, false},
	} {
		if got := redacts(c.m); got != c.want {
			t.Errorf("redacts(%s %s) = %v, want %v", c.m.Group, c.m.Type, got, c.want)
		}
	}
}
