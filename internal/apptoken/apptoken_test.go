package apptoken_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald/internal/apptoken"
)

// secret is the apps' HMAC secret: exactly the shortest length allowed.
const secret = "0123456789abcdef0123456789abcdef"

// now is the verifiers' clock.
var now = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func clock() time.Time { return now }

type testKeys struct {
	rsa   *rsa.PrivateKey
	p256  *ecdsa.PrivateKey
	p384  *ecdsa.PrivateKey
	ed    ed25519.PrivateKey
	edPub ed25519.PublicKey
}

// keys are generated once per test binary: RSA generation is slow.
var keys = sync.OnceValue(func() testKeys {
	var k testKeys
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.p256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if k.p384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		panic(err)
	}
	if k.edPub, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	return k
})

// pemOf encodes public keys as PKIX PEM blocks.
func pemOf(tb testing.TB, pubs ...any) []byte {
	tb.Helper()
	var out []byte
	for _, pub := range pubs {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
	}
	return out
}

// deleted removes a claim in with.
type deleted struct{}

// with returns a valid connection token's claims changed by key/value pairs.
func with(kv ...any) jwt.MapClaims {
	c := jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix()}
	for i := 0; i < len(kv); i += 2 {
		if _, ok := kv[i+1].(deleted); ok {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

func sign(tb testing.TB, m jwt.SigningMethod, key any, c jwt.Claims) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func hs(tb testing.TB, c jwt.Claims) string {
	tb.Helper()
	return sign(tb, jwt.SigningMethodHS256, []byte(secret), c)
}

// rawHS256 signs a header and payload given as JSON text, which lets a test
// send what the library would not produce.
func rawHS256(header, payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	s := enc([]byte(header)) + "." + enc([]byte(payload))
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(s))
	return s + "." + enc(m.Sum(nil))
}

// names returns n distinct channel names of two characters each.
func names(n int) []any {
	const abc = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	out := make([]any, n)
	for i := range out {
		out[i] = string([]byte{abc[i/len(abc)], abc[i%len(abc)]})
	}
	return out
}

func newVerifier(tb testing.TB, cfg apptoken.Config) *apptoken.Verifier {
	tb.Helper()
	if cfg.Now == nil {
		cfg.Now = clock
	}
	v, err := apptoken.New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return v
}

func checkClaims(t *testing.T, got, want apptoken.Claims) {
	t.Helper()
	if got.Subject != want.Subject || !slices.Equal(got.Channels, want.Channels) ||
		!got.Expires.Equal(want.Expires) || !bytes.Equal(got.Info, want.Info) || (got.Info == nil) != (want.Info == nil) {
		t.Errorf("claims = %+v (info %s), want %+v (info %s)", got, got.Info, want, want.Info)
	}
}

func TestRoundTrip(t *testing.T) {
	k := keys()
	certPEM := func() []byte {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: now, NotAfter: now.Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.edPub, k.ed)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}()
	rsaPKCS1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	all := apptoken.Config{
		HMACSecret:    []byte(secret),
		PublicKeysPEM: pemOf(t, &k.rsa.PublicKey, &k.p256.PublicKey, &k.p384.PublicKey, k.edPub),
	}
	for _, tc := range []struct {
		name   string
		method jwt.SigningMethod
		key    any
		cfg    apptoken.Config // the signing key alone
	}{
		{"HS256", jwt.SigningMethodHS256, []byte(secret), apptoken.Config{HMACSecret: []byte(secret)}},
		{"HS384", jwt.SigningMethodHS384, []byte(secret), apptoken.Config{HMACSecret: []byte(secret)}},
		{"HS512", jwt.SigningMethodHS512, []byte(secret), apptoken.Config{HMACSecret: []byte(secret)}},
		{"RS256", jwt.SigningMethodRS256, k.rsa, apptoken.Config{PublicKeysPEM: pemOf(t, &k.rsa.PublicKey)}},
		{"RS512 PKCS1 PEM", jwt.SigningMethodRS512, k.rsa, apptoken.Config{PublicKeysPEM: rsaPKCS1}},
		{"PS256", jwt.SigningMethodPS256, k.rsa, apptoken.Config{PublicKeysPEM: pemOf(t, &k.rsa.PublicKey)}},
		{"ES256", jwt.SigningMethodES256, k.p256, apptoken.Config{PublicKeysPEM: pemOf(t, &k.p256.PublicKey)}},
		{"ES384", jwt.SigningMethodES384, k.p384, apptoken.Config{PublicKeysPEM: pemOf(t, &k.p384.PublicKey)}},
		{"EdDSA", jwt.SigningMethodEdDSA, k.ed, apptoken.Config{PublicKeysPEM: pemOf(t, k.edPub)}},
		{"EdDSA certificate", jwt.SigningMethodEdDSA, k.ed, apptoken.Config{PublicKeysPEM: certPEM}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token := sign(t, tc.method, tc.key, with("channels", []string{"news"}, "info", map[string]string{"name": "Alice"}))
			want := apptoken.Claims{
				Subject:  "alice",
				Channels: []string{"news"},
				Expires:  now.Add(time.Hour),
				Info:     json.RawMessage(`{"name":"Alice"}`),
			}
			for cfgName, cfg := range map[string]apptoken.Config{"own key": tc.cfg, "all keys": all} {
				v := newVerifier(t, cfg)
				c, err := v.Connection(token)
				if err != nil {
					t.Fatalf("%s: Connection: %v", cfgName, err)
				}
				checkClaims(t, c, want)
				c, err = v.Subscription(token)
				if err != nil {
					t.Fatalf("%s: Subscription: %v", cfgName, err)
				}
				checkClaims(t, c, want)
			}
		})
	}
}

