package caddymodule_test

import (
	"bufio"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
)

// metricsOpts turns on signed links and a mail server (never reached:
// nothing is mailed), so that the outbox worker runs.
var metricsOpts = gwOpts{
	handler: "link",
	global:  "smtp 127.0.0.1:1 {\n\t\t\tfrom noreply@example.com\n\t\t\ttls none\n\t\t}",
}

// loadWithMetrics (re)loads the gateway's config with Caddy's global
// `metrics` option added, as `caddy reload` would.
func (g *gateway) loadWithMetrics(o gwOpts) {
	g.t.Helper()
	cf := strings.Replace(g.caddyfile(o), "{\n\tadmin ", "{\n\tmetrics\n\tadmin ", 1)
	if !strings.Contains(cf, "\tmetrics\n") {
		g.t.Fatal("could not add the metrics option to the Caddyfile")
	}
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil)
	if err != nil {
		g.t.Fatalf("adapting Caddyfile: %v", err)
	}
	if err := caddy.Load(cfg, true); err != nil {
		g.t.Fatalf("loading config: %v", err)
	}
}

// scrape reads the admin endpoint's /metrics into series → value, keyed by
// the name with its labels as exposed (name{a="x",b="y"}).
func (g *gateway) scrape() map[string]float64 {
	g.t.Helper()
	resp, err := http.Get("http://" + g.admin + "/metrics")
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		g.t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	series := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			g.t.Fatalf("metrics line %q: %v", line, err)
		}
		series[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		g.t.Fatal(err)
	}
	return series
}

// scrapeUntil scrapes until ok accepts the series (the audit writer and the
// mail worker report a little after the requests).
func (g *gateway) scrapeUntil(ok func(map[string]float64) bool) map[string]float64 {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := g.scrape()
		if ok(s) || time.Now().After(deadline) {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMetricsThroughCaddy(t *testing.T) {
	dir := t.TempDir()
	g := &gateway{t: t, dir: dir, db: filepath.Join(dir, "state", "latchkey.db"), port: freePort(t), upstream: newUpstream(t)}
	g.url = fmt.Sprintf("http://127.0.0.1:%d", g.port)
	g.admin = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	g.loadWithMetrics(metricsOpts)
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
	})
	g.secret = []byte(testSecret)
	st, err := sqlite.Open(t.Context(), g.db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	g.st = st

	u := g.user("metrics@example.com")
	token, _ := g.session(u, time.Now())

	// Refused: no credential. Accepted: the session cookie.
	if r := g.get("/private", nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no credential: %d", r.StatusCode)
	}
	if r := g.get("/private", cookie(token)); r.StatusCode != http.StatusOK {
		t.Fatalf("session: %d", r.StatusCode)
	}
	// A one-use link: used once (a consumption), then refused as used up.
	l := g.mintLink(metricsOpts, "--user", u.Email, "--url", g.url+"/unsubscribe?list=news")
	if r := g.send(http.MethodPost, l.URL, "latchkey_confirm=1", nil); r.StatusCode != http.StatusOK {
		t.Fatalf("link: %d", r.StatusCode)
	}
	if r := g.send(http.MethodPost, l.URL, "latchkey_confirm=1", nil); r.StatusCode != http.StatusGone {
		t.Fatalf("link used again: %d, want 410", r.StatusCode)
	}
	// The pipeline's audit records (not the link's, which the store wrote
	// with its use).
	g.waitAudit(store.AuditFilter{Kind: "session"}, 2)

	s := g.scrapeUntil(func(s map[string]float64) bool {
		return s["caddy_latchkey_audit_rows_written_total"] >= 3 && s["caddy_latchkey_mail_outbox_depth"] == 0 && hasSeries(s, "caddy_latchkey_mail_outbox_depth")
	})
	want := map[string]float64{
		`caddy_latchkey_attempts_total{kind="session",outcome="refused"}`:  1,
		`caddy_latchkey_attempts_total{kind="session",outcome="accepted"}`: 1,
		`caddy_latchkey_attempts_total{kind="link",outcome="accepted"}`:    1,
		`caddy_latchkey_attempts_total{kind="link",outcome="refused"}`:     1,
		`caddy_latchkey_refusals_total{kind="session",reason="missing"}`:   1,
		`caddy_latchkey_refusals_total{kind="link",reason="used_up"}`:      1,
		`caddy_latchkey_consumptions_total{kind="link"}`:                   1,
		`caddy_latchkey_gate_duration_seconds_count{kind="session"}`:       2,
		`caddy_latchkey_gate_duration_seconds_count{kind="link"}`:          2,
		`caddy_latchkey_audit_rows_written_total`:                          3,
		`caddy_latchkey_audit_rows_dropped_total`:                          0,
		`caddy_latchkey_audit_rows_failed_total`:                           0,
		`caddy_latchkey_audit_queue_depth`:                                 0,
		`caddy_latchkey_mail_outbox_depth`:                                 0,
	}
	for k, v := range want {
		got, ok := s[k]
		if !ok {
			t.Errorf("no series %s", k)
			continue
		}
		if got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	// The store calls on the request path are timed: the cookie's lookup,
	// and both tries at the link.
	for k, least := range map[string]float64{
		`caddy_latchkey_store_duration_seconds_count{op="session_lookup"}`: 1,
		`caddy_latchkey_store_duration_seconds_count{op="link_use"}`:       2,
	} {
		if s[k] < least {
			t.Errorf("%s = %v, want at least %v", k, s[k], least)
		}
	}
	if !hasSeries(s, "caddy_http_requests_total") {
		t.Error("the metrics option is on, but Caddy's own caddy_http_* series are missing")
	}
	if t.Failed() {
		t.Logf("latchkey series: %v", latchkeySeries(s))
	}

	// A reload provisions a new app on a new registry while the old one
	// drains: nothing is registered twice, and the new config's series
	// start again (as caddy_http_* do).
	for range 3 {
		g.loadWithMetrics(metricsOpts)
	}
	if r := g.get("/after-reload", nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after reload, no credential: %d", r.StatusCode)
	}
	if r := g.get("/after-reload", cookie(token)); r.StatusCode != http.StatusOK {
		t.Fatalf("after reload, session: %d", r.StatusCode)
	}
	s = g.scrapeUntil(func(s map[string]float64) bool { return s["caddy_latchkey_audit_rows_written_total"] >= 2 })
	for k, v := range map[string]float64{
		`caddy_latchkey_attempts_total{kind="session",outcome="refused"}`:  1,
		`caddy_latchkey_attempts_total{kind="session",outcome="accepted"}`: 1,
		`caddy_latchkey_audit_rows_written_total`:                          2,
	} {
		if got, ok := s[k]; !ok || got != v {
			t.Errorf("after reload: %s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	if hasSeries(s, `caddy_latchkey_attempts_total{kind="link"`) {
		t.Errorf("after reload, the old config's link series are still served: %v", latchkeySeries(s))
	}
}

func hasSeries(s map[string]float64, prefix string) bool {
	for k := range s {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

func latchkeySeries(s map[string]float64) []string {
	var out []string
	for k, v := range s {
		if strings.HasPrefix(k, "caddy_latchkey_") && !strings.Contains(k, "_bucket{") {
			out = append(out, fmt.Sprintf("%s %v", k, v))
		}
	}
	return out
}
