// Package postgres is the store.Store kept in PostgreSQL, for several
// gateways sharing one state. It passes the same conformance suite
// (storetest) as the SQLite store and keeps the same logical schema, with
// the same migration versions.
//
// Every single-use decision is one conditional statement (UPDATE …
// RETURNING, or INSERT … ON CONFLICT), as on SQLite; PostgreSQL's row locks
// and its re-check of a WHERE clause against the newest row version under
// READ COMMITTED are what make it hold across connections and processes.
// Writes that belong together (a use, its session and its audit record)
// share one transaction.
//
// The DSN holds a password: it is never logged, and no error of this
// package includes it.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// Store is a store.Store in a PostgreSQL database.
type Store struct {
	pool    *pgxpool.Pool
	secrets []string // the DSN and its passwords, scrubbed from errors

	listenMu sync.Mutex
	listener *pgxpool.Conn // LISTENs for changes; see WaitChange
	closing  context.Context
	close    context.CancelFunc

	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// DefaultStatementTimeout bounds every statement, so that a stuck lock or
// a lost server fails a request (closed, 503) instead of hanging it.
const DefaultStatementTimeout = 5 * time.Second

// DefaultMigrationLockTimeout bounds how long Open waits for another
// gateway's migration to finish.
const DefaultMigrationLockTimeout = 2 * time.Minute

// Option tunes Open.
type Option func(*options)

type options struct {
	statementTimeout     time.Duration
	statementTimeoutSet  bool
	migrationLockTimeout time.Duration
	maxConns             int32
}

// WithStatementTimeout sets the server-side statement_timeout of every
// pooled connection; 0 means none. Without this option the DSN's own
// statement_timeout (a run-time parameter) is kept, else
// DefaultStatementTimeout applies.
func WithStatementTimeout(d time.Duration) Option {
	return func(o *options) { o.statementTimeout, o.statementTimeoutSet = d, true }
}

// WithMigrationLockTimeout sets how long Open waits for the migration lock
// another process holds; 0 means DefaultMigrationLockTimeout.
func WithMigrationLockTimeout(d time.Duration) Option {
	return func(o *options) { o.migrationLockTimeout = d }
}

// WithMaxConns caps the pool; 0 keeps the DSN's pool_max_conns or pgx's
// default (the larger of 4 and the number of CPUs).
func WithMaxConns(n int32) Option {
	return func(o *options) { o.maxConns = n }
}

// Open connects to the database dsn names (a postgres:// URL or key=value
// pairs, as libpq takes them; pool_max_conns and the like as pgxpool takes
// them) and migrates it to SchemaVersion under an advisory lock, so that
// gateways starting together do not race. A database whose schema is newer
// than this binary is refused with *SchemaTooNewError and left untouched.
//
// No error includes the DSN or its password.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	o := options{migrationLockTimeout: DefaultMigrationLockTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if o.migrationLockTimeout <= 0 {
		o.migrationLockTimeout = DefaultMigrationLockTimeout
	}
	if strings.TrimSpace(dsn) == "" {
		return nil, errors.New("latchkey postgres store: no DSN given")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parser's message may quote the DSN, password and all (a URL
		// that does not parse is quoted whole), so none of it is shown.
		return nil, errors.New("latchkey postgres store: the DSN does not parse (it is not shown, as it may hold a password); " +
			"use postgres://user:password@host:5432/dbname?sslmode=verify-full or host=… user=… password=… dbname=…")
	}
	s := &Store{secrets: dsnSecrets(dsn, cfg.ConnConfig)}
	s.closing, s.close = context.WithCancel(context.Background())

	rp := cfg.ConnConfig.RuntimeParams
	if _, ok := rp["statement_timeout"]; !ok || o.statementTimeoutSet {
		d := DefaultStatementTimeout
		if o.statementTimeoutSet {
			d = o.statementTimeout
		}
		rp["statement_timeout"] = strconv.FormatInt(d.Milliseconds(), 10)
	}
	if _, ok := rp["application_name"]; !ok {
		rp["application_name"] = "latchkey"
	}
	if o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	}

	// Migrations run on a connection of their own, closed after, without
	// the statement timeout (a migration of a big table may take longer)
	// but with a lock timeout for the advisory lock.
	mc := cfg.ConnConfig.Copy()
	mc.RuntimeParams["statement_timeout"] = "0"
	mc.RuntimeParams["lock_timeout"] = strconv.FormatInt(o.migrationLockTimeout.Milliseconds(), 10)
	conn, err := pgx.ConnectConfig(ctx, mc)
	if err != nil {
		return nil, s.wrap("connecting", err)
	}
	_, err = migrate(ctx, conn, migrations)
	conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return nil, s.wrap("migrating", err)
	}

	if s.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, s.wrap("opening pool", err)
	}
	if err := s.pool.Ping(ctx); err != nil {
		s.pool.Close()
		return nil, s.wrap("connecting", err)
	}
	return s, nil
}

