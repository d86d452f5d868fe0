package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// PasswordParams are the argon2id cost parameters.
type PasswordParams struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over memory
	Threads uint8  // lanes
}

// DefaultPasswordParams is the OWASP minimum recommendation for argon2id:
// 19 MiB of memory, two passes, one lane.
var DefaultPasswordParams = PasswordParams{Memory: 19456, Time: 2, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32

	// Bounds on what an encoded hash may ask for. Verify trusts the
	// parameters stored in the hash, so without limits a corrupted or
	// hostile row could make a single login allocate gigabytes or run for
	// minutes. Hash enforces the same bounds so our own hashes always verify.
	maxMemory  = 256 << 10 // KiB, i.e. 256 MiB
	maxTime    = 32
	minSaltLen = 8 // RFC 9106 minimum
	maxSaltLen = 64
	minKeyLen  = 16
	maxKeyLen  = 64
)

// ErrMalformedHash is returned by Verify when the encoded hash cannot be
// parsed or names an unsupported algorithm or parameters.
var ErrMalformedHash = errors.New("malformed password hash")

// Hasher hashes and verifies passwords with argon2id. The zero value uses
// DefaultPasswordParams.
type Hasher struct {
	Params PasswordParams
}

func (h Hasher) params() PasswordParams {
	if h.Params == (PasswordParams{}) {
		return DefaultPasswordParams
	}
	return h.Params
}

func (p PasswordParams) validate() error {
	switch {
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("argon2 time %d out of range [1, %d]", p.Time, maxTime)
	case p.Threads < 1:
		return errors.New("argon2 threads must be at least 1")
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory:
		return fmt.Errorf("argon2 memory %d KiB out of range [%d, %d]", p.Memory, 8*uint32(p.Threads), maxMemory)
	}
	return nil
}

// Hash returns password hashed with a fresh random salt, encoded as a PHC
// string: $argon2id$v=19$m=<KiB>,t=<time>,p=<threads>$<salt>$<hash>.
func (h Hasher) Hash(password string) (string, error) {
	p := h.params()
	if err := p.validate(); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	salt := make([]byte, saltLen)
	rand.Read(salt) // never returns an error
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether password matches encoded. It uses the parameters
// recorded in encoded rather than h.Params, so hashes made with older
// settings keep verifying after the defaults change. The error is non-nil
// only when encoded is malformed; a wrong password is (false, nil).
func (h Hasher) Verify(encoded, password string) (bool, error) {
	p, salt, want, err := decodeHash(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// NeedsRehash reports whether encoded was produced with parameters other
// than h's, so callers can upgrade the stored hash after a successful login.
func (h Hasher) NeedsRehash(encoded string) bool {
	p, salt, key, err := decodeHash(encoded)
	return err != nil || p != h.params() || len(salt) != saltLen || len(key) != keyLen
}

var b64 = base64.RawStdEncoding.Strict()

func decodeHash(encoded string) (p PasswordParams, salt, key []byte, err error) {
	fail := func(format string, args ...any) (PasswordParams, []byte, []byte, error) {
		return PasswordParams{}, nil, nil, fmt.Errorf("%w: %s", ErrMalformedHash, fmt.Sprintf(format, args...))
	}

	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" {
		return fail("want 5 $-separated fields")
	}
	if parts[1] != "argon2id" {
		return fail("unsupported algorithm %.20q", parts[1])
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return fail("unsupported version %.20q", parts[2])
	}

	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return fail("want m, t and p parameters")
	}
	m, err1 := parseParam(fields[0], "m=", 32)
	t, err2 := parseParam(fields[1], "t=", 32)
	th, err3 := parseParam(fields[2], "p=", 8)
	if err := errors.Join(err1, err2, err3); err != nil {
		return fail("%v", err)
	}
	p = PasswordParams{Memory: uint32(m), Time: uint32(t), Threads: uint8(th)}
	if err := p.validate(); err != nil {
		return fail("%v", err)
	}

	if salt, err = b64.DecodeString(parts[4]); err != nil {
		return fail("salt: %v", err)
	}
	if len(salt) < minSaltLen || len(salt) > maxSaltLen {
		return fail("salt is %d bytes, want %d to %d", len(salt), minSaltLen, maxSaltLen)
	}
	if key, err = b64.DecodeString(parts[5]); err != nil {
		return fail("hash: %v", err)
	}
	if len(key) < minKeyLen || len(key) > maxKeyLen {
		return fail("hash is %d bytes, want %d to %d", len(key), minKeyLen, maxKeyLen)
	}
	return p, salt, key, nil
}

func parseParam(field, prefix string, bits int) (uint64, error) {
	s, ok := strings.CutPrefix(field, prefix)
	if !ok {
		return 0, fmt.Errorf("want parameter %q", prefix)
	}
	v, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("parameter %s%.20q: not a %d-bit number", prefix, s, bits)
	}
	return v, nil
}

// Password length limits, in characters. The upper bound keeps hashing cost
// predictable; passphrases are still comfortably allowed.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 128
)

// Errors returned by ValidatePassword. Their messages are suitable for
// showing to users.
var (
	ErrPasswordTooShort = fmt.Errorf("password must be at least %d characters long", MinPasswordLen)
	ErrPasswordTooLong  = fmt.Errorf("password must be at most %d characters long", MaxPasswordLen)
	ErrPasswordNumeric  = errors.New("password must not consist of digits only")
	ErrPasswordEncoding = errors.New("password must be valid UTF-8 text")
)

// ValidatePassword checks a new password against the account policy:
// between MinPasswordLen and MaxPasswordLen characters and not entirely
// numeric.
func ValidatePassword(password string) error {
	if !utf8.ValidString(password) {
		return ErrPasswordEncoding
	}
	n := utf8.RuneCountInString(password)
	if n < MinPasswordLen {
		return ErrPasswordTooShort
	}
	if n > MaxPasswordLen {
		return ErrPasswordTooLong
	}
	if strings.IndexFunc(password, func(r rune) bool { return !unicode.IsDigit(r) }) < 0 {
		return ErrPasswordNumeric
	}
	return nil
}
