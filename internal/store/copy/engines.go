package copy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// rowIter is a cursor over one table's rows, in the table's order.
type rowIter interface {
	Next() bool
	Values() ([]any, error)
	Err() error
	Close()
}

// engine is one side's open database, inside the copy's transaction (a
// read snapshot on the source, the one write transaction on the target).
type engine interface {
	isPostgres() bool
	version(ctx context.Context) (int, error)
	tables(ctx context.Context) (map[string]*table, error)
	// count counts the rows copied (where), countAll every row.
	count(ctx context.Context, t string) (int64, error)
	countAll(ctx context.Context, t string) (int64, error)
	rows(ctx context.Context, t *table) (rowIter, error)
	// highWater is the largest id t's identity column has handed out:
	// the largest present, or one deleted since (SQLite's sqlite_sequence,
	// PostgreSQL's sequence), whichever is larger.
	highWater(ctx context.Context, t *table) (int64, error)
	legacySecret(ctx context.Context) (bool, error)

	// The target's side.
	wipe(ctx context.Context, tables []*table) error
	insert(ctx context.Context, t *table, cols []column, src rowIter, conv func([]any) ([]any, error)) (int64, error)
	raiseHighWater(ctx context.Context, t *table, hw int64) error
	// latestChange is the newest id in changes; dropChangesAfter deletes
	// the changes after it, which the copy's own inserts recorded (the
	// triggers on user_roles record a grant per row).
	latestChange(ctx context.Context) (int64, error)
	dropChangesAfter(ctx context.Context, after int64) error
	commit(ctx context.Context) error
	close()
}

// where is the rows of a table that are copied: the secret in meta (an
// older latchkey kept it there) never is.
func where(t string) string {
	if t == "meta" {
		return ` WHERE key <> 'secret'`
	}
	return ""
}

// ---- SQLite ----

type sqliteEngine struct {
	db *sql.DB
	tx *sql.Tx
}

// sqliteDSN is the modernc.org/sqlite DSN of the file at abs, as the
// store opens it: the path escaped (the driver hands SQLite a "file:"
// URI), a busy timeout for the gateways that may share the file, foreign
// keys on; the target's transaction takes the write lock at BEGIN, the
// source's connection cannot write.
func sqliteDSN(abs string, write bool) string {
	var b strings.Builder
	b.WriteString("file:")
	b.WriteString(sqlite.EscapePath(abs))
	b.WriteString("?_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)")
	if write {
		b.WriteString("&_txlock=immediate")
	} else {
		b.WriteString("&_pragma=query_only(1)")
	}
	return b.String()
}

func openSQLite(ctx context.Context, path string, write bool) (*sqliteEngine, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", sqliteDSN(abs, write))
	if err != nil {
		return nil, err
	}
	// One connection: the transaction holds it, and everything runs in
	// the transaction.
	db.SetMaxOpenConns(1)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("beginning transaction: %w", err)
	}
	return &sqliteEngine{db: db, tx: tx}, nil
}

func (e *sqliteEngine) isPostgres() bool { return false }

func (e *sqliteEngine) version(ctx context.Context) (int, error) {
	return sqliteVersion(ctx, e.tx)
}

func sqliteVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("reading schema version: %w", err)
	}
	if n == 0 {
		return 0, errNoStore
	}
	var v int
	if err := q.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("reading schema version: %w", err)
	}
	return v, nil
}

func (e *sqliteEngine) tables(ctx context.Context) (map[string]*table, error) {
	return sqliteTables(ctx, e.tx)
}

func (e *sqliteEngine) count(ctx context.Context, t string) (int64, error) {
	return e.countWhere(ctx, t, where(t))
}

func (e *sqliteEngine) countAll(ctx context.Context, t string) (int64, error) {
	return e.countWhere(ctx, t, "")
}

func (e *sqliteEngine) countWhere(ctx context.Context, t, where string) (int64, error) {
	var n int64
	if err := e.tx.QueryRowContext(ctx, `SELECT count(*) FROM `+quote(t)+where).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting %s: %w", t, err)
	}
	return n, nil
}

type sqlRows struct {
	*sql.Rows
	n int
}

func (r *sqlRows) Values() ([]any, error) {
	vals := make([]any, r.n)
	ptrs := make([]any, r.n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := r.Scan(ptrs...); err != nil {
		return nil, err
	}
	return vals, nil
}

func (r *sqlRows) Close() { r.Rows.Close() }

func (e *sqliteEngine) rows(ctx context.Context, t *table) (rowIter, error) {
	q := `SELECT ` + quoteAll(t.colNames()) + ` FROM ` + quote(t.name) + where(t.name) + ` ORDER BY ` + quoteAll(t.order)
	if len(t.order) == 1 && t.order[0] == "rowid" {
		q = `SELECT ` + quoteAll(t.colNames()) + ` FROM ` + quote(t.name) + where(t.name) + ` ORDER BY rowid`
	}
	rows, err := e.tx.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", t.name, err)
	}
	return &sqlRows{Rows: rows, n: len(t.cols)}, nil
}

