package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

var update = flag.Bool("update", false, "rewrite the Caddyfile golden files in testdata/caddyfile")

// TestCaddyfileGolden adapts every testdata/caddyfile/*.caddyfile and compares
// the result with the .json (or, for a config that must fail, the .error)
// file beside it. Run with -update to rewrite them after a deliberate change.
func TestCaddyfileGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "caddyfile", "*.caddyfile"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden Caddyfiles found: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".caddyfile")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": filepath.Base(file)})
			base := strings.TrimSuffix(file, ".caddyfile")
			if strings.HasPrefix(name, "error_") {
				if err == nil {
					t.Fatalf("adapting succeeded, want an error")
				}
				golden(t, base+".error", []byte(err.Error()+"\n"))
				return
			}
			if err != nil {
				t.Fatalf("adapting: %v", err)
			}
			var out bytes.Buffer
			if err := json.Indent(&out, adapted, "", "\t"); err != nil {
				t.Fatal(err)
			}
			out.WriteByte('\n')
			golden(t, base+".json", out.Bytes())
		})
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run go test ./caddymodule -run TestCaddyfileGolden -update to create it): %v", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs:\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}
