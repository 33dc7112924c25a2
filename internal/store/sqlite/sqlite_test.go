package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/storetest"
)

func openTemp(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "latchkey.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

// rawDB opens path without going through Open, to look at or tamper with
// the file the way another tool (or another latchkey version) would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func tables(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	return names
}

func TestMigrationsEmbedded(t *testing.T) {
	if len(migrations) != SchemaVersion {
		t.Fatalf("%d migrations embedded, SchemaVersion is %d", len(migrations), SchemaVersion)
	}
	for i, m := range migrations {
		if m.Version != i+1 || strings.TrimSpace(m.SQL) == "" {
			t.Errorf("migration %d: version %d, %d bytes", i, m.Version, len(m.SQL))
		}
	}
}

func TestMigrateFromEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latchkey.db")
	db := rawDB(t, path)
	applied, err := migrate(t.Context(), db, migrations)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	want := make([]int, SchemaVersion)
	for i := range want {
		want[i] = i + 1
	}
	if !slices.Equal(applied, want) {
		t.Errorf("applied %v, want %v", applied, want)
	}
	got := tables(t, db)
	for _, name := range []string{"audit", "invites", "links", "meta", "roles", "schema_migrations", "sessions", "tickets", "user_roles", "users"} {
		if !slices.Contains(got, name) {
			t.Errorf("table %s missing; have %v", name, got)
		}
	}
	var n int
	var appliedAt int64
	if err := db.QueryRow(`SELECT count(*), min(applied_at) FROM schema_migrations`).Scan(&n, &appliedAt); err != nil {
		t.Fatal(err)
	}
	if n != SchemaVersion || time.Since(time.Unix(0, appliedAt)) > time.Minute {
		t.Errorf("schema_migrations has %d rows, first applied at %v", n, time.Unix(0, appliedAt))
	}

	// Running again applies nothing.
	applied, err = migrate(t.Context(), db, migrations)
	if err != nil || len(applied) != 0 {
		t.Errorf("second migrate applied %v, %v; want nothing", applied, err)
	}
}

// TestMigrateSteps runs the migration runner over made-up migrations, as
// later versions of the schema will add files.
func TestMigrateSteps(t *testing.T) {
	ctx := t.Context()
	load := func(files map[string]string) []migration {
		t.Helper()
		fsys := fstest.MapFS{}
		for name, body := range files {
			fsys["migrations/"+name] = &fstest.MapFile{Data: []byte(body)}
		}
		ms, err := loadMigrations(fsys)
		if err != nil {
			t.Fatalf("loadMigrations: %v", err)
		}
		return ms
	}
	v1 := map[string]string{"0001_a.sql": "CREATE TABLE a (x);"}
	v2 := map[string]string{"0001_a.sql": "CREATE TABLE a (x);", "0002_b.sql": "CREATE TABLE b (y);\nINSERT INTO a VALUES (1);"}
	v3 := map[string]string{"0001_a.sql": "CREATE TABLE a (x);", "0002_b.sql": "", "0003_bad.sql": "CREATE TABLE c (z);\nINSERT INTO nope VALUES (1);"}

	db := rawDB(t, filepath.Join(t.TempDir(), "steps.db"))
	if applied, err := migrate(ctx, db, load(v1)); err != nil || !slices.Equal(applied, []int{1}) {
		t.Fatalf("migrate v1: applied %v, %v", applied, err)
	}
	if applied, err := migrate(ctx, db, load(v2)); err != nil || !slices.Equal(applied, []int{2}) {
		t.Fatalf("migrate v2: applied %v, %v", applied, err)
	}
	if got := tables(t, db); !slices.Equal(got, []string{"a", "b", "schema_migrations"}) {
		t.Errorf("tables after v2: %v", got)
	}

	// A binary that knows only v1 refuses.
	_, err := migrate(ctx, db, load(v1))
	var tooNew *SchemaTooNewError
	if !errors.As(err, &tooNew) || tooNew.Database != 2 || tooNew.Binary != 1 {
		t.Errorf("migrate v1 over v2: %v, want SchemaTooNewError{2, 1}", err)
	}

	// A failing migration is rolled back whole and names itself.
	_, err = migrate(ctx, db, load(v3))
	if err == nil || !strings.Contains(err.Error(), "0003_bad.sql") {
		t.Errorf("failing migration: err = %v, want one naming 0003_bad.sql", err)
	}
	if got := tables(t, db); slices.Contains(got, "c") {
		t.Errorf("failed migration left table c behind: %v", got)
	}
	var newest int
	if err := db.QueryRow(`SELECT max(version) FROM schema_migrations`).Scan(&newest); err != nil || newest != 2 {
		t.Errorf("after a failed migration, newest version %d, %v; want 2", newest, err)
	}
}

