package keys

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestPreviousSecretsPath(t *testing.T) {
	for secret, want := range map[string]string{
		"/data/latchkey/latchkey.secret": "/data/latchkey/latchkey.previous-secrets",
		"/srv/app/state.secret":          "/srv/app/state.previous-secrets",
		"/srv/app/.secret":               "/srv/app/.secret.previous-secrets",
	} {
		if got := PreviousSecretsPath(filepath.FromSlash(secret)); got != filepath.FromSlash(want) {
			t.Errorf("PreviousSecretsPath(%q) = %q, want %q", secret, got, want)
		}
	}
}

func TestFingerprint(t *testing.T) {
	a, b := bytes.Repeat([]byte("a"), 32), bytes.Repeat([]byte("b"), 32)
	fa := Fingerprint(a)
	if len(fa) != 8 || strings.Trim(fa, "0123456789abcdef") != "" {
		t.Fatalf("Fingerprint = %q, want 8 hex digits", fa)
	}
	if fa != Fingerprint(a) || fa == Fingerprint(b) {
		t.Error("a fingerprint must name its secret and only it")
	}
	if strings.Contains(string(a), fa) {
		t.Error("the fingerprint is part of the secret")
	}
}

// newSecretFile is a generated secret's file, as the gateway's first start
// leaves it.
func newSecretFile(t *testing.T) (path string, secret []byte) {
	t.Helper()
	path = filepath.Join(t.TempDir(), SecretFileName)
	secret, err := LoadGeneratedSecret(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return path, secret
}

func TestRotateAndRetire(t *testing.T) {
	path, first := newSecretFile(t)
	prevPath := PreviousSecretsPath(path)

	r1, err := RotateGeneratedSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(r1.Current, first) || len(r1.Previous) != 1 || !bytes.Equal(r1.Previous[0], first) {
		t.Fatalf("first rotation: %q, previous %q; want a new secret, the first one previous", r1.Current, r1.Previous)
	}
	// The secret file keeps its format: the new secret, byte for byte.
	if b, err := ReadSecretFile(path); err != nil || !bytes.Equal(b, r1.Current) {
		t.Fatalf("secret file holds %q (%v), want %q", b, err, r1.Current)
	}
	if raw, _ := os.ReadFile(path); !bytes.Equal(raw, r1.Current) {
		t.Errorf("secret file %q, want exactly the secret", raw)
	}
	if raw, _ := os.ReadFile(prevPath); string(raw) != string(first)+"\n" {
		t.Errorf("previous file %q, want the first secret on a line", raw)
	}
	for _, p := range []string{path, prevPath} {
		if fi, err := os.Stat(p); err != nil || runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", p, fi.Mode(), err)
		}
	}

	r2, err := RotateGeneratedSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := ReadPreviousSecrets(prevPath)
	if err != nil || len(prev) != 2 || !bytes.Equal(prev[0], r1.Current) || !bytes.Equal(prev[1], first) {
		t.Fatalf("after two rotations previous = %q (%v), want newest first: %q, %q", prev, err, r1.Current, first)
	}
	for _, r := range []Rotation{r1, r2} {
		if Fingerprint(r.Current) == Fingerprint(first) {
			t.Error("two secrets share a fingerprint")
		}
	}
	// Up to the bound, then refused with nothing changed.
	for range MaxPreviousSecrets - 2 {
		if _, err := RotateGeneratedSecret(path); err != nil {
			t.Fatal(err)
		}
	}
	cur, _ := os.ReadFile(path)
	prevRaw, _ := os.ReadFile(prevPath)
	if _, err := RotateGeneratedSecret(path); err == nil || !strings.Contains(err.Error(), "retire") {
		t.Errorf("a rotation past %d previous secrets: %v, want a refusal saying to retire", MaxPreviousSecrets, err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, cur) {
		t.Error("the refused rotation changed the secret")
	}
	if b, _ := os.ReadFile(prevPath); !bytes.Equal(b, prevRaw) {
		t.Error("the refused rotation changed the previous secrets")
	}

	n, err := RetirePreviousSecrets(path)
	if err != nil || n != MaxPreviousSecrets {
		t.Errorf("retire = %d, %v; want %d", n, err, MaxPreviousSecrets)
	}
	if _, err := os.Stat(prevPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("previous file after retire: %v", err)
	}
	if b, _ := ReadSecretFile(path); !bytes.Equal(b, cur) {
		t.Error("retire changed the current secret")
	}
	if n, err := RetirePreviousSecrets(path); err != nil || n != 0 {
		t.Errorf("retiring none = %d, %v", n, err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("%d entries left, want the secret file alone (no temporary files)", len(ents))
	}
}

// A crash after the previous file was written and before the secret file
// was replaced leaves the old secret current and previous: nothing is lost,
// and the next rotation keeps it once.
func TestRotateAfterCrashBetweenWrites(t *testing.T) {
	path, cur := newSecretFile(t)
	prevPath := PreviousSecretsPath(path)
	if err := WritePreviousSecrets(prevPath, [][]byte{cur}, path); err != nil {
		t.Fatal(err)
	}
	if prev, err := ReadPreviousSecrets(prevPath); err != nil || len(Distinct(cur, prev)) != 0 {
		t.Errorf("loading after the crash: previous %q (%v) besides the current; want none", prev, err)
	}
	r, err := RotateGeneratedSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Previous) != 1 || !bytes.Equal(r.Previous[0], cur) {
		t.Errorf("previous after the rotation %q, want the old secret once", r.Previous)
	}
}

// Readers never see a secret file or previous file part written, however
// often they are replaced.
func TestRotateWritesAtomically(t *testing.T) {
	path, _ := newSecretFile(t)
	prevPath := PreviousSecretsPath(path)
	var done atomic.Bool
	var bad atomic.Value
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for !done.Load() {
				if b, err := ReadSecretFile(path); err != nil || len(b) != 64 {
					bad.Store("secret file: " + string(b) + " " + errString(err))
				}
				if p, err := ReadPreviousSecrets(prevPath); err != nil || len(p) > 0 && len(p[0]) != 64 {
					bad.Store("previous file: " + errString(err))
				}
			}
		})
	}
	for range 50 {
		if _, err := RotateGeneratedSecret(path); err != nil {
			t.Fatal(err)
		}
		if _, err := RetirePreviousSecrets(path); err != nil {
			t.Fatal(err)
		}
	}
	done.Store(true)
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Errorf("a reader saw a part-written file: %v", v)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestPreviousSecretsFileRefuses(t *testing.T) {
	good := strings.Repeat("f", 64)
	dir := t.TempDir()
	cases := map[string]struct {
		content string
		mode    os.FileMode
		want    string
	}{
		"short line":      {good + "\nabc123\n", 0o600, "line 2"},
		"bad base64":      {"base64:!!!!\n", 0o600, "line 1"},
		"unknown form":    {"\n" + "hex:" + good + "\n", 0o600, "line 2"},
		"control char":    {good + "\x01x" + "\n", 0o600, "line 1"},
		"short base64":    {"base64:c2hvcnQ=\n", 0o600, "line 1"},
		"too many":        {strings.Repeat(good+"\n", MaxPreviousSecrets+1), 0o600, "retire"},
		"group readable":  {good + "\n", 0o640, "chmod 600"},
		"world writeable": {good + "\n", 0o602, "group or others"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if runtime.GOOS == "windows" && c.mode != 0o600 {
				t.Skip("no Unix permissions")
			}
			p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
			if err := os.WriteFile(p, []byte(c.content), c.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, c.mode); err != nil { // despite the umask
				t.Fatal(err)
			}
			_, err := ReadPreviousSecrets(p)
			if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one naming %s and %q", err, p, c.want)
			}
			if err != nil && strings.Contains(err.Error(), "abc123") {
				t.Errorf("the error shows the line: %v", err)
			}
		})
	}
	if p, err := ReadPreviousSecrets(filepath.Join(dir, "missing")); p != nil || err != nil {
		t.Errorf("a missing file: %q, %v; want no previous secrets", p, err)
	}
}

// Secrets that are not printable text (an older latchkey's, moved out of
// the store) and ones with ':' survive a round trip through the file.
func TestPreviousSecretsRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "latchkey.previous-secrets")
	in := [][]byte{
		bytes.Repeat([]byte("0123456789abcdef"), 4),
		bytes.Repeat([]byte{0x00, '\n', 0xff, ' '}, 8),
		[]byte("base64:this-is-a-configured-looking-secret-0123"),
		[]byte(strings.Repeat("k", 31) + ":"),
	}
	if err := WritePreviousSecrets(p, in, ""); err != nil {
		t.Fatal(err)
	}
	out, err := ReadPreviousSecrets(p)
	if err != nil || len(out) != len(in) {
		t.Fatalf("read back %q, %v", out, err)
	}
	for i := range in {
		if !bytes.Equal(in[i], out[i]) {
			t.Errorf("secret %d: read back %q, want %q", i, out[i], in[i])
		}
	}
}
