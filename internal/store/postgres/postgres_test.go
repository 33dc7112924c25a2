package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/postgres/pgtest"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
	"github.com/latchkeyhq/latchkey/internal/store/storetest"
)

// TestMain stops the throwaway cluster pgtest starts.
func TestMain(m *testing.M) { pgtest.Main(m) }

func openFresh(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.Context(), pgtest.DSN(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openFresh(t) })
}

func rawConn(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
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

// TestMigrateConcurrently opens one fresh database from several goroutines
// at once, as gateways starting together do: the advisory lock lets one
// migrate and the others find the work done.
func TestMigrateConcurrently(t *testing.T) {
	dsn := pgtest.DSN(t)
	const n = 5
	var wg sync.WaitGroup
	stores := make([]*Store, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(t.Context(), dsn)
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Open %d: %v", i, errs[i])
			continue
		}
		defer stores[i].Close()
		v, err := stores[i].SchemaVersion(t.Context())
		if err != nil || v != SchemaVersion {
			t.Errorf("store %d: SchemaVersion = %d, %v; want %d", i, v, err, SchemaVersion)
		}
	}
	var count, distinct int
	if err := rawConn(t, dsn).QueryRow(t.Context(), `SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&count, &distinct); err != nil {
		t.Fatal(err)
	}
	if count != SchemaVersion || distinct != SchemaVersion {
		t.Errorf("schema_migrations has %d rows (%d versions), want %d", count, distinct, SchemaVersion)
	}
}

// TestMigrateTwice: a second Open of a migrated database applies nothing.
func TestMigrateTwice(t *testing.T) {
	dsn := pgtest.DSN(t)
	for range 2 {
		s, err := Open(t.Context(), dsn)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		s.Close()
	}
	conn := rawConn(t, dsn)
	applied, err := migrate(t.Context(), conn, migrations)
	if err != nil || len(applied) != 0 {
		t.Errorf("migrating a migrated database applied %v, %v; want nothing", applied, err)
	}
}

func TestSchemaTooNew(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s.Close()
	conn := rawConn(t, dsn)
	if _, err := conn.Exec(t.Context(), `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 0)`, SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	_, err = Open(t.Context(), dsn)
	var tooNew *SchemaTooNewError
	if !errors.As(err, &tooNew) || tooNew.Database != SchemaVersion+1 || tooNew.Binary != SchemaVersion {
		t.Fatalf("Open of a newer database: %v, want SchemaTooNewError{%d, %d}", err, SchemaVersion+1, SchemaVersion)
	}
	if !strings.Contains(err.Error(), "newer than this binary supports") {
		t.Errorf("error %q does not say the schema is newer", err)
	}
	// Nothing was changed.
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != SchemaVersion+1 {
		t.Errorf("schema_migrations has %d rows after the refusal (%v), want %d", n, err, SchemaVersion+1)
	}
}

// TestMigrationMissing: a database with a later version but not an earlier
// one was not made by these migrations.
func TestMigrationMissing(t *testing.T) {
	dsn := pgtest.DSN(t)
	conn := rawConn(t, dsn)
	if _, err := migrate(t.Context(), conn, migrations[:2]); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), `DELETE FROM schema_migrations WHERE version = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := migrate(t.Context(), conn, migrations); err == nil || !strings.Contains(err.Error(), "is missing") {
		t.Errorf("migrate with version 1 missing: %v, want an error", err)
	}
}

