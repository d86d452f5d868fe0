package auth

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// CookieName is the cookie that carries the access token for browser clients.
const CookieName = "herald_access"

// TokenFromRequest returns the bearer token carried by r, or "" if there is
// none. It looks, in order, at the Authorization header, the CookieName
// cookie and, if allowQuery is set, the "token" query parameter. Browsers
// cannot set headers on WebSocket handshakes, hence the query fallback;
// enable it only for such endpoints, since URLs end up in access logs.
//
// A request that sends an Authorization header gets exactly what that
// header says: if it is not a well-formed Bearer credential the result is
// "", rather than silently authenticating with an ambient cookie instead.
func TokenFromRequest(r *http.Request, allowQuery bool) string {
	if vals := r.Header.Values("Authorization"); len(vals) > 0 {
		if len(vals) != 1 {
			return ""
		}
		scheme, token, ok := strings.Cut(vals[0], " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return ""
		}
		token = strings.TrimSpace(token)
		if token == "" || strings.ContainsAny(token, " \t") {
			return ""
		}
		return token
	}
	if c, err := r.Cookie(CookieName); err == nil && c.Value != "" {
		return c.Value
	}
	if allowQuery {
		return r.URL.Query().Get("token")
	}
	return ""
}

// ClientIP returns the address of the client that sent r.
//
// Without trustProxy it is the host part of r.RemoteAddr. With trustProxy,
// herald is assumed to sit behind exactly one reverse proxy that appends
// the peer address to X-Forwarded-For, and the last entry of that header is
// used: it is the only one written by the proxy, while everything to its
// left is whatever the client chose to send. If the header is absent or its
// last entry is not an IP address, RemoteAddr is used.
func ClientIP(r *http.Request, trustProxy bool) string {
	if trustProxy {
		if vals := r.Header.Values("X-Forwarded-For"); len(vals) > 0 {
			last := vals[len(vals)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if ip, ok := parseIP(strings.TrimSpace(last)); ok {
				return ip.String()
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ip, ok := parseIP(host); ok {
		return ip.String()
	}
	return host
}

// parseIP accepts an address with or without a port and normalises
// IPv4-mapped IPv6 addresses and zones away.
func parseIP(s string) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		ip = ap.Addr()
	}
	return ip.Unmap().WithZone(""), true
}
