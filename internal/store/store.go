// Package store opens herald's database (SQLite or PostgreSQL), applies its
// migrations and runs transactions. It knows SQL dialects, not the domain.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect names the SQL flavour behind a DB.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is an open database with its dialect. Queries use $1-style placeholders,
// which both drivers accept.
type DB struct {
	*sql.DB
	Dialect Dialect
	// writes queues SQLite's write transactions in this process (nil on
	// PostgreSQL). SQLite has one writer; a second BEGIN IMMEDIATE would
	// otherwise wait in its busy handler, which sleeps 1, 2, 5, 10… ms
	// between tries: a REST write colliding with the relay's delete took
	// 15–20 ms instead of 2. A mutex hands the lock over at once.
	writes *sync.Mutex
}

// Open connects to dsn: "sqlite:PATH" (the directory is created), or a
// "postgres://" / "postgresql://" URL.
func Open(ctx context.Context, dsn string) (*DB, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		return openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:"))
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return openPostgres(ctx, dsn)
	default:
		return nil, fmt.Errorf("open database: unsupported DSN %q (want sqlite:PATH or postgres://…)", Redact(dsn))
	}
}

func openSQLite(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("open database: empty SQLite path")
	}
	if path != ":memory:" {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("open database: create directory for %s: %w", path, err)
		}
	}
	// WAL lets readers run beside the single writer; immediate transactions
	// take the write lock up front so two writers never deadlock on upgrade;
	// busy_timeout makes a writer wait for the lock instead of failing.
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	// One writer at a time is SQLite's model; a small pool still lets reads
	// proceed while a write transaction is open.
	db.SetMaxOpenConns(8)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return &DB{DB: db, Dialect: SQLite, writes: new(sync.Mutex)}, nil
}

func openPostgres(ctx context.Context, dsn string) (*DB, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", Redact(dsn), err)
	}
	d := &DB{DB: db, Dialect: Postgres}
	d.SetMaxConns(DefaultMaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres %s: %w", Redact(dsn), err)
	}
	return d, nil
}

// DefaultMaxConns is the PostgreSQL pool's bound. A few connections per
// process: PostgreSQL's throughput peaks at a few active backends per core,
// and several herald processes share it. On a 2-core host 8 instead of 32
// raised comment writes from ~220/s to ~430/s with three processes and from
// 400/s to 600/s with one (docs/performance.md); --db-max-conns changes it.
const DefaultMaxConns = 8

// SetMaxConns bounds the connections the pool opens (and keeps idle) to n.
// Several processes sharing a small PostgreSQL should keep the sum of
// theirs near a few times its cores: past that, more backends only compete
// for the same cores and locks.
func (db *DB) SetMaxConns(n int) {
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
}

// Redact hides a password in a connection URL so it never reaches a log.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// ForUpdate is the row-locking suffix for a SELECT inside a transaction.
// SQLite needs none: its write transactions are already serialized.
func (db *DB) ForUpdate() string {
	if db.Dialect == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// ForShare is the shared row-locking suffix: it keeps the row from changing
// until commit without excluding other share-lockers.
func (db *DB) ForShare() string {
	if db.Dialect == Postgres {
		return " FOR SHARE"
	}
	return ""
}

// Tx runs fn in one transaction, committing when it returns nil and rolling
// back otherwise (also on panic, which it re-raises). On SQLite every Tx is
// a write transaction and they run one at a time; writes outside Tx would
// bypass that queue, so there are none.
func (db *DB) Tx(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	if db.writes != nil {
		db.writes.Lock()
		defer db.writes.Unlock()
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// IsLockTimeout reports whether err is PostgreSQL giving up waiting for a
// lock (lock_timeout).
func IsLockTimeout(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}

// IsUniqueViolation reports whether err is a unique-constraint failure.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	var sqlErr *sqlite.Error
	if errors.As(err, &sqlErr) {
		return sqlErr.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || sqlErr.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// IsUnavailable reports whether err says the database could not be reached
// or went away (refused, reset or timed-out connections, a server shutting
// down or starting up), rather than that it refused the statement: the
// request may succeed once it is back.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 57P01-57P03: the server is
		// shutting down or not yet accepting connections.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		pgconn.Timeout(err)
}
