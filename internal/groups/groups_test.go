package groups_test

import (
	"testing"

	"github.com/heraldhq/herald/internal/groups"
	"github.com/heraldhq/herald/internal/platform"
)

func TestValid(t *testing.T) {
	for _, g := range []string{"campaign_1", "quest_42", "user_9223372036854775807"} {
		if err := groups.Valid(g); err != nil {
			t.Errorf("Valid(%q) = %v", g, err)
		}
	}
	for _, g := range []string{"", "campaign", "campaign_", "campaign_0", "campaign_01", "campaign_+1", "campaign_-1",
		"campaign_1 ", " campaign_1", "Campaign_1", "campaign_1_2", "campaign_9223372036854775808",
		"campaign_99999999999999999999", "ctl_user_1", "lobby_1", "user_1x", "user_١", "campaign:1"} {
		if err := groups.Valid(g); err == nil {
			t.Errorf("Valid(%q) = nil, want an error", g)
		}
	}
}

func TestAllowed(t *testing.T) {
	cases := []struct {
		scopes []string
		group  string
		want   bool
	}{
		{[]string{"campaign"}, "campaign_5", true},
		{[]string{"campaign"}, "quest_5", false},
		{[]string{"quest", "user"}, "user_1", true},
		{[]string{"campaign_5"}, "campaign_5", true},
		{[]string{"campaign_5"}, "campaign_50", false},
		{[]string{"campaign_5"}, "campaign_05", false},
		{[]string{"campaign_5"}, "quest_5", false},
		{[]string{"campaign"}, "campaign_05", false}, // not a group at all
		{[]string{"campaign"}, "campaign", false},
		{[]string{"ctl"}, "ctl_user_1", false},
		{[]string{""}, "", false},
		{nil, "campaign_1", false},
		{[]string{"user_1", "campaign"}, "campaign_2", true},
	}
	for _, c := range cases {
		if got := groups.Allowed(c.scopes, c.group); got != c.want {
			t.Errorf("Allowed(%q, %q) = %v, want %v", c.scopes, c.group, got, c.want)
		}
	}
}

func TestValidScope(t *testing.T) {
	for _, s := range []string{"campaign", "quest", "user", "campaign_5", "user_1"} {
		if err := groups.ValidScope(s); err != nil {
			t.Errorf("ValidScope(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "*", "campaigns", "campaign_", "campaign_0", "ctl", "ctl_user_1", "campaign,quest", " user"} {
		if err := groups.ValidScope(s); err == nil {
			t.Errorf("ValidScope(%q) = nil, want an error", s)
		}
	}
}

// Valid accepts exactly the names platform.ParseGroup reads (the groups
// clients can join), and Allowed never admits anything else, whatever the
// scopes.
func FuzzGroups(f *testing.F) {
	for _, s := range []string{"campaign_1", "quest_0", "user_01", "user_+1", "campaign_9223372036854775808", "ctl_user_1", "campaign"} {
		f.Add(s, "campaign")
	}
	f.Fuzz(func(t *testing.T, group, scope string) {
		_, _, parsed := platform.ParseGroup(group)
		if valid := groups.Valid(group) == nil; valid != parsed {
			t.Fatalf("Valid(%q) = %v, ParseGroup ok = %v", group, valid, parsed)
		}
		if groups.Allowed([]string{scope}, group) {
			if !parsed {
				t.Fatalf("Allowed(%q, %q) for a group that is not one", scope, group)
			}
			if groups.ValidScope(scope) != nil {
				t.Fatalf("Allowed(%q, %q) by a scope that cannot be granted", scope, group)
			}
		}
	})
}