// seedAtVersion makes a database at schema version v holding rows, as an
// older release would have left it, and returns its path.
func seedAtVersion(t *testing.T, v int, rows ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "latchkey.db")
	db := rawDB(t, path)
	want := make([]int, v)
	for i := range want {
		want[i] = i + 1
	}
	if applied, err := migrate(t.Context(), db, migrations[:v]); err != nil || !slices.Equal(applied, want) {
		t.Fatalf("migrate to v%d: applied %v, %v", v, applied, err)
	}
	for _, q := range rows {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	return path
}

// openUpgraded opens path with this release and checks it is now at the
// newest schema version.
func openUpgraded(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if v, err := s.SchemaVersion(t.Context()); err != nil || v != SchemaVersion {
		t.Errorf("SchemaVersion = %d, %v; want %d", v, err, SchemaVersion)
	}
	return s
}

// TestUpgradeFromV1 opens a file made by the first release, with a user in
// it, and checks that Open brings it up to date without losing the user.
func TestUpgradeFromV1(t *testing.T) {
	ctx := t.Context()
	s := openUpgraded(t, seedAtVersion(t, 1, `INSERT INTO users (email, created_at) VALUES ('a@example.org', 1)`))
	u, err := s.UserByEmail(ctx, "", "a@example.org")
	if err != nil {
		t.Fatalf("UserByEmail after upgrade: %v", err)
	}
	inv := &store.Invite{Site: "x.example", Email: "a@example.org", CodeHash: []byte{1}, UserID: u.ID}
	if err := s.CreateInvite(ctx, inv); err != nil {
		t.Errorf("CreateInvite after upgrade: %v", err)
	}
}

