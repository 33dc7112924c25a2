// Package sqlite is the single-file store.Store: it needs no server, and
// several latchkey processes on one host may share the file.
//
// SQLite allows one writer at a time per file. Rather than let goroutines
// race for that lock and wait in the busy handler, every write in a process
// goes through one connection, so writers queue in Go and the busy timeout
// is left for other processes. Reads use their own pool, which WAL lets run
// alongside the writer.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"

	driver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Store is a store.Store kept in one SQLite file.
type Store struct {
	path string
	w    *sql.DB // exactly one connection: the process's only writer
	r    *sql.DB // readers; query_only so a write cannot slip past w

	sessionByHash *sql.Stmt  // on r
	userByID      *sql.Stmt  // on r: every signed link looks its user up
	linkByJTI     *sql.Stmt  // on r: and its row
	ticketByUUID  *sql.Stmt  // on r: every ticket is read before its claim
	touchSession  *sql.Stmt  // on w
	insertAudit   *sql.Stmt  // on w
	ws, rs        *stmtCache // other statements, prepared on first use on w and r
	group         *committer

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open opens or creates the database at path, creating its directory if
// needed, and migrates it to SchemaVersion. path is a file name, not a DSN.
//
// Open writes to the database before returning, so that a path latchkey
// cannot write to fails here, where the path is known, and not on the first
// login. Errors name the path.
func Open(ctx context.Context, path string) (*Store, error) {
	s, err := open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("latchkey sqlite store %q: %w", path, err)
	}
	return s, nil
}

func open(ctx context.Context, path string) (_ *Store, err error) {
	switch {
	case path == "":
		return nil, errors.New("no path given")
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		// An in-memory database is private to one connection, which the
		// separate read and write pools cannot share.
		return nil, errors.New("path must name a file")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	// 0700: the directory holds the signing secret and session hashes.
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("creating directory: %w", err)
	}

	s := &Store{path: path}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	if s.w, err = sql.Open("sqlite", dsn(abs, true)); err != nil {
		return nil, err
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)
	if err := connectFirst(ctx, s.w); err != nil {
		return nil, fmt.Errorf("opening database: %w", err)
	}

	if _, err := migrate(ctx, s.w, migrations); err != nil {
		return nil, err
	}
	s.group = newCommitter(s.w)
	s.ws = s.group.stmts

	if s.r, err = sql.Open("sqlite", dsn(abs, false)); err != nil {
		return nil, err
	}
	// Idle readers are kept so that the hot path does not pay for opening a
	// connection and running its pragmas.
	n := max(4, runtime.GOMAXPROCS(0))
	s.r.SetMaxOpenConns(n)
	s.r.SetMaxIdleConns(n)
	s.r.SetConnMaxLifetime(0)
	s.r.SetConnMaxIdleTime(0)
	s.rs = newStmtCache(s.r, false)

	if s.userByID, err = s.r.PrepareContext(ctx, `SELECT `+userColumns+` FROM users u WHERE u.id = ?`); err != nil {
		return nil, fmt.Errorf("preparing user lookup: %w", err)
	}
	if s.linkByJTI, err = s.r.PrepareContext(ctx, `SELECT `+linkColumns+` FROM links WHERE jti = ?`); err != nil {
		return nil, fmt.Errorf("preparing link lookup: %w", err)
	}
	if s.ticketByUUID, err = s.r.PrepareContext(ctx, `SELECT `+ticketColumns+` FROM tickets WHERE uuid = ?`); err != nil {
		return nil, fmt.Errorf("preparing ticket lookup: %w", err)
	}
	if s.sessionByHash, err = s.r.PrepareContext(ctx, sessionByHashSQL); err != nil {
		return nil, fmt.Errorf("preparing session lookup: %w", err)
	}
	if s.touchSession, err = s.w.PrepareContext(ctx, touchSessionSQL); err != nil {
		return nil, fmt.Errorf("preparing session touch: %w", err)
	}
	if s.insertAudit, err = s.w.PrepareContext(ctx, insertAuditSQL); err != nil {
		return nil, fmt.Errorf("preparing audit insert: %w", err)
	}
	return s, nil
}

// openWait is how long opening a store waits for another opener that holds
// the file (migrating it) before it gives up.
const openWait = time.Minute

// connectFirst opens the writer's connection, retrying while the file is
// busy. The connection's PRAGMA journal_mode=WAL needs an exclusive lock
// the first time, on a fresh file, and SQLite fails it at once rather than
// wait its busy_timeout, so processes that start together on a new file
// would otherwise see "database is locked" from all but one of them. It
// waits as long as a first start's migrations may take (openWait), not one
// busy timeout: the opener that won migrates under that lock, which on a
// loaded machine takes more than five seconds.
func connectFirst(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(openWait)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		err := db.PingContext(ctx)
		if err == nil || sqliteCode(err)&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait + rand.N(wait)):
		}
	}
}

