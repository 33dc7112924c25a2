package caddymodule

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

const testPGPassword = "hunter2-not-shown"

func TestPostgresStorageTarget(t *testing.T) {
	dsn := "postgres://latchkey:" + testPGPassword + "@db.internal:5432/latchkey?sslmode=verify-full"
	t.Setenv("LATCHKEY_TEST_STORAGE_DSN", dsn)
	file := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(file, []byte("\n  "+dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, sc := range []StorageConfig{
		{Driver: "postgres", DSN: "{env.LATCHKEY_TEST_STORAGE_DSN}"},
		{Driver: "postgres", DSN: dsn},
		{Driver: "postgres", DSNFile: file},
	} {
		a := &App{Storage: &sc, Secret: strings.Repeat("s", 40)}
		if err := a.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", sc, err)
		}
		driver, target, err := a.storageTarget(caddy.NewReplacer())
		if err != nil || driver != "postgres" || target != dsn {
			t.Errorf("storageTarget(%+v) = %q, %q, %v; want postgres and the DSN", sc, driver, target, err)
		}
		for what, s := range map[string]string{
			"pool key": storePoolKey(driver, target),
			"log":      describeTarget(driver, target),
		} {
			if strings.Contains(s, testPGPassword) {
				t.Errorf("%s %q holds the password", what, s)
			}
		}
		if d := describeTarget(driver, target); !strings.Contains(d, "db.internal") || !strings.Contains(d, "database=latchkey") {
			t.Errorf("describeTarget = %q, want host and database", d)
		}
	}
	if storePoolKey("postgres", dsn) == storePoolKey("postgres", dsn+"x") {
		t.Error("two DSNs share a pool key")
	}

	for _, tc := range []struct {
		sc     StorageConfig
		secret string
		want   string
	}{
		{StorageConfig{Driver: "postgres", DSN: dsn}, "", "needs `secret`"},
		{StorageConfig{Driver: "postgres"}, "x", "needs dsn or dsn_file"},
		{StorageConfig{Driver: "postgres", DSN: dsn, DSNFile: file}, "x", "not both"},
		{StorageConfig{Driver: "postgres", DSN: dsn, Path: "/x"}, "x", "path is for storage sqlite"},
		{StorageConfig{Driver: "sqlite", DSN: dsn}, "", "for storage postgres"},
		{StorageConfig{Driver: "mysql"}, "", "unknown driver"},
	} {
		a := &App{Storage: &tc.sc, Secret: tc.secret}
		err := a.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.sc, err, tc.want)
		} else if strings.Contains(err.Error(), testPGPassword) {
			t.Errorf("Validate error shows the password: %v", err)
		}
	}

	// Expansions and files that give nothing.
	for _, sc := range []StorageConfig{
		{Driver: "postgres", DSN: "{env.LATCHKEY_TEST_STORAGE_DSN_UNSET}"},
		{Driver: "postgres", DSNFile: filepath.Join(t.TempDir(), "missing")},
	} {
		a := &App{Storage: &sc}
		if _, _, err := a.storageTarget(caddy.NewReplacer()); err == nil {
			t.Errorf("storageTarget(%+v) succeeded", sc)
		}
	}

	// The generated-secret fallback (JSON configs skip Validate's check
	// until Provision) says what to do, and never shows the DSN.
	if _, err := generatedSecretPath("postgres", dsn); err == nil || strings.Contains(err.Error(), testPGPassword) || !strings.Contains(err.Error(), "secret_file") {
		t.Errorf("generatedSecretPath(postgres) = %v", err)
	}
}