// TestMigrateStepByStep applies the migrations one at a time over data, so
// that 0005's placement of sites and roles is exercised as on SQLite.
func TestMigrateStepByStep(t *testing.T) {
	dsn := pgtest.DSN(t)
	conn := rawConn(t, dsn)
	ctx := t.Context()
	if _, err := migrate(ctx, conn, migrations[:4]); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO users (site, email, created_at) VALUES ('wiki.example.org', 'a@example.org', 1), ('', 'b@example.org', 1)`,
		`INSERT INTO user_roles (user_id, role) VALUES (1, 'admin'), (2, 'viewer')`,
		`INSERT INTO invites (site, email, code_hash, created_at) VALUES ('inv.example.org', 'b@example.org', '\x01', 1)`,
		`INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at, kind, credential_id)
			VALUES ('s1', '\x01', 1, 1, 1, 2, '', ''), ('s2', '\x02', 2, 1, 1, 2, 'invite', '1'), ('s3', '\x03', 2, 1, 1, 2, '', '')`,
		`INSERT INTO links (jti, user_id, target, created_at) VALUES ('l1', 1, 'x.example/p', 1), ('l2', 2, 'Host.Example:8443/p', 1), ('l3', NULL, 'bare.example', 1)`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := migrate(ctx, conn, migrations); err != nil {
		t.Fatal(err)
	}
	check := func(q string, want string) {
		t.Helper()
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var a, b string
			if err := rows.Scan(&a, &b); err != nil {
				t.Fatal(err)
			}
			got = append(got, a+"="+b)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if g := strings.Join(got, " "); g != want {
			t.Errorf("%s:\n got %s\nwant %s", q, g, want)
		}
	}
	check(`SELECT id, site FROM sessions ORDER BY id`, "s1=wiki.example.org s2=inv.example.org s3=")
	check(`SELECT jti, site FROM links ORDER BY jti`, "l1=wiki.example.org l2=host.example l3=bare.example")
	check(`SELECT role, site FROM user_roles ORDER BY role`, "admin=wiki.example.org viewer=")
	// 0012: the roles held on a named site are in the catalog, the empty
	// site's are not, and back-filling recorded no change.
	check(`SELECT name, site FROM roles ORDER BY name`, "admin=wiki.example.org")
	check(`SELECT 'changes', count(*)::text FROM changes`, "changes=0")
}

// TestUserRoleTriggers: the triggers on user_roles record a change of the
// user for whatever writes the table, by hand too; deleting a user records
// the change of each role it held with the user's own.
func TestUserRoleTriggers(t *testing.T) {
	ctx := t.Context()
	s := openFresh(t)
	var ids []int64
	for _, email := range []string{"a@example.org", "b@example.org"} {
		u := &store.User{Site: "x.example", Email: email, Roles: []store.Role{{Site: "x.example", Name: "r"}}}
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
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
	a, b := fmt.Sprint(ids[0]), fmt.Sprint(ids[1])
	if _, err := s.pool.Exec(ctx, `UPDATE user_roles SET user_id = $1, role = 'q' WHERE user_id = $2`, ids[1], ids[0]); err != nil {
		t.Fatal(err)
	}
	subjects("moving a role to another user", "user:"+b, "user:"+a)
	if _, err := s.pool.Exec(ctx, `UPDATE user_roles SET role = 'p' WHERE user_id = $1 AND role = 'q'`, ids[1]); err != nil {
		t.Fatal(err)
	}
	subjects("renaming a role", "user:"+b)
	if _, err := s.pool.Exec(ctx, `DELETE FROM users WHERE id = $1`, ids[1]); err != nil {
		t.Fatal(err)
	}
	subjects("deleting a user with two roles", "user:"+b, "user:"+b, "user:"+b)
}

// TestNanosecondTimes: times round-trip to the nanosecond, as on SQLite.
func TestNanosecondTimes(t *testing.T) {
	s := openFresh(t)
	ctx := t.Context()
	at := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)
	u := &store.User{Email: "a@example.org", CreatedAt: at}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	got, err := s.User(ctx, u.ID)
	if err != nil || !got.CreatedAt.Equal(at) {
		t.Errorf("CreatedAt = %v, %v; want %v", got.CreatedAt, err, at)
	}
}

// TestMalformedText: what a client sends may be invalid UTF-8 or hold NUL
// bytes, which PostgreSQL's TEXT refuses. The audit record and the session
// are written anyway (with U+FFFD in their place), and lookups of such keys
// find nothing rather than fail.
func TestMalformedText(t *testing.T) {
	s := openFresh(t)
	ctx := t.Context()
	bad := "Mozilla/5.0 \xff\xfe (\x00)"
	events := []store.AuditEvent{
		{Kind: "session", Outcome: store.OutcomeRefused, Path: "/\xc3", UserAgent: bad},
		{Kind: "session", Outcome: store.OutcomeAccepted, Path: "/ok", UserAgent: "fine"},
	}
	if err := s.WriteAudit(ctx, events); err != nil {
		t.Fatalf("WriteAudit with malformed text: %v", err)
	}
	got, err := s.Audit(ctx, store.AuditFilter{})
	if err != nil || len(got) != 2 {
		t.Fatalf("Audit = %v, %v; want 2 events", got, err)
	}
	u := &store.User{Email: "a@example.org", Active: true, Name: "A\xff"}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatalf("CreateUser with a malformed name: %v", err)
	}
	sess := &store.Session{UserID: u.ID, TokenHash: []byte("h"), ExpiresAt: time.Now().Add(time.Hour), UserAgent: bad, IP: "\x00"}
	if err := s.CreateSession(ctx, sess); err != nil {
		t.Fatalf("CreateSession with a malformed user agent: %v", err)
	}
	if _, err := s.Ticket(ctx, "\xff"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Ticket(malformed) = %v, want ErrNotFound", err)
	}
	if _, err := s.Link(ctx, "a\x00"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Link(malformed) = %v, want ErrNotFound", err)
	}
	if err := s.ClaimTicket(ctx, "\xff", time.Now(), time.Now().Add(time.Minute), nil); !errors.Is(err, store.ErrConflict) {
		t.Errorf("ClaimTicket(malformed) = %v, want ErrConflict", err)
	}
	if err := s.TouchSession(ctx, "\xff", time.Now()); err != nil {
		t.Errorf("TouchSession(malformed) = %v, want nil", err)
	}
}

// TestDSNNotInErrors: a wrong password, an unreachable server and a DSN
// that does not parse all fail without showing the DSN or its password.
func TestDSNNotInErrors(t *testing.T) {
	dsn := pgtest.DSN(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	const password = "s3cret-Pa55word-do-not-show"

	// A role that needs a password, on the test server.
	conn := rawConn(t, dsn)
	role := "pw_" + strings.ReplaceAll(cfg.Database, "t_", "")
	if _, err := conn.Exec(t.Context(), fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'right-password'`, role)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Exec(context.Background(), `DROP ROLE IF EXISTS `+role) })

	host := net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := free.Addr().String()
	free.Close()

	wrong := []string{
		fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable&connect_timeout=5", role, password, host, cfg.Database),
		fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable connect_timeout=5", cfg.Host, cfg.Port, role, password, cfg.Database),
	}
	// A server given by LATCHKEY_TEST_PG_DSN may trust every login; the
	// throwaway cluster checks passwords of roles but postgres.
	checks := true
	if c, err := pgx.Connect(t.Context(), wrong[0]); err == nil {
		c.Close(context.Background())
		checks = false
		t.Logf("the test server does not check passwords: the wrong-password cases only check that nothing is shown")
	}
	for i, bad := range append(wrong, []string{
		fmt.Sprintf("postgres://%s:%s@%s/x?sslmode=disable&connect_timeout=5", role, password, closed),
		fmt.Sprintf("postgres://%s:%s@%s:notaport/x", role, password, cfg.Host),
		fmt.Sprintf("postgres://%s:%s:extra@[bad/x", role, password),
		fmt.Sprintf("host=%s user = %s password = '%s' sslmode=bogus", cfg.Host, role, password),
	}...) {
		s, err := Open(t.Context(), bad)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", bad)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, password) || strings.Contains(msg, bad) {
			t.Errorf("Open error shows the password or DSN: %s", msg)
		}
		if i < len(wrong) && checks && !strings.Contains(msg, "password authentication failed") {
			t.Errorf("Open with a wrong password: %s, want it to say so", msg)
		}
		t.Logf("%s", msg)
	}
	if d := Describe(fmt.Sprintf("postgres://u:%s@db.example:5433/latchkey", password)); strings.Contains(d, password) || !strings.Contains(d, "db.example") {
		t.Errorf("Describe = %q", d)
	}
}

