package copy_test

import (
	"errors"
	"fmt"
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

// TestRolesRoundTrip copies the roles of each site and who holds them
// SQLite → PostgreSQL → SQLite: the catalog and the grants arrive whole and
// counted, and the copy's inserts into user_roles, which the target's
// triggers take for grants, leave no change behind.
func TestRolesRoundTrip(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	a := filepath.Join(dir, "a.db")
	st := newSQLite(t, a)
	created := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)
	for _, r := range []store.RoleDef{
		{Site: "app.test", Name: "admin", Description: "Runs the place", CreatedAt: created},
		{Site: "app.test", Name: "staff", CreatedAt: created.Add(time.Second)},
		{Site: "wiki.test", Name: "editor", Description: "Édite", CreatedAt: created.Add(2 * time.Second)},
	} {
		if err := st.CreateRole(ctx, &r); err != nil {
			t.Fatal(err)
		}
	}
	ada := &store.User{Site: "app.test", Email: "ada@example.com", Active: true, Roles: []store.Role{{Site: "app.test", Name: "staff"}},
		PasswordHash: "pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c="}
	bob := &store.User{Email: "bob@example.com", Active: true, Roles: []store.Role{{Name: "legacy"}}}
	for _, u := range []*store.User{ada, bob} {
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range []struct {
		id int64
		r  store.Role
	}{{ada.ID, store.Role{Site: "app.test", Name: "admin"}}, {bob.ID, store.Role{Site: "wiki.test", Name: "editor"}}, {bob.ID, store.Role{Site: "app.test", Name: "staff"}}} {
		if err := st.GrantRole(ctx, g.id, g.r); err != nil {
			t.Fatal(err)
		}
	}
	wantDefs, err := st.RoleDefs(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	wantUsers, err := st.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	check := func(what string, s interface {
		store.Roles
		store.Users
		store.Changes
	}, res *storecopy.Result) {
		t.Helper()
		counted := map[string]storecopy.TableCount{}
		for _, tc := range res.Tables {
			counted[tc.Table] = tc
		}
		if c := counted["roles"]; c.Source != 3 || c.Target != 3 {
			t.Errorf("%s: roles counted %+v, want 3 and 3", what, c)
		}
		if c := counted["user_roles"]; c.Source != 5 || c.Target != 5 {
			t.Errorf("%s: user_roles counted %+v, want 5 and 5", what, c)
		}
		defs, err := s.RoleDefs(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(defs) != len(wantDefs) {
			t.Fatalf("%s: roles %+v, want %+v", what, defs, wantDefs)
		}
		for i := range defs {
			g, w := defs[i], wantDefs[i]
			if g.Site != w.Site || g.Name != w.Name || g.Description != w.Description || !g.CreatedAt.Equal(w.CreatedAt) || g.Members != w.Members {
				t.Errorf("%s: role %+v, want %+v", what, g, w)
			}
		}
		users, err := s.Users(ctx)
		if err != nil || len(users) != len(wantUsers) {
			t.Fatalf("%s: users %+v, %v", what, users, err)
		}
		for i := range users {
			if fmt.Sprint(users[i].Roles) != fmt.Sprint(wantUsers[i].Roles) {
				t.Errorf("%s: user %d holds %v, want %v", what, users[i].ID, users[i].Roles, wantUsers[i].Roles)
			}
			if users[i].PasswordHash != wantUsers[i].PasswordHash {
				t.Errorf("%s: user %d has password hash %q, want %q", what, users[i].ID, users[i].PasswordHash, wantUsers[i].PasswordHash)
			}
		}
		if seq, err := s.LatestChange(ctx); err != nil || seq != 0 {
			t.Errorf("%s: the copy left changes up to %d (%v), want none", what, seq, err)
		}
	}

	dsn := pgtest.DSN(t)
	pgSide := storecopy.Side{Driver: storecopy.Postgres, Target: dsn}
	res, err := storecopy.Copy(ctx, sqliteSide(a), pgSide, storecopy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pg, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	check("PostgreSQL", pg, res)
	pg.Close()

	b := filepath.Join(dir, "b.db")
	if res, err = storecopy.Copy(ctx, pgSide, sqliteSide(b), storecopy.Options{}); err != nil {
		t.Fatal(err)
	}
	back := newSQLite(t, b)
	check("SQLite after the round trip", back, res)

	// A forced copy over a store that had grants and revocations of its
	// own leaves only what the source holds, and no change either.
	if err := back.RevokeRole(ctx, ada.ID, store.Role{Site: "app.test", Name: "admin"}); err != nil {
		t.Fatal(err)
	}
	back.Close()
	if res, err = storecopy.Copy(ctx, sqliteSide(a), sqliteSide(b), storecopy.Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	back = newSQLite(t, b)
	defer back.Close()
	check("SQLite after a forced copy", back, res)
}
