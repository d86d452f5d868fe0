package auth

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestTokenFromRequest(t *testing.T) {
	for _, tc := range []struct {
		name       string
		header     []string
		cookie     string
		target     string
		allowQuery bool
		want       string
	}{
		{name: "nothing", target: "/", want: ""},
		{name: "header", header: []string{"Bearer hdr"}, want: "hdr"},
		{name: "header scheme is case-insensitive", header: []string{"bearer hdr"}, want: "hdr"},
		{name: "header beats cookie and query", header: []string{"Bearer hdr"}, cookie: "ck", target: "/?token=q", allowQuery: true, want: "hdr"},
		{name: "cookie", cookie: "ck", want: "ck"},
		{name: "cookie beats query", cookie: "ck", target: "/?token=q", allowQuery: true, want: "ck"},
		{name: "query", target: "/ws?token=q", allowQuery: true, want: "q"},
		{name: "query not allowed", target: "/ws?token=q", want: ""},
		{name: "basic auth", header: []string{"Basic dXNlcjpwYXNz"}, cookie: "ck", want: ""},
		{name: "scheme only", header: []string{"Bearer"}, cookie: "ck", want: ""},
		{name: "empty credential", header: []string{"Bearer   "}, want: ""},
		{name: "raw token without scheme", header: []string{"eyJhbGciOiJIUzI1NiJ9.e30.sig"}, want: ""},
		{name: "simplejwt JWT scheme", header: []string{"JWT abc"}, want: ""},
		{name: "two credentials", header: []string{"Bearer a b"}, want: ""},
		{name: "repeated header", header: []string{"Bearer a", "Bearer b"}, want: ""},
		{name: "empty cookie falls through", cookie: "", target: "/?token=q", allowQuery: true, want: "q"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := tc.target
			if target == "" {
				target = "/"
			}
			r := httptest.NewRequest(http.MethodGet, target, nil)
			for _, h := range tc.header {
				r.Header.Add("Authorization", h)
			}
			if tc.cookie != "" {
				r.AddCookie(&http.Cookie{Name: CookieName, Value: tc.cookie})
			}
			r.AddCookie(&http.Cookie{Name: "other", Value: "x"})
			if got := TokenFromRequest(r, tc.allowQuery); got != tc.want {
				t.Errorf("TokenFromRequest = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestClientIP(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remote string
		xff    []string
		trust  bool
		want   string
	}{
		{name: "ipv4", remote: "203.0.113.7:5555", want: "203.0.113.7"},
		{name: "ipv6", remote: "[2001:db8::1]:5555", want: "2001:db8::1"},
		{name: "ipv6 zone dropped", remote: "[fe80::1%eth0]:5555", want: "fe80::1"},
		{name: "mapped ipv4", remote: "[::ffff:203.0.113.7]:5555", want: "203.0.113.7"},
		{name: "no port", remote: "203.0.113.7", want: "203.0.113.7"},
		{name: "unparsable", remote: "@unix", want: "@unix"},
		{name: "xff ignored when untrusted", remote: "10.0.0.1:1", xff: []string{"198.51.100.1"}, want: "10.0.0.1"},
		{name: "xff single", remote: "10.0.0.1:1", xff: []string{"198.51.100.1"}, trust: true, want: "198.51.100.1"},
		{name: "xff last entry wins", remote: "10.0.0.1:1", xff: []string{"1.1.1.1, 198.51.100.1"}, trust: true, want: "198.51.100.1"},
		{name: "xff spoofed prefix", remote: "10.0.0.1:1", xff: []string{"evil, 6.6.6.6", "198.51.100.1"}, trust: true, want: "198.51.100.1"},
		{name: "xff with port", remote: "10.0.0.1:1", xff: []string{"198.51.100.1:443"}, trust: true, want: "198.51.100.1"},
		{name: "xff ipv6", remote: "10.0.0.1:1", xff: []string{"2001:db8::5"}, trust: true, want: "2001:db8::5"},
		{name: "xff garbage falls back", remote: "10.0.0.1:1", xff: []string{"198.51.100.1, unknown"}, trust: true, want: "10.0.0.1"},
		{name: "xff absent", remote: "10.0.0.1:1", trust: true, want: "10.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/login", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := ClientIP(r, tc.trust); got != tc.want {
				t.Errorf("ClientIP = %q, want %q", got, tc.want)
			}
		})
	}
}
