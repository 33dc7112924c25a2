package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	schema "github.com/latchkeyhq/latchkey/internal/store/migration"
	"io/fs"
	"time"
)

// SchemaVersion is the newest migration this binary carries. A database
// whose schema is newer is refused rather than used, because an older
// binary cannot know what a newer schema expects of its writers. It must
// equal the number of the last file in migrations/; package initialisation
// panics otherwise, so a forgotten bump fails every test in the package.
const SchemaVersion = 15

// migrationFiles are applied in version order, each in its own transaction,
// which is why a migration cannot use VACUUM or PRAGMA foreign_keys (a no-op
// inside a transaction); a table rebuild has to keep foreign keys valid on
// its own. Applied migrations are never edited: a change is a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration = schema.Migration

// migrations is the embedded set, sorted by version and gap-free from 1.
var migrations = schema.MustLoad(migrationFiles, "sqlite", SchemaVersion)

// loadMigrations reads a set of migrations (the tests give their own).
func loadMigrations(fsys fs.FS) ([]migration, error) { return schema.Load(fsys) }

// SchemaTooNewError is returned by Open when the database was migrated by
// a newer latchkey; nothing is changed then.
type SchemaTooNewError = schema.SchemaTooNewError

// migrate brings db up to SchemaVersion. It always takes the write lock at
// least once, even when nothing is pending, so that a database latchkey
// cannot write to is reported by Open and not by the first login.
//
// Every step runs in its own BEGIN IMMEDIATE transaction and re-reads what
// is applied after taking the lock: several processes may open a fresh file
// at once, and whichever gets the lock second must see the first one's work
// instead of applying it again.
//
// ms is the embedded set outside tests; the newest of them is the newest
// version this binary supports.
func migrate(ctx context.Context, db *sql.DB, ms []migration) (applied []int, err error) {
	latest := 0
	if len(ms) > 0 {
		latest = ms[len(ms)-1].Version
	}
	if _, err := withWriteTx(ctx, db, func(tx *sql.Tx) (bool, error) {
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			applied_at INTEGER NOT NULL
		)`)
		if err != nil {
			return false, fmt.Errorf("creating schema_migrations: %w", err)
		}
		_, err = newestApplied(ctx, tx, latest)
		return err == nil, err
	}); err != nil {
		return nil, err
	}

	for _, m := range ms {
		ran, err := withWriteTx(ctx, db, func(tx *sql.Tx) (bool, error) {
			newest, err := newestApplied(ctx, tx, latest)
			if err != nil {
				return false, err
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
				return false, fmt.Errorf("checking migration %s: %w", m.Name, err)
			}
			if n > 0 {
				return false, nil
			}
			if newest > m.Version {
				// A later version is recorded but this one is not: the
				// database was not made by this sequence of migrations.
				return false, fmt.Errorf("migration %s is missing from a database at schema version %d", m.Name, newest)
			}
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return false, fmt.Errorf("applying migration %s: %w", m.Name, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, m.Version, time.Now().UnixNano()); err != nil {
				return false, fmt.Errorf("recording migration %s: %w", m.Name, err)
			}
			return true, nil
		})
		if err != nil {
			return applied, err
		}
		if ran {
			applied = append(applied, m.Version)
		}
	}
	return applied, nil
}

// newestApplied refuses a database from a newer binary before anything is
// written to it.
func newestApplied(ctx context.Context, tx *sql.Tx, latest int) (int, error) {
	var newest int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&newest); err != nil {
		return 0, fmt.Errorf("reading schema version: %w", err)
	}
	if newest > latest {
		return newest, &SchemaTooNewError{Database: newest, Binary: latest}
	}
	return newest, nil
}

// withWriteTx commits when f reports true and rolls back otherwise, so a
// step that turns out to have nothing to do leaves the file untouched.
func withWriteTx(ctx context.Context, db *sql.DB, f func(*sql.Tx) (bool, error)) (bool, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("beginning write transaction: %w", err)
	}
	commit, err := f(tx)
	if err != nil || !commit {
		tx.Rollback()
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("committing: %w", err)
	}
	return true, nil
}
