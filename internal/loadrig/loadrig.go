// Package loadrig writes and loads the Caddy configs that the throughput
// benchmarks, cmd/latchkey-load (Caddy in the same process) and
// cmd/latchkey-bench (Caddy as separate processes, bin/caddy) measure, so
// that all of them compare the same gateway with the same plain
// reverse_proxy.
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
//
// Every block is http://127.0.0.1:PORT, so the latchkey handlers are all of
// one site, "127.0.0.1", which must have one origin: each latchkey
// directive is given the first latchkey block's (WithOrigin).
func Caddyfile(dir, db, secret, upstream string, clients int, sites []Site) string {
	origin := ""
	for _, s := range sites {
		if s.Latchkey != "" {
			origin = fmt.Sprintf("http://127.0.0.1:%d", s.Port)
			break
		}
	}
	blocks := make([]Block, len(sites))
	for i, s := range sites {
		blocks[i] = Block{Port: s.Port, Body: WithOrigin(s.Latchkey, origin) + "\n" + ReverseProxy(upstream, clients)}
	}
	return Process{Dir: dir, DB: db, Secret: secret, Sites: blocks}.Caddyfile()
}

// WithOrigin adds `origin <origin>` to a latchkey directive ("latchkey" or
// "latchkey { … }") that has none; anything else is returned as it is.
func WithOrigin(directive, origin string) string {
	d := strings.TrimSpace(directive)
	if origin == "" {
		return directive
	}
	for _, line := range strings.Split(d, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "origin" {
			return directive
		}
	}
	switch {
	case d == "latchkey":
		return "latchkey {\n\torigin " + origin + "\n}"
	case strings.HasPrefix(d, "latchkey {"):
		return "latchkey {\n\torigin " + origin + strings.TrimPrefix(d, "latchkey {")
	}
	return directive
}

// ReverseProxy is the reverse_proxy directive every site uses to reach the
// upstream, with clients idle connections kept when that is over Caddy's
// default of 32.
func ReverseProxy(upstream string, clients int) string {
	transport := ""
	if clients > 32 {
		transport = fmt.Sprintf(" {\n\ttransport http {\n\t\tkeepalive_idle_conns_per_host %d\n\t}\n}", clients)
	}
	return "reverse_proxy " + upstream + transport
}

// Block is one site block on a loopback port: http://127.0.0.1:Port, so
// its latchkey site is named "127.0.0.1". Body is its directives, one a
// line.
type Block struct {
	Port int
	Body string
}

// Process is the config of one Caddy: storage under Dir, latchkey's store
// and secret when DB is set (without it the Caddy is plain: no latchkey
// app), and its site blocks. The admin endpoint is off, so a separate
// process is stopped by a signal; GracePeriod, if set, bounds that stop.
type Process struct {
	Dir, DB, Secret string
	GracePeriod     string // a Caddy duration, e.g. "2s"; "" is Caddy's default
	Global          string // more global options, one a line (e.g. a servers block)
	// LogLevel, if set, sends Caddy's own log at that level and above to
	// stderr (so a separate process says why it would not start); empty
	// discards it.
	LogLevel string
	Sites    []Block
}

// Caddyfile writes p as a Caddyfile.
func (p Process) Caddyfile() string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin off\n\tpersist_config off\n\tauto_https off\n\tstorage file_system %s\n", filepath.Join(p.Dir, "caddy"))
	if p.GracePeriod != "" {
		fmt.Fprintf(&b, "\tgrace_period %s\n", p.GracePeriod)
	}
	writeIndented(&b, p.Global, 1)
	if p.LogLevel != "" {
		fmt.Fprintf(&b, "\tlog {\n\t\toutput stderr\n\t\tlevel %s\n\t}\n", p.LogLevel)
	} else {
		b.WriteString("\tlog {\n\t\toutput discard\n\t}\n")
	}
	if p.DB != "" {
		fmt.Fprintf(&b, "\tlatchkey {\n\t\tstorage sqlite %s\n\t\tsecret %s\n\t}\n", p.DB, p.Secret)
	}
	b.WriteString("}\n")
	for _, s := range p.Sites {
		fmt.Fprintf(&b, "\nhttp://127.0.0.1:%d {\n", s.Port)
		writeIndented(&b, s.Body, 1)
		b.WriteString("}\n")
	}
	return b.String()
}

// writeIndented writes the lines of body indented by their depth in braces,
// starting at depth: a Caddyfile a person can read, whatever the caller's
// indentation.
func writeIndented(b *strings.Builder, body string, depth int) {
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "}") {
			depth = max(0, depth-1)
		}
		b.WriteString(strings.Repeat("\t", depth) + line + "\n")
		if strings.HasSuffix(line, "{") {
			depth++
		}
	}
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
