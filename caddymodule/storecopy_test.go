package caddymodule_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkeyhq/latchkey/caddymodule"
	"github.com/latchkeyhq/latchkey/internal/keys"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/postgres"
	"github.com/latchkeyhq/latchkey/internal/store/postgres/pgtest"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
)

// fillStore writes a bit of everything a gateway keeps, through the store,
// and returns the id of a user deleted afterwards (its audit records stay).
func fillStore(t *testing.T, st store.Store, now time.Time) (deleted int64) {
	t.Helper()
	ctx := t.Context()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	site := "app.test"
	ada := &store.User{Site: site, Email: "ada@example.com", Name: "Ada", Phone: "+44 1", Active: true,
		Roles: []store.Role{{Site: site, Name: "staff"}, {Site: site, Name: "admin"}}, CreatedAt: now.Add(-48 * time.Hour)}
	must(st.CreateUser(ctx, ada))
	bob := &store.User{Email: "bob@example.com", Name: "Bob ‘Ω’", Active: true, CreatedAt: now.Add(-47 * time.Hour)}
	must(st.CreateUser(ctx, bob))
	must(st.RecordLogin(ctx, ada.ID, now.Add(-2*time.Hour), "203.0.113.7"))
	must(st.RecordLogin(ctx, ada.ID, now.Add(-time.Hour), "203.0.113.8"))
	must(st.SetUserActive(ctx, bob.ID, false))
	must(st.RevokeUserLinks(ctx, bob.ID, now.Add(-30*time.Minute)))

	for i := range 3 {
		s := &store.Session{ID: fmt.Sprintf("sess-%d", 3-i), UserID: ada.ID, Site: site, TokenHash: []byte(fmt.Sprintf("hash-%d\x00\xff", i)),
			CreatedAt: now.Add(-time.Duration(i) * time.Minute), LastSeenAt: now, ExpiresAt: now.Add(24 * time.Hour),
			IP: "203.0.113.9", UserAgent: "Firefox", Kind: "link", CredentialID: "jti-1"}
		must(st.CreateSession(ctx, s))
	}
	must(st.RevokeSession(ctx, "sess-2", now))

	inv := &store.Invite{Site: site, Email: "luke@example.com", Name: "Luke", Phone: "+1 555", CodeHash: []byte("code-hash-1"), CreatedAt: now.Add(-3 * time.Hour), CreatedBy: "cli"}
	must(st.CreateInvite(ctx, inv))
	must(st.SetInviteSent(ctx, inv.ID, now.Add(-170*time.Minute), ""))
	_, err := st.RedeemInvite(ctx, &store.Redemption{InviteID: inv.ID, At: now.Add(-2 * time.Hour), IP: "198.51.100.1", First: true,
		Session: &store.Session{ID: "sess-invite", Site: site, TokenHash: []byte("hash-invite"), ExpiresAt: now.Add(time.Hour), Kind: "invite", CredentialID: fmt.Sprint(inv.ID)},
		Audit:   &store.AuditEvent{Kind: "invite", CredentialID: fmt.Sprint(inv.ID), Outcome: store.OutcomeAccepted, Method: "POST", Host: site, Path: "/.latchkey/login", Status: 303, ClientIP: "198.51.100.1", UserAgent: "Mozilla/5.0", UABrowser: "Firefox", UADevice: "desktop"}})
	must(err)
	inv2 := &store.Invite{Site: site, Email: "leia@example.com", CodeHash: []byte("code-hash-2"), CreatedAt: now.Add(-time.Hour), CreatedBy: "user:1"}
	must(st.CreateInvite(ctx, inv2))
	must(st.SetInviteSent(ctx, inv2.ID, now, "smtp: 550 mailbox unavailable"))
	must(st.RevokeInvite(ctx, inv2.ID, now))

	must(st.CreateLink(ctx, &store.Link{JTI: "jti-1", Site: site, UserID: ada.ID, Target: "app.test/unsubscribe", Mode: "request", MaxUses: 3, CreatedAt: now.Add(-time.Hour), CreatedBy: "cli", ExpiresAt: now.Add(7 * 24 * time.Hour)}))
	linkAudit := &store.AuditEvent{Kind: "link", CredentialID: "jti-1", Outcome: store.OutcomeAccepted, Method: "GET", Host: site, Path: "/unsubscribe", ClientIP: "192.0.2.1"}
	_, err = st.UseLink(ctx, &store.LinkUse{JTI: "jti-1", Site: site, UserID: ada.ID, Target: "app.test/unsubscribe", Mode: "request", MaxUses: 3, ExpiresAt: now.Add(time.Hour), At: now.Add(-10 * time.Minute), Audit: linkAudit})
	must(err)
	must(st.SetAuditStatus(ctx, linkAudit.ID, 200, 1500*time.Microsecond))
	must(st.RevokeLink(ctx, "jti-offline", now))

	for i, uuid := range []string{"0b0e7e3e-4b8e-4c52-9b1e-0a6d8d1f2a3b", "1b0e7e3e-4b8e-4c52-9b1e-0a6d8d1f2a3b", "2b0e7e3e-4b8e-4c52-9b1e-0a6d8d1f2a3b"} {
		tk := &store.Ticket{UUID: uuid, Place: "louvre", Purpose: "visit", PasswordHash: []byte{byte(i), 0, 0xfe}, PasswordKind: "keyed",
			CreatedAt: now.Add(-time.Duration(3-i) * time.Minute), Data: []byte(`{"first_name": "Léonard"}`)}
		if i == 1 {
			tk.UserID = ada.ID
			tk.ExpiresAt = now.Add(time.Hour)
		}
		must(st.CreateTicket(ctx, tk))
	}
	ta := &store.AuditEvent{Kind: "ticket", CredentialID: "0b0e7e3e-4b8e-4c52-9b1e-0a6d8d1f2a3b", Outcome: store.OutcomeAccepted, Reason: "claimed", Method: "GET", Path: "/louvre"}
	lease := now.Add(time.Minute)
	must(st.ClaimTicket(ctx, "0b0e7e3e-4b8e-4c52-9b1e-0a6d8d1f2a3b", now, lease, ta))
	must(st.FinishTicket(ctx, "0b0e7e3e-4b8e-4c52-9b1e-0a6d8d1f2a3b", lease, true, now, "192.0.2.7", "curl/8", 200, ta.ID, 3*time.Millisecond))
	must(st.RevokeTicket(ctx, "2b0e7e3e-4b8e-4c52-9b1e-0a6d8d1f2a3b", now))

	// The newest user, deleted afterwards: the sequence must go on past it.
	gone := &store.User{Site: site, Email: "gone@example.com", Active: true, CreatedAt: now.Add(-46 * time.Hour)}
	must(st.CreateUser(ctx, gone))
	must(st.WriteAudit(ctx, []store.AuditEvent{
		{Time: now.Add(-5 * time.Minute), Kind: "session", Outcome: store.OutcomeRefused, Reason: "missing", Method: "GET", Host: site, Path: "/x", Status: 401, ClientIP: "192.0.2.2", UserAgent: "Googlebot", UABrowser: "Googlebot", UADevice: "bot", UABot: true, Latency: 250 * time.Microsecond},
		{Time: now.Add(-4 * time.Minute), Kind: "session", Outcome: store.OutcomeAccepted, UserID: gone.ID, SessionID: "sess-gone", Method: "GET", Host: site, Path: "/y", Status: 200},
		{Time: now.Add(-3 * time.Minute), Kind: "session", Outcome: store.OutcomeAccepted, UserID: ada.ID, SessionID: "sess-1", Method: "GET", Host: site, Path: "/z", Status: 204},
	}))

	m1 := &store.Mail{Kind: "invite", Site: site, Ref: fmt.Sprint(inv.ID), To: "luke@example.com", ToName: "Luke", Subject: "Your code", Text: "code ABC", HTML: "<p>code ABC</p>", CreatedAt: now.Add(-3 * time.Hour)}
	must(st.EnqueueMail(ctx, m1))
	claimed, err := st.ClaimMail(ctx, now.Add(-3*time.Hour), now.Add(-3*time.Hour+time.Minute), 10)
	must(err)
	if len(claimed) != 1 {
		t.Fatalf("claimed %d mails", len(claimed))
	}
	must(st.MarkMailSent(ctx, m1.ID, claimed[0].LeaseUntil, now.Add(-170*time.Minute)))
	must(st.EnqueueMail(ctx, &store.Mail{Kind: "invite", Site: site, Ref: fmt.Sprint(inv2.ID), To: "leia@example.com", Subject: "Your code", Text: "code DEF", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))

	_, _, err = st.AddFailure(ctx, "invite.ip:192.0.2.3", time.Minute, now)
	must(err)
	_, _, err = st.AddFailure(ctx, "invite.ip:192.0.2.3", time.Minute, now)
	must(err)
	return gone.ID
}

// sqliteDB opens a SQLite file read-only for inspection.
func sqliteDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Tables are compared by their columns' names: the engines order some
// columns differently (columns added later), and PostgreSQL's seq stands
// for SQLite's rowid.
var skipTables = map[string]bool{"schema_migrations": true, "changes": true, "sqlite_sequence": true}

func rowText(cols []string, vals []any) string {
	parts := make([]string, 0, len(cols))
	for i, c := range cols {
		if c == "seq" {
			continue
		}
		v := vals[i]
		switch x := v.(type) {
		case bool: // SQLite keeps booleans as 0 and 1
			if x {
				v = int64(1)
			} else {
				v = int64(0)
			}
		case int32:
			v = int64(x)
		case []byte:
			v = fmt.Sprintf("%x", x)
		}
		parts = append(parts, fmt.Sprintf("%s=%#v", c, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// dump is every table's rows, ordered by primary key, and for the tables
// keyed by text their insertion order (SQLite's rowid, PostgreSQL's seq),
// which breaks ties in newest-first listings.
type dump map[string][]string

func dumpSQLite(t *testing.T, path string) dump {
	t.Helper()
	db := sqliteDB(t, path)
	names := queryStrings(t, db, `SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name`)
	d := dump{}
	for _, n := range names {
		if skipTables[n] {
			continue
		}
		pk := queryStrings(t, db, `SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk`, n)
		filter := ""
		if n == "meta" {
			filter = ` WHERE key <> 'secret'`
		}
		rows, err := db.Query(`SELECT * FROM "` + n + `"` + filter + ` ORDER BY ` + strings.Join(pk, ", "))
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
			d[n] = append(d[n], rowText(cols, vals))
		}
		rows.Close()
		// meta's order means nothing (PostgreSQL keeps none for it).
		if n != "meta" && !strings.Contains(strings.ToUpper(queryStrings(t, db, `SELECT sql FROM sqlite_schema WHERE name = ?`, n)[0]), "WITHOUT ROWID") {
			d[n+" (insertion order)"] = queryStrings(t, db, `SELECT `+strings.Join(pk, " || '/' || ")+` FROM "`+n+`" ORDER BY rowid`)
		}
	}
	return d
}

func dumpPostgres(t *testing.T, dsn string) dump {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	names := pgStrings(t, conn, `SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1`)
	d := dump{}
	for _, n := range names {
		if skipTables[n] {
			continue
		}
		pk := pgStrings(t, conn, `SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
			WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)`, n)
		filter := ""
		if n == "meta" {
			filter = ` WHERE key <> 'secret'`
		}
		rows, err := conn.Query(ctx, `SELECT * FROM "`+n+`"`+filter+` ORDER BY `+strings.Join(pk, ", "))
		if err != nil {
			t.Fatal(err)
		}
		var cols []string
		for _, f := range rows.FieldDescriptions() {
			cols = append(cols, f.Name)
		}
		hasSeq := false
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			d[n] = append(d[n], rowText(cols, vals))
		}
		rows.Close()
		for _, c := range cols {
			hasSeq = hasSeq || c == "seq"
		}
		switch {
		case hasSeq:
			d[n+" (insertion order)"] = pgStrings(t, conn, `SELECT (`+strings.Join(pk, " || '/' || ")+`)::text FROM "`+n+`" ORDER BY seq`)
		case len(pk) == 1 && (pk[0] == "id"):
			// SQLite's rowid is the id itself.
			d[n+" (insertion order)"] = pgStrings(t, conn, `SELECT id::text FROM "`+n+`" ORDER BY id`)
		}
	}
	return d
}

func queryStrings(t *testing.T, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s sql.NullString
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s.String)
	}
	return out
}

func pgStrings(t *testing.T, conn *pgx.Conn, q string, args ...any) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

func compareDumps(t *testing.T, what string, want, got dump) {
	t.Helper()
	var tables []string
	for n := range want {
		tables = append(tables, n)
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			tables = append(tables, n)
		}
	}
	sort.Strings(tables)
	for _, n := range tables {
		w, g := want[n], got[n]
		if len(w) != len(g) {
			t.Errorf("%s: table %s has %d rows, want %d\n got %q\nwant %q", what, n, len(g), len(w), g, w)
			continue
		}
		for i := range w {
			if w[i] != g[i] {
				t.Errorf("%s: table %s row %d\n got %s\nwant %s", what, n, i, g[i], w[i])
			}
		}
	}
}