// dsn builds a modernc.org/sqlite DSN for the file at abs. The driver splits
// the DSN at the first '?' and hands the whole "file:" URI to SQLite, which
// percent-decodes the path, so the path is escaped here and a '?', '#' or
// '%' in a directory name cannot cut it short.
//
// Writers BEGIN IMMEDIATE: a transaction that reads and then writes must
// hold the write lock from the start, because in WAL mode a deferred
// transaction whose snapshot went stale cannot wait for the lock and fails
// with SQLITE_BUSY at once. Readers must not, or every read would take the
// write lock.
func dsn(abs string, write bool) string {
	var b strings.Builder
	b.WriteString("file:")
	b.WriteString(EscapePath(abs))
	b.WriteString("?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)")
	if write {
		b.WriteString("&_txlock=immediate&_pragma=wal_autocheckpoint(8000)")
	} else {
		// Sessions, users and links are served from the gateway's cache;
		// what readers fetch (tickets, listings) is read once, so a small
		// page cache each (1 MB instead of 2) keeps the pool's memory down.
		b.WriteString("&_pragma=query_only(1)&_pragma=cache_size(-1024)")
	}
	return b.String()
}

// EscapePath is a file path as the path of a "file:" URI for the driver:
// everything but unreserved characters and '/' percent-encoded, so that a
// '?', '#' or '%' in a directory name cannot cut it short.
func EscapePath(p string) string {
	p = filepath.ToSlash(p)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // "C:/x" on Windows: SQLite wants file:/C:/x
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '/':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// Close closes both pools. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.group != nil {
			s.group.close()
		}
		var errs []error
		for _, st := range []*sql.Stmt{s.sessionByHash, s.userByID, s.linkByJTI, s.ticketByUUID, s.touchSession, s.insertAudit} {
			if st != nil {
				errs = append(errs, st.Close())
			}
		}
		// The committer closes the writer's statements.
		for _, c := range []*stmtCache{s.rs} {
			if c != nil {
				errs = append(errs, c.close())
			}
		}
		for _, db := range []*sql.DB{s.r, s.w} {
			if db != nil {
				errs = append(errs, db.Close())
			}
		}
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("closing latchkey sqlite store %q: %w", s.path, err)
		}
	})
	return s.closeErr
}

// SchemaVersion reports the newest migration applied to the file, which can
// differ from the package's SchemaVersion only if another process migrated
// it after Open.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.r.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("reading schema version: %w", err)
	}
	return v, nil
}

// Secret relies on INSERT OR IGNORE so that processes racing on a fresh
// file all end up with whichever secret was inserted first.
func (s *Store) Secret(ctx context.Context, newSecret []byte) ([]byte, error) {
	if len(newSecret) > 0 {
		if _, err := s.w.ExecContext(ctx, `INSERT OR IGNORE INTO meta (key, value) VALUES ('secret', ?)`, newSecret); err != nil {
			return nil, fmt.Errorf("storing secret: %w", err)
		}
	}
	var secret []byte
	// Read on the writer: it has just written, and it sees its own write
	// without relying on the read pool's snapshot.
	err := s.w.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'secret'`).Scan(&secret)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("reading secret: none stored and none given: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading secret: %w", err)
	}
	return secret, nil
}

// DeleteSecret deletes the meta row Secret keeps.
func (s *Store) DeleteSecret(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM meta WHERE key = 'secret'`); err != nil {
		return fmt.Errorf("deleting secret: %w", err)
	}
	return nil
}

// Times are kept as unix nanoseconds, NULL for the zero time, so that a
// time round-trips exactly and "never" stays distinguishable from 1970.

func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64)
}

// sqliteCode returns the extended result code of a driver error, or 0.
func sqliteCode(err error) int {
	var e *driver.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

func isUniqueViolation(err error) bool {
	switch sqliteCode(err) {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return true
	}
	return false
}

func isForeignKeyViolation(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// execer is the writer or a transaction on it, for statements that run
// both on their own and as part of a larger transaction.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

var (
	_ execer = (*sql.DB)(nil)
	_ execer = (*sql.Tx)(nil)
)

// inTx runs f in a write transaction on the single writer. f must use tx,
// never s.w: the writer has one connection, which tx holds.
// inTx runs f in a write transaction, shared with whatever other writes are
// waiting (see committer); f's writes are undone if it fails. f must use
// the ctx it is given, which cannot be cancelled.
func (s *Store) inTx(ctx context.Context, f func(ctx context.Context, tx *sql.Tx) error) error {
	return s.group.do(ctx, f)
}

// listRows runs a read query and scans every row into a T; what names the
// listing in errors ("invites {Site:…}").
func listRows[T any](ctx context.Context, db *sql.DB, what, query string, args []any, scan func(interface{ Scan(...any) error }, *T) error) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := scan(rows, &v); err != nil {
			return nil, fmt.Errorf("listing %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing %s: %w", what, err)
	}
	return out, nil
}
