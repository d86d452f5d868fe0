// Package groups is herald's one registry of groups: every group belongs to
// a namespace, and a namespace says who may subscribe to its groups, who may
// publish to them from a client, how long their history is kept and whether
// their members are counted. The seeds' groups (campaign_N, quest_N,
// user_N) are the built-in namespaces, whose members herald's platform
// decides; an operator adds namespaces for other apps in the config file.
// Whatever validates a group, checks a key's scope or needs a group's
// options asks a Registry, so a new kind of group is one entry here.
package groups

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Policy says who may do something with a namespace's groups.
type Policy uint8

const (
	// Nobody: the default for client publishing.
	Nobody Policy = iota
	// Platform: herald's platform decides, by its own data (the built-in
	// namespaces: a campaign's viewers, a quest's creator, a user).
	Platform
	// Anyone, signed in or not.
	Anyone
	// SignedIn: any authenticated user, whether by a herald account or by
	// the app's connection token or connect callback.
	SignedIn
	// TokenHolder: only a client holding the app's subscription token for
	// the group (or whose connection token or connect answer names it).
	TokenHolder
)

var policyNames = map[string]Policy{"none": Nobody, "anonymous": Anyone, "user": SignedIn, "token": TokenHolder}

// ParsePolicy reads a policy as the config file writes it: none,
// anonymous, user or token.
func ParsePolicy(s string) (Policy, error) {
	if p, ok := policyNames[s]; ok {
		return p, nil
	}
	return 0, fmt.Errorf("%q: want anonymous, user, token or none", s)
}

func (p Policy) String() string {
	switch p {
	case Platform:
		return "platform"
	case Anyone:
		return "anonymous"
	case SignedIn:
		return "user"
	case TokenHolder:
		return "token"
	}
	return "none"
}

// Namespace is one kind of group: name, separator, and then the channel,
// as in chat:lobby or campaign_5.
type Namespace struct {
	Name string
	// Sep separates the namespace from the channel: ':' (chat:lobby) or
	// '_' (chat_lobby, the only form a Django app's group names can take).
	Sep byte
	// Subscribe is who may subscribe; Publish who may publish from a v2
	// client (Nobody: only the app, through the publish API or its
	// channel layer).
	Subscribe Policy
	Publish   Policy
	// HistorySize and HistoryAge bound each group's history: its latest
	// HistorySize events, none older than HistoryAge.
	HistorySize int
	HistoryAge  time.Duration
	// Presence sends v2 members the group's member count as it changes.
	Presence bool

	// numeric: channels are ids (positive integers written the one way).
	numeric bool
}

// Built-in namespaces and the bounds of configured ones.
const (
	DefaultHistorySize = 1000
	DefaultHistoryAge  = 10 * time.Minute
	MaxHistorySize     = 10000
	MaxHistoryAge      = 24 * time.Hour
	// MaxGroupLen bounds a group's name (Django's own bound on group names).
	MaxGroupLen = 100
	// maxNamespaces bounds the configured namespaces, so a lookup stays a
	// few comparisons.
	maxNamespaces = 64
)

// Builtin returns the seeds' namespaces: campaign_N (a campaign's room,
// with presence), quest_N (a quest's applications, for its creator) and
// user_N (a user's own events).
func Builtin() []Namespace {
	b := func(name string, presence bool) Namespace {
		return Namespace{Name: name, Sep: '_', Subscribe: Platform, Publish: Nobody, HistorySize: DefaultHistorySize,
			HistoryAge: DefaultHistoryAge, Presence: presence, numeric: true}
	}
	return []Namespace{b("campaign", true), b("quest", false), b("user", false)}
}

// reserved names are never a configured namespace: the built-ins, and the
// internal groups' prefix (ctl_user_N).
var reserved = map[string]bool{"campaign": true, "quest": true, "user": true, "ctl": true}

// Registry holds the namespaces. It is read-only once made, so safe for
// any number of goroutines.
type Registry struct {
	byName map[string]*Namespace
	names  []string // sorted, for messages
	// byLen lists namespaces longest name first, so chat_room_x is found
	// in chat_room before chat.
	byLen []*Namespace
	rule  string
}