// TestUpgradeFromV2 opens a file at schema version 2 (before links), with
// a user, a role, an invite, a session and audit records in it, and checks
// that Open brings it up to date keeping all of them, and that the new
// column and table work on the old rows.
func TestUpgradeFromV2(t *testing.T) {
	ctx := t.Context()
	s := openUpgraded(t, seedAtVersion(t, 2,
		`INSERT INTO users (id, site, email, name, active, created_at, login_count) VALUES (7, 'x.example', 'a@example.org', 'Ann', 1, 1000, 3)`,
		`INSERT INTO user_roles (user_id, role) VALUES (7, 'admin')`,
		`INSERT INTO invites (id, site, email, code_hash, created_at, user_id, use_count) VALUES (5, 'x.example', 'a@example.org', x'01', 2000, 7, 1)`,
		`INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at, kind, credential_id) VALUES ('s1', x'02', 7, 3000, 3000, 4000, 'invite', '5')`,
		`INSERT INTO audit (time, kind, credential_id, user_id, outcome) VALUES (5000, 'invite', '5', 7, 'accepted'), (6000, 'session', '', 7, 'refused')`,
	))
	u, err := s.User(ctx, 7)
	if err != nil {
		t.Fatalf("User after upgrade: %v", err)
	}
	if u.Email != "a@example.org" || u.Name != "Ann" || !u.Active || u.LoginCount != 3 || !u.HasRole("x.example", "admin") ||
		u.CreatedAt.UnixNano() != 1000 || !u.LinksRevokedBefore.IsZero() {
		t.Errorf("user after upgrade = %+v", u)
	}
	if inv, err := s.Invite(ctx, 5); err != nil || inv.UserID != 7 || inv.UseCount != 1 {
		t.Errorf("invite after upgrade = %+v, %v", inv, err)
	}
	// The session the invite started is placed on the invite's site.
	if sess, err := s.SessionByTokenHash(ctx, []byte{2}); err != nil || sess.ID != "s1" || sess.UserID != 7 || sess.Site != "x.example" {
		t.Errorf("session after upgrade = %+v, %v", sess, err)
	}
	if ev, err := s.Audit(ctx, store.AuditFilter{UserID: 7}); err != nil || len(ev) != 2 {
		t.Errorf("audit after upgrade = %+v, %v", ev, err)
	}
	if ev, err := s.Audit(ctx, store.AuditFilter{CredentialID: "5"}); err != nil || len(ev) != 1 || ev[0].Kind != "invite" {
		t.Errorf("audit of credential 5 after upgrade = %+v, %v", ev, err)
	}

	// The old user takes links.
	if err := s.CreateLink(ctx, &store.Link{JTI: "j1", UserID: 7, MaxUses: 1, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("CreateLink after upgrade: %v", err)
	}
	if n, err := s.UseLink(ctx, &store.LinkUse{JTI: "j1", UserID: 7, MaxUses: 1, At: time.Now()}); err != nil || n != 1 {
		t.Errorf("UseLink after upgrade = %d, %v", n, err)
	}
	at := time.Unix(0, 7000)
	if err := s.RevokeUserLinks(ctx, 7, at); err != nil {
		t.Fatalf("RevokeUserLinks after upgrade: %v", err)
	}
	if u, err := s.User(ctx, 7); err != nil || !u.LinksRevokedBefore.Equal(at) {
		t.Errorf("user after RevokeUserLinks = %+v, %v", u, err)
	}
}

// TestUpgradeFromV3 opens a file at schema version 3 (before tickets), with
// a user, a role, an invite, a session, a link and audit records in it, and
// checks that Open brings it up to date keeping all of them, and that the
// new table works with the old rows.
func TestUpgradeFromV3(t *testing.T) {
	ctx := t.Context()
	s := openUpgraded(t, seedAtVersion(t, 3,
		`INSERT INTO users (id, site, email, name, active, created_at, login_count, links_revoked_before) VALUES (7, 'x.example', 'a@example.org', 'Ann', 1, 1000, 3, 1500)`,
		`INSERT INTO user_roles (user_id, role) VALUES (7, 'admin')`,
		`INSERT INTO invites (id, site, email, code_hash, created_at, user_id, use_count) VALUES (5, 'x.example', 'a@example.org', x'01', 2000, 7, 1)`,
		`INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at, kind, credential_id) VALUES ('s1', x'02', 7, 3000, 3000, 4000, 'invite', '5')`,
		`INSERT INTO links (jti, user_id, target, mode, max_uses, uses, created_at, created_by, expires_at) VALUES ('j1', 7, 'x.example/r', 'request', 3, 1, 2500, 'cli', 9000)`,
		`INSERT INTO audit (time, kind, credential_id, user_id, outcome, status) VALUES (5000, 'invite', '5', 7, 'accepted', 200), (6000, 'link', 'j1', 7, 'accepted', 0)`,
	))
	u, err := s.User(ctx, 7)
	if err != nil {
		t.Fatalf("User after upgrade: %v", err)
	}
	if u.Email != "a@example.org" || u.Name != "Ann" || !u.Active || u.LoginCount != 3 || !u.HasRole("x.example", "admin") ||
		u.CreatedAt.UnixNano() != 1000 || u.LinksRevokedBefore.UnixNano() != 1500 {
		t.Errorf("user after upgrade = %+v", u)
	}
	if inv, err := s.Invite(ctx, 5); err != nil || inv.UserID != 7 || inv.UseCount != 1 {
		t.Errorf("invite after upgrade = %+v, %v", inv, err)
	}
	if sess, err := s.SessionByTokenHash(ctx, []byte{2}); err != nil || sess.ID != "s1" || sess.UserID != 7 {
		t.Errorf("session after upgrade = %+v, %v", sess, err)
	}
	if l, err := s.Link(ctx, "j1"); err != nil || l.UserID != 7 || l.Uses != 1 || l.MaxUses != 3 || l.ExpiresAt.UnixNano() != 9000 {
		t.Errorf("link after upgrade = %+v, %v", l, err)
	}
	if ev, err := s.Audit(ctx, store.AuditFilter{UserID: 7}); err != nil || len(ev) != 2 || ev[1].Status != 200 {
		t.Errorf("audit after upgrade = %+v, %v", ev, err)
	}
	if tks, err := s.Tickets(ctx, store.TicketFilter{}); err != nil || len(tks) != 0 {
		t.Errorf("tickets after upgrade = %+v, %v; want none", tks, err)
	}

	// The old user takes tickets, and their audit records go in the old
	// table.
	now := time.Unix(0, 10000)
	tk := &store.Ticket{UUID: "u1", Place: "x", Purpose: "y", PasswordHash: []byte{3}, PasswordKind: "keyed", UserID: 7, CreatedAt: now}
	if err := s.CreateTicket(ctx, tk); err != nil {
		t.Fatalf("CreateTicket after upgrade: %v", err)
	}
	ev := &store.AuditEvent{Kind: "ticket", CredentialID: "u1", UserID: 7, Outcome: store.OutcomeAccepted}
	lease := now.Add(time.Minute)
	if err := s.ClaimTicket(ctx, "u1", now, lease, ev); err != nil {
		t.Fatalf("ClaimTicket after upgrade: %v", err)
	}
	if err := s.FinishTicket(ctx, "u1", lease, true, now.Add(time.Second), "192.0.2.1", "ua", 201, ev.ID, time.Millisecond); err != nil {
		t.Fatalf("FinishTicket after upgrade: %v", err)
	}
	if got, err := s.Ticket(ctx, "u1"); err != nil || got.State != store.TicketUsed || got.UserID != 7 || got.UseStatus != 201 {
		t.Errorf("ticket after upgrade = %+v, %v", got, err)
	}
	if evs, err := s.Audit(ctx, store.AuditFilter{UserID: 7}); err != nil || len(evs) != 3 || evs[0].ID != ev.ID || evs[0].Status != 201 {
		t.Errorf("audit after a ticket use = %+v, %v", evs, err)
	}
}

// TestUpgradeFromV11 opens a file at schema version 11 (before the roles
// catalog), whose users hold roles on named sites and on the empty site,
// and checks that the roles held on named sites are in the catalog with
// their members, that the empty site's are not, and that the migration
// recorded no change while grants and revocations afterwards do.
func TestUpgradeFromV11(t *testing.T) {
	ctx := t.Context()
	before := time.Now()
	s := openUpgraded(t, seedAtVersion(t, 11,
		`INSERT INTO users (id, site, email, created_at) VALUES (7, 'x.example', 'a@example.org', 1), (8, '', 'b@example.org', 1), (9, 'y.example', 'c@example.org', 1)`,
		`INSERT INTO user_roles (user_id, site, role) VALUES (7, 'x.example', 'admin'), (7, 'x.example', 'editor'), (8, 'x.example', 'editor'), (8, '', 'viewer'), (9, 'y.example', 'admin')`,
	))
	defs, err := s.RoleDefs(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range defs {
		got = append(got, fmt.Sprintf("%s@%s=%d", d.Name, d.Site, d.Members))
		if d.CreatedAt.Before(before.Add(-time.Second)) || d.CreatedAt.After(time.Now().Add(time.Second)) || d.Description != "" {
			t.Errorf("back-filled role %+v, want created at the migration", d)
		}
	}
	if want := []string{"admin@x.example=1", "editor@x.example=2", "admin@y.example=1"}; !slices.Equal(got, want) {
		t.Errorf("roles after the upgrade = %q, want %q", got, want)
	}
	if seq, err := s.LatestChange(ctx); err != nil || seq != 0 {
		t.Errorf("the upgrade recorded changes up to %d (%v), want none", seq, err)
	}
	if err := s.GrantRole(ctx, 9, store.Role{Site: "y.example", Name: "editor"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeRole(ctx, 8, store.Role{Name: "viewer"}); err != nil {
		t.Fatal(err)
	}
	cs, err := s.ChangesSince(ctx, 0, 10)
	if err != nil || len(cs) != 2 || cs[0].Subject != "9" || cs[1].Subject != "8" || cs[0].Kind != store.ChangeUser || cs[1].Kind != store.ChangeUser {
		t.Errorf("changes after a grant and a revocation = %+v, %v", cs, err)
	}
}

// TestUserRoleTriggers: the triggers on user_roles record a change of the
// user for whatever writes the table, by hand too; deleting a user records
// the change of each role it held with the user's own.
func TestUserRoleTriggers(t *testing.T) {
	ctx := t.Context()
	s := openTemp(t)
	for _, email := range []string{"a@example.org", "b@example.org"} {
		if err := s.CreateUser(ctx, &store.User{Site: "x.example", Email: email, Roles: []store.Role{{Site: "x.example", Name: "r"}}}); err != nil {
			t.Fatal(err)
		}
	}
	seq, err := s.LatestChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	subjects := func(what string, want ...string) {
		t.Helper()
		cs, err := s.ChangesSince(ctx, seq, 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range cs {
			got = append(got, c.Kind+":"+c.Subject)
			seq = c.Seq
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s recorded %q, want %q", what, got, want)
		}
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE user_roles SET user_id = 2, role = 'q' WHERE user_id = 1`); err != nil {
		t.Fatal(err)
	}
	subjects("moving a role to another user", "user:2", "user:1")
	if _, err := s.w.ExecContext(ctx, `UPDATE user_roles SET role = 'p' WHERE user_id = 2 AND role = 'q'`); err != nil {
		t.Fatal(err)
	}
	subjects("renaming a role", "user:2")
	if _, err := s.w.ExecContext(ctx, `DELETE FROM users WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	subjects("deleting a user with two roles", "user:2", "user:2", "user:2")
}

// TestLinkZeroValuesAreNull checks that a link's unset times and missing
// user are NULL, as for the other tables, that its user is a foreign key,
// and that a user's links_revoked_before starts NULL.
func TestLinkZeroValuesAreNull(t *testing.T) {
	ctx := t.Context()
	s := openTemp(t)
	if err := s.CreateLink(ctx, &store.Link{JTI: "j1"}); err != nil {
		t.Fatal(err)
	}
	var nulls int
	if err := s.r.QueryRow(`SELECT (user_id IS NULL) + (expires_at IS NULL) + (first_used_at IS NULL) + (last_used_at IS NULL) + (revoked_at IS NULL)
		FROM links WHERE jti = 'j1'`).Scan(&nulls); err != nil {
		t.Fatal(err)
	}
	if nulls != 5 {
		t.Errorf("%d of 5 unset columns are NULL", nulls)
	}
	if err := s.CreateLink(ctx, &store.Link{JTI: "j2", UserID: 99}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateLink for a missing user: %v, want ErrNotFound", err)
	}
	_, err := s.UseLink(ctx, &store.LinkUse{JTI: "j3", UserID: 99, MaxUses: 1})
	if err == nil || errors.Is(err, store.ErrConflict) {
		t.Errorf("UseLink of an offline link for a missing user: %v, want an error that is not ErrConflict", err)
	}
	if _, err := s.Link(ctx, "j3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a failed UseLink left a row: %v", err)
	}
	u := &store.User{Email: "a@example.org"}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	var before sql.NullInt64
	if err := s.r.QueryRow(`SELECT links_revoked_before FROM users WHERE id = ?`, u.ID).Scan(&before); err != nil {
		t.Fatal(err)
	}
	if before.Valid {
		t.Errorf("links_revoked_before of a new user is %d, want NULL", before.Int64)
	}
}

// TestLinkQueriesUseIndexes checks the plans of the lookups the new
// indexes are for: a credential's audit trail and a user's links.
func TestLinkQueriesUseIndexes(t *testing.T) {
	s := openTemp(t)
	for q, index := range map[string]string{
		`SELECT ` + auditColumns + ` FROM audit WHERE 1 AND credential_id = ? ORDER BY time DESC, id DESC LIMIT ?`: "audit_credential_time",
		`SELECT ` + linkColumns + ` FROM links WHERE 1 AND user_id = ? ORDER BY created_at DESC, rowid DESC`:       "links_user_created",
		`UPDATE links SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL`:                                 "links_user_created",
	} {
		rows, err := s.r.Query(`EXPLAIN QUERY PLAN `+q, 1, 2)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var plan strings.Builder
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan.WriteString(detail + "\n")
		}
		rows.Close()
		if !strings.Contains(plan.String(), index) || strings.Contains(plan.String(), "TEMP B-TREE") {
			t.Errorf("plan of %s:\n%s\nwant it to use %s without sorting", q, plan.String(), index)
		}
	}
}

// TestInviteZeroTimesAreNull checks that an invite's unset times are NULL,
// as for the other tables, and that its user is a foreign key.
func TestInviteZeroTimesAreNull(t *testing.T) {
	ctx := t.Context()
	s := openTemp(t)
	inv := &store.Invite{Site: "x.example", Email: "a@example.org", CodeHash: []byte{1}}
	if err := s.CreateInvite(ctx, inv); err != nil {
		t.Fatal(err)
	}
	var nulls int
	if err := s.r.QueryRow(`SELECT (user_id IS NULL) + (first_used_at IS NULL) + (last_used_at IS NULL) + (revoked_at IS NULL) + (sent_at IS NULL)
		FROM invites WHERE id = ?`, inv.ID).Scan(&nulls); err != nil {
		t.Fatal(err)
	}
	if nulls != 5 {
		t.Errorf("%d of 5 unset columns are NULL", nulls)
	}
	err := s.CreateInvite(ctx, &store.Invite{Site: "x.example", Email: "b@example.org", CodeHash: []byte{2}, UserID: 99})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateInvite for a missing user: %v, want ErrNotFound", err)
	}
}

func TestLoadMigrationsRejects(t *testing.T) {
	for name, files := range map[string][]string{
		"gap":       {"0001_a.sql", "0003_c.sql"},
		"duplicate": {"0001_a.sql", "0001_b.sql"},
		"no zero":   {"0000_a.sql"},
		"bad name":  {"0001_a.sql", "2_b.sql"},
		"uppercase": {"0001_A.sql"},
	} {
		fsys := fstest.MapFS{}
		for _, f := range files {
			fsys["migrations/"+f] = &fstest.MapFile{Data: []byte("SELECT 1;")}
		}
		if _, err := loadMigrations(fsys); err == nil {
			t.Errorf("%s: loadMigrations(%v) succeeded", name, files)
		}
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "latchkey.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	u := &store.User{Email: "a@example.org", Active: true, Roles: []store.Role{{Site: "a.example", Name: "admin"}}}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	secret, err := s.Secret(ctx, []byte("first"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var before int64
	if err := rawDB(t, path).QueryRow(`SELECT max(applied_at) FROM schema_migrations`).Scan(&before); err != nil {
		t.Fatal(err)
	}

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	got, err := s.User(ctx, u.ID)
	if err != nil || got.Email != "a@example.org" || !got.HasRole("a.example", "admin") {
		t.Errorf("after reopen, User = %+v, %v", got, err)
	}
	if again, err := s.Secret(ctx, []byte("second")); err != nil || string(again) != string(secret) {
		t.Errorf("after reopen, Secret = %q, %v; want %q", again, err, secret)
	}
	var n int
	var after int64
	if err := s.r.QueryRow(`SELECT count(*), max(applied_at) FROM schema_migrations`).Scan(&n, &after); err != nil {
		t.Fatal(err)
	}
	if n != SchemaVersion || after != before {
		t.Errorf("reopen changed schema_migrations: %d rows, newest applied at %d (was %d)", n, after, before)
	}
}

// dump is every row of every table, to tell whether a file changed.
func dump(t *testing.T, db *sql.DB) string {
	t.Helper()
	var b strings.Builder
	for _, table := range tables(t, db) {
		rows, err := db.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s %v\n", table, vals)
		}
		rows.Close()
	}
	var schema string
	db.QueryRow(`SELECT group_concat(sql, ';') FROM sqlite_schema`).Scan(&schema)
	b.WriteString(schema)
	return b.String()
}

func TestRefuseNewerSchema(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "latchkey.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, &store.User{Email: "a@example.org"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	newer := SchemaVersion + 6
	db := rawDB(t, path)
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, newer, time.Now().UnixNano()); err != nil {
		t.Fatal(err)
	}
	// A table only the newer version knows.
	if _, err := db.Exec(`CREATE TABLE future (x)`); err != nil {
		t.Fatal(err)
	}
	before := dump(t, db)

	s, err = Open(ctx, path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a database with a newer schema succeeded")
	}
	want := fmt.Sprintf(`latchkey sqlite store %q: database schema version %d is newer than this binary supports (%d); upgrade latchkey or point it at another database`, path, newer, SchemaVersion)
	if err.Error() != want {
		t.Errorf("error:\n got %s\nwant %s", err, want)
	}
	var tooNew *SchemaTooNewError
	if !errors.As(err, &tooNew) || tooNew.Database != newer || tooNew.Binary != SchemaVersion {
		t.Errorf("error %#v is not a SchemaTooNewError{%d, %d}", err, newer, SchemaVersion)
	}
	if after := dump(t, db); after != before {
		t.Errorf("refused Open changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestCreatesDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b c")
	path := filepath.Join(dir, "latchkey.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("created directory has mode %v, want no group or other access", perm)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database file not created: %v", err)
	}
}

// TestAwkwardPaths checks that the path is escaped in the DSN: a '?' would
// otherwise start the query string, and '#' a fragment.
func TestAwkwardPaths(t *testing.T) {
	for _, name := range []string{"with space", "what?", "hash#tag", "per%20cent", "semi;colon&amp=1", "ünïcode"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), name)
			path := filepath.Join(dir, name+".db")
			s, err := Open(t.Context(), path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if err := s.CreateUser(t.Context(), &store.User{Email: "a@example.org"}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if !slices.Contains(names, name+".db") {
				t.Errorf("directory holds %q, want %q", names, name+".db")
			}
		})
	}
}

