package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/store"
)

// seedApplicants makes n users named <prefix><k>, each with a pending
// application to quest, straight in the spawned servers' PostgreSQL
// database (--seed): registering 100,000 users through REST costs an
// argon2id hash each, hours on two cores. Every user gets the same hash of
// the bench password, made once with herald's own hasher, so each could
// still sign in; their access tokens are signed with the secret the
// servers keep in their data directory, as a sign-in would sign them. What
// is left out is the REST path of registering and applying, which the
// scenario does not measure.
func (e *env) seedApplicants(ctx context.Context, prefix string, n int, quest int64) ([]user, []int64, error) {
	if e.cluster == nil || !strings.HasPrefix(e.spawnDB, "postgres") {
		return nil, nil, fmt.Errorf("--seed needs the spawned servers' PostgreSQL database")
	}
	dir := e.cluster.dir
	if v, ok := flagValue(e.o.ServeArgs, "data-dir"); ok {
		dir = v
	}
	secret, err := auth.LoadOrCreateSecret(filepath.Join(dir, "jwt-secret"))
	if err != nil {
		return nil, nil, fmt.Errorf("--seed: the servers' JWT secret: %w", err)
	}
	iss, err := auth.NewIssuer(secret, time.Hour, time.Hour)
	if err != nil {
		return nil, nil, err
	}
	hash, err := auth.Hasher{}.Hash(e.password())
	if err != nil {
		return nil, nil, err
	}
	db, err := store.Open(ctx, e.spawnDB)
	if err != nil {
		return nil, nil, fmt.Errorf("--seed: open the database: %w", err)
	}
	defer db.Close()
	e.setPhase("setup", func() string { return fmt.Sprintf("setup: inserting %d users and their applications", n) })
	// One statement each for the users and the applications; the
	// applications come back in the users' order.
	rows, err := db.QueryContext(ctx, `
		WITH u AS (
			INSERT INTO users (username, username_key, password_hash, created_at)
			SELECT $1::text || g, lower($1::text || g), $2, now() FROM generate_series(0, $3::int - 1) AS g
			RETURNING id, username
		), a AS (
			INSERT INTO applications (quest_id, applicant_id, message, status, created_at, updated_at)
			SELECT $4::bigint, id, 'bench', 'pending', now(), now() FROM u
			RETURNING id, applicant_id
		)
		SELECT u.id, u.username, a.id FROM u JOIN a ON a.applicant_id = u.id`, prefix, hash, n, quest)
	if err != nil {
		return nil, nil, fmt.Errorf("--seed: insert users and applications: %w", err)
	}
	defer rows.Close()
	users := make([]user, n)
	apps := make([]int64, n)
	got := 0
	for rows.Next() {
		var id, app int64
		var name string
		if err := rows.Scan(&id, &name, &app); err != nil {
			return nil, nil, err
		}
		var k int
		if _, err := fmt.Sscanf(strings.TrimPrefix(name, prefix), "%d", &k); err != nil || k < 0 || k >= n {
			return nil, nil, fmt.Errorf("--seed: unexpected user %q", name)
		}
		tok, err := iss.Access(id)
		if err != nil {
			return nil, nil, err
		}
		users[k], apps[k] = user{ID: id, Name: name, Token: tok}, app
		got++
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	if got != n {
		return nil, nil, fmt.Errorf("--seed: %d of %d users made", got, n)
	}
	return users, apps, nil
}
