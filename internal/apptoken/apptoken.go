// Package apptoken verifies JWTs that a third-party app's backend issues to
// its users: connection tokens, which authenticate a client connection as
// the app's user, and subscription tokens, which let a client join named
// channels. Herald never issues these tokens; it only checks them against
// the keys the app configured (an HMAC secret and/or public keys).
//
// Tokens come from the network, so everything about them is bounded: their
// length, the number and size of channels, and the size of each claim.
package apptoken

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Errors returned by Connection and Subscription, wrapped with a short
// reason meant for the client. A token that is both expired and otherwise
// wrong is ErrInvalid, so ErrExpired always means "genuine but stale: fetch
// a new token and retry".
var (
	ErrExpired = errors.New("token expired")
	ErrInvalid = errors.New("invalid token")
)

const (
	defaultLeeway = 30 * time.Second

	maxTokenLen   = 8 << 10
	maxChannels   = 1000
	maxChannelLen = 100
	maxSubjectLen = 200
	maxInfoLen    = 4 << 10
)

// Config says which keys the app signs with. At least one of HMACSecret or
// PublicKeysPEM must be set.
type Config struct {
	// HMACSecret verifies HS256, HS384 and HS512; it must be at least 32
	// bytes.
	HMACSecret []byte
	// PublicKeysPEM holds up to 16 PEM blocks, each an RSA (RS* and PS*),
	// ECDSA (ES256, ES384 or ES512, matching the curve) or Ed25519 (EdDSA)
	// public key, or a certificate holding one.
	PublicKeysPEM []byte
	// Issuer, when set, must equal the "iss" claim.
	Issuer string
	// Audience, when set, must be in the "aud" claim.
	Audience string
	// Leeway is the clock skew allowed on exp, nbf and iat; 0 means 30s.
	Leeway time.Duration
	// Now replaces time.Now in tests.
	Now func() time.Time
}

// Claims are what a verified token says.
type Claims struct {
	// Subject is the app's user id ("sub"); "" is an anonymous user.
	Subject string
	// Channels are the channels the token grants: "channel" then
	// "channels", without duplicates.
	Channels []string
	// Expires is the "exp" claim, which every token must have.
	Expires time.Time
	// Info is the "info" claim, a JSON object the app attaches to the
	// user; nil when absent.
	Info json.RawMessage
}

// Verifier checks tokens signed with the keys of one app. It is safe for
// concurrent use.
type Verifier struct {
	keys      keySet
	parser    *jwt.Parser
	validator *jwt.Validator
}

