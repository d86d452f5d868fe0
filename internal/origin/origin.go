// Package origin decides which web pages may use herald from a browser: the
// page's Origin against the server's own host and the --allowed-origins
// list. The REST API's CORS, cross-site write checks and pagination links
// and the real-time handshakes all ask it, so they can never disagree.
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
		scheme, pattern, ok := strings.Cut(a, "://")
		domain, wild := strings.CutPrefix(pattern, "*.")
		if !ok || !wild {
			continue
		}
		if s, host, ok := strings.Cut(origin, "://"); ok && strings.EqualFold(s, scheme) && subdomain(host, domain) {
			return true
		}
	}
	return false
}

// HostAllowed reports whether host (a Host header) is the host of an
// allowed origin, or a subdomain of a "https://*.example.com" one. "*"
// names no host: it allows any page, not any name for the server.
func HostAllowed(allowed []string, host string) bool {
	if host == "" {
		return false
	}
	for _, a := range allowed {
		_, pattern, ok := strings.Cut(a, "://")
		if !ok {
			continue
		}
		if strings.EqualFold(pattern, host) {
			return true
		}
		if domain, wild := strings.CutPrefix(pattern, "*."); wild && subdomain(host, domain) {
			return true
		}
	}
	return false
}

// subdomain reports whether host is a subdomain of domain (not domain
// itself), case-insensitively.
func subdomain(host, domain string) bool {
	n := len(host) - len(domain)
	return n > 1 && host[n-1] == '.' && strings.EqualFold(host[n:], domain)
}