// TestSeveralKeys checks that every key of the token's alg is tried.
func TestSeveralKeys(t *testing.T) {
	var priv [3]*ecdsa.PrivateKey
	for i := range priv {
		var err error
		if priv[i], err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	v := newVerifier(t, apptoken.Config{PublicKeysPEM: pemOf(t, &priv[0].PublicKey, &priv[1].PublicKey)})
	for i, p := range priv {
		_, err := v.Connection(sign(t, jwt.SigningMethodES256, p, with()))
		if configured := i < 2; configured != (err == nil) {
			t.Errorf("token signed with key %d (configured %v): err = %v", i, configured, err)
		}
	}
}

func TestVerify(t *testing.T) {
	k := keys()
	hmacOnly := apptoken.Config{HMACSecret: []byte(secret)}
	rsaOnly := apptoken.Config{PublicKeysPEM: pemOf(t, &k.rsa.PublicKey)}
	hmacAndRSA := apptoken.Config{HMACSecret: []byte(secret), PublicKeysPEM: rsaOnly.PublicKeysPEM}
	withIssuer := apptoken.Config{HMACSecret: []byte(secret), Issuer: "https://app.example", Audience: "herald"}
	shortLeeway := apptoken.Config{HMACSecret: []byte(secret), Leeway: 5 * time.Second}
	expired := now.Add(-time.Hour).Unix()
	otherSecret := []byte(strings.Repeat("x", 32))
	exp := now.Add(time.Hour).Unix()
	valid := hs(t, with())

	conn := func(sub string, channels ...string) apptoken.Claims {
		return apptoken.Claims{Subject: sub, Channels: channels, Expires: now.Add(time.Hour)}
	}

	for _, tc := range []struct {
		name         string
		cfg          apptoken.Config
		token        string
		subscription bool
		want         apptoken.Claims // when wantErr is nil
		wantErr      error
		reason       string // in the error's text
	}{
		{name: "valid", cfg: hmacOnly, token: valid, want: conn("alice")},
		{name: "anonymous", cfg: hmacOnly, token: hs(t, with("sub", deleted{})), want: conn("")},
		{name: "sub null is anonymous", cfg: hmacOnly, token: hs(t, with("sub", nil)), want: conn("")},
		{name: "claim names are case-sensitive", cfg: hmacOnly, token: hs(t, with("Sub", 42, "CHANNELS", 1)), want: conn("alice")},

		// Expiry.
		{name: "expired", cfg: hmacOnly, token: hs(t, with("exp", expired)), wantErr: apptoken.ErrExpired, reason: "has passed"},
		{name: "expired, bad signature", cfg: hmacOnly, token: sign(t, jwt.SigningMethodHS256, otherSecret, with("exp", expired)), wantErr: apptoken.ErrInvalid, reason: "signature"},
		{name: "expired, wrong issuer", cfg: withIssuer, token: hs(t, with("exp", expired, "iss", "evil", "aud", "herald")), wantErr: apptoken.ErrInvalid, reason: "issuer"},
		{name: "expired, not yet valid", cfg: hmacOnly, token: hs(t, with("exp", expired, "nbf", exp)), wantErr: apptoken.ErrInvalid, reason: "not valid yet"},
		{name: "expired, numeric sub", cfg: hmacOnly, token: hs(t, with("exp", expired, "sub", 42)), wantErr: apptoken.ErrInvalid, reason: "sub"},
		{name: "expired, no channel", cfg: hmacOnly, token: hs(t, with("exp", expired)), subscription: true, wantErr: apptoken.ErrInvalid, reason: "no channel"},
		{name: "missing exp", cfg: hmacOnly, token: hs(t, with("exp", deleted{})), wantErr: apptoken.ErrInvalid, reason: "exp"},
		{name: "exp null", cfg: hmacOnly, token: hs(t, with("exp", nil)), wantErr: apptoken.ErrInvalid, reason: "exp"},
		{name: "exp a string", cfg: hmacOnly, token: hs(t, with("exp", fmt.Sprint(exp))), wantErr: apptoken.ErrInvalid, reason: "exp must be a number"},
		{name: "fractional exp, truncated to the second", cfg: hmacOnly, token: hs(t, with("exp", float64(exp)+0.5)), want: conn("alice")},

		// Leeway, 30s unless configured.
		{name: "expired within leeway", cfg: hmacOnly, token: hs(t, with("exp", now.Add(-20*time.Second).Unix())), want: apptoken.Claims{Subject: "alice", Expires: now.Add(-20 * time.Second)}},
		{name: "expired past leeway", cfg: hmacOnly, token: hs(t, with("exp", now.Add(-40*time.Second).Unix())), wantErr: apptoken.ErrExpired},
		{name: "expired past configured leeway", cfg: shortLeeway, token: hs(t, with("exp", now.Add(-10*time.Second).Unix())), wantErr: apptoken.ErrExpired},
		{name: "expired within configured leeway", cfg: shortLeeway, token: hs(t, with("exp", now.Add(-3*time.Second).Unix())), want: apptoken.Claims{Subject: "alice", Expires: now.Add(-3 * time.Second)}},
		{name: "nbf within leeway", cfg: hmacOnly, token: hs(t, with("nbf", now.Add(20*time.Second).Unix())), want: conn("alice")},
		{name: "nbf in the future", cfg: hmacOnly, token: hs(t, with("nbf", now.Add(40*time.Second).Unix())), wantErr: apptoken.ErrInvalid, reason: "not valid yet"},
		{name: "iat in the future", cfg: hmacOnly, token: hs(t, with("iat", now.Add(time.Hour).Unix())), wantErr: apptoken.ErrInvalid, reason: "before issued"},
		{name: "iat a string", cfg: hmacOnly, token: hs(t, with("iat", "yesterday")), wantErr: apptoken.ErrInvalid, reason: "iat"},

		// Algorithms and signatures.
		{name: "alg none", cfg: hmacOnly, token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, with()), wantErr: apptoken.ErrInvalid, reason: "alg none"},
		{name: "HS256 signed with the RSA public key PEM", cfg: rsaOnly, token: sign(t, jwt.SigningMethodHS256, rsaOnly.PublicKeysPEM, with()), wantErr: apptoken.ErrInvalid, reason: "alg HS256, which no configured key uses"},
		{name: "HS256 signed with the RSA public key PEM, HMAC configured too", cfg: hmacAndRSA, token: sign(t, jwt.SigningMethodHS256, rsaOnly.PublicKeysPEM, with()), wantErr: apptoken.ErrInvalid, reason: "signature"},
		{name: "RS256 with an HMAC secret only", cfg: hmacOnly, token: sign(t, jwt.SigningMethodRS256, k.rsa, with()), wantErr: apptoken.ErrInvalid, reason: "RS256"},
		{name: "ES256 with only a P-384 key", cfg: apptoken.Config{PublicKeysPEM: pemOf(t, &k.p384.PublicKey)}, token: sign(t, jwt.SigningMethodES256, k.p256, with()), wantErr: apptoken.ErrInvalid, reason: "ES256"},
		{name: "wrong secret", cfg: hmacOnly, token: sign(t, jwt.SigningMethodHS256, otherSecret, with()), wantErr: apptoken.ErrInvalid, reason: "signature"},
		{name: "signature cut", cfg: hmacOnly, token: valid[:len(valid)-4], wantErr: apptoken.ErrInvalid},
		{name: "unknown alg", cfg: hmacOnly, token: rawHS256(`{"alg":"HS999"}`, fmt.Sprintf(`{"exp":%d}`, exp)), wantErr: apptoken.ErrInvalid, reason: `alg "HS999" is not supported`},
		{name: "no alg", cfg: hmacOnly, token: rawHS256(`{"typ":"JWT"}`, fmt.Sprintf(`{"exp":%d}`, exp)), wantErr: apptoken.ErrInvalid, reason: "no alg"},
		{name: "crit header", cfg: hmacOnly, token: rawHS256(`{"alg":"HS256","crit":["b64"],"b64":false}`, fmt.Sprintf(`{"exp":%d}`, exp)), wantErr: apptoken.ErrInvalid, reason: "crit"},
		{name: "hand-signed valid", cfg: hmacOnly, token: rawHS256(`{"alg":"HS256"}`, fmt.Sprintf(`{"exp":%d,"sub":"bob"}`, exp)), want: conn("bob")},

		// Malformed.
		{name: "empty", cfg: hmacOnly, token: "", wantErr: apptoken.ErrInvalid},
		{name: "dots", cfg: hmacOnly, token: "..", wantErr: apptoken.ErrInvalid},
		{name: "four segments", cfg: hmacOnly, token: hs(t, with()) + ".x", wantErr: apptoken.ErrInvalid},
		{name: "claims an array", cfg: hmacOnly, token: rawHS256(`{"alg":"HS256"}`, `[1]`), wantErr: apptoken.ErrInvalid, reason: "not a JSON object"},
		{name: "claims null", cfg: hmacOnly, token: rawHS256(`{"alg":"HS256"}`, `null`), wantErr: apptoken.ErrInvalid, reason: "exp"},
		{name: "oversized", cfg: hmacOnly, token: hs(t, with("pad", strings.Repeat("x", 6200))), wantErr: apptoken.ErrInvalid, reason: "limit 8192"},

		// Issuer and audience.
		{name: "issuer and audience", cfg: withIssuer, token: hs(t, with("iss", "https://app.example", "aud", "herald")), want: conn("alice")},
		{name: "audience in a list", cfg: withIssuer, token: hs(t, with("iss", "https://app.example", "aud", []string{"other", "herald"})), want: conn("alice")},
		{name: "wrong issuer", cfg: withIssuer, token: hs(t, with("iss", "https://evil.example", "aud", "herald")), wantErr: apptoken.ErrInvalid, reason: "issuer"},
		{name: "missing issuer", cfg: withIssuer, token: hs(t, with("aud", "herald")), wantErr: apptoken.ErrInvalid, reason: "iss"},
		{name: "wrong audience", cfg: withIssuer, token: hs(t, with("iss", "https://app.example", "aud", []string{"other"})), wantErr: apptoken.ErrInvalid, reason: "audience"},
		{name: "missing audience", cfg: withIssuer, token: hs(t, with("iss", "https://app.example")), wantErr: apptoken.ErrInvalid, reason: "aud"},
		{name: "issuer a number", cfg: withIssuer, token: hs(t, with("iss", 1, "aud", "herald")), wantErr: apptoken.ErrInvalid, reason: "iss must be a string"},
		{name: "audience a number", cfg: withIssuer, token: hs(t, with("iss", "https://app.example", "aud", 1)), wantErr: apptoken.ErrInvalid, reason: "aud must be"},

		// Subject.
		{name: "numeric sub", cfg: hmacOnly, token: hs(t, with("sub", 42)), wantErr: apptoken.ErrInvalid, reason: `"sub":"42"`},
		{name: "sub an object", cfg: hmacOnly, token: hs(t, with("sub", map[string]any{})), wantErr: apptoken.ErrInvalid, reason: "sub must be a string"},
		{name: "sub 200 bytes", cfg: hmacOnly, token: hs(t, with("sub", strings.Repeat("s", 200))), want: conn(strings.Repeat("s", 200))},
		{name: "sub 201 bytes", cfg: hmacOnly, token: hs(t, with("sub", strings.Repeat("s", 201))), wantErr: apptoken.ErrInvalid, reason: "sub is 201 bytes"},

		// Channels.
		{name: "channel and channels merged", cfg: hmacOnly, token: hs(t, with("channel", "b", "channels", []string{"a", "b", "a", "c"})), subscription: true, want: conn("alice", "b", "a", "c")},
		{name: "channel alone", cfg: hmacOnly, token: hs(t, with("channel", "news")), subscription: true, want: conn("alice", "news")},
		{name: "subscription without channel", cfg: hmacOnly, token: hs(t, with()), subscription: true, wantErr: apptoken.ErrInvalid, reason: "no channel"},
		{name: "subscription with empty channels", cfg: hmacOnly, token: hs(t, with("channels", []string{})), subscription: true, wantErr: apptoken.ErrInvalid, reason: "no channel"},
		{name: "subscription with null channel", cfg: hmacOnly, token: hs(t, with("channel", nil, "channels", nil)), subscription: true, wantErr: apptoken.ErrInvalid, reason: "no channel"},
		{name: "channels with a number", cfg: hmacOnly, token: hs(t, with("channels", []any{"a", 5})), wantErr: apptoken.ErrInvalid, reason: "channels[1] must be a string"},
		{name: "channels with null", cfg: hmacOnly, token: hs(t, with("channels", []any{nil})), wantErr: apptoken.ErrInvalid, reason: "channels[0] must be a string"},
		{name: "channels a string", cfg: hmacOnly, token: hs(t, with("channels", "a")), wantErr: apptoken.ErrInvalid, reason: "channels must be an array"},
		{name: "channel a number", cfg: hmacOnly, token: hs(t, with("channel", 5)), wantErr: apptoken.ErrInvalid, reason: "channel must be a string"},
		{name: "channel an array", cfg: hmacOnly, token: hs(t, with("channel", []string{"a"})), wantErr: apptoken.ErrInvalid, reason: "channel must be a string"},
		{name: "empty channel", cfg: hmacOnly, token: hs(t, with("channels", []string{"a", ""})), wantErr: apptoken.ErrInvalid, reason: "channels[1] is empty"},
		{name: "channel 100 bytes", cfg: hmacOnly, token: hs(t, with("channel", strings.Repeat("c", 100))), subscription: true, want: conn("alice", strings.Repeat("c", 100))},
		{name: "channel 101 bytes", cfg: hmacOnly, token: hs(t, with("channel", strings.Repeat("c", 101))), wantErr: apptoken.ErrInvalid, reason: "channel is 101 bytes"},
		{name: "1000 channels", cfg: hmacOnly, token: hs(t, with("channels", names(1000))), subscription: true, want: conn("alice", stringsOf(names(1000))...)},
		{name: "1001 channels", cfg: hmacOnly, token: hs(t, with("channels", names(1001))), wantErr: apptoken.ErrInvalid, reason: "1001 entries"},
		{name: "1001 entries of one channel", cfg: hmacOnly, token: hs(t, with("channels", slices.Repeat([]string{"a"}, 1001))), wantErr: apptoken.ErrInvalid, reason: "1001 entries"},
		{name: "1000 channels and another channel", cfg: hmacOnly, token: hs(t, with("channel", "zzz", "channels", names(1000))), wantErr: apptoken.ErrInvalid, reason: "grants 1001 channels"},

		// Info.
		{name: "info", cfg: hmacOnly, token: hs(t, with("info", map[string]any{"a": []int{1}})), want: apptoken.Claims{Subject: "alice", Expires: now.Add(time.Hour), Info: json.RawMessage(`{"a":[1]}`)}},
		{name: "info null", cfg: hmacOnly, token: hs(t, with("info", nil)), want: conn("alice")},
		{name: "info an array", cfg: hmacOnly, token: hs(t, with("info", []int{1})), wantErr: apptoken.ErrInvalid, reason: "info must be a JSON object"},
		{name: "info a string", cfg: hmacOnly, token: hs(t, with("info", "x")), wantErr: apptoken.ErrInvalid, reason: "info must be a JSON object"},
		{name: "info over 4 KiB", cfg: hmacOnly, token: hs(t, with("info", map[string]string{"a": strings.Repeat("i", 4096)})), wantErr: apptoken.ErrInvalid, reason: "info is"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, tc.cfg)
			verify := v.Connection
			if tc.subscription {
				verify = v.Subscription
			}
			c, err := verify(tc.token)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				checkClaims(t, c, tc.want)
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			t.Log(err)
			if errors.Is(err, apptoken.ErrExpired) && errors.Is(err, apptoken.ErrInvalid) {
				t.Errorf("err = %v is both expired and invalid", err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("err = %q, want it to say %q", err, tc.reason)
			}
			if _, rest, _ := strings.Cut(tc.token, "."); len(rest) > 20 && strings.Contains(err.Error(), rest) || strings.Contains(err.Error(), secret) {
				t.Errorf("err = %q quotes the token or the secret", err)
			}
			if c.Subject != "" || c.Channels != nil || c.Info != nil || !c.Expires.IsZero() {
				t.Errorf("claims = %+v returned with an error", c)
			}
		})
	}
}

