package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func newTestIssuer(t testing.TB) *Issuer {
	t.Helper()
	iss, err := NewIssuer(testSecret, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// payload decodes the claims of token without verifying it.
func payload(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d segments", token, len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNewIssuer(t *testing.T) {
	if _, err := NewIssuer(testSecret[:31], 0, 0); err == nil {
		t.Error("NewIssuer with a 31-byte secret succeeded")
	}
	if _, err := NewIssuer(testSecret, -time.Second, 0); err == nil {
		t.Error("NewIssuer with a negative TTL succeeded")
	}
	iss := newTestIssuer(t)
	if iss.AccessTTL() != 15*time.Minute || iss.RefreshTTL() != 7*24*time.Hour {
		t.Errorf("default TTLs = %v, %v", iss.AccessTTL(), iss.RefreshTTL())
	}
	iss, err := NewIssuer(testSecret, time.Minute, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if iss.AccessTTL() != time.Minute || iss.RefreshTTL() != time.Hour {
		t.Errorf("TTLs = %v, %v", iss.AccessTTL(), iss.RefreshTTL())
	}
}

func TestTokenRoundTrip(t *testing.T) {
	iss := newTestIssuer(t)
	now := time.Unix(1_700_000_000, 0)
	iss.now = func() time.Time { return now }

	access, refresh, err := iss.Pair(42)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := iss.ParseAccess(access); err != nil || id != 42 {
		t.Errorf("ParseAccess = %d, %v; want 42, nil", id, err)
	}
	if id, err := iss.ParseRefresh(refresh); err != nil || id != 42 {
		t.Errorf("ParseRefresh = %d, %v; want 42, nil", id, err)
	}
	single, err := iss.Access(7)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := iss.ParseAccess(single); err != nil || id != 7 {
		t.Errorf("ParseAccess(Access(7)) = %d, %v; want 7, nil", id, err)
	}

	// Claims must look like simplejwt's.
	a, r := payload(t, access), payload(t, refresh)
	for _, c := range []struct {
		claims map[string]any
		typ    string
		ttl    time.Duration
	}{{a, "access", 15 * time.Minute}, {r, "refresh", 7 * 24 * time.Hour}} {
		if c.claims["token_type"] != c.typ {
			t.Errorf("token_type = %v, want %q", c.claims["token_type"], c.typ)
		}
		if c.claims["user_id"] != float64(42) { // a JSON number, not a string
			t.Errorf("user_id = %#v, want 42", c.claims["user_id"])
		}
		if c.claims["iat"] != float64(now.Unix()) {
			t.Errorf("iat = %v, want %d", c.claims["iat"], now.Unix())
		}
		if c.claims["exp"] != float64(now.Add(c.ttl).Unix()) {
			t.Errorf("%s exp = %v, want %d", c.typ, c.claims["exp"], now.Add(c.ttl).Unix())
		}
		jti, _ := c.claims["jti"].(string)
		if len(jti) != 32 || strings.Trim(jti, "0123456789abcdef") != "" {
			t.Errorf("jti = %q, want 32 hex digits", jti)
		}
		if len(c.claims) != 5 {
			t.Errorf("claims = %v, want exactly token_type, user_id, iat, exp, jti", c.claims)
		}
	}
	if a["jti"] == r["jti"] {
		t.Error("access and refresh tokens share a jti")
	}

	if _, _, err := iss.Pair(0); err == nil {
		t.Error("Pair(0) succeeded")
	}
}

func TestTokenExpiry(t *testing.T) {
	iss := newTestIssuer(t)
	now := time.Unix(1_700_000_000, 0)
	iss.now = func() time.Time { return now }
	access, refresh, err := iss.Pair(42)
	if err != nil {
		t.Fatal(err)
	}

	// Within the leeway the token is still accepted.
	now = now.Add(15*time.Minute + 29*time.Second)
	if _, err := iss.ParseAccess(access); err != nil {
		t.Errorf("ParseAccess inside leeway: %v", err)
	}

	now = now.Add(2 * time.Second)
	id, err := iss.ParseAccess(access)
	if !errors.Is(err, ErrTokenExpired) || errors.Is(err, ErrTokenInvalid) || id != 0 {
		t.Errorf("ParseAccess after expiry = %d, %v; want 0, ErrTokenExpired", id, err)
	}
	// An expired token of the wrong type is invalid, not expired.
	now = now.Add(8 * 24 * time.Hour)
	if _, err := iss.ParseAccess(refresh); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("ParseAccess(expired refresh) = %v, want ErrTokenInvalid", err)
	}
	if _, err := iss.ParseRefresh(refresh); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("ParseRefresh after expiry = %v, want ErrTokenExpired", err)
	}
}

// flip changes the first character of s to a different base64url digit.
func flip(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

// signed returns a token over claims signed by method with key.
func signed(t *testing.T, method jwt.SigningMethod, claims jwt.MapClaims, key any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenInvalid(t *testing.T) {
	iss := newTestIssuer(t)
	access, refresh, err := iss.Pair(42)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewIssuer([]byte("another-secret-that-is-long-enough!"), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Access(42)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}

	exp := time.Now().Add(time.Hour).Unix()
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"token_type": "access", "user_id": 42, "exp": exp, "iat": time.Now().Unix(), "jti": "00"}
	}
	with := func(k string, v any) jwt.MapClaims {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, good()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	// HS256 header, but the payload was altered after signing.
	parts := strings.Split(access, ".")
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"token_type":"access","user_id":1,"exp":9999999999}`)) + "." + parts[2]

	// The control case proves the helper produces tokens we accept.
	if _, err := iss.ParseAccess(signed(t, jwt.SigningMethodHS256, good(), testSecret)); err != nil {
		t.Fatalf("control token rejected: %v", err)
	}

	for name, token := range map[string]string{
		"empty":              "",
		"garbage":            "not.a.token",
		"two segments":       parts[0] + "." + parts[1],
		"wrong secret":       foreign,
		"alg none":           none,
		"alg none unsigned":  strings.TrimSuffix(none, "."),
		"HS384":              signed(t, jwt.SigningMethodHS384, good(), testSecret),
		"HS512":              signed(t, jwt.SigningMethodHS512, good(), testSecret),
		"RS256":              signed(t, jwt.SigningMethodRS256, good(), rsaKey),
		"tampered payload":   forged,
		"tampered signature": parts[0] + "." + parts[1] + "." + flip(parts[2]),
		"refresh as access":  refresh,
		"no exp":             signed(t, jwt.SigningMethodHS256, with("exp", nil), testSecret),
		"no token_type":      signed(t, jwt.SigningMethodHS256, with("token_type", nil), testSecret),
		"unknown token_type": signed(t, jwt.SigningMethodHS256, with("token_type", "sliding"), testSecret),
		"no user_id":         signed(t, jwt.SigningMethodHS256, with("user_id", nil), testSecret),
		"string user_id":     signed(t, jwt.SigningMethodHS256, with("user_id", "42"), testSecret),
		"fractional user_id": signed(t, jwt.SigningMethodHS256, with("user_id", 4.2), testSecret),
		"zero user_id":       signed(t, jwt.SigningMethodHS256, with("user_id", 0), testSecret),
		"not yet valid":      signed(t, jwt.SigningMethodHS256, with("nbf", time.Now().Add(time.Hour).Unix()), testSecret),
		"oversized":          strings.Repeat("a", 5000),
	} {
		id, err := iss.ParseAccess(token)
		if !errors.Is(err, ErrTokenInvalid) || errors.Is(err, ErrTokenExpired) || id != 0 {
			t.Errorf("%s: ParseAccess = %d, %v; want 0, ErrTokenInvalid", name, id, err)
		}
	}

	if _, err := iss.ParseRefresh(access); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("access as refresh: ParseRefresh = %v, want ErrTokenInvalid", err)
	}
	if _, err := iss.ParseRefresh(signed(t, jwt.SigningMethodHS384, with("token_type", "refresh"), testSecret)); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("HS384 refresh: ParseRefresh = %v, want ErrTokenInvalid", err)
	}
}

func FuzzParseAccess(f *testing.F) {
	iss := newTestIssuer(f)
	access, refresh, err := iss.Pair(42)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(access)
	f.Add(refresh)
	f.Add("")
	f.Add("..")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoiMSJ9.sig")
	f.Fuzz(func(t *testing.T, token string) {
		id, err := iss.ParseAccess(token)
		if err != nil {
			if id != 0 {
				t.Fatalf("ParseAccess returned id %d with error %v", id, err)
			}
			if !errors.Is(err, ErrTokenInvalid) && !errors.Is(err, ErrTokenExpired) {
				t.Fatalf("ParseAccess error %v is neither ErrTokenInvalid nor ErrTokenExpired", err)
			}
		} else if id <= 0 {
			t.Fatalf("ParseAccess accepted %q with id %d", token, id)
		}
	})
}

func TestIssuerConcurrent(t *testing.T) {
	iss := newTestIssuer(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for range 50 {
				access, refresh, err := iss.Pair(int64(g + 1))
				if err != nil {
					t.Error(err)
					return
				}
				if id, err := iss.ParseAccess(access); err != nil || id != int64(g+1) {
					t.Errorf("ParseAccess = %d, %v", id, err)
				}
				if id, err := iss.ParseRefresh(refresh); err != nil || id != int64(g+1) {
					t.Errorf("ParseRefresh = %d, %v", id, err)
				}
			}
		})
	}
	wg.Wait()
}