// TestStatementTimeout: the pool's connections carry the timeout.
func TestStatementTimeout(t *testing.T) {
	dsn := pgtest.DSN(t)
	for _, tc := range []struct {
		opts []Option
		want string
	}{
		{nil, "5s"},
		{[]Option{WithStatementTimeout(250 * time.Millisecond)}, "250ms"},
	} {
		s, err := Open(t.Context(), dsn, tc.opts...)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		if err := s.pool.QueryRow(t.Context(), `SHOW statement_timeout`).Scan(&got); err != nil || got != tc.want {
			t.Errorf("statement_timeout = %q, %v; want %q", got, err, tc.want)
		}
		if tc.want == "250ms" {
			_, err := s.pool.Exec(t.Context(), `SELECT pg_sleep(2)`)
			if pgCode(err) != "57014" {
				t.Errorf("a 2s statement under a 250ms timeout: %v, want query_canceled", err)
			}
		}
		s.Close()
	}
}

// TestClaimMailAcrossStores: two stores on one database (two gateways)
// claiming the same queue never hold one mail at once.
func TestClaimMailAcrossStores(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := t.Context()
	now := time.Now()
	const mails = 60
	for i := range mails {
		if err := a.EnqueueMail(ctx, &store.Mail{Kind: store.MailKindInvite, To: fmt.Sprintf("m%d@example.org", i), CreatedAt: now.Add(-time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for w := range 6 {
		st := a
		if w%2 == 1 {
			st = b
		}
		wg.Go(func() {
			for {
				got, err := st.ClaimMail(ctx, now, now.Add(time.Hour), 3)
				if err != nil {
					t.Errorf("ClaimMail: %v", err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, m := range got {
					seen[m.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != mails {
		t.Errorf("%d mails claimed, want %d", len(seen), mails)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("mail %d claimed %d times", id, n)
		}
	}
}

// TestSchemaFollowsSQLite: the two stores keep one logical schema under one
// version number, so a new SQLite migration needs its PostgreSQL twin. The
// tables and columns must match, but for seq, the PostgreSQL stand-in for
// SQLite's implicit rowid.
func TestSchemaFollowsSQLite(t *testing.T) {
	if SchemaVersion != sqlite.SchemaVersion {
		t.Fatalf("postgres SchemaVersion %d, sqlite %d: add the PostgreSQL twin of each SQLite migration, same number", SchemaVersion, sqlite.SchemaVersion)
	}
	path := filepath.Join(t.TempDir(), "latchkey.db")
	ls, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	ls.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), `SELECT m.Name, p.name FROM sqlite_schema m JOIN pragma_table_info(m.Name) p
		WHERE m.type = 'table' AND m.Name NOT LIKE 'sqlite_%' ORDER BY m.Name, p.name`)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for rows.Next() {
		var tbl, col string
		if err := rows.Scan(&tbl, &col); err != nil {
			t.Fatal(err)
		}
		want = append(want, tbl+"."+col)
	}
	rows.Close()

	dsn := pgtest.DSN(t)
	ps, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	prow, err := ps.pool.Query(t.Context(), `SELECT table_name || '.' || column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND column_name <> 'seq' ORDER BY table_name, column_name`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(prow, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("PostgreSQL columns differ from SQLite's:\n got %q\nwant %q", got, want)
	}
}