func stringsOf(a []any) []string {
	out := make([]string, len(a))
	for i, s := range a {
		out[i] = s.(string)
	}
	return out
}

// TestTokenLength checks the bound on either side: the longest valid token
// under 8 KiB passes, one byte more is refused.
func TestTokenLength(t *testing.T) {
	v := newVerifier(t, apptoken.Config{HMACSecret: []byte(secret)})
	var fits string
	for n := 5900; ; n++ {
		token := hs(t, with("pad", strings.Repeat("x", n)))
		if len(token) <= 8192 {
			fits = token
			continue
		}
		if len(fits) < 8190 {
			t.Fatalf("longest token under the limit is %d bytes; the test cannot reach 8192", len(fits))
		}
		if _, err := v.Connection(fits); err != nil {
			t.Errorf("%d-byte token: %v", len(fits), err)
		}
		if _, err := v.Connection(token); !errors.Is(err, apptoken.ErrInvalid) || !strings.Contains(err.Error(), "limit") {
			t.Errorf("%d-byte token: err = %v, want ErrInvalid for its length", len(token), err)
		}
		return
	}
}

func TestNew(t *testing.T) {
	k := keys()
	edPEM := func(n int) []byte {
		var out []byte
		for range n {
			pub, _, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, pemOf(t, pub)...)
		}
		return out
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(k.ed)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	valid := pemOf(t, k.edPub)

	for _, tc := range []struct {
		name string
		cfg  apptoken.Config
		err  string // "" for success
	}{
		{"HMAC", apptoken.Config{HMACSecret: []byte(secret)}, ""},
		{"16 keys", apptoken.Config{PublicKeysPEM: edPEM(16)}, ""},
		{"text around blocks", apptoken.Config{PublicKeysPEM: slices.Concat([]byte("app key:\n"), valid, []byte("\n\n"))}, ""},
		{"no key", apptoken.Config{}, "no key configured"},
		{"empty secret, no PEM", apptoken.Config{HMACSecret: []byte{}}, "no key configured"},
		{"short secret", apptoken.Config{HMACSecret: []byte(secret[1:])}, "HMACSecret is 31 bytes, need at least 32"},
		{"negative leeway", apptoken.Config{HMACSecret: []byte(secret), Leeway: -time.Second}, "negative"},
		{"not PEM", apptoken.Config{PublicKeysPEM: []byte("ssh-ed25519 AAAA")}, "no PEM block"},
		{"truncated second block", apptoken.Config{PublicKeysPEM: slices.Concat(valid, valid[:len(valid)-30])}, "after block 1"},
		{"private key", apptoken.Config{PublicKeysPEM: privPEM}, "block 1: is a PRIVATE KEY"},
		{"corrupt DER", apptoken.Config{PublicKeysPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}})}, "parse public key"},
		{"unknown block type", apptoken.Config{PublicKeysPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{1}})}, `"EC PARAMETERS"`},
		{"P-224", apptoken.Config{PublicKeysPEM: pemOf(t, &p224.PublicKey)}, "curve P-224"},
		{"X25519", apptoken.Config{PublicKeysPEM: pemOf(t, x25519.PublicKey())}, "*ecdh.PublicKey is not supported"},
		{"RSA 1024", apptoken.Config{PublicKeysPEM: pemOf(t, &rsa1024.PublicKey)}, "1024 bits"},
		{"17 keys", apptoken.Config{PublicKeysPEM: edPEM(17)}, "more than 16"},
		{"bad PEM after a good secret", apptoken.Config{HMACSecret: []byte(secret), PublicKeysPEM: []byte("x")}, "no PEM block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := apptoken.New(tc.cfg)
			if tc.err == "" {
				if err != nil || v == nil {
					t.Fatalf("New = %v, %v; want a verifier", v, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("New error = %v, want one saying %q", err, tc.err)
			}
			if strings.Contains(err.Error(), secret[1:]) {
				t.Errorf("New error %q quotes the secret", err)
			}
		})
	}
}

// TestSecretCopied checks that a caller reusing its buffer does not change
// the key.
func TestSecretCopied(t *testing.T) {
	buf := []byte(secret)
	v := newVerifier(t, apptoken.Config{HMACSecret: buf})
	copy(buf, strings.Repeat("z", len(buf)))
	if _, err := v.Connection(hs(t, with())); err != nil {
		t.Fatalf("after the caller's buffer changed: %v", err)
	}
}

func TestConcurrent(t *testing.T) {
	v := newVerifier(t, apptoken.Config{HMACSecret: []byte(secret)})
	token := hs(t, with("channel", "news"))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if c, err := v.Subscription(token); err != nil || c.Subject != "alice" {
					t.Errorf("Subscription = %+v, %v", c, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