// New returns a Verifier for the keys and expectations in cfg.
func New(cfg Config) (*Verifier, error) {
	if len(cfg.HMACSecret) == 0 && len(cfg.PublicKeysPEM) == 0 {
		return nil, errors.New("no key configured: set HMACSecret or PublicKeysPEM")
	}
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("leeway %v is negative", cfg.Leeway)
	}
	keys := keySet{}
	if len(cfg.HMACSecret) > 0 {
		if len(cfg.HMACSecret) < minSecretLen {
			return nil, fmt.Errorf("HMACSecret is %d bytes, need at least %d", len(cfg.HMACSecret), minSecretLen)
		}
		keys.add(bytes.Clone(cfg.HMACSecret), hmacAlgs...)
	}
	if len(cfg.PublicKeysPEM) > 0 {
		if err := keys.parsePublicKeys(cfg.PublicKeysPEM); err != nil {
			return nil, err
		}
	}

	leeway := cfg.Leeway
	if leeway == 0 {
		leeway = defaultLeeway
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	checks := []jwt.ParserOption{
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
	}
	if cfg.Issuer != "" {
		checks = append(checks, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		checks = append(checks, jwt.WithAudience(cfg.Audience))
	}
	return &Verifier{
		keys: keys,
		parser: jwt.NewParser(
			// Only the algs of configured keys: this rules out "none" and
			// an HS256 token "signed" with a public key as the secret.
			jwt.WithValidMethods(slices.Sorted(maps.Keys(keys))),
			jwt.WithStrictDecoding(),
			// The claims are type-checked and validated once the
			// signature is known to be good (see verify).
			jwt.WithoutClaimsValidation(),
		),
		validator: jwt.NewValidator(checks...),
	}, nil
}

// Connection verifies a connection token. It needs an exp claim; channels
// are optional. Errors match ErrExpired or ErrInvalid under errors.Is.
func (v *Verifier) Connection(token string) (Claims, error) {
	return v.verify(token, false)
}

// Subscription verifies a subscription token. It needs an exp claim and at
// least one channel. Errors match ErrExpired or ErrInvalid under errors.Is.
func (v *Verifier) Subscription(token string) (Claims, error) {
	return v.verify(token, true)
}

// errCrit refuses a "crit" header: RFC 7515, section 4.1.11, has a verifier
// reject critical extensions it does not implement, and this one implements
// none.
var errCrit = errors.New(`header has "crit" extensions, which are not supported`)

func (v *Verifier) verify(token string, needChannel bool) (Claims, error) {
	if len(token) > maxTokenLen {
		return Claims{}, fmt.Errorf("%w: token is %d bytes, limit %d", ErrInvalid, len(token), maxTokenLen)
	}
	var p payload
	tok, err := v.parser.ParseWithClaims(token, &p, v.keyFunc)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %s", ErrInvalid, v.parseFailure(tok, err))
	}
	c, err := p.decode(needChannel)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := v.validator.Validate(p.RegisteredClaims); err != nil {
		if onlyExpired(err) {
			return Claims{}, fmt.Errorf("%w: exp %s has passed", ErrExpired, c.Expires.UTC().Format(time.RFC3339))
		}
		return Claims{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return c, nil
}

// keyFunc offers every key of the token's alg: without kid support, the
// signature itself says which key made it.
func (v *Verifier) keyFunc(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, errCrit
	}
	return jwt.VerificationKeySet{Keys: v.keys[t.Method.Alg()]}, nil
}

// parseFailure says why the parser refused a token, in words for the app's
// developer rather than the library's.
func (v *Verifier) parseFailure(tok *jwt.Token, err error) string {
	switch {
	case errors.Is(err, errCrit):
		return errCrit.Error()
	case tok != nil && tok.Method != nil && len(v.keys[tok.Method.Alg()]) == 0:
		// Method is one the library knows, so its name is safe to echo.
		return fmt.Sprintf("signed with alg %s, which no configured key uses", tok.Method.Alg())
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "signature does not match any configured key"
	case errors.Is(err, jwt.ErrTokenUnverifiable) && tok != nil:
		if alg, ok := tok.Header["alg"].(string); ok {
			return fmt.Sprintf("alg %.20q is not supported", alg)
		}
		return "header has no alg"
	}
	return err.Error()
}

// onlyExpired reports whether exp is the one check that err, from
// jwt.Validator.Validate, failed: the validator joins one error per failed
// check.
func onlyExpired(err error) bool {
	joined, ok := err.(interface{ Unwrap() []error })
	return ok && len(joined.Unwrap()) == 1 && errors.Is(err, jwt.ErrTokenExpired)
}

// payload is a token's claims as sent. The parser fills raw; decode then
// type-checks it into RegisteredClaims, which jwt.Validator checks, and
// Claims. Decoding into a map keeps claim names case-sensitive, which
// encoding/json's struct fields are not.
type payload struct {
	jwt.RegisteredClaims
	raw map[string]json.RawMessage
}

func (p *payload) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &p.raw); err != nil {
		return errors.New("claims are not a JSON object")
	}
	return nil
}

// get returns the claim name, or nil if it is absent or null.
func (p *payload) get(name string) json.RawMessage {
	b := p.raw[name]
	if string(b) == "null" {
		return nil
	}
	return b
}

