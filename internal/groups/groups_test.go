package groups_test

import (
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/groups"
	"github.com/heraldhq/herald/internal/platform"
)

func TestValid(t *testing.T) {
	reg := groups.Default()
	for _, g := range []string{"campaign_1", "quest_42", "user_9223372036854775807"} {
		if err := reg.Valid(g); err != nil {
			t.Errorf("Valid(%q) = %v", g, err)
		}
	}
	for _, g := range []string{"", "campaign", "campaign_", "campaign_0", "campaign_01", "campaign_+1", "campaign_-1",
		"campaign_1 ", " campaign_1", "Campaign_1", "campaign_1_2", "campaign_9223372036854775808",
		"campaign_99999999999999999999", "ctl_user_1", "lobby_1", "user_1x", "user_١", "campaign:1"} {
		if err := reg.Valid(g); err == nil {
			t.Errorf("Valid(%q) = nil, want an error", g)
		}
	}
}

func TestAllowed(t *testing.T) {
	reg := groups.Default()
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
		if got := reg.Allowed(c.scopes, c.group); got != c.want {
			t.Errorf("Allowed(%q, %q) = %v, want %v", c.scopes, c.group, got, c.want)
		}
	}
}

func TestValidScope(t *testing.T) {
	reg := groups.Default()
	for _, s := range []string{"campaign", "quest", "user", "campaign_5", "user_1"} {
		if err := reg.ValidScope(s); err != nil {
			t.Errorf("ValidScope(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "*", "campaigns", "campaign_", "campaign_0", "ctl", "ctl_user_1", "campaign,quest", " user"} {
		if err := reg.ValidScope(s); err == nil {
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
	f.Add("chat:lobby", "chat")
	f.Add("room_a_b", "room_a")
	f.Add("chat:"+strings.Repeat("x", 200), "chat")
	reg := groups.Default()
	conf := configured(f)
	f.Fuzz(func(t *testing.T, group, scope string) {
		// A configured registry admits what the built-in one does, the same
		// way, and its own namespaces' groups, all within MaxGroupLen.
		if ns, ch, ok := conf.Lookup(group); ok {
			if len(group) > groups.MaxGroupLen || ns.Name+string(ns.Sep)+ch != group {
				t.Fatalf("Lookup(%q) = %q %q", group, ns.Name, ch)
			}
		} else if reg.Valid(group) == nil {
			t.Fatalf("Lookup(%q) fails where the built-in registry admits it", group)
		}
		if conf.Allowed([]string{scope}, group) && conf.ValidScope(scope) != nil {
			t.Fatalf("Allowed(%q, %q) by a scope that cannot be granted", scope, group)
		}
		_, _, parsed := platform.ParseGroup(group)
		if valid := reg.Valid(group) == nil; valid != parsed {
			t.Fatalf("Valid(%q) = %v, ParseGroup ok = %v", group, valid, parsed)
		}
		if reg.Allowed([]string{scope}, group) {
			if !parsed {
				t.Fatalf("Allowed(%q, %q) for a group that is not one", scope, group)
			}
			if reg.ValidScope(scope) != nil {
				t.Fatalf("Allowed(%q, %q) by a scope that cannot be granted", scope, group)
			}
		}
	})
}

// configured is a registry with namespaces of both separators, one a
// prefix of another.
func configured(tb testing.TB) *groups.Registry {
	tb.Helper()
	reg, err := groups.New([]groups.Namespace{
		{Name: "chat", Subscribe: groups.SignedIn, Publish: groups.SignedIn, HistorySize: 50, HistoryAge: time.Minute, Presence: true},
		{Name: "room", Sep: '_', Subscribe: groups.TokenHolder},
		{Name: "room-a", Sep: '_', Subscribe: groups.Anyone},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return reg
}

func TestConfiguredNamespaces(t *testing.T) {
	reg := configured(t)
	for group, want := range map[string]string{
		"chat:lobby": "chat", "chat:a.b-c_D9": "chat", "room_x": "room", "room_a_b": "room", "room-a_b": "room-a",
		"campaign_5": "campaign", "quest_1": "quest", "user_7": "user",
	} {
		ns, _, ok := reg.Lookup(group)
		if !ok || ns.Name != want {
			t.Errorf("Lookup(%q) = %v, %v; want namespace %q", group, ns, ok, want)
		}
	}
	for _, group := range []string{"chat:", "chat_lobby", "chat:a b", "chat:a:b", "chat:é", "room:x", "room_", "campaign_x",
		"campaign:5", "chat:" + strings.Repeat("x", 96), "ctl_user_1", "Chat:lobby", ""} {
		if ns, _, ok := reg.Lookup(group); ok {
			t.Errorf("Lookup(%q) = namespace %q, want none", group, ns.Name)
		}
	}
	if ns, _, _ := reg.Lookup("room_x"); ns.HistorySize != groups.DefaultHistorySize || ns.HistoryAge != groups.DefaultHistoryAge {
		t.Errorf("room's window = %d, %v; want the defaults", ns.HistorySize, ns.HistoryAge)
	}
	if size, age := reg.Window("chat:lobby"); size != 50 || age != time.Minute {
		t.Errorf("Window(chat:lobby) = %d, %v", size, age)
	}
	if size, age := reg.Window("ctl_user_1"); size != groups.DefaultHistorySize || age != groups.DefaultHistoryAge {
		t.Errorf("Window(ctl_user_1) = %d, %v", size, age)
	}
	if !reg.Allowed([]string{"chat"}, "chat:lobby") || reg.Allowed([]string{"chat"}, "room_x") || !reg.Allowed([]string{"room_x"}, "room_x") {
		t.Error("Allowed does not follow namespaces")
	}
	if err := reg.ValidScope("room"); err != nil {
		t.Errorf("ValidScope(room) = %v", err)
	}
	if err := reg.Valid("nope:x"); err == nil || !strings.Contains(err.Error(), "chat:NAME") || !strings.Contains(err.Error(), "room_NAME") {
		t.Errorf("Valid(nope:x) = %v, want the rule naming the configured namespaces", err)
	}
}

func TestBadNamespaces(t *testing.T) {
	for name, ns := range map[string]groups.Namespace{
		"empty name":        {Subscribe: groups.Anyone},
		"upper case":        {Name: "Chat", Subscribe: groups.Anyone},
		"separator in name": {Name: "a_b", Subscribe: groups.Anyone},
		"colon in name":     {Name: "a:b", Subscribe: groups.Anyone},
		"reserved":          {Name: "campaign", Subscribe: groups.Anyone},
		"internal":          {Name: "ctl", Subscribe: groups.Anyone},
		"bad separator":     {Name: "chat", Sep: '/', Subscribe: groups.Anyone},
		"no subscribe":      {Name: "chat"},
		"platform":          {Name: "chat", Subscribe: groups.Platform},
		"history too big":   {Name: "chat", Subscribe: groups.Anyone, HistorySize: groups.MaxHistorySize + 1},
		"history negative":  {Name: "chat", Subscribe: groups.Anyone, HistorySize: -1},
		"age too short":     {Name: "chat", Subscribe: groups.Anyone, HistoryAge: time.Millisecond},
		"age too long":      {Name: "chat", Subscribe: groups.Anyone, HistoryAge: 25 * time.Hour},
		"name too long":     {Name: strings.Repeat("a", 33), Subscribe: groups.Anyone},
	} {
		if _, err := groups.New([]groups.Namespace{ns}); err == nil {
			t.Errorf("%s: New accepted %+v", name, ns)
		}
	}
	twice := groups.Namespace{Name: "chat", Subscribe: groups.Anyone}
	if _, err := groups.New([]groups.Namespace{twice, twice}); err == nil {
		t.Error("New accepted a namespace twice")
	}
}