func (e *sqliteEngine) highWater(ctx context.Context, t *table) (int64, error) {
	id := t.identity()
	if id == "" {
		return 0, nil
	}
	var hw int64
	if err := e.tx.QueryRowContext(ctx, `SELECT coalesce(max(`+quote(id)+`), 0) FROM `+quote(t.name)).Scan(&hw); err != nil {
		return 0, fmt.Errorf("reading the largest id of %s: %w", t.name, err)
	}
	if t.autoincrement {
		var seq sql.NullInt64
		err := e.tx.QueryRowContext(ctx, `SELECT max(seq) FROM sqlite_sequence WHERE name = ?`, t.name).Scan(&seq)
		if err != nil {
			return 0, fmt.Errorf("reading the id sequence of %s: %w", t.name, err)
		}
		hw = max(hw, seq.Int64)
	}
	return hw, nil
}

func (e *sqliteEngine) legacySecret(ctx context.Context) (bool, error) {
	var n int
	if err := e.tx.QueryRowContext(ctx, `SELECT count(*) FROM meta WHERE key = 'secret'`).Scan(&n); err != nil {
		return false, fmt.Errorf("reading meta: %w", err)
	}
	return n > 0, nil
}

// wipe deletes every row of tables, dependents first, then the fan-out of
// revocations the deletions wrote (its ids go on rising: AUTOINCREMENT).
func (e *sqliteEngine) wipe(ctx context.Context, tables []*table) error {
	for i := len(tables) - 1; i >= 0; i-- {
		if _, err := e.tx.ExecContext(ctx, `DELETE FROM `+quote(tables[i].name)); err != nil {
			return fmt.Errorf("emptying %s: %w", tables[i].name, err)
		}
	}
	if _, err := e.tx.ExecContext(ctx, `DELETE FROM changes`); err != nil {
		return fmt.Errorf("emptying changes: %w", err)
	}
	return nil
}

func (e *sqliteEngine) latestChange(ctx context.Context) (int64, error) {
	var n int64
	if err := e.tx.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM changes`).Scan(&n); err != nil {
		return 0, fmt.Errorf("reading changes: %w", err)
	}
	return n, nil
}

func (e *sqliteEngine) dropChangesAfter(ctx context.Context, after int64) error {
	if _, err := e.tx.ExecContext(ctx, `DELETE FROM changes WHERE id > ?`, after); err != nil {
		return fmt.Errorf("deleting the changes the copy recorded: %w", err)
	}
	return nil
}

func (e *sqliteEngine) insert(ctx context.Context, t *table, cols []column, src rowIter, conv func([]any) ([]any, error)) (int64, error) {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	stmt, err := e.tx.PrepareContext(ctx, `INSERT INTO `+quote(t.name)+` (`+quoteAll(names)+`) VALUES (`+strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ")+`)`)
	if err != nil {
		return 0, fmt.Errorf("writing %s: %w", t.name, err)
	}
	defer stmt.Close()
	var n int64
	for src.Next() {
		vals, err := src.Values()
		if err != nil {
			return n, fmt.Errorf("reading %s: %w", t.name, err)
		}
		if vals, err = conv(vals); err != nil {
			return n, err
		}
		if _, err := stmt.ExecContext(ctx, vals...); err != nil {
			return n, fmt.Errorf("writing %s: %w", t.name, err)
		}
		n++
	}
	if err := src.Err(); err != nil {
		return n, fmt.Errorf("reading %s: %w", t.name, err)
	}
	return n, nil
}

// raiseHighWater makes sure the target hands out no id up to hw again:
// sqlite_sequence for an AUTOINCREMENT table (inserting explicit ids has
// already raised it to the largest copied). A table without AUTOINCREMENT
// (audit) takes the largest id present plus one, whatever hw was.
func (e *sqliteEngine) raiseHighWater(ctx context.Context, t *table, hw int64) error {
	if !t.autoincrement || hw <= 0 {
		return nil
	}
	res, err := e.tx.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?`, hw, t.name)
	if err != nil {
		return fmt.Errorf("setting the id sequence of %s: %w", t.name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := e.tx.ExecContext(ctx, `INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)`, t.name, hw); err != nil {
			return fmt.Errorf("setting the id sequence of %s: %w", t.name, err)
		}
	}
	return nil
}

