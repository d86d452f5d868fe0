// Package groups holds the rules for naming the groups herald serves and
// for which of them a publish API key may write to. They are in one place
// because the set of group kinds is meant to grow (configurable
// namespaces): whatever validates a group or checks a key's scope asks this
// package, so that change is made here alone.
package groups

import (
	"errors"
	"strings"
)

// Rule is the group naming rule as clients are told it.
const Rule = "a group is campaign_N, quest_N or user_N, where N is a positive integer written without sign or leading zeros"

// errGroup is Valid's answer for every name that breaks Rule.
var errGroup = errors.New(Rule)

// kind returns the kind of a valid group ("campaign" for campaign_5) and
// whether group is valid.
func kind(group string) (string, bool) {
	k, id, ok := strings.Cut(group, "_")
	if !ok || !isKind(k) || !canonicalID(id) {
		return "", false
	}
	return k, true
}

func isKind(k string) bool {
	switch k {
	case "campaign", "quest", "user":
		return true
	}
	return false
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

// Valid returns nil when group names a group herald serves, and an error
// saying the rule otherwise.
func Valid(group string) error {
	if _, ok := kind(group); !ok {
		return errGroup
	}
	return nil
}

// ValidScope returns nil when scope can be granted to an API key: a kind
// of group ("campaign", "quest", "user": every group of that kind) or one
// exact group ("campaign_5").
func ValidScope(scope string) error {
	if isKind(scope) || Valid(scope) == nil {
		return nil
	}
	return errors.New("a scope is a kind of group (campaign, quest or user) or one group (" + Rule + ")")
}

// Allowed reports whether an API key holding scopes may publish to group:
// one of them names group itself or its kind. A group that is not Valid is
// never allowed.
func Allowed(scopes []string, group string) bool {
	k, ok := kind(group)
	if !ok {
		return false
	}
	for _, s := range scopes {
		if s == group || s == k {
			return true
		}
	}
	return false
}
