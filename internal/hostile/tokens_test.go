package hostile

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// claims are a token's claims as herald issues them (auth.Issuer).
func claims(uid any, typ string, ttl time.Duration) jwt.MapClaims {
	now := time.Now()
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	return jwt.MapClaims{"token_type": typ, "user_id": uid, "exp": now.Add(ttl).Unix(), "iat": now.Unix(), "jti": hex.EncodeToString(jti[:])}
}

// signed is c signed with method and key.
func signed(method jwt.SigningMethod, key any, c jwt.Claims) string {
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		panic(err) // only the suite's own tables reach here
	}
	return s
}

// access is an access token for uid signed with the server's secret.
func (h *herald) access(uid int64) string {
	return signed(jwt.SigningMethodHS256, h.secret, claims(uid, "access", 15*time.Minute))
}

// hs256 signs any header and payload with HMAC-SHA256 by hand (the
// library refuses an empty key).
func hs256(key []byte, header, payload any) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	s := enc(header) + "." + enc(payload)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return s + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// forgery is a token no request may be authenticated with.
type forgery struct {
	name  string
	token func(h *herald) string
}

func forgeries() []forgery {
	hs := func(c jwt.MapClaims) func(h *herald) string {
		return func(h *herald) string { return signed(jwt.SigningMethodHS256, h.secret, c) }
	}
	without := func(key string) jwt.MapClaims {
		c := claims(1, "access", time.Hour)
		delete(c, key)
		return c
	}
	with := func(key string, v any) jwt.MapClaims {
		c := claims(1, "access", time.Hour)
		c[key] = v
		return c
	}
	var random [32]byte
	_, _ = rand.Read(random[:])
	return []forgery{
		{"unknown user", hs(claims(999_999, "access", time.Hour))},
		{"user 2^63-1", hs(claims(int64(1<<63-1), "access", time.Hour))},
		{"expired", hs(claims(1, "access", -time.Hour))},
		{"alg none", func(*herald) string {
			return signed(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(1, "access", time.Hour))
		}},
		{"wrong key", func(*herald) string { return signed(jwt.SigningMethodHS256, random[:], claims(1, "access", time.Hour)) }},
		{"key 'secret'", func(*herald) string {
			return signed(jwt.SigningMethodHS256, []byte("secret"), claims(1, "access", time.Hour))
		}},
		{"the demo password as key", func(*herald) string {
			return signed(jwt.SigningMethodHS256, []byte("herald-demo"), claims(1, "access", time.Hour))
		}},
		{"empty key", func(*herald) string {
			return hs256(nil, map[string]string{"alg": "HS256", "typ": "JWT"}, claims(1, "access", time.Hour))
		}},
		{"HS512", func(h *herald) string {
			return signed(jwt.SigningMethodHS512, h.secret, claims(1, "access", time.Hour))
		}},
		{"RS256 header", func(h *herald) string {
			return hs256(h.secret, map[string]string{"alg": "RS256", "typ": "JWT"}, claims(1, "access", time.Hour))
		}},
		{"user 0", hs(claims(0, "access", time.Hour))},
		{"user -1", hs(claims(-1, "access", time.Hour))},
		{"user as a string", hs(claims("1", "access", time.Hour))},
		{"user 1.5", hs(claims(1.5, "access", time.Hour))},
		{"no user", hs(without("user_id"))},
		{"a refresh token", hs(claims(1, "refresh", time.Hour))},
		{"no exp", hs(without("exp"))},
		{"exp in the past as a string", hs(with("exp", "1000000000"))},
		{"no token_type", hs(without("token_type"))},
		{"token_type ACCESS", hs(with("token_type", "ACCESS"))},
		{"5,000 bytes", hs(with("jti", strings.Repeat("j", 5000)))},
		{"signature cut", func(h *herald) string { t := h.access(1); return t[:len(t)-4] }},
	}
}

// tokenCases present forged tokens everywhere a token is read: each must be
// refused with 401 or 403 (never a 500, never an upgrade).
func tokenCases() []hcase {
	type surface struct {
		name string
		try  func(t *testing.T, c *client, token string) int
	}
	rest := func(method, path, body string) func(*testing.T, *client, string) int {
		return func(t *testing.T, c *client, token string) int {
			r := req{method: method, path: path, bearer: token}
			if body != "" {
				r = jsonReq(method, path, token, body)
			}
			return c.must(t, r).Status
		}
	}
	wsTry := func(path string, bearer bool) func(*testing.T, *client, string) int {
		return func(t *testing.T, c *client, token string) int {
			var hdr http.Header
			p := path
			if bearer {
				hdr = http.Header{"Authorization": {"Bearer " + token}}
			} else {
				p += url.QueryEscape(token)
			}
			w, err := c.ws(p, hdr, nil)
			if err != nil {
				t.Fatal(err)
			}
			w.Close()
			return w.status
		}
	}
	sseTry := func(t *testing.T, c *client, token string) int {
		r, err := c.stream("/sse/applications/?token="+url.QueryEscape(token), nil, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return r.Status
	}
	surfaces := []surface{
		{"GET /api/auth/me/", rest("GET", "/api/auth/me/", "")},
		{"POST a comment", rest("POST", "/api/campaigns/1/comments/", `{"content":"who am I?"}`)},
		{"POST /api/ws-ticket/", rest("POST", "/api/ws-ticket/", "")},
		{"POST a quest", rest("POST", "/api/quests/", `{"title":"who am I?"}`)},
		{"WS /ws/applications/", wsTry("/ws/applications/?token=", false)},
		{"WS /ws/campaign/1/", wsTry("/ws/campaign/1/?token=", false)},
		{"WS /ws/campaign/1/ with a header", wsTry("/ws/campaign/1/", true)},
		{"SSE /sse/applications/", sseTry},
	}
	var out []hcase
	for _, fg := range forgeries() {
		for _, s := range surfaces {
			out = append(out, hcase{name: "tokens/" + fg.name + "/" + s.name, run: func(t *testing.T, h *herald) {
				if got := s.try(t, h.client(t), fg.token(h)); got != unauth && got != forbidden {
					t.Errorf("answered %d, want 401 or 403", got)
				}
			}})
		}
	}
	// Refresh tokens that must not be exchanged for access.
	for _, fg := range []forgery{
		{"refresh of an unknown user", func(h *herald) string {
			return signed(jwt.SigningMethodHS256, h.secret, claims(999_999, "refresh", time.Hour))
		}},
		{"an access token as refresh", func(h *herald) string { return h.access(1) }},
		{"alg none refresh", func(*herald) string {
			return signed(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(1, "refresh", time.Hour))
		}},
	} {
		out = append(out, hcase{name: "tokens/" + fg.name, run: func(t *testing.T, h *herald) {
			body, _ := json.Marshal(map[string]string{"refresh": fg.token(h)})
			r := h.client(t).must(t, jsonReq("POST", "/api/auth/token/refresh/", "", string(body)))
			wantStatus(t, r, unauth)
		}})
	}
	// Tickets that were never issued.
	for _, tk := range []string{"garbage", strings.Repeat("t", 10_000), "%00", "../../etc/passwd"} {
		for _, path := range []string{"/ws/applications/?ticket=", "/ws/campaign/1/?ticket="} {
			out = append(out, hcase{name: "tokens/ticket " + clip(tk, 16) + "/" + path, run: func(t *testing.T, h *herald) {
				w, err := h.client(t).ws(path+tk, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				w.Close()
				if w.status != forbidden && w.status != unauth && w.status != badRequest {
					t.Errorf("answered %d, want 401, 403 or 400", w.status)
				}
			}})
		}
	}
	return out
}
