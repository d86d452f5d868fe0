package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
)

// fixedIssuer is a test issuer whose clock stands still, so that the fast
// and the general parser judge expiry at the same moment.
func fixedIssuer(t testing.TB) (*Issuer, time.Time) {
	iss := newTestIssuer(t)
	now := time.Unix(1_800_000_000, 0)
	iss.now = func() time.Time { return now }
	return iss, now
}

// hs256 signs payload, as given, under the HS256 header with testSecret.
func hs256(payload string) string {
	signing := hs256Header + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	m := hmac.New(sha256.New, testSecret)
	m.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// TestFastParseTakesIssuedTokens: the tokens herald issues, and those
// djangorestframework-simplejwt issues (PyJWT: sorted keys, compact), take
// the fast path and give what the general parser gives.
func TestFastParseTakesIssuedTokens(t *testing.T) {
	iss, now := fixedIssuer(t)
	access, refresh, err := iss.Pair(42)
	if err != nil {
		t.Fatal(err)
	}
	exp := now.Add(5 * time.Minute).Unix()
	simplejwt := hs256(fmt.Sprintf(`{"exp":%d,"iat":%d,"jti":"0123456789abcdef0123456789abcdef","token_type":"access","user_id":7}`, exp, now.Unix()))
	for _, tc := range []struct {
		name, token, typ string
		want             int64
	}{
		{"herald access", access, tokenTypeAccess, 42},
		{"herald refresh", refresh, tokenTypeRefresh, 42},
		{"simplejwt access", simplejwt, tokenTypeAccess, 7},
	} {
		id, ok := iss.parseFast(tc.token, tc.typ)
		full, err := iss.parseFull(tc.token, tc.typ)
		if !ok || id != tc.want || err != nil || full != tc.want {
			t.Errorf("%s: fast %d, %v; general %d, %v; want %d from both", tc.name, id, ok, full, err, tc.want)
		}
	}
}

// TestFastParseLeavesTheRest: what the fast path does not take (valid
// tokens in another shape, and everything the general parser refuses)
// goes to the general parser, which still decides it; the leeway is the
// general parser's.
func TestFastParseLeavesTheRest(t *testing.T) {
	iss, now := fixedIssuer(t)
	exp, iat := now.Add(5*time.Minute).Unix(), now.Unix()
	good := fmt.Sprintf(`{"token_type":"access","user_id":42,"exp":%d,"iat":%d,"jti":"ab"}`, exp, iat)
	access, _, err := iss.Pair(42)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(access, ".")
	for _, tc := range []struct {
		name, token string
		accepted    bool // by the general parser
		fast        bool // by the fast path
	}{
		{"spaces", hs256(strings.ReplaceAll(good, ",", ", ")), true, false},
		{"a past nbf", hs256(strings.TrimSuffix(good, "}") + fmt.Sprintf(`,"nbf":%d}`, iat)), true, false},
		{"fractional exp", hs256(fmt.Sprintf(`{"token_type":"access","user_id":42,"exp":%d.5}`, exp)), true, false},
		{"escaped token_type", hs256(fmt.Sprintf(`{"token_type":"acc\u0065ss","user_id":42,"exp":%d}`, exp)), true, false},
		{"upper-case key", hs256(fmt.Sprintf(`{"TOKEN_TYPE":"access","user_id":42,"exp":%d}`, exp)), true, false},
		{"duplicate user_id", hs256(fmt.Sprintf(`{"token_type":"access","user_id":1,"user_id":42,"exp":%d}`, exp)), true, false},
		{"expired", hs256(fmt.Sprintf(`{"token_type":"access","user_id":42,"exp":%d}`, iat-int64(leeway/time.Second))), false, false},
		{"within the leeway", hs256(fmt.Sprintf(`{"token_type":"access","user_id":42,"exp":%d}`, iat-int64(leeway/time.Second)+1)), true, true},
		{"a future nbf", hs256(strings.TrimSuffix(good, "}") + fmt.Sprintf(`,"nbf":%d}`, exp)), false, false},
		{"refresh", hs256(strings.Replace(good, "access", "refresh", 1)), false, false},
		{"no exp", hs256(`{"token_type":"access","user_id":42}`), false, false},
		{"zero user_id", hs256(fmt.Sprintf(`{"token_type":"access","user_id":0,"exp":%d}`, exp)), false, false},
		{"negative user_id", hs256(fmt.Sprintf(`{"token_type":"access","user_id":-4,"exp":%d}`, exp)), false, false},
		{"trailing comma", hs256(strings.TrimSuffix(good, "}") + ",}"), false, false},
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(good)) + "." + parts[2], false, false},
		{"tampered signature", parts[0] + "." + parts[1] + "." + flip(parts[2]), false, false},
		{"four segments", access + ".x", false, false},
	} {
		if id, ok := iss.parseFast(tc.token, tokenTypeAccess); ok != tc.fast || (ok && id != 42) {
			t.Errorf("%s: the fast path took it: %v (user %d); want %v", tc.name, ok, id, tc.fast)
		}
		id, err := iss.ParseAccess(tc.token)
		if got := err == nil; got != tc.accepted || (got && id != 42) {
			t.Errorf("%s: ParseAccess = %d, %v; want accepted %v", tc.name, id, err, tc.accepted)
		}
	}
}

// FuzzFastParseAgrees signs arbitrary payloads: whatever the fast path
// accepts, the general parser accepts too, as the same user.
func FuzzFastParseAgrees(f *testing.F) {
	iss, now := fixedIssuer(f)
	exp := now.Add(time.Minute).Unix()
	for _, p := range []string{
		fmt.Sprintf(`{"token_type":"access","user_id":42,"exp":%d}`, exp),
		fmt.Sprintf(`{"exp":%d,"iat":%d,"jti":"ab","token_type":"access","user_id":7}`, exp, now.Unix()),
		fmt.Sprintf(`{"token_type":"access","user_id":42,"exp":%d,"nbf":1}`, exp),
		fmt.Sprintf(`{"token_type":"access","user_id":042,"exp":%d}`, exp),
		fmt.Sprintf(`{"token_type":"access","user_id":42,"exp":%de0}`, exp),
		fmt.Sprintf(`{"token_type":"access","user_id":42,"exp":%d} `, exp),
		fmt.Sprintf(`{"token_type":"access","user_id":42,"exp":%d}{}`, exp),
		fmt.Sprintf(`{"token_type":"access","user_id":42,"Exp":%d}`, exp),
		`{"token_type":"access","user_id":42,"exp":1}`,
		`{}`,
	} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		token := hs256(payload)
		id, ok := iss.parseFast(token, tokenTypeAccess)
		if !ok {
			return
		}
		full, err := iss.parseFull(token, tokenTypeAccess)
		if err != nil || full != id {
			t.Fatalf("payload %q: the fast path accepted user %d, the general parser says %d, %v", payload, id, full, err)
		}
	})
}

func BenchmarkParseAccess(b *testing.B) {
	iss := newTestIssuer(b)
	access, err := iss.Access(42)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := iss.ParseAccess(access); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("general", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := iss.parseFull(access, tokenTypeAccess); err != nil {
				b.Fatal(err)
			}
		}
	})
}
