package channelsredis

import (
	"fmt"
	"strings"
)

// TypeRule says how the type of a message sent to the groups of one kind
// becomes the type herald's clients receive: what that kind's consumer
// handler sends for it.
type TypeRule struct {
	// TrimSuffix is cut from the handler's name: the campaign consumer's
	// contribution_message handler sends {'type': 'contribution', …}.
	TrimSuffix string
}

// TypeMap holds the rules by group kind (platform.ParseGroup's kinds). A
// kind without a rule sends what its handler is named: the quest
// consumer's new_application handler sends type new_application.
type TypeMap map[string]TypeRule

// SeedTypes is the mapping of the two documents' consumers.
func SeedTypes() TypeMap {
	return TypeMap{"campaign": {TrimSuffix: "_message"}}
}

// maxType bounds a type's length, as Channels bounds names.
const maxType = 100

// ClientType returns the type herald's clients receive for a message of
// type typ sent to a group of kind. As Channels dispatches it, the handler
// is typ with its dots made underscores; it must be a name a Python
// consumer method could have (a letter, then letters, digits and
// underscores).
func (m TypeMap) ClientType(kind, typ string) (string, error) {
	if typ == "" || len(typ) > maxType {
		return "", fmt.Errorf("type of %d bytes: want 1 to %d", len(typ), maxType)
	}
	h := strings.ReplaceAll(typ, ".", "_")
	for i := 0; i < len(h); i++ {
		c := h[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || c != '_' && (c < '0' || c > '9')) {
			return "", fmt.Errorf("type %q is no handler's name", typ)
		}
	}
	if r, ok := m[kind]; ok && r.TrimSuffix != "" {
		if t, cut := strings.CutSuffix(h, r.TrimSuffix); cut && t != "" {
			return t, nil
		}
	}
	return h, nil
}
