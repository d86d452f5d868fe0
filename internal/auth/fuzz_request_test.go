package auth

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// FuzzRequestHeaders reads arbitrary Authorization and X-Forwarded-For
// headers (the latter possibly sent twice) from an arbitrary peer address,
// with and without trusting a proxy. Nothing may panic; a token comes only
// from a well-formed Bearer header when one is sent; the client address
// ignores X-Forwarded-For unless the proxy is trusted, and then is either
// the peer's or a normalised IP address taken from the header's last entry.
func FuzzRequestHeaders(f *testing.F) {
	long := strings.Repeat("a", 1<<16)
	for _, s := range []struct{ authz, xff, xff2, remote string }{
		{"Bearer abc", "203.0.113.7", "", "192.0.2.1:5000"},
		{"bearer abc", "203.0.113.7, 198.51.100.2", "", "192.0.2.1:5000"},
		{"Bearer  abc ", "1.1.1.1,2.2.2.2,", "", "[2001:db8::1]:443"},
		{"Bearer a b", "fe80::1%eth0", "", "[fe80::1%25eth0]:1"},
		{"Bearer\tabc", "[fe80::1%eth0]:8080", "10.0.0.1", "[::ffff:192.0.2.1]:1"},
		{"Basic dXNlcjpwYXNz", "::ffff:203.0.113.7", "", "192.0.2.1"},
		{"Bearer", "203.0.113.7:99999", "", "not an address"},
		{"", "", "", ""},
		{" ", ",", ",", ":"},
		{"Bearer " + long, strings.Repeat(",", 1<<16), "", "192.0.2.1:1"},
		{"Bearer " + long + " x", strings.Repeat("1.2.3.4,", 10000) + "5.6.7.8", strings.Repeat(" ", 1000), "[::1]:1"},
		{"BEARER \u00e9", "\x00", "\xff\xfe", "\x00:0"},
		{"Bearer x", "unknown", "for=192.0.2.60;proto=http", "192.0.2.1:1"},
		{"Bearer x", "2001:db8::1%", "2001:db8::1%25zone", "[2001:db8::1%zone]:1"},
		{"Bearer x", "01.2.3.4", "1.2.3.4.", "1.2.3.4:0"},
	} {
		for _, trust := range []bool{false, true} {
			f.Add(s.authz, s.xff, s.xff2, s.remote, trust)
		}
	}
	f.Fuzz(func(t *testing.T, authz, xff, xff2, remote string, trust bool) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = remote
		r.AddCookie(&http.Cookie{Name: CookieName, Value: "cookie-token"})
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		checkToken(t, r, authz)

		peer := ClientIP(r, trust)
		for _, v := range []string{xff, xff2} {
			if v != "" {
				r.Header.Add("X-Forwarded-For", v)
			}
		}
		got := ClientIP(r, trust)
		if !trust || got == peer {
			if got != peer {
				t.Fatalf("untrusted X-Forwarded-For %q %q moved the client address from %q to %q", xff, xff2, peer, got)
			}
			return
		}
		// Only the proxy's own entry, the very last, may name the client.
		vals := r.Header.Values("X-Forwarded-For")
		last := vals[len(vals)-1]
		last = strings.TrimSpace(last[strings.LastIndexByte(last, ',')+1:])
		a, err := netip.ParseAddr(got)
		if err != nil || a.String() != got || a.Zone() != "" || a.Is4In6() || got != addrOf(last) {
			t.Fatalf("X-Forwarded-For %q %q gave the client address %q (last entry %q)", xff, xff2, got, last)
		}
	})
}

// addrOf is the IP address in s (with or without a port), without zone
// or IPv4 mapping, or "".
func addrOf(s string) string {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("").String()
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("").String()
	}
	return ""
}

// checkToken: a request with an Authorization header is authenticated by
// that header alone, with a Bearer credential that has no blanks in it.
func checkToken(t *testing.T, r *http.Request, authz string) {
	t.Helper()
	tok := TokenFromRequest(r, true)
	switch {
	case authz == "":
		if tok != "cookie-token" {
			t.Fatalf("no Authorization header: token %q, want the cookie's", tok)
		}
	case tok == "":
	case len(authz) < 7 || !strings.EqualFold(authz[:7], "bearer ") || strings.ContainsAny(tok, " \t") ||
		strings.TrimSpace(authz[7:]) != tok:
		t.Fatalf("Authorization %q gave the token %q", authz, tok)
	}
}
