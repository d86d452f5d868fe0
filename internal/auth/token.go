package auth

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token lifetimes used when NewIssuer is given zero durations; they match
// the previous backend's configuration.
const (
	DefaultAccessTTL  = 15 * time.Minute
	DefaultRefreshTTL = 7 * 24 * time.Hour
)

// MinSecretLen is the shortest signing secret NewIssuer accepts. HS256 keys
// shorter than the hash output weaken the MAC (RFC 7518, section 3.2).
const MinSecretLen = 32

const (
	tokenTypeAccess  = "access"
	tokenTypeRefresh = "refresh"

	// leeway absorbs clock skew between the machines issuing and checking tokens.
	leeway = 30 * time.Second

	// maxTokenLen bounds the work done on input from the network. Our tokens
	// are around 250 bytes.
	maxTokenLen = 4096
)

// Errors returned by ParseAccess and ParseRefresh. A token that is both
// expired and otherwise wrong is reported as invalid, so ErrTokenExpired
// always means "genuine but stale; refresh and retry".
var (
	ErrTokenExpired = errors.New("token expired")
	ErrTokenInvalid = errors.New("token invalid")
)

// claims mirrors the payload produced by djangorestframework-simplejwt.
type claims struct {
	TokenType string `json:"token_type"`
	UserID    *int64 `json:"user_id"` // pointer so a missing claim is detectable
	jwt.RegisteredClaims
}

// Issuer signs and verifies HS256 access and refresh tokens. It is safe for
// concurrent use.
type Issuer struct {
	secret     []byte
	accessTTL  time.Duration
	refreshTTL time.Duration
	now        func() time.Time // replaced in tests
	parser     *jwt.Parser
	macs       *macs // HMAC states for parseFast
}

// NewIssuer returns an Issuer signing with secret, which must be at least
// MinSecretLen bytes. Zero TTLs select DefaultAccessTTL and DefaultRefreshTTL.
func NewIssuer(secret []byte, accessTTL, refreshTTL time.Duration) (*Issuer, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("JWT secret is %d bytes, need at least %d", len(secret), MinSecretLen)
	}
	if accessTTL < 0 || refreshTTL < 0 {
		return nil, fmt.Errorf("token lifetimes must not be negative (access %v, refresh %v)", accessTTL, refreshTTL)
	}
	if accessTTL == 0 {
		accessTTL = DefaultAccessTTL
	}
	if refreshTTL == 0 {
		refreshTTL = DefaultRefreshTTL
	}
	i := &Issuer{
		secret:     bytes.Clone(secret),
		accessTTL:  accessTTL,
		refreshTTL: refreshTTL,
		now:        time.Now,
	}
	i.macs = newMACs(i.secret)
	i.parser = jwt.NewParser(
		// Pinning the algorithm rules out "none" and RS/HS confusion.
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(leeway),
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(func() time.Time { return i.now() }),
	)
	return i, nil
}

// AccessTTL returns the lifetime of access tokens, e.g. for cookie Max-Age.
func (i *Issuer) AccessTTL() time.Duration { return i.accessTTL }

// RefreshTTL returns the lifetime of refresh tokens.
func (i *Issuer) RefreshTTL() time.Duration { return i.refreshTTL }

// Pair returns a new access token and refresh token for userID.
func (i *Issuer) Pair(userID int64) (access, refresh string, err error) {
	if access, err = i.sign(userID, tokenTypeAccess, i.accessTTL); err != nil {
		return "", "", err
	}
	if refresh, err = i.sign(userID, tokenTypeRefresh, i.refreshTTL); err != nil {
		return "", "", err
	}
	return access, refresh, nil
}

// Access returns a new access token for userID, as issued when a refresh
// token is exchanged.
func (i *Issuer) Access(userID int64) (string, error) {
	return i.sign(userID, tokenTypeAccess, i.accessTTL)
}

// ParseAccess verifies an access token and returns the user it was issued
// to. Errors match ErrTokenExpired or ErrTokenInvalid under errors.Is.
func (i *Issuer) ParseAccess(token string) (userID int64, err error) {
	return i.parse(token, tokenTypeAccess)
}

// ParseRefresh verifies a refresh token and returns the user it was issued
// to. Errors match ErrTokenExpired or ErrTokenInvalid under errors.Is.
func (i *Issuer) ParseRefresh(token string) (userID int64, err error) {
	return i.parse(token, tokenTypeRefresh)
}

func (i *Issuer) sign(userID int64, typ string, ttl time.Duration) (string, error) {
	// Database ids start at 1; refusing 0 catches an unset id before it
	// becomes a valid credential.
	if userID <= 0 {
		return "", fmt.Errorf("sign %s token: invalid user id %d", typ, userID)
	}
	now := i.now()
	c := claims{
		TokenType: typ,
		UserID:    &userID,
		RegisteredClaims: jwt.RegisteredClaims{
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        newTokenID(),
		},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(i.secret)
	if err != nil {
		return "", fmt.Errorf("sign %s token: %w", typ, err)
	}
	return s, nil
}

func (i *Issuer) parse(token, wantType string) (int64, error) {
	if len(token) > maxTokenLen {
		return 0, fmt.Errorf("%w: token is %d bytes", ErrTokenInvalid, len(token))
	}
	if id, ok := i.parseFast(token, wantType); ok {
		return id, nil
	}
	return i.parseFull(token, wantType)
}

// parseFull is parse through golang-jwt's general parser.
func (i *Issuer) parseFull(token, wantType string) (int64, error) {
	var c claims
	_, err := i.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) {
		return i.secret, nil
	})
	expired := false
	if err != nil {
		// The parser verifies the signature before it validates claims, so
		// an expiry error implies the token is genuine. Its claims are
		// decoded and still checked below.
		if !errors.Is(err, jwt.ErrTokenExpired) {
			return 0, fmt.Errorf("%w: %w", ErrTokenInvalid, err)
		}
		expired = true
	}
	if c.TokenType != wantType {
		return 0, fmt.Errorf("%w: token_type is %.20q, want %q", ErrTokenInvalid, c.TokenType, wantType)
	}
	if c.UserID == nil || *c.UserID <= 0 {
		return 0, fmt.Errorf("%w: missing or invalid user_id", ErrTokenInvalid)
	}
	if expired {
		return 0, fmt.Errorf("%w: %w", ErrTokenExpired, err)
	}
	return *c.UserID, nil
}

// newTokenID returns a random jti in the same shape as simplejwt's
// uuid4().hex: 32 lower-case hex digits.
func newTokenID() string {
	b := make([]byte, 16)
	rand.Read(b) // never returns an error
	return hex.EncodeToString(b)
}
