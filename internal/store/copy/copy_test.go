package copy_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
	storecopy "github.com/latchkeyhq/latchkey/internal/store/copy"
	"github.com/latchkeyhq/latchkey/internal/store/postgres"
	"github.com/latchkeyhq/latchkey/internal/store/postgres/pgtest"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func sqliteSide(path string) storecopy.Side {
	return storecopy.Side{Driver: storecopy.SQLite, Target: path}
}

func newSQLite(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestRefusals: a missing source is not created, a store is not copied
// onto itself, a non-empty target is refused with what it holds and left
// alone, and Force replaces it.
func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	if _, err := storecopy.Copy(t.Context(), sqliteSide(missing), sqliteSide(filepath.Join(dir, "b.db")), storecopy.Options{}); err == nil {
		t.Fatal("copy from a missing file succeeded")
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("copying from a missing file created it: %v", err)
	}

	a := filepath.Join(dir, "a.db")
	st := newSQLite(t, a)
	if err := st.CreateUser(t.Context(), &store.User{Email: "ada@example.com", Active: true}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := storecopy.Copy(t.Context(), sqliteSide(a), sqliteSide(filepath.Join(dir, ".", "a.db")), storecopy.Options{Force: true}); err == nil || !strings.Contains(err.Error(), "same") {
		t.Fatalf("copy onto itself: %v", err)
	}

	b := filepath.Join(dir, "b.db")
	st = newSQLite(t, b)
	for _, e := range []string{"x@example.com", "y@example.com"} {
		if err := st.CreateUser(t.Context(), &store.User{Email: e, Active: true}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	_, err := storecopy.Copy(t.Context(), sqliteSide(a), sqliteSide(b), storecopy.Options{})
	var ne *storecopy.NotEmptyError
	if !errors.As(err, &ne) || len(ne.Tables) != 1 || ne.Tables[0].Table != "users" || ne.Tables[0].Target != 2 {
		t.Fatalf("copy into a non-empty target: %v", err)
	}
	st = newSQLite(t, b)
	if us, _ := st.Users(t.Context()); len(us) != 2 {
		t.Errorf("the refused target has %d users, want its 2", len(us))
	}
	st.Close()

	res, err := storecopy.Copy(t.Context(), sqliteSide(a), sqliteSide(b), storecopy.Options{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Replaced) != 1 || res.Replaced[0].Target != 2 {
		t.Errorf("replaced %+v", res.Replaced)
	}
	st = newSQLite(t, b)
	defer st.Close()
	us, _ := st.Users(t.Context())
	if len(us) != 1 || us[0].Email != "ada@example.com" {
		t.Errorf("users after a forced copy: %+v", us)
	}
	// ids go on past what the target had handed out before.
	u := &store.User{Email: "z@example.com", Active: true}
	if err := st.CreateUser(t.Context(), u); err != nil || u.ID <= 2 {
		t.Errorf("new user after a forced copy: id %d %v", u.ID, err)
	}
}

// TestTextPostgreSQLCannotStore: SQLite keeps what PostgreSQL's text
// refuses (invalid UTF-8, NUL); the copy stores it as the store itself
// would, with U+FFFD, and counts it.
func TestTextPostgreSQLCannotStore(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.db")
	st := newSQLite(t, a)
	if err := st.WriteAudit(t.Context(), []store.AuditEvent{{Time: time.Now(), Kind: "session", Outcome: store.OutcomeRefused,
		UserAgent: "bad\xff\x00agent", Path: "/ok"}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	dsn := pgtest.DSN(t)
	res, err := storecopy.Copy(t.Context(), sqliteSide(a), storecopy.Side{Driver: storecopy.Postgres, Target: dsn}, storecopy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.TextRepaired != 1 {
		t.Errorf("%d text values repaired, want 1", res.TextRepaired)
	}
	pg, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	evs, err := pg.Audit(t.Context(), store.AuditFilter{})
	if err != nil || len(evs) != 1 || evs[0].UserAgent != "bad\uFFFD\uFFFDagent" {
		t.Errorf("audit on PostgreSQL: %+v %v", evs, err)
	}
}
