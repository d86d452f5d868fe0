package store_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/testenv"
)

// columns lists table.column names of the migrated schema.
func columns(t *testing.T, db *store.DB) []string {
	t.Helper()
	q := `SELECT m.name || '.' || p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`
	if db.Dialect == store.Postgres {
		q = `SELECT table_name || '.' || column_name FROM information_schema.columns WHERE table_schema = 'public'`
	}
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Both dialects migrate, a second run applies nothing, and they end with the
// same tables and columns: the two migration sets are kept in step.
func TestMigrationsInStep(t *testing.T) {
	ctx := context.Background()
	schemas := map[string][]string{}
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		db, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		applied, err := db.Migrate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ms, _ := store.Migrations(db.Dialect)
		if len(applied) != len(ms) || len(ms) == 0 {
			t.Fatalf("applied %v of %d migrations", applied, len(ms))
		}
		again, err := db.Migrate(ctx)
		if err != nil || len(again) != 0 {
			t.Fatalf("second migrate applied %v, %v", again, err)
		}
		schemas[string(db.Dialect)] = columns(t, db)
	})
	if len(schemas) == 2 && !slices.Equal(schemas["sqlite"], schemas["postgres"]) {
		t.Errorf("schemas differ:\nsqlite:   %s\npostgres: %s", strings.Join(schemas["sqlite"], " "), strings.Join(schemas["postgres"], " "))
	}
	sqliteM, _ := store.Migrations(store.SQLite)
	pgM, _ := store.Migrations(store.Postgres)
	if len(sqliteM) != len(pgM) {
		t.Errorf("%d SQLite migrations, %d PostgreSQL", len(sqliteM), len(pgM))
	}
	for i := range min(len(sqliteM), len(pgM)) {
		if sqliteM[i].Name != pgM[i].Name {
			t.Errorf("migration %d named %s in SQLite, %s in PostgreSQL", i, sqliteM[i].Name, pgM[i].Name)
		}
	}
}

func TestOpenRejectsUnknownDSN(t *testing.T) {
	for _, dsn := range []string{"", "mysql://x", "sqlite:", "postgres://nobody@127.0.0.1:1/x"} {
		if db, err := store.Open(context.Background(), dsn); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded", dsn)
		}
	}
}

// A password in a PostgreSQL URL never reaches an error message.
func TestOpenRedactsPassword(t *testing.T) {
	_, err := store.Open(context.Background(), "postgres://user:hunter2@127.0.0.1:1/x?connect_timeout=1")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %v leaks the password or is missing", err)
	}
}