func (e *sqliteEngine) commit(ctx context.Context) error {
	if err := e.tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	e.tx = nil
	return nil
}

func (e *sqliteEngine) close() {
	if e.tx != nil {
		e.tx.Rollback()
	}
	e.db.Close()
}

// ---- PostgreSQL ----

type pgEngine struct {
	conn    *pgx.Conn
	tx      pgx.Tx
	secrets []string
}

// connectPG opens one connection to the database dsn names. The DSN may
// carry pgxpool's settings (pool_max_conns), which are not the server's.
func connectPG(ctx context.Context, dsn string) (*pgx.Conn, []string, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, nil, errors.New("the DSN does not parse (it is not shown, as it may hold a password)")
	}
	secrets := []string{dsn}
	if cfg.ConnConfig.Password != "" {
		secrets = append(secrets, cfg.ConnConfig.Password)
	}
	cc := cfg.ConnConfig.Copy()
	// The copy of a big audit trail takes as long as it takes.
	cc.RuntimeParams["statement_timeout"] = "0"
	if _, ok := cc.RuntimeParams["application_name"]; !ok {
		cc.RuntimeParams["application_name"] = "latchkey store copy"
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, nil, scrub(fmt.Errorf("connecting: %w", err), secrets)
	}
	return conn, secrets, nil
}

func pgVersion(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, fmt.Errorf("reading schema version: %w", err)
	}
	if !exists {
		return 0, errNoStore
	}
	var v int
	if err := q.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("reading schema version: %w", err)
	}
	return v, nil
}

func beginPG(ctx context.Context, conn *pgx.Conn, secrets []string, write bool) (*pgEngine, error) {
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	if write {
		opts = pgx.TxOptions{IsoLevel: pgx.ReadCommitted}
	}
	tx, err := conn.BeginTx(ctx, opts)
	if err != nil {
		return nil, scrub(fmt.Errorf("beginning transaction: %w", err), secrets)
	}
	return &pgEngine{conn: conn, tx: tx, secrets: secrets}, nil
}

func (e *pgEngine) isPostgres() bool { return true }

func (e *pgEngine) version(ctx context.Context) (int, error) { return pgVersion(ctx, e.tx) }

func (e *pgEngine) tables(ctx context.Context) (map[string]*table, error) {
	return pgTables(ctx, e.tx)
}

func (e *pgEngine) count(ctx context.Context, t string) (int64, error) {
	return e.countWhere(ctx, t, where(t))
}

func (e *pgEngine) countAll(ctx context.Context, t string) (int64, error) {
	return e.countWhere(ctx, t, "")
}

func (e *pgEngine) countWhere(ctx context.Context, t, where string) (int64, error) {
	var n int64
	if err := e.tx.QueryRow(ctx, `SELECT count(*) FROM `+quote(t)+where).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting %s: %w", t, err)
	}
	return n, nil
}

type pgRows struct{ pgx.Rows }

func (r pgRows) Values() ([]any, error) { return r.Rows.Values() }

func (e *pgEngine) rows(ctx context.Context, t *table) (rowIter, error) {
	rows, err := e.tx.Query(ctx, `SELECT `+quoteAll(t.colNames())+` FROM `+quote(t.name)+where(t.name)+` ORDER BY `+quoteAll(t.order))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", t.name, err)
	}
	return pgRows{rows}, nil
}

func (e *pgEngine) highWater(ctx context.Context, t *table) (int64, error) {
	id := t.identity()
	if id == "" {
		return 0, nil
	}
	var hw int64
	err := e.tx.QueryRow(ctx, `SELECT greatest(
			(SELECT coalesce(max(`+quote(id)+`), 0) FROM `+quote(t.name)+`),
			coalesce(pg_sequence_last_value(pg_get_serial_sequence($1, $2)::regclass), 0))`,
		quote(t.name), id).Scan(&hw)
	if err != nil {
		return 0, fmt.Errorf("reading the id sequence of %s: %w", t.name, err)
	}
	return hw, nil
}

func (e *pgEngine) legacySecret(ctx context.Context) (bool, error) {
	var n int
	if err := e.tx.QueryRow(ctx, `SELECT count(*) FROM meta WHERE key = 'secret'`).Scan(&n); err != nil {
		return false, fmt.Errorf("reading meta: %w", err)
	}
	return n > 0, nil
}

// wipe empties tables and the fan-out of revocations with one TRUNCATE,
// which fires no row triggers; identities are not restarted, so the
// target's ids never go back (raiseHighWater sets them after the copy).
func (e *pgEngine) wipe(ctx context.Context, tables []*table) error {
	names := []string{"changes"}
	for _, t := range tables {
		names = append(names, t.name)
	}
	if _, err := e.tx.Exec(ctx, `TRUNCATE `+quoteAll(names)); err != nil {
		return fmt.Errorf("emptying the target: %w", err)
	}
	return nil
}

