package copy

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/latchkeyhq/latchkey/internal/store/postgres"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
)

// pgxConn is a connection and what must never appear in its errors.
type pgxConn struct {
	conn    *pgx.Conn
	secrets []string
}

// sourceVersion reads the source's schema version without changing it.
func sourceVersion(ctx context.Context, s Side, pg *pgxConn) (int, error) {
	if s.Driver == Postgres {
		v, err := pgVersion(ctx, pg.conn)
		return v, scrub(err, pg.secrets)
	}
	abs, err := filepath.Abs(s.Target)
	if err != nil {
		return 0, err
	}
	db, err := sql.Open("sqlite", sqliteDSN(abs, false))
	if err != nil {
		return 0, err
	}
	defer db.Close()
	return sqliteVersion(ctx, db)
}

// migrate opens s through its store, which creates its tables or brings
// them to this binary's schema version, and refuses a newer one.
func migrate(ctx context.Context, s Side) error {
	switch s.Driver {
	case SQLite:
		st, err := sqlite.Open(ctx, s.Target)
		if err != nil {
			return err
		}
		return st.Close()
	case Postgres:
		st, err := postgres.Open(ctx, s.Target, postgres.WithMaxConns(1))
		if err != nil {
			return err
		}
		return st.Close()
	}
	return fmt.Errorf("unknown store driver %q", s.Driver)
}

func openEngine(ctx context.Context, s Side, pg *pgxConn, write bool) (engine, error) {
	if s.Driver == Postgres {
		e, err := beginPG(ctx, pg.conn, pg.secrets, write)
		if err != nil {
			pg.conn.Close(context.Background())
			return nil, err
		}
		return e, nil
	}
	return openSQLite(ctx, s.Target, write)
}

// sameFile: the two paths name one existing file.
func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false
	}
	return os.SameFile(fa, fb)
}

// sameDatabase tells whether two connections reach one database, however
// differently their DSNs name it: a session-level advisory lock taken on
// one cannot be taken on the other (advisory locks belong to a database).
func sameDatabase(ctx context.Context, a, b *pgxConn) (bool, error) {
	var buf [8]byte
	rand.Read(buf[:])
	key := int64(binary.LittleEndian.Uint64(buf[:]) >> 1)
	var got bool
	if err := a.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
		return false, scrub(fmt.Errorf("source: %w", err), a.secrets)
	}
	if !got {
		return false, fmt.Errorf("source: could not take a fresh advisory lock")
	}
	defer a.conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, key)
	if err := b.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
		return false, scrub(fmt.Errorf("target: %w", err), b.secrets)
	}
	if got {
		b.conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, key)
	}
	return !got, nil
}

// scrub removes the DSN and its password from err's text; pgx does not put
// them in its errors, but a server's or a proxy's message is not ours to
// trust. The error is kept for errors.Is and As.
func scrub(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, s := range secrets {
		if s != "" {
			clean = strings.ReplaceAll(clean, s, "xxxxx")
		}
	}
	if clean == msg {
		return err
	}
	return &scrubbed{msg: clean, err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }
