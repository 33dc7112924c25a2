package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/latchkeyhq/latchkey/internal/keys"
	"github.com/latchkeyhq/latchkey/internal/link"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
	"github.com/latchkeyhq/latchkey/mint"
)

// secretApp opens the SQLite store at db and loads the app's secret the way
// Provision and the CLI do.
func secretApp(t *testing.T, db string) (*App, store.Store, error) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a := &App{Storage: &StorageConfig{Path: db}}
	a.secret, err = a.loadSecret(context.Background(), caddy.NewReplacer(), st)
	return a, st, err
}

func mustSecretApp(t *testing.T, db string) (*App, store.Store) {
	t.Helper()
	a, st, err := secretApp(t, db)
	if err != nil {
		t.Fatalf("loadSecret: %v", err)
	}
	if a.links, err = a.linkKeyRing(caddy.NewReplacer()); err != nil {
		t.Fatal(err)
	}
	return a, st
}

func TestGeneratedSecretFile(t *testing.T) {
	db := filepath.Join(t.TempDir(), "state", "latchkey.db")
	a, st := mustSecretApp(t, db)
	path := filepath.Join(filepath.Dir(db), "latchkey.secret")
	b, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(b, a.secret) || len(b) < minSecretLen {
		t.Fatalf("secret file %s holds %q (%v), want the app's secret %q", path, b, err, a.secret)
	}
	if fi, _ := os.Stat(path); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode %v, want 0600", fi.Mode())
	}
	if sec, err := st.Secret(context.Background(), nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the store holds a secret %q (%v); want none", sec, err)
	}
	// The next start reads the same file.
	again, _ := mustSecretApp(t, db)
	if !bytes.Equal(again.secret, a.secret) {
		t.Errorf("restart got secret %q, want %q", again.secret, a.secret)
	}
}

