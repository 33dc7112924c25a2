package postgres

import (
	"context"
	"embed"
	"fmt"
	schema "github.com/latchkeyhq/latchkey/internal/store/migration"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
)

// SchemaVersion is the newest migration this binary carries; it follows the
// SQLite store's (the two keep the same logical schema under the same
// version numbers). A database whose schema is newer is refused rather than
// used, because an older binary cannot know what a newer schema expects of
// its writers. It must equal the number of the last file in migrations/;
// package initialisation panics otherwise.
const SchemaVersion = 15

// migrationFiles are applied in version order, each in its own transaction
// (PostgreSQL's DDL is transactional, so a failed migration leaves nothing
// behind). Applied migrations are never edited: a change is a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration = schema.Migration

// migrations is the embedded set, sorted by version and gap-free from 1.
var migrations = schema.MustLoad(migrationFiles, "postgres", SchemaVersion)

// loadMigrations reads a set of migrations (the tests give their own).
func loadMigrations(fsys fs.FS) ([]migration, error) { return schema.Load(fsys) }

// SchemaTooNewError is returned by Open when the database was migrated by
// a newer latchkey; nothing is changed then.
type SchemaTooNewError = schema.SchemaTooNewError

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
		latest = ms[len(ms)-1].Version
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
		if done[m.Version] {
			continue
		}
		if newest > m.Version {
			// A later version is recorded but this one is not: the
			// database was not made by this sequence of migrations.
			return applied, fmt.Errorf("migration %s is missing from a database at schema version %d", m.Name, newest)
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("applying migration %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`,
				m.Version, time.Now().UnixNano()); err != nil {
				return fmt.Errorf("recording migration %s: %w", m.Name, err)
			}
			return nil
		})
		if err != nil {
			return applied, err
		}
		applied = append(applied, m.Version)
	}
	return applied, nil
}
