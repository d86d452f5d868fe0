package platform

import "testing"

func TestParseGroup(t *testing.T) {
	for g, want := range map[string]bool{
		"campaign_1": true, "quest_42": true, "user_9223372036854775807": true,
		"campaign_01": false, "campaign_0": false, "campaign_+1": false, "campaign_-1": false,
		"campaign_9223372036854775808": false, "campaign_1 ": false, "campaign_": false,
		"ctl_user_1": false, "Campaign_1": false, "campaign__1": false, "": false,
		"campaign_99999999999999999999": false,
	} {
		kind, id, ok := ParseGroup(g)
		if ok != want {
			t.Errorf("ParseGroup(%q) ok = %v; want %v", g, ok, want)
		}
		if ok {
			// Read the way it was written.
			if back := map[string]func(int64) string{GroupUser: UserGroup, GroupQuest: QuestGroup, GroupCampaign: CampaignGroup}[kind](id); back != g {
				t.Errorf("ParseGroup(%q) = %s %d, which is written %q", g, kind, id, back)
			}
		}
	}
}
