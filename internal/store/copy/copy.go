// Package copy copies a whole latchkey store into another, SQLite to
// PostgreSQL and back, keeping every row's id, so that the target is the
// source: users, the roles of each site and who holds them, invites,
// sessions, links, tickets, the audit trail (still naming the right users),
// the mail outbox, throttle windows and meta (but for a secret an older
// latchkey kept there).
//
// It reads the source's tables through database/sql (SQLite) and pgx
// (PostgreSQL) directly, not through the store interface, which does not
// hand out every column of every row: both engines keep the same tables and
// columns at the same schema version (a test in the postgres store checks
// it), so the copy takes its column lists from the databases themselves and
// refuses stores whose schemas differ. The source is read in one snapshot,
// the target written in one transaction, which is committed only once every
// table's row count matches the source's. The fan-out of revocations
// (changes) is not copied: it only tells running gateways what to drop from
// their caches; nor is what the copy's own inserts record in the target's
// (a role held is a grant to its triggers).
//
// The copy never moves the gateway's secret: SQLite keeps a generated one
// in a file beside the database, and PostgreSQL gateways configure theirs.
// No error includes a DSN or its password.
package copy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/latchkeyhq/latchkey/internal/store/postgres"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
)

// Engines.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Side is one end of a copy.
type Side struct {
	Driver string // SQLite or Postgres
	// Target is the SQLite database file, or the PostgreSQL DSN (a
	// postgres:// URL or key=value pairs), which may hold a password and
	// is never shown.
	Target string
}

// String names the side without a password: the SQLite file, or the
// PostgreSQL user, host, port and database.
func (s Side) String() string {
	if s.Driver == Postgres {
		return "postgres " + postgres.Describe(s.Target)
	}
	return s.Driver + " " + s.Target
}

// Options tune Copy.
type Options struct {
	// Force replaces what the target holds; without it a target with any
	// row is refused.
	Force bool
}

// TableCount is a table's rows in the source and, after the copy, in the
// target.
type TableCount struct {
	Table  string `json:"table"`
	Source int64  `json:"source"`
	Target int64  `json:"target"`
}

// Result is what a copy did.
type Result struct {
	// SchemaVersion is both stores' schema version.
	SchemaVersion int `json:"schema_version"`
	// SourceMigratedFrom is the source's schema version before the copy
	// migrated it to SchemaVersion (as any latchkey command on it would);
	// 0 when it was at SchemaVersion already.
	SourceMigratedFrom int `json:"source_migrated_from,omitempty"`
	// Tables are the copied tables, in the order they were copied.
	Tables []TableCount `json:"tables"`
	// Replaced (Force only) is what the target held before, by table.
	Replaced []TableCount `json:"replaced,omitempty"`
	// TextRepaired counts text values PostgreSQL could not store as they
	// were (invalid UTF-8, NUL bytes), stored with U+FFFD in their place
	// as the store itself stores such client-sent strings.
	TextRepaired int `json:"text_repaired,omitempty"`
	// LegacySecret: the source still keeps a secret in its meta table (an
	// older latchkey did, before it moved it to a file at start). It was
	// not copied.
	LegacySecret bool `json:"legacy_secret,omitempty"`
}

// Rows is the total of the copied rows.
func (r *Result) Rows() int64 {
	var n int64
	for _, t := range r.Tables {
		n += t.Target
	}
	return n
}

// NotEmptyError refuses a target that holds rows, without Force.
type NotEmptyError struct {
	Target string       // as Side.String
	Tables []TableCount // the non-empty tables, Target set
}

func (e *NotEmptyError) Error() string {
	var parts []string
	for _, t := range e.Tables {
		parts = append(parts, t.Table+" "+strconv.FormatInt(t.Target, 10))
	}
	return fmt.Sprintf("the target %s is not empty (rows: %s); nothing was copied — copy with --force to replace what it holds",
		e.Target, strings.Join(parts, ", "))
}

var errNoStore = errors.New("no latchkey store there (it has no schema_migrations table)")

// Copy copies the store from into the store to, creating to's tables if
// needed. Both are migrated to this binary's schema version first (from
// only if it is older, as any latchkey command would); stores at different
// versions after that are refused.
func Copy(ctx context.Context, from, to Side, opts Options) (*Result, error) {
	for _, s := range []Side{from, to} {
		if s.Driver != SQLite && s.Driver != Postgres {
			return nil, fmt.Errorf("unknown store driver %q (want sqlite or postgres)", s.Driver)
		}
		if strings.TrimSpace(s.Target) == "" {
			return nil, fmt.Errorf("no %s store given", s.Driver)
		}
	}
	res := &Result{}

	// The source must exist: a mistyped path must not create a store.
	var pgSrc *pgxConn
	switch from.Driver {
	case SQLite:
		if _, err := os.Stat(from.Target); err != nil {
			return nil, fmt.Errorf("source %s: %w", from, err)
		}
		if to.Driver == SQLite && sameFile(from.Target, to.Target) {
			return nil, fmt.Errorf("the source and the target are the same store (%s)", from)
		}
	case Postgres:
		conn, secrets, err := connectPG(ctx, from.Target)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", from, err)
		}
		pgSrc = &pgxConn{conn, secrets}
		defer func() {
			if pgSrc != nil {
				pgSrc.conn.Close(context.Background())
			}
		}()
	}
	var pgDst *pgxConn
	if to.Driver == Postgres {
		conn, secrets, err := connectPG(ctx, to.Target)
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", to, err)
		}
		pgDst = &pgxConn{conn, secrets}
		defer func() {
			if pgDst != nil {
				pgDst.conn.Close(context.Background())
			}
		}()
		if pgSrc != nil {
			same, err := sameDatabase(ctx, pgSrc, pgDst)
			if err != nil {
				return nil, err
			}
			if same {
				return nil, fmt.Errorf("the source and the target are the same database (%s)", to)
			}
		}
	}

	// Versions: the source's as it is, then both migrated.
	srcVersion, err := sourceVersion(ctx, from, pgSrc)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", from, err)
	}
	binary := sqlite.SchemaVersion
	if from.Driver == Postgres {
		binary = postgres.SchemaVersion
	}
	if srcVersion < binary {
		if err := migrate(ctx, from); err != nil {
			return nil, fmt.Errorf("source %s: %w", from, err)
		}
		res.SourceMigratedFrom = srcVersion
	}
	if err := migrate(ctx, to); err != nil {
		return nil, fmt.Errorf("target %s: %w", to, err)
	}

	src, err := openEngine(ctx, from, pgSrc, false)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", from, err)
	}
	pgSrc = nil // the engine closes it
	defer src.close()
	dst, err := openEngine(ctx, to, pgDst, true)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", to, err)
	}
	pgDst = nil
	defer dst.close()

	if err := copyTables(ctx, src, dst, from, to, opts, res); err != nil {
		if pe, ok := dst.(*pgEngine); ok {
			err = scrub(err, pe.secrets)
		}
		if pe, ok := src.(*pgEngine); ok {
			err = scrub(err, pe.secrets)
		}
		return nil, err
	}
	return res, nil
}

