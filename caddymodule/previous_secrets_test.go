package caddymodule

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/latchkeyhq/latchkey/internal/keys"
	storecopy "github.com/latchkeyhq/latchkey/internal/store/copy"
)

// Each previous secret is checked as the secret is, by its place in the
// list and never by its value; the previous-secrets file of a generated
// secret is read at load, and a bad one stops the start naming the file.
func TestPreviousSecretsChecked(t *testing.T) {
	ctx := context.Background()
	good := strings.Repeat("g", minSecretLen)
	t.Setenv("LATCHKEY_TEST_EMPTY", "")
	for name, c := range map[string]struct {
		prev []string
		want string
	}{
		"short": {[]string{good, "short-old-secret"}, "number 2 is 16 characters"},
		"empty": {[]string{"{env.LATCHKEY_TEST_EMPTY}"}, "number 1 expands to nothing"},
		"unset": {[]string{"{env.LATCHKEY_TEST_UNSET_PREVIOUS}"}, "expands to nothing"},
	} {
		a := &App{Secret: strings.Repeat("c", 40), PreviousSecrets: c.prev}
		_, err := a.loadSecret(ctx, caddy.NewReplacer(), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "short-old-secret") {
			t.Errorf("%s: %v, want an error saying %q without the value", name, err, c.want)
		}
	}
	a := &App{Secret: strings.Repeat("c", 40), PreviousSecrets: []string{good, strings.Repeat("c", 40), good}}
	if _, err := a.loadSecret(ctx, caddy.NewReplacer(), nil); err != nil || len(a.previous) != 1 || string(a.previous[0]) != good {
		t.Errorf("previous %q (%v), want the good one once: the current and repeats dropped", a.previous, err)
	}
	too := &App{Secret: good, PreviousSecrets: make([]string, keys.MaxPreviousSecrets+1)}
	if err := too.Validate(); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("too many previous_secrets: %v", err)
	}

	db := filepath.Join(t.TempDir(), "latchkey.db")
	gen, _ := mustSecretApp(t, db)
	prevPath := keys.PreviousSecretsPath(keys.SecretPath(db))
	if err := os.WriteFile(prevPath, []byte(good+"\nnot-a-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := secretApp(t, db)
	if err == nil || !strings.Contains(err.Error(), prevPath) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("a bad previous-secrets file: %v, want an error naming %s and the line", err, prevPath)
	}
	if err := os.WriteFile(prevPath, []byte(good+"\n"+string(gen.secret)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	again, _, err := secretApp(t, db)
	if err != nil || string(again.secret) != string(gen.secret) || len(again.previous) != 1 || string(again.previous[0]) != good {
		t.Errorf("loaded %d previous (%v), want the file's one that is not current", len(again.previous), err)
	}
}

// A store copy says where the source's previous secrets are: the target's
// gateways need them too for what was made under them.
func TestStoreCopyNamesPreviousSecrets(t *testing.T) {
	db := filepath.Join(t.TempDir(), "latchkey.db")
	mustSecretApp(t, db)
	from := copySide{side: storecopy.Side{Driver: storecopy.SQLite, Target: db}}
	to := copySide{side: storecopy.Side{Driver: storecopy.SQLite, Target: filepath.Join(t.TempDir(), "copy.db")}}
	prev := keys.PreviousSecretsPath(keys.SecretPath(db))
	if notes := strings.Join(secretNotes(from, to, &storecopy.Result{}), "\n"); strings.Contains(notes, "previous") {
		t.Errorf("notes mention previous secrets though there are none:\n%s", notes)
	}
	if _, err := keys.RotateGeneratedSecret(keys.SecretPath(db)); err != nil {
		t.Fatal(err)
	}
	if notes := strings.Join(secretNotes(from, to, &storecopy.Result{}), "\n"); !strings.Contains(notes, prev) || !strings.Contains(notes, "previous_secrets") {
		t.Errorf("notes do not name %s:\n%s", prev, notes)
	}
}
