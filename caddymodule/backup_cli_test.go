package caddymodule_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/caddymodule"
	"github.com/latchkeyhq/latchkey/internal/keys"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
)

// TestBackupCommand backs up a running gateway's store through the CLI
// while the gateway audits requests and another handle adds sessions and
// invites: the backup is sound, holds what was committed before it, opens
// as a store of the same version, and the output names the secret file,
// which is not in it. A second backup to the same name is refused.
func TestBackupCommand(t *testing.T) {
	o := gwOpts{generatedSecret: true}
	g := startGateway(t, o)
	u := g.user("backup@example.com")
	token, _ := g.session(u, time.Now())

	var committed atomic.Int64
	started := make(chan struct{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the gateway writes audit records...
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			g.get(fmt.Sprintf("/during/%d", i), cookie(token))
		}
	})
	wg.Go(func() { // ...and another process sessions and invites
		ctx := context.Background()
		for i := int64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			now := time.Now()
			if err := g.st.CreateSession(ctx, &store.Session{ID: fmt.Sprintf("bk-%d", i), UserID: u.ID, Site: "127.0.0.1",
				TokenHash: []byte(fmt.Sprintf("backup-token-hash-%015d", i)), CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Error(err)
				return
			}
			if err := g.st.CreateInvite(ctx, &store.Invite{Site: "127.0.0.1", Email: fmt.Sprintf("bk-%d@example.com", i),
				CodeHash: []byte(fmt.Sprintf("backup-code-hash-%016d", i)), CreatedBy: "test"}); err != nil {
				t.Error(err)
				return
			}
			committed.Store(i + 1)
			if i == 20 {
				close(started)
			}
		}
	})
	<-started
	g.waitAudit(store.AuditFilter{Outcome: store.OutcomeAccepted}, 1)
	auditBefore, err := g.st.Audit(context.Background(), store.AuditFilter{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	before := committed.Load()

	// Relative to the working directory.
	work := t.TempDir()
	t.Chdir(work)
	out, err := g.cliErr(o, "backup", "latchkey-backup.db")
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	dest := filepath.Join(work, "latchkey-backup.db")
	fi, err := os.Stat(dest)
	if err != nil {
		t.Fatalf("no backup at %s: %v\n%s", dest, err, out)
	}
	secretPath := keys.SecretPath(g.db)
	for _, want := range []string{dest, fmt.Sprintf("%d bytes", fi.Size()), fmt.Sprintf("schema version %d", sqlite.SchemaVersion), "NOT in the backup", secretPath} {
		if !strings.Contains(out, want) {
			t.Errorf("backup output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, string(g.secret)) {
		t.Error("the backup output shows the secret")
	}

	raw, err := sql.Open("sqlite", "file:"+sqlite.EscapePath(dest)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var check string
	if err := raw.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check: %q, %v", check, err)
	}
	var sessions, invites, audits int64
	raw.QueryRow(`SELECT count(*) FROM sessions WHERE id LIKE 'bk-%' AND CAST(substr(id, 4) AS INTEGER) < ?`, before).Scan(&sessions)
	raw.QueryRow(`SELECT count(*) FROM invites WHERE email LIKE 'bk-%' AND CAST(substr(email, 4) AS INTEGER) < ?`, before).Scan(&invites)
	raw.QueryRow(`SELECT count(*) FROM audit WHERE id <= ?`, auditBefore[0].ID).Scan(&audits)
	if sessions != before || invites != before {
		t.Errorf("the backup holds %d sessions and %d invites of the %d of each committed before it", sessions, invites, before)
	}
	var inStore int64
	for _, e := range g.waitAudit(store.AuditFilter{}, 1) {
		if e.ID <= auditBefore[0].ID {
			inStore++
		}
	}
	if audits == 0 || audits != inStore {
		t.Errorf("the backup holds %d audit records up to id %d, the store %d", audits, auditBefore[0].ID, inStore)
	}
	var secrets int
	raw.QueryRow(`SELECT count(*) FROM meta WHERE key = 'secret'`).Scan(&secrets)
	if secrets != 0 {
		t.Error("the backup holds a secret")
	}
	raw.Close()

	b, err := sqlite.Open(context.Background(), dest)
	if err != nil {
		t.Fatalf("the backup does not open as a store: %v", err)
	}
	if v, err := b.SchemaVersion(context.Background()); err != nil || v != sqlite.SchemaVersion {
		t.Errorf("backup schema version %d, %v", v, err)
	}
	if _, err := b.UserByEmail(context.Background(), "", "backup@example.com"); err != nil {
		t.Errorf("the backup lacks the user: %v", err)
	}
	b.Close()

	// The same name again: refused, the file left as it is.
	want, _ := os.ReadFile(dest)
	out, err = g.cliErr(o, "backup", "latchkey-backup.db", "--json")
	if err == nil || !strings.Contains(out, dest) || !strings.Contains(out, "never replaces") {
		t.Errorf("a second backup to %s: %v\n%s", dest, err, out)
	}
	if got, _ := os.ReadFile(dest); string(got) != string(want) {
		t.Error("the refused backup changed the file")
	}
	// --json for scripts.
	out = g.cli(o, "backup", filepath.Join(work, "second.db"), "--json")
	var js struct {
		Path          string   `json:"path"`
		Size          int64    `json:"size"`
		SchemaVersion int      `json:"schema_version"`
		SecretFiles   []string `json:"secret_files"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &js); err != nil || js.Path != filepath.Join(work, "second.db") ||
		js.Size == 0 || js.SchemaVersion != sqlite.SchemaVersion || len(js.SecretFiles) != 1 || js.SecretFiles[0] != secretPath {
		t.Errorf("backup --json: %+v, %v\n%s", js, err, out)
	}
	if resp := g.get("/after", cookie(token)); resp.StatusCode != http.StatusOK {
		t.Errorf("the gateway after the backups: %d", resp.StatusCode)
	}
}

// A PostgreSQL store is not latchkey's to copy: the command says to use
// pg_dump, with the DSN's user, host and database but not its password,
// and does not connect.
func TestBackupCommandPostgres(t *testing.T) {
	dir := t.TempDir()
	cf := filepath.Join(dir, "Caddyfile")
	src := "{\n\tlatchkey {\n\t\tstorage postgres \"postgres://gate:hunter2-pw@db.internal:6543/latchkey?sslmode=require&password=alsosecret\"\n\t\tsecret " + strings.Repeat("s", 40) + "\n\t}\n}\n:8080 {\n\tlatchkey\n\trespond ok\n}\n"
	if err := os.WriteFile(cf, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "b.db")
	out, err := caddymodule.RunCLI("backup", dest, "--config", cf, "--adapter", "caddyfile")
	if err == nil {
		t.Fatalf("backup of a PostgreSQL store succeeded:\n%s", out)
	}
	for _, want := range []string{"pg_dump", "postgres://gate@db.internal:6543/latchkey", "PGPASSWORD"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"hunter2", "alsosecret"} {
		if strings.Contains(out, secret) {
			t.Errorf("the output shows the DSN's password:\n%s", out)
		}
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Errorf("a file was written: %v", err)
	}
}

// With no gateway to send it to, the command opens the store itself; the
// path is still taken from the working directory.
func TestBackupCommandLocal(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "data", "latchkey.db")
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(context.Background(), &store.User{Email: "local@example.com", Active: true}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	cf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cf, []byte("{\n\tadmin off\n\tlatchkey {\n\t\tstorage sqlite "+db+"\n\t}\n}\n:8080 {\n\tlatchkey\n\trespond ok\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	t.Chdir(work)
	out, err := caddymodule.RunCLI("backup", "b.db", "--config", cf, "--adapter", "caddyfile")
	dest := filepath.Join(work, "b.db")
	if err != nil || !strings.Contains(out, dest) || !strings.Contains(out, keys.SecretPath(db)) || strings.Contains(out, "admin API") {
		t.Fatalf("local backup: %v\n%s", err, out)
	}
	b, err := sqlite.Open(context.Background(), dest)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.UserByEmail(context.Background(), "", "local@example.com"); err != nil {
		t.Errorf("the local backup lacks the user: %v", err)
	}
}