// A copy of the database alone does not carry the secret: links minted by
// the original do not verify on the copy.
func TestCopiedStoreHasNoSecret(t *testing.T) {
	db := filepath.Join(t.TempDir(), "latchkey.db")
	orig, st := mustSecretApp(t, db)
	if err := st.CreateUser(context.Background(), &store.User{Email: "ada@example.com", Active: true}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil { // checkpoints the WAL into the file
		t.Fatal(err)
	}
	stolen := filepath.Join(t.TempDir(), "latchkey.db")
	copyFile(t, db, stolen)

	thief, tst := mustSecretApp(t, stolen)
	if u, err := tst.UserByEmail(context.Background(), "", "ada@example.com"); err != nil || u == nil {
		t.Fatalf("the copy lacks the data: %v", err)
	}
	if bytes.Equal(thief.secret, orig.secret) {
		t.Fatal("the copied database yields the original's secret")
	}
	minted, info, err := mint.New(orig.secret).Link(mint.Options{UserID: 1, URL: "https://app.example.com/unsubscribe"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := orig.links.Verify(info.Token, time.Now()); err != nil {
		t.Fatalf("the original refuses its own link %s: %v", minted, err)
	}
	if _, reason, err := thief.links.Verify(info.Token, time.Now()); err == nil || reason != link.ReasonBadSignature {
		t.Errorf("the copy's verdict on a link minted by the original: %q, %v; want %s", reason, err, link.ReasonBadSignature)
	}
	// A link minted with the copy's secret is refused by the original.
	_, info2, _ := mint.New(thief.secret).Link(mint.Options{UserID: 1, URL: "https://app.example.com/unsubscribe"})
	if _, _, err := orig.links.Verify(info2.Token, time.Now()); err == nil {
		t.Error("the original verified a link minted with the copy's secret")
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// A store from an older version, which kept its secret in the meta table:
// the secret moves to the file, so links, sessions and codes keep working,
// and the store no longer holds it.
func TestSecretMigratesOutOfStore(t *testing.T) {
	db := filepath.Join(t.TempDir(), "latchkey.db")
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	legacy := bytes.Repeat([]byte{0x00, '\n', 0xff, ' '}, 8) // what the old version made: 32 random bytes
	if _, err := st.Secret(context.Background(), legacy); err != nil {
		t.Fatal(err)
	}
	_, info, err := mint.New(legacy).Link(mint.Options{UserID: 1, URL: "https://app.example.com/x", MaxUses: 3})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	a, st2 := mustSecretApp(t, db)
	if !bytes.Equal(a.secret, legacy) {
		t.Fatalf("migrated secret %q, want the store's %q", a.secret, legacy)
	}
	if b, err := keys.ReadSecretFile(keys.SecretPath(db)); err != nil || !bytes.Equal(b, legacy) {
		t.Errorf("secret file holds %q (%v), want the store's secret byte for byte", b, err)
	}
	if sec, err := st2.Secret(context.Background(), nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after migration the store still holds %q (%v)", sec, err)
	}
	if _, _, err := a.links.Verify(info.Token, time.Now()); err != nil {
		t.Errorf("a link minted before the migration is refused: %v", err)
	}
	// Restarting is a no-op.
	if b, _ := mustSecretApp(t, db); !bytes.Equal(b.secret, legacy) {
		t.Errorf("restart after migration got %q", b.secret)
	}
}

func TestSecretInStoreAndFileDiffer(t *testing.T) {
	db := filepath.Join(t.TempDir(), "latchkey.db")
	_, st := mustSecretApp(t, db) // creates the file
	other := []byte(strings.Repeat("x", 32))
	if _, err := st.Secret(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	st.Close()
	_, st2, err := secretApp(t, db)
	if err == nil || !strings.Contains(err.Error(), keys.SecretPath(db)) || !strings.Contains(err.Error(), "differs") {
		t.Fatalf("loadSecret with two different secrets: %v; want a refusal naming the file", err)
	}
	if sec, err := st2.Secret(context.Background(), nil); err != nil || !bytes.Equal(sec, other) {
		t.Errorf("the refused start changed the store's secret: %q %v", sec, err)
	}
}

func TestSecretFilePermissionsRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	db := filepath.Join(t.TempDir(), "latchkey.db")
	mustSecretApp(t, db)
	path := keys.SecretPath(db)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := secretApp(t, db); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable secret file: %v, want a refusal naming %s", err, path)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := secretApp(t, db); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("short secret file: %v, want a refusal naming %s", err, path)
	}
}

func TestSecretFileConcurrentStarts(t *testing.T) {
	db := filepath.Join(t.TempDir(), "state", "latchkey.db")
	const n = 4
	secrets := make([][]byte, n)
	errs := make([]error, n)
	sts := make([]store.Store, n)
	for i := range n { // separate handles, as separate processes would have
		st, err := sqlite.Open(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		sts[i] = st
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			a := &App{Storage: &StorageConfig{Path: db}}
			<-start
			secrets[i], errs[i] = a.loadSecret(context.Background(), caddy.NewReplacer(), sts[i])
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("start %d: %v", i, errs[i])
		}
		if !bytes.Equal(secrets[i], secrets[0]) {
			t.Fatalf("concurrent starts disagree: %q and %q", secrets[0], secrets[i])
		}
	}
}

// With a configured secret nothing is generated, and the CLI finds the
// file the server made.
func TestSecretConfiguredAndCLI(t *testing.T) {
	db := filepath.Join(t.TempDir(), "latchkey.db")
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := &App{Storage: &StorageConfig{Path: db}, Secret: strings.Repeat("c", 40)}
	if sec, err := a.loadSecret(context.Background(), caddy.NewReplacer(), st); err != nil || string(sec) != strings.Repeat("c", 40) {
		t.Fatalf("configured secret: %q %v", sec, err)
	}
	if _, err := os.Stat(keys.SecretPath(db)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a secret file was generated although one is configured: %v", err)
	}

	cf, cdb := writeCaddyfile(t)
	server, _ := mustSecretApp(t, cdb)
	if out, err := cli(t, cf, "users", "add", "--email", "cli@example.com"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// A link the CLI mints verifies with the server's secret.
	out, err := cli(t, cf, "links", "create", "--user", "cli@example.com", "--url", "https://app.example.com/x", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var minted struct{ URL string }
	if err := json.Unmarshal([]byte(out), &minted); err != nil {
		t.Fatalf("links create output %q: %v", out, err)
	}
	u, err := url.Parse(minted.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, reason, err := server.links.Verify(u.Query().Get("token"), time.Now()); err != nil {
		t.Errorf("the server refuses a link the CLI minted: %s %v", reason, err)
	}
	if b, err := keys.ReadSecretFile(keys.SecretPath(cdb)); err != nil || !bytes.Equal(b, server.secret) {
		t.Errorf("after the CLI ran the secret file holds %q (%v), want the server's %q", b, err, server.secret)
	}
	ents, _ := os.ReadDir(filepath.Dir(cdb))
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".secret") && e.Name() != "latchkey.secret" {
			t.Errorf("unexpected secret file %s", e.Name())
		}
	}
}
