package keys

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestSecretPath(t *testing.T) {
	for db, want := range map[string]string{
		"/data/latchkey/latchkey.db": "/data/latchkey/latchkey.secret",
		"/srv/app/state.sqlite":      "/srv/app/state.secret",
		"/srv/app/state":             "/srv/app/state.secret",
		"/srv/app/x.secret":          "/srv/app/x.secret.secret",
		"/srv/app/.db":               "/srv/app/.db.secret",
	} {
		if got := SecretPath(filepath.FromSlash(db)); got != filepath.FromSlash(want) {
			t.Errorf("SecretPath(%q) = %q, want %q", db, got, want)
		}
	}
}

func TestCreateSecretFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "dir", SecretFileName)
	secret, err := GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) != 64 || strings.Trim(string(secret), "0123456789abcdef") != "" {
		t.Fatalf("GenerateSecret = %q, want 64 hex digits", secret)
	}
	got, created, err := CreateSecretFile(path, secret)
	if err != nil || !created || !bytes.Equal(got, secret) {
		t.Fatalf("CreateSecretFile = %q, %v, %v; want the secret, created", got, created, err)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("secret file mode %v (%v), want 0600", fi.Mode(), err)
		}
		di, err := os.Stat(filepath.Dir(path))
		if err != nil || di.Mode().Perm() != 0o700 {
			t.Errorf("created directory mode %v (%v), want 0700", di.Mode(), err)
		}
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, secret) {
		t.Errorf("file holds %q, want exactly the secret %q", b, secret)
	}
	// An existing file is never replaced: its secret wins.
	other := bytes.Repeat([]byte("o"), 40)
	got, created, err = CreateSecretFile(path, other)
	if err != nil || created || !bytes.Equal(got, secret) {
		t.Errorf("second CreateSecretFile = %q, %v, %v; want the first secret, not created", got, created, err)
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the secret file", len(ents))
	}
	if _, _, err := CreateSecretFile(filepath.Join(t.TempDir(), "s"), []byte("short")); err == nil {
		t.Error("CreateSecretFile accepted a short secret")
	}
}

func TestReadSecretFileRefuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, content []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // despite the umask
			t.Fatal(err)
		}
		return p
	}
	good := bytes.Repeat([]byte("k"), MinSecretLen)
	cases := map[string]struct {
		path string
		want string
	}{
		"empty": {write("empty", nil, 0o600), "empty"},
		"short": {write("short", good[:MinSecretLen-1], 0o600), "31 bytes"},
		"dir":   {dir, "not a regular file"},
	}
	if runtime.GOOS != "windows" {
		cases["group readable"] = struct{ path, want string }{write("group", good, 0o640), "chmod 600"}
		cases["world readable"] = struct{ path, want string }{write("world", good, 0o604), "0604"}
		cases["group writable"] = struct{ path, want string }{write("gw", good, 0o620), "group or others"}
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ReadSecretFile(c.path)
			if err == nil || !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("ReadSecretFile(%s) error %v, want one naming the path and %q", name, err, c.want)
			}
			// The same refusal when loading, and nothing replaces the file.
			if _, err := LoadGeneratedSecret(t.Context(), c.path, nil); err == nil {
				t.Errorf("LoadGeneratedSecret accepted the %s file", name)
			}
		})
	}
	if b, err := ReadSecretFile(write("good", good, 0o600)); err != nil || !bytes.Equal(b, good) {
		t.Errorf("ReadSecretFile(good) = %q, %v", b, err)
	}
	if _, err := ReadSecretFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadSecretFile(missing) error %v, want fs.ErrNotExist", err)
	}
}

// fakeLegacy is a store's meta row.
type fakeLegacy struct {
	mu      sync.Mutex
	secret  []byte
	deletes int
}

func (f *fakeLegacy) Read(context.Context) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return bytes.Clone(f.secret), nil
}

func (f *fakeLegacy) Delete(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secret = nil
	f.deletes++
	return nil
}