// insert uses COPY, which writes the ids it is given into identity
// columns (as INSERT … OVERRIDING SYSTEM VALUE would), so that every row
// keeps its id; seq columns are left out and numbered in the order the
// rows come in.
func (e *pgEngine) insert(ctx context.Context, t *table, cols []column, src rowIter, conv func([]any) ([]any, error)) (int64, error) {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	var srcErr error
	n, err := e.tx.CopyFrom(ctx, pgx.Identifier{t.name}, names, pgx.CopyFromFunc(func() ([]any, error) {
		if !src.Next() {
			if err := src.Err(); err != nil {
				srcErr = fmt.Errorf("reading %s: %w", t.name, err)
				return nil, srcErr
			}
			return nil, nil
		}
		vals, err := src.Values()
		if err != nil {
			srcErr = fmt.Errorf("reading %s: %w", t.name, err)
			return nil, srcErr
		}
		if vals, err = conv(vals); err != nil {
			srcErr = err
			return nil, err
		}
		return vals, nil
	}))
	if srcErr != nil {
		return n, srcErr
	}
	if err != nil {
		return n, fmt.Errorf("writing %s: %w", t.name, err)
	}
	return n, nil
}

// raiseHighWater sets the identity's sequence so that its next id is past
// hw and past anything it handed out before.
func (e *pgEngine) raiseHighWater(ctx context.Context, t *table, hw int64) error {
	id := t.identity()
	if id == "" {
		return nil
	}
	_, err := e.tx.Exec(ctx, `WITH s AS (SELECT pg_get_serial_sequence($1, $2)::regclass AS seq),
			v AS (SELECT seq, greatest($3::bigint, coalesce(pg_sequence_last_value(seq), 0)) AS hw FROM s)
		SELECT CASE WHEN hw > 0 THEN setval(seq, hw, true) ELSE setval(seq, 1, false) END FROM v`,
		quote(t.name), id, hw)
	if err != nil {
		return fmt.Errorf("setting the id sequence of %s: %w", t.name, err)
	}
	return nil
}

func (e *pgEngine) latestChange(ctx context.Context) (int64, error) {
	var n int64
	if err := e.tx.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM changes`).Scan(&n); err != nil {
		return 0, fmt.Errorf("reading changes: %w", err)
	}
	return n, nil
}

// dropChangesAfter: the triggers' NOTIFY is sent at commit all the same;
// a gateway that hears it finds no change to follow.
func (e *pgEngine) dropChangesAfter(ctx context.Context, after int64) error {
	if _, err := e.tx.Exec(ctx, `DELETE FROM changes WHERE id > $1`, after); err != nil {
		return fmt.Errorf("deleting the changes the copy recorded: %w", err)
	}
	return nil
}

func (e *pgEngine) commit(ctx context.Context) error {
	if err := e.tx.Commit(ctx); err != nil {
		return scrub(fmt.Errorf("committing: %w", err), e.secrets)
	}
	e.tx = nil
	return nil
}

func (e *pgEngine) close() {
	if e.tx != nil {
		e.tx.Rollback(context.Background())
	}
	e.conn.Close(context.Background())
}

// ---- values ----

// converter turns a source row into what the target's columns take, and
// counts the text values PostgreSQL could not store as they were.
type converter struct {
	t        *table
	src, dst []column // by position in the source's row
	toPG     bool
	replaced int
}

func (c *converter) convert(vals []any) ([]any, error) {
	out := make([]any, len(vals))
	for i, v := range vals {
		var err error
		if out[i], err = c.value(v, c.dst[i].kind); err != nil {
			return nil, fmt.Errorf("%s.%s: %w", c.t.name, c.dst[i].name, err)
		}
	}
	return out, nil
}

func (c *converter) value(v any, k kind) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case int32:
		v = int64(x)
	case int16:
		v = int64(x)
	case int:
		v = int64(x)
	}
	switch k {
	case kindInt:
		switch x := v.(type) {
		case int64:
			return x, nil
		case bool:
			if x {
				return int64(1), nil
			}
			return int64(0), nil
		}
	case kindBool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case int64:
			return x != 0, nil
		}
	case kindText:
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case []byte:
			s = string(x)
		default:
			return nil, fmt.Errorf("a %T where text belongs", v)
		}
		if c.toPG && (!utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0) {
			// What PostgreSQL's text refuses; the store writes such
			// strings (from clients: user agents, paths) the same way.
			c.replaced++
			s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
		}
		return s, nil
	case kindBlob:
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	}
	return nil, fmt.Errorf("a %T where %s belongs", v, k)
}
