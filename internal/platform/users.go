package platform

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"github.com/heraldhq/herald/internal/store"
)

// Registration is the input of Register.
type Registration struct {
	Username string `json:"username"`
	Email    string `json:"email"`
	Password string `json:"password"`
}

// Register creates an account.
func (p *Platform) Register(ctx context.Context, in Registration) (User, error) {
	f := fieldErrors{}
	username := strings.TrimSpace(in.Username)
	switch {
	case username == "":
		f.add("username", "this field may not be blank")
	case len(username) > 150:
		f.add("username", "ensure this field has no more than 150 characters")
	case !validUsername(username):
		f.add("username", "use only letters, digits and @/./+/-/_")
	}
	email := strings.TrimSpace(in.Email)
	if email != "" {
		if a, err := mail.ParseAddress(email); err != nil || a.Address != email || len(email) > 254 {
			f.add("email", "enter a valid email address")
		}
	}
	if in.Password == "" {
		f.add("password", "this field may not be blank")
	} else if p.validate != nil {
		if err := p.validate(in.Password); err != nil {
			f.add("password", "%s", err.Error())
		}
	}
	if err := f.err(); err != nil {
		return User{}, err
	}
	// A name already taken is refused before the costly hash; the unique
	// index below still decides between concurrent registrations.
	taken, err := p.usernameTaken(ctx, username)
	if err != nil {
		return User{}, err
	}
	if taken {
		return User{}, invalid("username", "a user with that username already exists")
	}
	hash, err := p.hashPassword(ctx, in.Password)
	if err != nil {
		return User{}, fmt.Errorf("register: hash password: %w", err)
	}
	u := User{Username: username, Email: email, CreatedAt: Time{p.now()}}
	err = p.db.QueryRowContext(ctx,
		"INSERT INTO users (username, username_key, email, password_hash, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
		username, strings.ToLower(username), email, hash, u.CreatedAt.Time).Scan(&u.ID)
	if store.IsUniqueViolation(err) {
		return User{}, invalid("username", "a user with that username already exists")
	}
	if err != nil {
		return User{}, fmt.Errorf("register %q: %w", username, err)
	}
	return u, nil
}

func (p *Platform) usernameTaken(ctx context.Context, username string) (bool, error) {
	var one int
	err := p.db.QueryRowContext(ctx, "SELECT 1 FROM users WHERE username_key = $1", strings.ToLower(username)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("register %q: look up username: %w", username, err)
	}
	return true, nil
}

func validUsername(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("@.+-_", r):
		default:
			return false
		}
	}
	return true
}

// Authenticate checks a username and password. A wrong password and an
// unknown user give the same error and take the same time.
func (p *Platform) Authenticate(ctx context.Context, username, password string) (User, error) {
	var u User
	var hash string
	key := strings.ToLower(strings.TrimSpace(username))
	err := sql.ErrNoRows // no username holds a NUL, and PostgreSQL cannot even compare one
	if !strings.ContainsRune(key, 0) {
		err = p.db.QueryRowContext(ctx,
			"SELECT id, username, email, password_hash, created_at FROM users WHERE username_key = $1",
			key).Scan(&u.ID, &u.Username, &u.Email, &hash, &u.CreatedAt.Time)
	}
	bad := &Error{Kind: KindUnauthorized, Message: "no active account found with the given credentials"}
	if errors.Is(err, sql.ErrNoRows) {
		// The dummy hash is valid: the check fails only if no hashing slot
		// came free, which the caller must hear rather than a fast 401.
		if _, err := p.verifyPassword(ctx, p.dummyHash, password); err != nil {
			return User{}, fmt.Errorf("authenticate: %w", err)
		}
		return User{}, bad
	}
	if err != nil {
		return User{}, fmt.Errorf("authenticate: %w", err)
	}
	ok, err := p.verifyPassword(ctx, hash, password)
	if err != nil {
		return User{}, fmt.Errorf("authenticate %d: %w", u.ID, err)
	}
	if !ok {
		return User{}, bad
	}
	return u, nil
}

// UserByID returns a user's account.
func (p *Platform) UserByID(ctx context.Context, id int64) (User, error) {
	var u User
	err := p.db.QueryRowContext(ctx, "SELECT id, username, email, created_at FROM users WHERE id = $1", id).
		Scan(&u.ID, &u.Username, &u.Email, &u.CreatedAt.Time)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, notFound("user")
	}
	if err != nil {
		return User{}, fmt.Errorf("load user %d: %w", id, err)
	}
	return u, nil
}

// hashPassword and verifyPassword run the hasher within the hash gate, so
// every password hash herald computes is bounded in concurrency.
func (p *Platform) hashPassword(ctx context.Context, password string) (string, error) {
	release, err := p.acquireHashing(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	return p.hasher.Hash(password)
}

func (p *Platform) verifyPassword(ctx context.Context, encoded, password string) (bool, error) {
	release, err := p.acquireHashing(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	return p.hasher.Verify(encoded, password)
}

func (p *Platform) acquireHashing(ctx context.Context) (release func(), err error) {
	if p.hashGate == nil {
		return func() {}, nil
	}
	return p.hashGate.Acquire(ctx)
}
