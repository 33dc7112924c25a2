// Package loadrig writes and loads the Caddy config that the throughput
// benchmarks and cmd/latchkey-load measure, so that both compare the same
// gateway with the same plain reverse_proxy.
package loadrig

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Site is one loopback site proxying to the upstream. Latchkey is its
// latchkey directive ("latchkey", or one with a block); empty for plain
// reverse_proxy.
type Site struct {
	Port     int
	Latchkey string
}

// Caddyfile is the config: latchkey's store and secret, and the sites. With
// more than 32 clients every site keeps that many idle upstream connections,
// since Caddy's default of 32 would make the run measure connection churn.
func Caddyfile(dir, db, secret, upstream string, clients int, sites []Site) string {
	transport := ""
	if clients > 32 {
		transport = fmt.Sprintf("{\n\t\ttransport http {\n\t\t\tkeepalive_idle_conns_per_host %d\n\t\t}\n\t}", clients)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `{
	admin off
	persist_config off
	auto_https off
	storage file_system %s
	log {
		output discard
	}
	latchkey {
		storage sqlite %s
		secret %s
	}
}
`, filepath.Join(dir, "caddy"), db, secret)
	for _, s := range sites {
		fmt.Fprintf(&b, "\nhttp://127.0.0.1:%d {\n\t%s\n\treverse_proxy %s %s\n}\n", s.Port, s.Latchkey, upstream, transport)
	}
	return b.String()
}

// Load adapts a Caddyfile and runs it, returning the adapter's warnings.
func Load(cfg string) ([]caddyconfig.Warning, error) {
	adapted, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(caddyfile.Format([]byte(cfg)), nil)
	if err != nil {
		return nil, fmt.Errorf("adapting the Caddyfile: %w", err)
	}
	if err := caddy.Load(adapted, true); err != nil {
		return warnings, fmt.Errorf("loading the Caddy config: %w", err)
	}
	return warnings, nil
}