func copyTables(ctx context.Context, src, dst engine, from, to Side, opts Options, res *Result) error {
	sv, err := src.version(ctx)
	if err != nil {
		return fmt.Errorf("source %s: %w", from, err)
	}
	dv, err := dst.version(ctx)
	if err != nil {
		return fmt.Errorf("target %s: %w", to, err)
	}
	if sv != dv {
		return fmt.Errorf("the source %s is at schema version %d but the target %s at %d; copy between stores of one version (start this latchkey's gateway on the older one once, which migrates it)", from, sv, to, dv)
	}
	res.SchemaVersion = sv

	stables, err := src.tables(ctx)
	if err != nil {
		return fmt.Errorf("source %s: %w", from, err)
	}
	dtables, err := dst.tables(ctx)
	if err != nil {
		return fmt.Errorf("target %s: %w", to, err)
	}
	order, err := compareSchemas(stables, dtables)
	if err != nil {
		return err
	}

	// Refuse a target that holds anything, unless forced.
	var held []TableCount
	check := append([]string{}, tableNames(order)...)
	if dtables["changes"] != nil {
		check = append(check, "changes")
	}
	for _, name := range check {
		n, err := dst.countAll(ctx, name)
		if err != nil {
			return fmt.Errorf("target %s: %w", to, err)
		}
		if n > 0 {
			held = append(held, TableCount{Table: name, Target: n})
		}
	}
	if len(held) > 0 {
		if !opts.Force {
			return &NotEmptyError{Target: to.String(), Tables: held}
		}
		if err := dst.wipe(ctx, order); err != nil {
			return fmt.Errorf("target %s: %w", to, err)
		}
		res.Replaced = held
	}

	if res.LegacySecret, err = src.legacySecret(ctx); err != nil {
		return fmt.Errorf("source %s: %w", from, err)
	}
	// Inserting rows fires the target's triggers: a role copied into
	// user_roles records a change of its user, which no gateway needs (the
	// copy is not a grant). What the copy records is deleted before the
	// commit, so that the target's changes go on from where they were.
	var changesMark int64
	if dtables["changes"] != nil {
		if changesMark, err = dst.latestChange(ctx); err != nil {
			return fmt.Errorf("target %s: %w", to, err)
		}
	}

	for _, st := range order {
		dt := dtables[st.name]
		byName := map[string]column{}
		for _, c := range dt.cols {
			byName[c.name] = c
		}
		cols := make([]column, len(st.cols))
		for i, c := range st.cols {
			cols[i] = byName[c.name]
		}
		want, err := src.count(ctx, st.name)
		if err != nil {
			return fmt.Errorf("source %s: %w", from, err)
		}
		hw, err := src.highWater(ctx, st)
		if err != nil {
			return fmt.Errorf("source %s: %w", from, err)
		}
		rows, err := src.rows(ctx, st)
		if err != nil {
			return fmt.Errorf("source %s: %w", from, err)
		}
		conv := &converter{t: st, src: st.cols, dst: cols, toPG: dst.isPostgres()}
		_, err = dst.insert(ctx, dt, cols, rows, conv.convert)
		rows.Close()
		if err != nil {
			return fmt.Errorf("copying %s into %s: %w", st.name, to, err)
		}
		res.TextRepaired += conv.replaced
		if err := dst.raiseHighWater(ctx, dt, hw); err != nil {
			return fmt.Errorf("target %s: %w", to, err)
		}
		got, err := dst.count(ctx, st.name)
		if err != nil {
			return fmt.Errorf("target %s: %w", to, err)
		}
		res.Tables = append(res.Tables, TableCount{Table: st.name, Source: want, Target: got})
	}
	if dtables["changes"] != nil {
		if err := dst.dropChangesAfter(ctx, changesMark); err != nil {
			return fmt.Errorf("target %s: %w", to, err)
		}
	}
	var bad []string
	for _, t := range res.Tables {
		if t.Source != t.Target {
			bad = append(bad, fmt.Sprintf("%s: %d in the source, %d in the target", t.Table, t.Source, t.Target))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("row counts differ after the copy, so it was rolled back: %s", strings.Join(bad, "; "))
	}
	if err := dst.commit(ctx); err != nil {
		return fmt.Errorf("target %s: %w", to, err)
	}
	return nil
}

func tableNames(ts []*table) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.name
	}
	return out
}
