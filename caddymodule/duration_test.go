package caddymodule

import (
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/latchkeyhq/latchkey/internal/ops"
)

// The CLI and the admin API read durations with ops.ParseDuration, the
// Caddyfile with caddy.ParseDuration: "7d" must mean the same to both.
func TestParseDurationAgreesWithCaddy(t *testing.T) {
	for _, in := range []string{
		"15m", "1h", "12h30m", "7d", "1d", "0d", "1.5d", "1d12h", "2d3h4m", "1h1d", "-1d", "+2d", ".5d", "1d1d",
		"500ms", "0", "", "d", "7", "yesterday", "1x", "1.2.3d", "d1", "1dd", "h1d", "1 d", "1e3d",
	} {
		want, werr := caddy.ParseDuration(in)
		got, gerr := ops.ParseDuration(in)
		if got != want || (gerr == nil) != (werr == nil) {
			t.Errorf("ParseDuration(%q): ops %v, %v; caddy %v, %v", in, got, gerr, want, werr)
		}
	}
}