func TestRelativePath(t *testing.T) {
	t.Chdir(t.TempDir())
	s, err := Open(t.Context(), "data/latchkey.db")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s.Close()
	if _, err := os.Stat("data/latchkey.db"); err != nil {
		t.Error(err)
	}
}

func TestUnwritablePath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file.txt")
	if err := os.WriteFile(file, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		// Fails even for root: a regular file cannot hold files.
		"under a file": filepath.Join(file, "latchkey.db"),
		// Fails even for root: SQLite cannot open a directory as a database.
		"a directory": dir,
	}
	if runtime.GOOS == "linux" {
		// Fails even for root: procfs does not let anyone create files.
		cases["procfs"] = "/proc/latchkey-test.db"
	}
	for name, path := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := Open(t.Context(), path)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", path)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", path)) {
				t.Errorf("error %q does not name the path %q", err, path)
			}
			t.Log(err)
		})
	}
}

// TestReadOnlyFile checks that Open itself fails on an existing database it
// may read but not write, rather than the first write failing later.
func TestReadOnlyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "latchkey.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		os.Chmod(p, 0o400)
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
		f.Close()
		t.Skip("this user can write to read-only files (root?)")
	}
	s, err = Open(t.Context(), path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a read-only database succeeded")
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("%q", path)) {
		t.Errorf("error %q does not name the path", err)
	}
	t.Log(err)
}