func TestLoadGeneratedSecret(t *testing.T) {
	ctx := t.Context()
	t.Run("fresh", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), SecretFileName)
		legacy := &fakeLegacy{}
		a, err := LoadGeneratedSecret(ctx, path, legacy)
		if err != nil || len(a) < MinSecretLen {
			t.Fatalf("first load = %q, %v", a, err)
		}
		b, err := LoadGeneratedSecret(ctx, path, legacy)
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("second load = %q, %v; want %q", b, err, a)
		}
		if legacy.secret != nil {
			t.Error("a secret was put in the store")
		}
		other, err := LoadGeneratedSecret(ctx, filepath.Join(t.TempDir(), SecretFileName), legacy)
		if err != nil || bytes.Equal(other, a) {
			t.Errorf("a second place got %q, %v; want a different secret", other, err)
		}
	})
	t.Run("migrate", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), SecretFileName)
		old := []byte("\x00binary secret\n from the store  \xff\xfe!!")
		legacy := &fakeLegacy{secret: bytes.Clone(old)}
		got, err := LoadGeneratedSecret(ctx, path, legacy)
		if err != nil || !bytes.Equal(got, old) {
			t.Fatalf("migrating load = %q, %v; want the store's %q", got, err, old)
		}
		if legacy.secret != nil || legacy.deletes != 1 {
			t.Errorf("store secret %q after migration (%d deletes), want deleted", legacy.secret, legacy.deletes)
		}
		if b, _ := os.ReadFile(path); !bytes.Equal(b, old) {
			t.Errorf("file holds %q, want %q byte for byte", b, old)
		}
		if got, err := LoadGeneratedSecret(ctx, path, legacy); err != nil || !bytes.Equal(got, old) {
			t.Errorf("load after migration = %q, %v", got, err)
		}
		// The same secret back in the store (a migration interrupted
		// before the delete, or a restored backup): deleted again.
		legacy.secret = bytes.Clone(old)
		if got, err := LoadGeneratedSecret(ctx, path, legacy); err != nil || !bytes.Equal(got, old) || legacy.secret != nil {
			t.Errorf("load with the same secret in both = %q, %v, store %q", got, err, legacy.secret)
		}
		// A different one: refused, and nothing is changed.
		legacy.secret = bytes.Repeat([]byte("d"), 32)
		if _, err := LoadGeneratedSecret(ctx, path, legacy); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "differs") {
			t.Errorf("load with different secrets: %v, want a refusal naming %s", err, path)
		}
		if legacy.secret == nil {
			t.Error("the refused store secret was deleted")
		}
		if b, _ := os.ReadFile(path); !bytes.Equal(b, old) {
			t.Error("the refused load changed the file")
		}
	})
}

func TestLoadGeneratedSecretConcurrent(t *testing.T) {
	for _, withLegacy := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "state", SecretFileName)
		legacy := &fakeLegacy{}
		if withLegacy {
			legacy.secret = bytes.Repeat([]byte("L"), 32)
		}
		const n = 16
		got := make([][]byte, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				got[i], errs[i] = LoadGeneratedSecret(t.Context(), path, legacy)
			})
		}
		close(start)
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("legacy %v: load %d: %v", withLegacy, i, errs[i])
			}
			if !bytes.Equal(got[i], got[0]) {
				t.Fatalf("legacy %v: concurrent loads disagree: %q and %q", withLegacy, got[0], got[i])
			}
		}
		if withLegacy && string(got[0]) != strings.Repeat("L", 32) {
			t.Errorf("concurrent migration settled on %q, want the store's secret", got[0])
		}
		if b, err := ReadSecretFile(path); err != nil || !bytes.Equal(b, got[0]) {
			t.Errorf("file holds %q, %v; want %q", b, err, got[0])
		}
		ents, _ := os.ReadDir(filepath.Dir(path))
		if len(ents) != 1 {
			t.Errorf("legacy %v: %d entries left in the directory, want 1", withLegacy, len(ents))
		}
	}
}
