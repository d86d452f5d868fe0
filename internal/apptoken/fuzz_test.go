package apptoken_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald/internal/apptoken"
)

func FuzzVerify(f *testing.F) {
	k := keys()
	v := newVerifier(f, apptoken.Config{
		HMACSecret:    []byte(secret),
		PublicKeysPEM: pemOf(f, &k.rsa.PublicKey, &k.p256.PublicKey, k.edPub),
	})
	exp := now.Add(time.Hour).Unix()
	full := with("channel", "a", "channels", []string{"b", "a"}, "info", map[string]any{"k": []int{1}})
	for _, s := range []string{
		hs(f, full),
		sign(f, jwt.SigningMethodRS256, k.rsa, full),
		sign(f, jwt.SigningMethodPS256, k.rsa, with()),
		sign(f, jwt.SigningMethodES256, k.p256, with("channel", "x")),
		sign(f, jwt.SigningMethodEdDSA, k.ed, with("sub", deleted{})),
		hs(f, with("exp", now.Add(-time.Hour).Unix())),
		hs(f, with("sub", 42)),
		sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, with()),
		"",
		"..",
		"a.b.c",
		strings.Repeat("A", 3000) + "." + strings.Repeat("B", 3000) + "." + strings.Repeat("C", 2000),
		rawHS256(`{"alg":"HS256"}`, fmt.Sprintf(`{"exp":%d,"info":%s1%s}`, exp, strings.Repeat(`{"a":`, 500), strings.Repeat("}", 500))),
		rawHS256(`{"alg":"HS256"}`, fmt.Sprintf(`{"exp":%d,"channels":%s%s}`, exp, strings.Repeat("[", 2000), strings.Repeat("]", 2000))),
		rawHS256(`{"alg":"HS256","x":`+strings.Repeat("[", 1000)+strings.Repeat("]", 1000)+`}`, fmt.Sprintf(`{"exp":%d}`, exp)),
		hs(f, with("pad", strings.Repeat("x", 6700))), // 9 KiB
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		for name, verify := range map[string]func(string) (apptoken.Claims, error){
			"Connection":   v.Connection,
			"Subscription": v.Subscription,
		} {
			c, err := verify(token)
			if err != nil {
				if errors.Is(err, apptoken.ErrExpired) == errors.Is(err, apptoken.ErrInvalid) {
					t.Fatalf("%s: error %q is not exactly one of ErrExpired and ErrInvalid", name, err)
				}
				continue
			}
			if len(token) > 8192 {
				t.Fatalf("%s accepted a %d-byte token", name, len(token))
			}
			if len(c.Subject) > 200 {
				t.Fatalf("%s: subject of %d bytes", name, len(c.Subject))
			}
			if len(c.Channels) > 1000 || name == "Subscription" && len(c.Channels) == 0 {
				t.Fatalf("%s: %d channels", name, len(c.Channels))
			}
			seen := make(map[string]bool)
			for _, ch := range c.Channels {
				if ch == "" || len(ch) > 100 || seen[ch] {
					t.Fatalf("%s: channel %q empty, too long or repeated", name, ch)
				}
				seen[ch] = true
			}
			if c.Info != nil && (len(c.Info) > 4096 || c.Info[0] != '{') {
				t.Fatalf("%s: info %.50q", name, c.Info)
			}
			if !c.Expires.After(now.Add(-30 * time.Second)) {
				t.Fatalf("%s: accepted a token that expired at %v", name, c.Expires)
			}
		}
	})
}