func TestWAL(t *testing.T) {
	s := openTemp(t)
	for name, db := range map[string]*sql.DB{"writer": s.w, "reader": s.r} {
		var mode string
		if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" {
			t.Errorf("%s: journal_mode = %q, want wal", name, mode)
		}
		var fk int
		if err := db.QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil {
			t.Fatal(err)
		}
		if fk != 1 {
			t.Errorf("%s: foreign_keys = %d, want 1", name, fk)
		}
		var timeout int
		if err := db.QueryRow(`PRAGMA busy_timeout`).Scan(&timeout); err != nil {
			t.Fatal(err)
		}
		if timeout != 5000 {
			t.Errorf("%s: busy_timeout = %d, want 5000", name, timeout)
		}
	}
}

func TestReaderCannotWrite(t *testing.T) {
	s := openTemp(t)
	if _, err := s.r.Exec(`INSERT INTO meta (key, value) VALUES ('x', 'y')`); err == nil {
		t.Error("a write through the read pool succeeded")
	}
}

func TestTimeRoundTrip(t *testing.T) {
	ctx := t.Context()
	s := openTemp(t)
	created := time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.FixedZone("X", 3600))
	u := &store.User{Email: "a@example.org", CreatedAt: created}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	got, err := s.User(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.CreatedAt.Equal(created) || got.CreatedAt.IsZero() {
		t.Errorf("CreatedAt = %v, want %v to the nanosecond", got.CreatedAt, created)
	}
	if !got.LastLoginAt.IsZero() || !got.CurrentLoginAt.IsZero() {
		t.Errorf("zero login times came back as %v, %v", got.LastLoginAt, got.CurrentLoginAt)
	}
	var cur sql.NullInt64
	if err := s.r.QueryRow(`SELECT current_login_at FROM users WHERE id = ?`, u.ID).Scan(&cur); err != nil {
		t.Fatal(err)
	}
	if cur.Valid {
		t.Errorf("zero time stored as %d, want NULL", cur.Int64)
	}
}

