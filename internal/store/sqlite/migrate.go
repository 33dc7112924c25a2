package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"time"
)

// SchemaVersion is the newest migration this binary carries. A database
// whose schema is newer is refused rather than used, because an older
// binary cannot know what a newer schema expects of its writers. It must
// equal the number of the last file in migrations/; package initialisation
// panics otherwise, so a forgotten bump fails every test in the package.
const SchemaVersion = 9

// migrationFiles are applied in version order, each in its own transaction,
// which is why a migration cannot use VACUUM or PRAGMA foreign_keys (a no-op
// inside a transaction); a table rebuild has to keep foreign keys valid on
// its own. Applied migrations are never edited: a change is a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string // file name, for error messages
	sql     string
}

// migrations is the embedded set, sorted by version and gap-free from 1.
var migrations = mustLoadMigrations(migrationFiles)

var migrationName = regexp.MustCompile(`^([0-9]{4})_[a-z0-9_]+\.sql$`)

func mustLoadMigrations(fsys fs.FS) []migration {
	ms, err := loadMigrations(fsys)
	if err != nil {
		panic("latchkey sqlite store: " + err.Error())
	}
	if len(ms) == 0 || ms[len(ms)-1].version != SchemaVersion {
		panic(fmt.Sprintf("latchkey sqlite store: SchemaVersion is %d but the newest embedded migration is %d", SchemaVersion, len(ms)))
	}
	return ms
}

// loadMigrations insists on versions 1..n without gaps or duplicates, since
// a gap would mean a migration lost in a merge, and databases that skipped
// it could never be told apart from ones that ran it.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, p := range names {
		name := path.Base(p)
		m := migrationName.FindStringSubmatch(name)
		if m == nil {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.sql", name)
		}
		v, _ := strconv.Atoi(m[1])
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %q has version %d, want %d (versions must run 1, 2, 3... without gaps)", m.name, m.version, i+1)
		}
	}
	return ms, nil
}

// SchemaTooNewError is returned by Open when the database was migrated by a
// newer latchkey. Nothing is changed in that case, so the newer binary can
// keep using the file.
type SchemaTooNewError struct {
	Database int // newest version applied to the database
	Binary   int // newest version this binary knows, SchemaVersion
}

func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("database schema version %d is newer than this binary supports (%d); upgrade latchkey or point it at another database", e.Database, e.Binary)
}

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
		latest = ms[len(ms)-1].version
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
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
				return false, fmt.Errorf("checking migration %s: %w", m.name, err)
			}
			if n > 0 {
				return false, nil
			}
			if newest > m.version {
				// A later version is recorded but this one is not: the
				// database was not made by this sequence of migrations.
				return false, fmt.Errorf("migration %s is missing from a database at schema version %d", m.name, newest)
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return false, fmt.Errorf("applying migration %s: %w", m.name, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, m.version, time.Now().UnixNano()); err != nil {
				return false, fmt.Errorf("recording migration %s: %w", m.name, err)
			}
			return true, nil
		})
		if err != nil {
			return applied, err
		}
		if ran {
			applied = append(applied, m.version)
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
