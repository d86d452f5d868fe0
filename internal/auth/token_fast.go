package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"strings"
	"sync"
	"time"
)

// The fast path of parse. Every WebSocket handshake with a token verifies
// it, and golang-jwt's general parser spends most of its time in
// reflection-driven JSON decoding (a nested json.Unmarshal per date claim,
// deep enough to grow the handshake goroutine's stack): about a third of
// the server's CPU per authenticated handshake. Tokens in the one shape
// herald and djangorestframework-simplejwt issue — the HS256 header as
// both write it, a flat payload of token_type, user_id, exp and
// optionally iat and jti, in canonical JSON — are verified here with the
// same checks; anything else (another header, another claim, escapes,
// spaces, fractions, an expired or forged token) goes to the general
// parser, which decides and words the error. So the fast path only ever
// accepts what the general parser accepts (FuzzFastParseAgrees).

// hs256Header is the base64url of {"alg":"HS256","typ":"JWT"}, the header
// golang-jwt and PyJWT (sorted keys, compact) write for HS256.
const hs256Header = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

var strictB64 = base64.RawURLEncoding.Strict()

// macs pools HMAC-SHA256 states keyed with an issuer's secret.
type macs struct{ pool sync.Pool }

func newMACs(secret []byte) *macs {
	m := &macs{}
	m.pool.New = func() any { return hmac.New(sha256.New, secret) }
	return m
}

// parseFast returns the user of token when it is a valid, unexpired token
// of type wantType in the shape described above; ok is false otherwise,
// and the general parser must decide.
func (i *Issuer) parseFast(token, wantType string) (userID int64, ok bool) {
	header, rest, found := strings.Cut(token, ".")
	if !found || header != hs256Header {
		return 0, false
	}
	payload, sig, found := strings.Cut(rest, ".")
	if !found || strings.IndexByte(sig, '.') >= 0 {
		return 0, false
	}
	var sum, want [sha256.Size]byte
	if strictB64.DecodedLen(len(sig)) != len(want) {
		return 0, false
	}
	if n, err := strictB64.Decode(want[:], []byte(sig)); err != nil || n != len(want) {
		return 0, false
	}
	mac := i.macs.pool.Get().(hash.Hash)
	mac.Reset()
	mac.Write([]byte(token[:len(header)+1+len(payload)]))
	mac.Sum(sum[:0])
	i.macs.pool.Put(mac)
	if !hmac.Equal(sum[:], want[:]) {
		return 0, false
	}
	var buf [512]byte
	if strictB64.DecodedLen(len(payload)) > len(buf) {
		return 0, false
	}
	n, err := strictB64.Decode(buf[:], []byte(payload))
	if err != nil {
		return 0, false
	}
	c, ok := flatClaims(buf[:n])
	if !ok || c.tokenType != wantType || c.userID <= 0 || c.exp <= 0 {
		return 0, false
	}
	// golang-jwt's check with WithLeeway: valid while now is before exp
	// plus the leeway.
	if !i.now().Before(time.Unix(c.exp, 0).Add(leeway)) {
		return 0, false // expired: the general parser says so
	}
	return c.userID, true
}

// fastClaims are the claims parseFast reads.
type fastClaims struct {
	tokenType string
	userID    int64
	exp       int64
}

// flatClaims parses a payload of the form
// {"token_type":"…","user_id":N,"exp":N[,"iat":N][,"jti":"…"]} in any order,
// each key once, no whitespace, strings without escapes or control
// characters, numbers as positive integers without sign, fraction,
// exponent or leading zero. Anything else is not ok.
func flatClaims(b []byte) (c fastClaims, ok bool) {
	const (
		seenType = 1 << iota
		seenUser
		seenExp
		seenIat
		seenJti
	)
	seen := 0
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return c, false
	}
	b = b[1 : len(b)-1]
	for len(b) > 0 {
		key, rest, ok := jsonString(b)
		if !ok || len(rest) == 0 || rest[0] != ':' {
			return c, false
		}
		rest = rest[1:]
		var bit int
		switch key {
		case "token_type", "jti":
			var s string
			if s, rest, ok = jsonString(rest); !ok {
				return c, false
			}
			bit = seenJti
			if key == "token_type" {
				bit, c.tokenType = seenType, s
			}
		case "user_id", "exp", "iat":
			var v int64
			if v, rest, ok = jsonUint(rest); !ok {
				return c, false
			}
			switch key {
			case "user_id":
				bit, c.userID = seenUser, v
			case "exp":
				bit, c.exp = seenExp, v
			default:
				bit = seenIat
			}
		default:
			return c, false
		}
		if seen&bit != 0 {
			return c, false
		}
		seen |= bit
		if len(rest) > 0 {
			if rest[0] != ',' || len(rest) == 1 {
				return c, false
			}
			rest = rest[1:]
		}
		b = rest
	}
	return c, seen&(seenType|seenUser|seenExp) == seenType|seenUser|seenExp
}

// jsonString reads a JSON string without escapes or control characters at
// the start of b.
func jsonString(b []byte) (s string, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return "", nil, false
	}
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return string(b[1:i]), b[i+1:], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return "", nil, false
		}
	}
	return "", nil, false
}

// jsonUint reads a positive integer of at most 15 digits (exact as a
// float64, as golang-jwt reads dates) at the start of b.
func jsonUint(b []byte) (v int64, rest []byte, ok bool) {
	i := 0
	// A 16th digit is read only to refuse the number: v never overflows.
	for ; i < len(b) && i <= 15 && b[i] >= '0' && b[i] <= '9'; i++ {
		v = v*10 + int64(b[i]-'0')
	}
	if i == 0 || i > 15 || b[0] == '0' {
		return 0, nil, false
	}
	return v, b[i:], true
}