func TestAuditUnknownUserIsNull(t *testing.T) {
	s := openTemp(t)
	events := []store.AuditEvent{{Kind: "session"}, {Kind: "session", UserID: 3}}
	if err := s.WriteAudit(t.Context(), events); err != nil {
		t.Fatal(err)
	}
	var nulls int
	if err := s.r.QueryRow(`SELECT count(*) FROM audit WHERE user_id IS NULL`).Scan(&nulls); err != nil {
		t.Fatal(err)
	}
	if nulls != 1 {
		t.Errorf("%d rows with NULL user_id, want 1", nulls)
	}
	got, err := s.Audit(t.Context(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range got {
		if time.Since(e.Time) > time.Minute || e.Time.After(time.Now()) {
			t.Errorf("zero Time stored as %v, want now", e.Time)
		}
	}
}

func TestErrorsNameInput(t *testing.T) {
	ctx := t.Context()
	s := openTemp(t)
	if err := s.CreateUser(ctx, &store.User{Site: "x", Email: "A@B.C"}); err != nil {
		t.Fatal(err)
	}
	err := s.CreateUser(ctx, &store.User{Site: "x", Email: "a@b.c"})
	if want := `creating user "a@b.c" on site "x": already exists`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
	_, err = s.User(ctx, 42)
	if err == nil || !strings.Contains(err.Error(), "42") {
		t.Errorf("error = %v, want one naming 42", err)
	}
	err = s.RevokeSession(ctx, "sess-x", time.Now())
	if err == nil || !strings.Contains(err.Error(), `"sess-x"`) || !errors.Is(err, store.ErrNotFound) {
		t.Errorf("error = %v, want ErrNotFound naming sess-x", err)
	}
	err = s.CreateSession(ctx, &store.Session{ID: "s", UserID: 99, TokenHash: []byte{1}, ExpiresAt: time.Now()})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateSession for a missing user: %v, want ErrNotFound", err)
	}
}

// TestTwoStoresOneFile is two processes' worth of Stores writing to one file
// at once: each has its own single writer, so they contend for SQLite's
// lock, which busy_timeout must absorb.
func TestTwoStoresOneFile(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "latchkey.db")
	var stores [2]*Store
	for i := range stores {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	const perWriter = 100
	var wg sync.WaitGroup
	for i, s := range stores {
		for g := range 4 {
			wg.Go(func() {
				for n := range perWriter {
					u := &store.User{Email: fmt.Sprintf("p%d-g%d-%d@example.org", i, g, n)}
					if err := s.CreateUser(ctx, u); err != nil {
						t.Errorf("store %d: %v", i, err)
						return
					}
					events := make([]store.AuditEvent, 32)
					if err := s.WriteAudit(ctx, events); err != nil {
						t.Errorf("store %d: %v", i, err)
						return
					}
					if _, err := s.Secret(ctx, []byte(fmt.Sprint("secret from ", i))); err != nil {
						t.Errorf("store %d: %v", i, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	for i, s := range stores {
		users, err := s.Users(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(users) != 2*4*perWriter {
			t.Errorf("store %d sees %d users, want %d", i, len(users), 2*4*perWriter)
		}
	}
	a, _ := stores[0].Secret(ctx, nil)
	b, _ := stores[1].Secret(ctx, nil)
	if string(a) != string(b) {
		t.Errorf("stores disagree on the secret: %q, %q", a, b)
	}
}

// TestConcurrentOpen opens one fresh file from many goroutines at once: all
// but one find the migrations done by the time they hold the lock.
func TestConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latchkey.db")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			s, err := Open(t.Context(), path)
			if err != nil {
				t.Errorf("Open %d: %v", i, err)
				return
			}
			if err := s.CreateUser(t.Context(), &store.User{Email: fmt.Sprintf("u%d@example.org", i)}); err != nil {
				t.Errorf("CreateUser %d: %v", i, err)
			}
			s.Close()
		})
	}
	wg.Wait()
	var n int
	if err := rawDB(t, path).QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != SchemaVersion {
		t.Errorf("schema_migrations has %d rows, want %d", n, SchemaVersion)
	}
}

const helperEnv = "LATCHKEY_SQLITE_TEST_HELPER"

// TestConcurrentOpenProcesses does what TestConcurrentOpen does with real
// processes, whose locks go through the file system rather than through
// SQLite's in-process bookkeeping.
func TestConcurrentOpenProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	path := filepath.Join(t.TempDir(), "latchkey.db")
	const procs = 6
	cmds := make([]*exec.Cmd, procs)
	outs := make([]strings.Builder, procs)
	for i := range cmds {
		cmd := exec.CommandContext(t.Context(), exe, "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"="+path, fmt.Sprintf("LATCHKEY_SQLITE_TEST_ID=%d", i))
		cmd.Stdout, cmd.Stderr = &outs[i], &outs[i]
		cmds[i] = cmd
	}
	for _, cmd := range cmds {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("process %d: %v\n%s", i, err, outs[i].String())
		}
	}
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	users, err := s.Users(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != procs*20 {
		t.Errorf("%d users, want %d", len(users), procs*20)
	}
	ev, err := s.Audit(t.Context(), store.AuditFilter{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != procs*20*64 {
		t.Errorf("%d audit events, want %d", len(ev), procs*20*64)
	}
}

// TestHelperProcess is one of TestConcurrentOpenProcesses's processes.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper for TestConcurrentOpenProcesses")
	}
	id := os.Getenv("LATCHKEY_SQLITE_TEST_ID")
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Secret(ctx, []byte("secret of "+id)); err != nil {
		t.Fatal(err)
	}
	for n := range 20 {
		if err := s.CreateUser(ctx, &store.User{Email: fmt.Sprintf("p%s-%d@example.org", id, n)}); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteAudit(ctx, make([]store.AuditEvent, 64)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCanceledContext checks that the calls which do not hand ctx to the
// driver still honour it.
func TestCanceledContext(t *testing.T) {
	s := openTemp(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.WriteAudit(ctx, make([]store.AuditEvent, 10)); !errors.Is(err, context.Canceled) {
		t.Errorf("WriteAudit: err = %v, want context.Canceled", err)
	}
	if got, err := s.Audit(t.Context(), store.AuditFilter{}); err != nil || len(got) != 0 {
		t.Errorf("after a canceled WriteAudit, Audit = %d events, %v; want none", len(got), err)
	}
	if _, err := s.SessionByTokenHash(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("SessionByTokenHash: err = %v, want context.Canceled", err)
	}
	if err := s.TouchSession(ctx, "x", time.Now()); !errors.Is(err, context.Canceled) {
		t.Errorf("TouchSession: err = %v, want context.Canceled", err)
	}
}
