package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// SchemaVersion is the newest migration this binary carries; it follows the
// SQLite store's (the two keep the same logical schema under the same
// version numbers). A database whose schema is newer is refused rather than
// used, because an older binary cannot know what a newer schema expects of
// its writers. It must equal the number of the last file in migrations/;
// package initialisation panics otherwise.
const SchemaVersion = 9

// migrationFiles are applied in version order, each in its own transaction
// (PostgreSQL's DDL is transactional, so a failed migration leaves nothing
// behind). Applied migrations are never edited: a change is a new file.
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
		panic("latchkey postgres store: " + err.Error())
	}
	if len(ms) == 0 || ms[len(ms)-1].version != SchemaVersion {
		panic(fmt.Sprintf("latchkey postgres store: SchemaVersion is %d but the newest embedded migration is %d", SchemaVersion, len(ms)))
	}
	return ms
}

// loadMigrations insists on versions 1..n without gaps or duplicates.
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
// keep using the database.
type SchemaTooNewError struct {
	Database int // newest version applied to the database
	Binary   int // newest version this binary knows, SchemaVersion
}

func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("database schema version %d is newer than this binary supports (%d); upgrade latchkey or point it at another database", e.Database, e.Binary)
}

// migrationLock is the key of the session-level advisory lock migrations
// run under ("latchkey" in ASCII). Advisory locks belong to one database,
// so gateways on different databases of one server do not wait for each
// other.
const migrationLock int64 = 0x6c617463686b6579

// migrate brings the database conn is connected to up to the newest of ms.
// It holds the advisory lock throughout, so that of several gateways
// opening a fresh database at once, one migrates and the others wait and
// then find nothing to do; it re-reads what is applied after taking the
// lock for the same reason. The lock goes with the connection, which the
// caller closes, should the unlock fail.
func migrate(ctx context.Context, conn *pgx.Conn, ms []migration) (applied []int, err error) {
	latest := 0
	if len(ms) > 0 {
		latest = ms[len(ms)-1].version
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return nil, fmt.Errorf("taking the migration lock: %w", err)
	}
	defer func() {
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock); uerr != nil && err == nil {
			err = fmt.Errorf("releasing the migration lock: %w", uerr)
		}
	}()

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at BIGINT  NOT NULL
	)`); err != nil {
		return nil, fmt.Errorf("creating schema_migrations: %w", err)
	}
	done := map[int]bool{}
	rows, err := conn.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("reading schema version: %w", err)
	}
	newest := 0
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading schema version: %w", err)
		}
		done[v] = true
		newest = max(newest, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading schema version: %w", err)
	}
	if newest > latest {
		return nil, &SchemaTooNewError{Database: newest, Binary: latest}
	}

	for _, m := range ms {
		if done[m.version] {
			continue
		}
		if newest > m.version {
			// A later version is recorded but this one is not: the
			// database was not made by this sequence of migrations.
			return applied, fmt.Errorf("migration %s is missing from a database at schema version %d", m.name, newest)
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("applying migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`,
				m.version, time.Now().UnixNano()); err != nil {
				return fmt.Errorf("recording migration %s: %w", m.name, err)
			}
			return nil
		})
		if err != nil {
			return applied, err
		}
		applied = append(applied, m.version)
	}
	return applied, nil
}
