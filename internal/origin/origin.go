// Package origin decides which web pages may use herald from a browser: the
// page's Origin against the server's own host and the --allowed-origins
// list. The REST API's CORS and cross-site write checks and the real-time
// handshakes all ask it, so the three can never disagree.
package origin

import "strings"

// Same reports whether origin names the host the request was sent to,
// whatever its scheme (a TLS-terminating proxy may hide it): the page is
// herald's own. host is the Host header, which a browser cannot forge.
func Same(origin, host string) bool {
	_, rest, ok := strings.Cut(origin, "://")
	return ok && host != "" && strings.EqualFold(rest, host)
}

// Allowed reports whether origin is on the allow-list: an exact origin
// (case-insensitive), "*" for any, or "https://*.example.com" for any
// subdomain of example.com. An empty list allows none.
func Allowed(allowed []string, origin string) bool {
	for _, a := range allowed {
		if a == "*" || strings.EqualFold(a, origin) {
			return true
		}
		if scheme, host, ok := strings.Cut(a, "://*."); ok {
			p := scheme + "://"
			if len(origin) > len(p) && strings.EqualFold(origin[:len(p)], p) &&
				strings.HasSuffix(strings.ToLower(origin[len(p):]), "."+strings.ToLower(host)) {
				return true
			}
		}
	}
	return false
}