// New returns a registry of the built-in namespaces and configured, which
// it checks: names of lowercase letters, digits and '-' starting with a
// letter, separators ':' or '_', bounds within the limits above. Zero
// history fields take the defaults.
func New(configured []Namespace) (*Registry, error) {
	if len(configured) > maxNamespaces {
		return nil, fmt.Errorf("namespaces: at most %d may be configured", maxNamespaces)
	}
	r := &Registry{byName: map[string]*Namespace{}}
	all := append(Builtin(), configured...)
	var errs []error
	for i := range all {
		ns := all[i]
		if i >= 3 {
			if err := checkNamespace(&ns); err != nil {
				errs = append(errs, fmt.Errorf("namespace %q: %w", clip(ns.Name), err))
				continue
			}
			if reserved[ns.Name] {
				errs = append(errs, fmt.Errorf("namespace %q: the name is herald's own", ns.Name))
				continue
			}
		}
		if r.byName[ns.Name] != nil {
			errs = append(errs, fmt.Errorf("namespace %q: configured twice", ns.Name))
			continue
		}
		r.byName[ns.Name] = &ns
		r.names = append(r.names, ns.Name)
		r.byLen = append(r.byLen, &ns)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sort.Strings(r.names)
	sort.SliceStable(r.byLen, func(i, j int) bool { return len(r.byLen[i].Name) > len(r.byLen[j].Name) })
	r.rule = "a group is campaign_N, quest_N or user_N, where N is a positive integer written without sign or leading zeros"
	if len(configured) > 0 {
		var forms []string
		for _, ns := range r.byName {
			if !ns.numeric {
				forms = append(forms, ns.Name+string(ns.Sep)+"NAME")
			}
		}
		sort.Strings(forms)
		r.rule += ", or " + strings.Join(forms, ", ") + ", where NAME is 1 or more of A-Z a-z 0-9 _ . - and the whole group is at most 100 bytes"
	}
	return r, nil
}

func checkNamespace(ns *Namespace) error {
	if ns.Name == "" || len(ns.Name) > 32 || ns.Name[0] < 'a' || ns.Name[0] > 'z' {
		return errors.New("a name is 1 to 32 of a-z 0-9 - starting with a letter")
	}
	for i := 0; i < len(ns.Name); i++ {
		c := ns.Name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return errors.New("a name is 1 to 32 of a-z 0-9 - starting with a letter")
		}
	}
	if ns.Sep == 0 {
		ns.Sep = ':'
	}
	if ns.Sep != ':' && ns.Sep != '_' {
		return errors.New(`separator: want ":" or "_"`)
	}
	if ns.Subscribe == Nobody || ns.Subscribe == Platform || ns.Publish == Platform {
		return errors.New("subscribe: want anonymous, user or token")
	}
	if ns.HistorySize == 0 {
		ns.HistorySize = DefaultHistorySize
	}
	if ns.HistoryAge == 0 {
		ns.HistoryAge = DefaultHistoryAge
	}
	if ns.HistorySize < 1 || ns.HistorySize > MaxHistorySize {
		return fmt.Errorf("history-size %d: want 1 to %d", ns.HistorySize, MaxHistorySize)
	}
	if ns.HistoryAge < time.Second || ns.HistoryAge > MaxHistoryAge {
		return fmt.Errorf("history-ttl %v: want 1s to %v", ns.HistoryAge, MaxHistoryAge)
	}
	ns.numeric = false
	return nil
}

// Rule is the group naming rule as clients are told it.
func (r *Registry) Rule() string { return r.rule }

// Lookup returns the namespace of group and the channel within it, or
// ok=false when group names no group herald serves.
func (r *Registry) Lookup(group string) (ns *Namespace, channel string, ok bool) {
	if len(group) > MaxGroupLen {
		return nil, "", false
	}
	for _, n := range r.byLen {
		if len(group) <= len(n.Name)+1 || group[len(n.Name)] != n.Sep || group[:len(n.Name)] != n.Name {
			continue
		}
		ch := group[len(n.Name)+1:]
		if n.numeric {
			if !canonicalID(ch) {
				return nil, "", false
			}
		} else if !validChannel(ch) {
			return nil, "", false
		}
		return n, ch, true
	}
	return nil, "", false
}

// Namespace returns the namespace named name.
func (r *Registry) Namespace(name string) (*Namespace, bool) {
	ns, ok := r.byName[name]
	return ns, ok
}

// Names returns the namespaces' names, sorted.
func (r *Registry) Names() []string { return append([]string(nil), r.names...) }

// Valid returns nil when group names a group herald serves, and an error
// saying the rule otherwise.
func (r *Registry) Valid(group string) error {
	if _, _, ok := r.Lookup(group); !ok {
		return errors.New(r.rule)
	}
	return nil
}

// Window returns how much of group's history is kept: the defaults for a
// group of no namespace (internal groups).
func (r *Registry) Window(group string) (size int, age time.Duration) {
	if ns, _, ok := r.Lookup(group); ok {
		return ns.HistorySize, ns.HistoryAge
	}
	return DefaultHistorySize, DefaultHistoryAge
}

// ValidScope returns nil when scope can be granted to an API key: a
// namespace (every group in it) or one exact group.
func (r *Registry) ValidScope(scope string) error {
	if _, ok := r.byName[scope]; ok || r.Valid(scope) == nil {
		return nil
	}
	return fmt.Errorf("a scope is a namespace (%s) or one group (%s)", strings.Join(r.names, ", "), r.rule)
}

// Allowed reports whether an API key holding scopes may publish to group:
// one of them names group itself or its namespace. A group that is not
// Valid is never allowed.
func (r *Registry) Allowed(scopes []string, group string) bool {
	ns, _, ok := r.Lookup(group)
	if !ok {
		return false
	}
	for _, s := range scopes {
		if s == group || s == ns.Name {
			return true
		}
	}
	return false
}

// validChannel reports whether ch is a configured namespace's channel: 1
// or more of A-Z a-z 0-9 _ . - (what Django allows in a group name).
func validChannel(ch string) bool {
	if ch == "" {
		return false
	}
	for i := 0; i < len(ch); i++ {
		c := ch[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// canonicalID reports whether s is an id written the one way herald writes
// it (platform.ParseID's rule): decimal digits, no sign, no leading zero,
// from 1 to the largest int64. "+1" and "01" are not object 1, so one
// object has one group.
func canonicalID(s string) bool {
	const maxInt64 = "9223372036854775807"
	if s == "" || len(s) > len(maxInt64) || s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) < len(maxInt64) || s <= maxInt64
}

// clip shortens a name from the config for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Default returns a registry of the built-in namespaces alone.
func Default() *Registry {
	r, err := New(nil)
	if err != nil {
		panic("groups: the built-in namespaces are invalid: " + err.Error())
	}
	return r
}
