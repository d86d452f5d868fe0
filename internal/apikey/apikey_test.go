package apikey_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/apikey"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/testenv"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func open(t *testing.T, dsn string) (*apikey.Store, *store.DB, *clock) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	c := &clock{now: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)}
	return apikey.New(db, nil, c.Now), db, c
}

// A key is shown once as hk_<id>_<secret>, stored as a hash, accepted with
// its scopes until it is revoked, and refused the same way whether it is
// unknown, revoked, or has a wrong secret.
func TestKeyLifecycle(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		keys, db, c := open(t, dsn)
		k, token, err := keys.Create(ctx, "billing", []string{"campaign", "user_5", "campaign"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(token, "hk_"+k.ID+"_") || len(token) != apikey.TokenLen {
			t.Fatalf("token %q for id %q", token, k.ID)
		}
		if strings.Join(k.Scopes, ",") != "campaign,user_5" {
			t.Errorf("scopes %v, want them deduplicated in order", k.Scopes)
		}
		var stored string
		if err := db.QueryRow("SELECT secret_hash FROM api_keys WHERE id = $1", k.ID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(token, stored) || strings.Contains(stored, token[len(token)-64:]) || len(stored) != 64 {
			t.Errorf("stored %q for token %q: want a SHA-256, not the secret", stored, token)
		}

		got, err := keys.Authenticate(ctx, token)
		if err != nil || got.ID != k.ID || got.Name != "billing" || strings.Join(got.Scopes, ",") != "campaign,user_5" {
			t.Fatalf("Authenticate: %+v, %v", got, err)
		}
		wrong := token[:len(token)-1] + map[bool]string{true: "1", false: "0"}[token[len(token)-1] == '0']
		other := "hk_0123456789abcdef_" + token[len(token)-64:]
		for name, bad := range map[string]string{
			"wrong secret": wrong, "unknown id": other, "empty": "", "no prefix": token[3:], "upper case": strings.ToUpper(token),
			"too long": token + "0", "too short": token[:len(token)-1], "a JWT": "eyJhbGciOiJIUzI1NiJ9.e30.AAAA",
			"id with an injection": "hk_' OR 1=1 --__" + token[len(token)-64:],
		} {
			if _, err := keys.Authenticate(ctx, bad); !errors.Is(err, apikey.ErrNotValid) {
				t.Errorf("%s: %v, want ErrNotValid", name, err)
			}
		}

		revoked, err := keys.Revoke(ctx, k.ID)
		if err != nil || revoked.RevokedAt == nil || !revoked.RevokedAt.Equal(c.Now()) {
			t.Fatalf("Revoke: %+v, %v", revoked, err)
		}
		if _, err := keys.Authenticate(ctx, token); !errors.Is(err, apikey.ErrNotValid) {
			t.Errorf("revoked key: %v, want ErrNotValid", err)
		}
		c.add(time.Hour)
		if again, err := keys.Revoke(ctx, k.ID); err != nil || !again.RevokedAt.Equal(*revoked.RevokedAt) {
			t.Errorf("revoked twice: %+v, %v; want the first time kept", again, err)
		}
		if _, err := keys.Revoke(ctx, "0123456789abcdef"); !errors.Is(err, apikey.ErrNotFound) {
			t.Errorf("revoking an unknown id: %v", err)
		}
	})
}

// last_used_at follows use, but is written at most once a minute.
func TestLastUsedAtOnceAMinute(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		keys, _, c := open(t, dsn)
		k, token, err := keys.Create(ctx, "k", []string{"quest"})
		if err != nil {
			t.Fatal(err)
		}
		lastUsed := func() *time.Time {
			t.Helper()
			got, err := keys.Get(ctx, k.ID)
			if err != nil {
				t.Fatal(err)
			}
			return got.LastUsedAt
		}
		if lastUsed() != nil {
			t.Fatal("a new key has been used")
		}
		first := c.Now()
		for range 3 {
			if _, err := keys.Authenticate(ctx, token); err != nil {
				t.Fatal(err)
			}
			c.add(20 * time.Second)
		}
		if u := lastUsed(); u == nil || !u.Equal(first) {
			t.Fatalf("last used %v, want %v (not written again within the minute)", u, first)
		}
		c.add(5 * time.Second) // 65 s after the first use
		if _, err := keys.Authenticate(ctx, token); err != nil {
			t.Fatal(err)
		}
		if u := lastUsed(); u == nil || !u.Equal(c.Now()) {
			t.Fatalf("last used %v, want %v", u, c.Now())
		}
	})
}

func TestListShowsNoSecret(t *testing.T) {
	ctx := context.Background()
	keys, _, c := open(t, testenv.SQLite(t))
	_, t1, err := keys.Create(ctx, "first", []string{"campaign"})
	if err != nil {
		t.Fatal(err)
	}
	c.add(time.Second)
	k2, _, err := keys.Create(ctx, "second", []string{"campaign_5"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Revoke(ctx, k2.ID); err != nil {
		t.Fatal(err)
	}
	list, err := keys.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "first" || list[1].Name != "second" || list[1].RevokedAt == nil || list[0].RevokedAt != nil {
		t.Fatalf("list %+v", list)
	}
	if printed := fmt.Sprintf("%+v", list); strings.Contains(printed, t1[len(t1)-64:]) {
		t.Errorf("the list holds a secret: %s", printed)
	}
}

func TestCreateRefuses(t *testing.T) {
	ctx := context.Background()
	keys, _, _ := open(t, testenv.SQLite(t))
	for _, c := range []struct {
		name   string
		scopes []string
	}{
		{"", []string{"campaign"}},
		{strings.Repeat("n", apikey.MaxNameLen+1), []string{"campaign"}},
		{"bell\a", []string{"campaign"}},
		{"escape \x1b[2J", []string{"campaign"}},
		{"bidi \u202e", []string{"campaign"}},
		{"bad utf-8 \xff", []string{"campaign"}},
		{"ok", nil},
		{"ok", []string{""}},
		{"ok", []string{"*"}},
		{"ok", []string{"campaign_01"}},
		{"ok", []string{"ctl_user_1"}},
		{"ok", []string{"campaign,quest"}},
	} {
		if _, _, err := keys.Create(ctx, c.name, c.scopes); err == nil {
			t.Errorf("Create(%q, %q) succeeded", c.name, c.scopes)
		}
	}
	if list, _ := keys.List(ctx); len(list) != 0 {
		t.Errorf("refused keys were stored: %+v", list)
	}
}

// ParseToken takes exactly what Create writes and nothing else.
func FuzzParseToken(f *testing.F) {
	f.Add("hk_0123456789abcdef_" + strings.Repeat("ab", 32))
	f.Add("hk_0123456789ABCDEF_" + strings.Repeat("ab", 32))
	f.Add("hk_")
	f.Add("hk_0123456789abcdef" + strings.Repeat("_", 65))
	f.Fuzz(func(t *testing.T, token string) {
		id, secret, ok := apikey.ParseToken(token)
		if !ok {
			return
		}
		if token != "hk_"+id+"_"+secret || len(token) != apikey.TokenLen || len(id) != 16 || len(secret) != 64 {
			t.Fatalf("ParseToken(%q) = %q, %q", token, id, secret)
		}
		for _, c := range id + secret {
			if !strings.ContainsRune("0123456789abcdef", c) {
				t.Fatalf("ParseToken(%q) took %q", token, c)
			}
		}
	})
}