// pgRoleDSN makes a role with a password owning the database of dsn, and
// returns a postgres:// URL with that password, for checking that no
// output shows it.
func pgRoleDSN(t *testing.T, dsn, password string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	role := "copy_" + strings.TrimPrefix(cfg.Database, "t_")
	for _, q := range []string{
		`CREATE ROLE ` + role + ` LOGIN PASSWORD '` + password + `'`,
		`ALTER DATABASE ` + cfg.Database + ` OWNER TO ` + role,
	} {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		// dsn is the test's database: what the role owns there goes with
		// it, and then the role can go.
		c.Exec(ctx, `DROP OWNED BY `+role)
		c.Exec(ctx, `ALTER DATABASE `+cfg.Database+` OWNER TO postgres`)
		if _, err := c.Exec(ctx, `DROP ROLE IF EXISTS `+role); err != nil {
			t.Logf("dropping role %s: %v", role, err)
		}
	})
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", role, password, net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)), cfg.Database)
}

// TestStoreCopyRoundTrip copies a SQLite store into PostgreSQL and back
// into a new SQLite file with `caddy latchkey store copy`: every table's
// rows are the same at each step, ids included, and the id sequences go on
// past ids that were deleted. A non-empty target is refused unless --force.
func TestStoreCopyRoundTrip(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().Truncate(time.Microsecond).Add(123 * time.Nanosecond)

	// The source: a gateway's config with a generated secret beside its
	// SQLite store.
	srcDB := filepath.Join(dir, "src", "latchkey.db")
	srcConfig := filepath.Join(dir, "src", "Caddyfile")
	st, err := sqlite.Open(t.Context(), srcDB)
	if err != nil {
		t.Fatal(err)
	}
	gone := fillStore(t, st, now)
	// An older latchkey's secret in meta (not copied) and another value.
	if _, err := st.Secret(t.Context(), []byte(strings.Repeat("m", 40))); err != nil {
		t.Fatal(err)
	}
	st.Close()
	raw, err := sql.Open("sqlite", srcDB)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DELETE FROM users WHERE id = ` + fmt.Sprint(gone), // leaves a gap the sequence remembers
		`INSERT INTO meta (key, value) VALUES ('note', x'00ff01')`,
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()
	secret, err := keys.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	secretPath := keys.SecretPath(srcDB)
	if _, _, err := keys.CreateSecretFile(secretPath, secret); err != nil {
		t.Fatal(err)
	}
	writeFileIn(t, srcConfig, fmt.Sprintf("{\n\tlatchkey {\n\t\tstorage sqlite %s\n\t}\n}\n:8080 {\n\tlatchkey\n\trespond ok\n}\n", srcDB))
	want := dumpSQLite(t, srcDB)
	if len(want["users"]) != 3 || len(want["audit"]) < 5 || len(want["meta"]) != 1 || len(want["throttle"]) != 1 {
		t.Fatalf("source dump lacks rows: %v", want)
	}

	// The middle: PostgreSQL, named by a gateway config whose DSN holds a
	// password.
	const password = "Pa55-copy-never-shown"
	pgDSN := pgRoleDSN(t, pgtest.DSN(t), password)
	t.Setenv("LATCHKEY_TEST_COPY_DSN", pgDSN)
	pgConfig := filepath.Join(dir, "pg", "Caddyfile")
	writeFileIn(t, pgConfig, fmt.Sprintf("{\n\tlatchkey {\n\t\tstorage postgres {env.LATCHKEY_TEST_COPY_DSN}\n\t\tsecret_file %s\n\t}\n}\n:8080 {\n\tlatchkey\n\trespond ok\n}\n", secretPath))

	noPassword := func(what, out string, err error) {
		t.Helper()
		if strings.Contains(out, password) || err != nil && strings.Contains(err.Error(), password) {
			t.Errorf("%s shows the DSN's password:\n%s\n%v", what, out, err)
		}
		if strings.Contains(out, string(secret)) || strings.Contains(out, strings.Repeat("m", 40)) {
			t.Errorf("%s shows a secret:\n%s", what, out)
		}
	}

	start := time.Now()
	out, err := caddymodule.RunCLI("store", "copy", "--from", srcConfig, "--to", pgConfig)
	noPassword("copy to PostgreSQL", out, err)
	if err != nil {
		t.Fatalf("copy to PostgreSQL: %v\n%s", err, out)
	}
	t.Logf("SQLite → PostgreSQL in %v:\n%s", time.Since(start), out)
	for _, s := range []string{"users", "audit", "every table's count matches", secretPath, "is the source's"} {
		if !strings.Contains(out, s) {
			t.Errorf("copy output lacks %q:\n%s", s, out)
		}
	}
	compareDumps(t, "PostgreSQL after the copy", want, dumpPostgres(t, pgDSN))

	// The PostgreSQL store works on the copy: the audit trail names the
	// right users, and a new user does not get the deleted one's id.
	pg, err := postgres.Open(t.Context(), pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	ada, err := pg.UserByEmail(t.Context(), "app.test", "ada@example.com")
	if err != nil || len(ada.Roles) != 2 || ada.LoginCount != 2 {
		t.Fatalf("ada on PostgreSQL: %+v %v", ada, err)
	}
	evs, err := pg.Audit(t.Context(), store.AuditFilter{UserID: ada.ID})
	if err != nil || len(evs) != 2 {
		t.Errorf("ada's audit records on PostgreSQL: %d %v", len(evs), err)
	}
	nu := &store.User{Email: "new@example.com", Active: true}
	if err := pg.CreateUser(t.Context(), nu); err != nil {
		t.Fatal(err)
	}
	if nu.ID <= gone {
		t.Errorf("a user created after the copy got id %d; ids up to %d were handed out already", nu.ID, gone)
	}
	ss, err := pg.Sessions(t.Context(), store.SessionFilter{UserID: ada.ID})
	if err != nil || len(ss) != 3 {
		t.Fatalf("sessions on PostgreSQL: %v %v", ss, err)
	}
	pg.Close()
	afterNew := dumpPostgres(t, pgDSN)

	// Back into a new SQLite file.
	backDB := filepath.Join(dir, "back", "latchkey.db")
	start = time.Now()
	out, err = caddymodule.RunCLI("store", "copy", "--from", pgDSN, "--to", "sqlite:"+backDB)
	noPassword("copy to SQLite", out, err)
	if err != nil {
		t.Fatalf("copy back to SQLite: %v\n%s", err, out)
	}
	t.Logf("PostgreSQL → SQLite in %v:\n%s", time.Since(start), out)
	if !strings.Contains(out, keys.SecretPath(backDB)) {
		t.Errorf("copy output does not say where a gateway on the new SQLite store looks for its secret:\n%s", out)
	}
	compareDumps(t, "SQLite after the round trip", afterNew, dumpSQLite(t, backDB))
	// Without the user made on PostgreSQL, the round trip is the source.
	raw, err = sql.Open("sqlite", backDB)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`DELETE FROM users WHERE email = 'new@example.com'`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	compareDumps(t, "SQLite after the round trip", want, dumpSQLite(t, backDB))
	back, err := sqlite.Open(t.Context(), backDB)
	if err != nil {
		t.Fatal(err)
	}
	nu2 := &store.User{Email: "newer@example.com", Active: true}
	if err := back.CreateUser(t.Context(), nu2); err != nil {
		t.Fatal(err)
	}
	back.Close()
	if nu2.ID <= nu.ID {
		t.Errorf("after the round trip a new user got id %d; ids up to %d were handed out already", nu2.ID, nu.ID)
	}

	// A target that holds rows is refused, naming what it holds, and left
	// as it was.
	before := dumpPostgres(t, pgDSN)
	out, err = caddymodule.RunCLI("store", "copy", "--from", "sqlite:"+srcDB, "--to", pgConfig)
	noPassword("refused copy", out, err)
	if err == nil || !strings.Contains(err.Error(), "not empty") || !strings.Contains(err.Error(), "users 4") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("copy into a non-empty target: %v\n%s", err, out)
	}
	compareDumps(t, "PostgreSQL after a refused copy", before, dumpPostgres(t, pgDSN))
	// So is the source itself, however it is named.
	if out, err := caddymodule.RunCLI("store", "copy", "--from", pgConfig, "--to", pgDSN, "--force"); err == nil || !strings.Contains(err.Error(), "same") {
		t.Errorf("copy of a store onto itself: %v\n%s", err, out)
	}
	compareDumps(t, "PostgreSQL after a copy onto itself", before, dumpPostgres(t, pgDSN))

	// --force replaces what the target holds.
	out, err = caddymodule.RunCLI("store", "copy", "--from", "sqlite:"+srcDB, "--to", pgConfig, "--force")
	noPassword("forced copy", out, err)
	if err != nil {
		t.Fatalf("forced copy: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Replaced what the target held") {
		t.Errorf("forced copy output:\n%s", out)
	}
	compareDumps(t, "PostgreSQL after a forced copy", want, dumpPostgres(t, pgDSN))
	pg, err = postgres.Open(t.Context(), pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	nu3 := &store.User{Email: "newest@example.com", Active: true}
	if err := pg.CreateUser(t.Context(), nu3); err != nil {
		t.Fatal(err)
	}
	if nu3.ID <= nu.ID {
		t.Errorf("after a forced copy a new user got id %d; ids up to %d were handed out already", nu3.ID, nu.ID)
	}
}

// writeFileIn writes a file, making its directory.
func writeFileIn(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, content)
}
