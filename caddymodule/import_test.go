package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/caddymodule"
)

// TestImportCommand runs `caddy latchkey users import` on a SQLite store: a
// dry run writes nothing, the import creates the users with their hashes,
// `users show --json` names the scheme and never shows a hash, and a second
// import skips everyone.
func TestImportCommand(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "latchkey.db")
	cf := filepath.Join(dir, "Caddyfile")
	cfg := fmt.Sprintf("{\n\tlatchkey {\n\t\tstorage sqlite %s\n\t}\n}\n:8080 {\n\tlatchkey\n\trespond ok\n}\n", db)
	if err := os.WriteFile(cf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// The gateway made the store: the CLI never does.
	if st, err := sqlite.Open(t.Context(), db); err != nil {
		t.Fatal(err)
	} else {
		st.Close()
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := caddymodule.RunCLI(append(args, "--config", cf, "--adapter", "caddyfile")...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return out
	}
	const (
		pbkdf2  = "pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c="
		passlib = "$pbkdf2-sha512$1212$RHY0Fr3IDMSVO/RSZyb5ow$eNLfBK.eVozomMr.1gYa17k9B7KIK25NOEshvhrSX.esqY3s.FvWZViXz4KoLlQI.BzY/YTNJOiKc5gBYFYGww"
	)
	file := filepath.Join(dir, "users.csv")
	csv := "email,name,roles,password_hash\n" +
		"Ada@Example.com,\"Lovelace, Ada\",staff;admin," + pbkdf2 + "\n" +
		"bob@example.com,Bob,," + passlib + "\n" +
		"cy@example.com,,,!unusable\n"
	if err := os.WriteFile(file, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	noHash := func(out string) {
		t.Helper()
		for _, s := range []string{"seasalt", "8xBlGd3", "RHY0Fr3", "unusable", "password_hash\""} {
			if strings.Contains(out, s) {
				t.Errorf("the output shows %q:\n%s", s, out)
			}
		}
	}

	var res struct {
		DryRun          bool           `json:"dry_run"`
		Rows            int            `json:"rows"`
		Imported        int            `json:"imported"`
		SkippedExisting int            `json:"skipped_existing"`
		Schemes         map[string]int `json:"schemes"`
		WithoutPassword int            `json:"without_password"`
	}
	out := run("users", "import", file, "--site", "app.example.org", "--dry-run", "--json")
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("import --json: %q: %v", out, err)
	}
	if !res.DryRun || res.Rows != 3 || res.Imported != 3 || res.WithoutPassword != 1 ||
		res.Schemes["django_pbkdf2_sha256"] != 1 || res.Schemes["passlib_pbkdf2_sha512"] != 1 {
		t.Errorf("dry run: %s", out)
	}
	if out := run("users", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("a dry run wrote users: %s", out)
	}

	out = run("users", "import", file, "--site", "app.example.org")
	noHash(out)
	if !strings.Contains(out, "imported") || !strings.Contains(out, "django_pbkdf2_sha256") || !strings.Contains(out, "not overwritten") {
		t.Errorf("import: %s", out)
	}

	out = run("users", "show", "ada@example.com", "--json")
	noHash(out)
	var shown []struct {
		Email          string   `json:"email"`
		Name           string   `json:"name"`
		Site           string   `json:"site"`
		Roles          []string `json:"roles"`
		PasswordScheme string   `json:"password_scheme"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil || len(shown) != 1 {
		t.Fatalf("users show --json: %q: %v", out, err)
	}
	if u := shown[0]; u.PasswordScheme != "django_pbkdf2_sha256" || u.Name != "Lovelace, Ada" || u.Site != "app.example.org" ||
		fmt.Sprint(u.Roles) != "[admin staff]" {
		t.Errorf("users show: %+v", u)
	}
	out = run("users", "list", "--json")
	noHash(out)
	if strings.Count(out, `"password_scheme"`) != 3 || strings.Count(out, `"password_scheme": ""`) != 1 {
		t.Errorf("users list: want two users with a scheme, one without:\n%s", out)
	}
	out = run("roles", "list", "--json")
	if !strings.Contains(out, `"admin"`) || !strings.Contains(out, `"staff"`) {
		t.Errorf("roles after the import: %s", out)
	}

	out = run("users", "import", file, "--site", "app.example.org", "--json")
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Imported != 0 || res.SkippedExisting != 3 {
		t.Errorf("second import: %s %v", out, err)
	}

	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(bad, []byte(`{"email":"dan@example.com","password_hash":"`+pbkdf2[:len(pbkdf2)-1]+`"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := caddymodule.RunCLI("users", "import", bad, "--config", cf, "--adapter", "caddyfile")
	if err == nil || !strings.Contains(err.Error(), "line 1: password_hash: malformed") || strings.Contains(err.Error(), "seasalt") {
		t.Errorf("a bad file: %v\n%s", err, out)
	}
}
