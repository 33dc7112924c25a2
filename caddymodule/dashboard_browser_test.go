package caddymodule_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// savePage writes the page's current markup to dir/name, for a failure's
// evidence; unlike screenshot it never fails the test itself.
func savePage(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement ? document.documentElement.outerHTML : ""`))
	if err != nil {
		t.Logf("reading the page source for %s: %v", name, err)
		return
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(html), 0o644); err != nil {
		t.Logf("saving the page source: %v", err)
		return
	}
	t.Logf("page source: %s", p)
}

// evidenceDir is where a failing browser test leaves its screenshots and
// page sources: kept, and logged, when the test fails (a t.TempDir would
// be removed with the test), removed when it passes.
func evidenceDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "latchkey-"+t.Name()+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("screenshots and page sources kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// dashBar is one bar of a dashboard chart as the browser reads it.
type dashBar struct {
	Found    bool    `json:"found"`
	Refused  int     `json:"refused"`
	Accepted int     `json:"accepted"`
	Height   float64 `json:"height"` // of the refused rectangle, as drawn
}

// TestDashboardBrowser: through a real Caddy and Chromium, a user given
// the admin role with the CLI signs in with an invite code on their way
// to /.latchkey/admin and lands on the dashboard: two SVG charts of
// 24 and 168 hourly bars, the hour of the refused requests made before
// drawn with them, the refusing client's address at the top of the
// refused addresses, the sign-in among the recent ones; the page carries
// the strict Content-Security-Policy and no script, and fits a phone's
// width. On failure the screenshots and page source are kept (the test
// logs where).
func TestDashboardBrowser(t *testing.T) {
	chromiumPath(t) // fail early, before starting a gateway
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	o := gwOpts{handler: "invite"}
	g := startGateway(t, o)
	g.cli(o, "roles", "create", "admin", "--description", "Sees the dashboard")
	g.cli(o, "users", "add", "--email", "root@example.com", "--name", "Root", "--site", "127.0.0.1", "--role", "admin")
	inv := g.createInvite(o, "root@example.com")

	// Refused requests: no credential.
	const refusedRequests = 3
	for i := 0; i < refusedRequests; i++ {
		if resp := g.get("/private", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a request without a credential: %d, want 401", resp.StatusCode)
		}
	}
	evs := g.waitAudit(store.AuditFilter{Outcome: store.OutcomeRefused, Reason: "missing"}, refusedRequests)
	hour := evs[0].Time.UTC().Truncate(time.Hour)

	shots := evidenceDir(t)
	bctx, stop := startBrowser(t, ctx)
	defer stop()
	defer func() {
		if t.Failed() {
			screenshot(t, bctx, shots, "failed.png")
			savePage(t, bctx, shots, "failed.html")
		}
	}()

	// Not signed in: to the login page, and back to the dashboard after.
	if _, err := chromedp.Run(bctx, chromedp.NavigateResponse(g.url+"/.latchkey/admin")); err != nil {
		t.Fatalf("opening the dashboard: %v", err)
	}
	if loc := location(t, bctx); loc.Path != "/.latchkey/login" || loc.Query().Get("next") != "/.latchkey/admin" {
		t.Fatalf("without a session the browser is at %s, want the login page with next=/.latchkey/admin", loc)
	}
	if err := chromedp.Do(bctx, chromedp.WaitVisible(chromedp.ID("code")), chromedp.SendKeys(chromedp.ID("code"), inv.Code)); err != nil {
		t.Fatalf("typing the code: %v", err)
	}
	if _, err := chromedp.RunResponse(bctx, chromedp.Click(chromedp.ID("submit"))); err != nil {
		t.Fatalf("signing in: %v", err)
	}
	if loc := location(t, bctx); loc.Path != "/.latchkey/admin" {
		t.Fatalf("after signing in the browser is at %s, want the dashboard\n%s", loc, bodyText(t, bctx))
	}

	resp, err := chromedp.Run(bctx, chromedp.NavigateResponse(g.url+"/.latchkey/admin"))
	if err != nil {
		t.Fatalf("reloading the dashboard: %v", err)
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("dashboard: status %d, want 200\n%s", resp.Status, bodyText(t, bctx))
	}
	var csp string
	for k, v := range resp.Headers {
		if strings.EqualFold(k, "Content-Security-Policy") {
			csp, _ = v.(string)
		}
	}
	if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("Content-Security-Policy %q, want the pages' strict policy without scripts", csp)
	}
	screenshot(t, bctx, shots, "dashboard.png")

	scripts, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.scripts.length + document.querySelectorAll("[onload],[onclick],[onerror]").length`))
	if err != nil || scripts != 0 {
		t.Errorf("the dashboard has %d scripts or handlers (%v)", scripts, err)
	}
	for id, want := range map[string]int{"chart-day": 24, "chart-week": 168} {
		n, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("#`+id+` svg g.bar").length`))
		if err != nil || n != want {
			t.Errorf("#%s: %d bars (%v), want %d", id, n, err, want)
		}
		title, err := chromedp.Run(bctx, chromedp.Evaluate[string](`(document.querySelector("#`+id+` svg > title") || {}).textContent || ""`))
		if err != nil || !strings.HasPrefix(title, "Attempts per hour") {
			t.Errorf("#%s: SVG title %q (%v)", id, title, err)
		}
	}
	b, err := chromedp.Run(bctx, chromedp.Evaluate[dashBar](`(() => {
		const g = document.querySelector('#chart-day g.bar[data-start="`+hour.Format(time.RFC3339)+`"]');
		if (!g) return {found: false};
		const r = g.querySelector("rect.refused");
		return {found: true, refused: +g.dataset.refused, accepted: +g.dataset.accepted, height: r ? r.getBBox().height : 0};
	})()`))
	if err != nil || !b.Found || b.Refused < refusedRequests || b.Height <= 0 {
		t.Errorf("the bar of %s in the last 24 hours: %+v (%v); want at least %d refused, drawn", hour.Format(time.RFC3339), b, err, refusedRequests)
	}
	text := bodyText(t, bctx)
	topIP, err := chromedp.Run(bctx, chromedp.Evaluate[string](`(document.querySelector("#top-ips tbody tr td") || {}).textContent || ""`))
	if err != nil || topIP != "127.0.0.1" {
		t.Errorf("top refused address %q (%v), want 127.0.0.1", topIP, err)
	}
	logins, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("logins")))
	if err != nil || !strings.Contains(logins, "root@example.com") || !strings.Contains(logins, "invite") || !strings.Contains(logins, "active") {
		t.Errorf("recent sign-ins: %q (%v), want root@example.com's invite sign-in, active", logins, err)
	}
	if !strings.Contains(text, "root@example.com") || !strings.Contains(text, "Mail outbox") {
		t.Errorf("the dashboard's text: %q", text)
	}

	// At a phone's width the page does not scroll sideways, and the
	// charts fit it.
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(360, 740)); err != nil {
		t.Fatal(err)
	}
	width, err := chromedp.Run(bctx, chromedp.Evaluate[[]float64](`[document.documentElement.scrollWidth,
		document.querySelector("#chart-day svg").getBoundingClientRect().right,
		parseFloat(getComputedStyle(document.querySelector("#chart-day svg text")).fontSize) * document.querySelector("#chart-day svg").getBoundingClientRect().width / 360]`))
	if err != nil || len(width) != 3 {
		t.Fatalf("measuring at 360px: %v %v", width, err)
	}
	if width[0] > 360 || width[1] > 360 {
		t.Errorf("at 360px wide the page is %vpx wide, the chart ends at %vpx", width[0], width[1])
	}
	if width[2] < 8 {
		t.Errorf("at 360px wide the charts' text is %.1fpx high", width[2])
	}
	screenshot(t, bctx, shots, "dashboard-phone.png")
}