// Describe names the database dsn points at without its password (user,
// host, port and database), for logs; a DSN that does not parse is
// described as such, not shown.
func Describe(dsn string) string {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "(a DSN that does not parse)"
	}
	return fmt.Sprintf("user=%s host=%s port=%d database=%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// dsnSecrets lists what must never appear in an error: the DSN itself and
// the password it gives.
func dsnSecrets(dsn string, cfg *pgx.ConnConfig) []string {
	out := []string{dsn}
	if cfg.Password != "" {
		out = append(out, cfg.Password)
	}
	return out
}

// wrap prefixes err and scrubs the DSN and its passwords from its text.
// pgx does not put them in its errors, but a server's or a proxy's message
// is not ours to trust. The original error is kept for errors.Is and As.
func (s *Store) wrap(what string, err error) error {
	msg := fmt.Sprintf("latchkey postgres store: %s: %v", what, err)
	for _, sec := range s.secrets {
		if sec != "" {
			msg = strings.ReplaceAll(msg, sec, "xxxxx")
		}
	}
	return &scrubbedError{msg: msg, err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// Close closes the pool. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// The pool waits for every connection to come back: end a wait
		// for changes and close its connection first.
		if s.close != nil {
			s.close()
			s.listenMu.Lock()
			s.dropListener()
			s.listenMu.Unlock()
		}
		if s.pool != nil {
			s.pool.Close()
		}
	})
	return nil
}

// SchemaVersion reports the newest migration applied to the database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("reading schema version: %w", err)
	}
	return v, nil
}

// Secret relies on INSERT … ON CONFLICT DO NOTHING, so that gateways racing
// on a fresh database all end up with whichever secret was inserted first:
// the insert of a second one waits for the first to commit and then does
// nothing, and the SELECT after it, a new snapshot under READ COMMITTED,
// sees the first.
func (s *Store) Secret(ctx context.Context, newSecret []byte) ([]byte, error) {
	if len(newSecret) > 0 {
		if _, err := s.pool.Exec(ctx, `INSERT INTO meta (key, value) VALUES ('secret', $1) ON CONFLICT (key) DO NOTHING`, newSecret); err != nil {
			return nil, fmt.Errorf("storing secret: %w", err)
		}
	}
	var secret []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'secret'`).Scan(&secret)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("reading secret: none stored and none given: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading secret: %w", err)
	}
	return secret, nil
}

// DeleteSecret deletes the meta row Secret keeps.
func (s *Store) DeleteSecret(ctx context.Context) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM meta WHERE key = 'secret'`); err != nil {
		return fmt.Errorf("deleting secret: %w", err)
	}
	return nil
}

// Times are kept as unix nanoseconds, NULL for the zero time, as on SQLite,
// so that a time round-trips exactly and "never" stays distinguishable from
// 1970.

func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNanos(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n)
}

// nullID binds an id, 0 (none) as NULL for the foreign key.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

func pgCode(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func isUniqueViolation(err error) bool     { return pgCode(err) == "23505" }
func isForeignKeyViolation(err error) bool { return pgCode(err) == "23503" }

// text makes a string PostgreSQL will store: TEXT refuses NUL bytes and
// invalid UTF-8, which SQLite keeps. What is written as a record of a
// request (audit fields, user agents, addresses, names) comes from clients,
// and one malformed User-Agent must not fail a login or a whole audit
// batch, so such strings are stored with the offending bytes replaced by
// U+FFFD.
func text(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// storable reports whether a key (an id, a jti, a uuid) can be stored as it
// is. A key that cannot was never stored, so looking it up finds nothing;
// keys are not replaced like text, which could make two keys one.
func storable(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// querier is the pool or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var (
	_ querier = (*pgxpool.Pool)(nil)
	_ querier = (pgx.Tx)(nil)
)

// inTx runs f in a READ COMMITTED transaction, committing if f returns nil.
func (s *Store) inTx(ctx context.Context, f func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	if err := f(tx); err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

// oneRow turns a statement that matched nothing into store.ErrNotFound.
// PostgreSQL counts every row an UPDATE matched, changed or not.
func oneRow(tag pgconn.CommandTag, err error) error {
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

type scanner interface{ Scan(...any) error }

// listRows runs a read query and scans every row into a T; what names the
// listing in errors.
func listRows[T any](ctx context.Context, q querier, what, query string, args []any, scan func(scanner, *T) error) ([]T, error) {
	rows, err := q.Query(ctx, query, args...)
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

// where builds the WHERE clause and arguments of a listing.
type where struct {
	conds []string
	args  []any
}

// add appends a condition whose one placeholder is written "?".
func (w *where) add(cond string, arg any) {
	w.args = append(w.args, arg)
	w.conds = append(w.conds, strings.Replace(cond, "?", "$"+strconv.Itoa(len(w.args)), 1))
}

// addAll is add for a condition with several placeholders, in order.
func (w *where) addAll(cond string, args ...any) {
	for _, a := range args {
		w.args = append(w.args, a)
		cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(w.args)), 1)
	}
	w.conds = append(w.conds, cond)
}

// sql is " WHERE a AND b", or "" without conditions.
func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// limit appends " LIMIT $n" for n > 0.
func (w *where) limit(n int) string {
	if n <= 0 {
		return ""
	}
	w.args = append(w.args, n)
	return " LIMIT $" + strconv.Itoa(len(w.args))
}