func (p *payload) decode(needChannel bool) (Claims, error) {
	rc := &p.RegisteredClaims
	var err error
	if rc.ExpiresAt, err = p.date("exp"); err != nil {
		return Claims{}, err
	}
	if rc.NotBefore, err = p.date("nbf"); err != nil {
		return Claims{}, err
	}
	if rc.IssuedAt, err = p.date("iat"); err != nil {
		return Claims{}, err
	}
	var ok bool
	if rc.Issuer, ok = decodeString(p.get("iss")); !ok {
		return Claims{}, errors.New("iss must be a string")
	}
	if b := p.get("aud"); b != nil {
		if err := json.Unmarshal(b, &rc.Audience); err != nil {
			return Claims{}, errors.New("aud must be a string or an array of strings")
		}
	}

	var c Claims
	if c.Subject, ok = decodeString(p.get("sub")); !ok {
		return Claims{}, errors.New(`sub must be a string, e.g. "sub":"42" rather than "sub":42`)
	}
	if len(c.Subject) > maxSubjectLen {
		return Claims{}, fmt.Errorf("sub is %d bytes, limit %d", len(c.Subject), maxSubjectLen)
	}
	if c.Channels, err = p.channels(); err != nil {
		return Claims{}, err
	}
	if needChannel && len(c.Channels) == 0 {
		return Claims{}, errors.New(`subscription token grants no channel: set "channel" or "channels"`)
	}
	if b := p.get("info"); b != nil {
		if len(b) > maxInfoLen {
			return Claims{}, fmt.Errorf("info is %d bytes, limit %d", len(b), maxInfoLen)
		}
		if b[0] != '{' {
			return Claims{}, errors.New("info must be a JSON object")
		}
		c.Info = b
	}
	if rc.ExpiresAt != nil {
		c.Expires = rc.ExpiresAt.Time
	}
	return c, nil
}

// date decodes a NumericDate claim, insisting on a JSON number where the
// library would also take a string holding one.
func (p *payload) date(name string) (*jwt.NumericDate, error) {
	b := p.get(name)
	if b == nil {
		return nil, nil
	}
	var d jwt.NumericDate
	if c := b[0]; c != '-' && (c < '0' || c > '9') || json.Unmarshal(b, &d) != nil {
		return nil, fmt.Errorf("%s must be a number of seconds since 1970", name)
	}
	return &d, nil
}

// channels merges the "channel" and "channels" claims.
func (p *payload) channels() ([]string, error) {
	var list []json.RawMessage
	if b := p.get("channels"); b != nil {
		if err := json.Unmarshal(b, &list); err != nil {
			return nil, errors.New("channels must be an array of strings")
		}
		if len(list) > maxChannels {
			return nil, fmt.Errorf("channels has %d entries, limit %d", len(list), maxChannels)
		}
	}
	var out []string
	seen := make(map[string]bool)
	// add returns what is wrong with name, or "".
	add := func(name string) string {
		switch {
		case name == "":
			return "is empty"
		case len(name) > maxChannelLen:
			return fmt.Sprintf("is %d bytes, limit %d", len(name), maxChannelLen)
		case !seen[name]:
			seen[name] = true
			out = append(out, name)
		}
		return ""
	}
	if b := p.get("channel"); b != nil {
		name, ok := decodeString(b)
		if !ok {
			return nil, errors.New("channel must be a string")
		}
		if bad := add(name); bad != "" {
			return nil, fmt.Errorf("channel %s", bad)
		}
	}
	for i, b := range list {
		name, ok := decodeString(b)
		if !ok {
			return nil, fmt.Errorf("channels[%d] must be a string", i)
		}
		if bad := add(name); bad != "" {
			return nil, fmt.Errorf("channels[%d] %s", i, bad)
		}
	}
	if len(out) > maxChannels {
		return nil, fmt.Errorf("token grants %d channels, limit %d", len(out), maxChannels)
	}
	return out, nil
}

// decodeString decodes b if it is a JSON string; nil decodes as "".
func decodeString(b json.RawMessage) (string, bool) {
	if b == nil {
		return "", true
	}
	var s string
	if b[0] != '"' || json.Unmarshal(b, &s) != nil {
		return "", false
	}
	return s, true
}
