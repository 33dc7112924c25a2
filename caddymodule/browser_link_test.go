package caddymodule_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserMagicLink drives a real browser through a login-mode signed
// link, as a user clicking it in a mail would: opening it shows a
// confirmation page and uses nothing; the button signs in and lands on the
// link's page without the token; opening the link again shows the page
// again, but its button is refused, the link being used up.
func TestBrowserMagicLink(t *testing.T) {
	exe := chromiumPath(t) // fail early, before starting a gateway
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	o := gwOpts{handler: "link"}
	g := startGateway(t, o)
	const email = "mira@example.com"
	u := g.user(email)
	want := g.url + "/welcome?from=mail"
	l := g.mintLink(o, "--user", email, "--url", want, "--mode", "login")
	lu, err := url.Parse(l.URL)
	if err != nil {
		t.Fatalf("minted link %q: %v", l.URL, err)
	}
	token := lu.Query().Get("token")
	if len(token) < 20 {
		t.Fatalf("minted link %q has no token", l.URL)
	}
	shots := t.TempDir()

	bctx, stop := startBrowser(t, ctx)
	defer stop()
	t.Logf("browser: %s", exe)

	// 1. Opening the link shows the confirmation page; nothing is used and
	// the upstream sees nothing.
	resp, err := chromedp.Run(bctx, chromedp.NavigateResponse(l.URL))
	if err != nil {
		t.Fatalf("opening the link: %v", err)
	}
	if resp.Status != http.StatusOK {
		t.Errorf("confirmation page: status %d, want 200", resp.Status)
	}
	if err := chromedp.Do(bctx, chromedp.WaitVisible(chromedp.ID("confirm"))); err != nil {
		t.Fatalf("the confirmation page has no visible #confirm: %v\npage text: %q", err, bodyText(t, bctx))
	}
	if text := bodyText(t, bctx); !strings.Contains(text, email) {
		t.Errorf("the confirmation page says %q, want it to name %s", text, email)
	}
	screenshot(t, bctx, shots, "magic-link-confirm.png")
	if n := g.upstream.count(); n != 0 {
		t.Fatalf("the upstream got %d requests from the confirmation page", n)
	}
	if row, err := g.st.Link(ctx, l.JTI); err != nil || row.Uses != 0 {
		t.Fatalf("after opening the link: row %+v (%v), want 0 uses", row, err)
	}

	// 2. The button signs in and lands on the link's page, without the token.
	resp, err = chromedp.RunResponse(bctx, chromedp.Click(chromedp.ID("confirm")))
	if err != nil {
		t.Fatalf("clicking #confirm: %v", err)
	}
	if resp.Status != http.StatusOK {
		t.Errorf("after confirming: status %d, want the upstream's 200\npage text: %q", resp.Status, bodyText(t, bctx))
	}
	href, err := chromedp.Run(bctx, chromedp.Evaluate[string](`window.location.href`))
	if err != nil {
		t.Fatalf("reading window.location.href: %v", err)
	}
	if href != want {
		t.Errorf("after confirming the browser is at %q, want %q", href, want)
	}
	if strings.Contains(href, token) || strings.Contains(href, "token=") {
		t.Errorf("the token is still in the location: %q", href)
	}
	if ref, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.referrer`)); err != nil {
		t.Errorf("reading document.referrer: %v", err)
	} else if ref != "" {
		t.Errorf("the landing page's referrer is %q, want none (the token would leak through it)", ref)
	}
	screenshot(t, bctx, shots, "magic-link-landing.png")
	text := bodyText(t, bctx)
	if wantUser := fmt.Sprintf("user=%q", fmt.Sprint(u.ID)); !strings.Contains(text, wantUser) {
		t.Errorf("the landing page shows %q, want it to contain %s", text, wantUser)
	}
	if strings.Contains(text, `session=""`) || !strings.Contains(text, "session=") {
		t.Errorf("the landing page shows %q, want a session id", text)
	}
	g.upstream.mu.Lock()
	uris := append([]string(nil), g.upstream.uris...)
	g.upstream.mu.Unlock()
	if len(uris) == 0 || uris[0] != "/welcome?from=mail" {
		t.Errorf("the upstream got %q, want /welcome?from=mail first", uris)
	}
	for _, uri := range uris {
		if strings.Contains(uri, token) || strings.Contains(uri, "token=") {
			t.Errorf("the upstream got the token: %q", uri)
		}
	}
	// The session cookie is HttpOnly: the page's script cannot read it.
	if js, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.cookie`)); err != nil {
		t.Errorf("reading document.cookie: %v", err)
	} else if strings.Contains(js, "latchkey_session") {
		t.Errorf("the session cookie is visible to scripts: %q", js)
	}
	// The confirmation page, opened from the link, stays in the tab's
	// history (its URL holds the token; it is what the user opened); the
	// current entry must not.
	if h, err := chromedp.Run(bctx, chromedp.NavigationEntries()); err != nil {
		t.Errorf("reading the navigation history: %v", err)
	} else {
		for i, e := range h.Entries {
			t.Logf("history entry %d%s: %s", i, map[bool]string{true: " (current)"}[int64(i) == h.CurrentIndex], redact(e.URL, token))
		}
		if h.CurrentIndex >= 0 && int(h.CurrentIndex) < len(h.Entries) {
			if cur := h.Entries[h.CurrentIndex].URL; strings.Contains(cur, token) {
				t.Errorf("the current history entry holds the token: %s", redact(cur, token))
			}
		}
	}
	if row, err := g.st.Link(ctx, l.JTI); err != nil || row.Uses != 1 {
		t.Fatalf("after confirming: row %+v (%v), want 1 use", row, err)
	}
	before := g.upstream.count()

	// 3. Opening the spent link again, signed in as its user, leads
	// straight to the page it led to: no button that cannot work, and no
	// second use.
	resp, err = chromedp.Run(bctx, chromedp.NavigateResponse(l.URL))
	if err != nil {
		t.Fatalf("opening the link again: %v", err)
	}
	if resp.Status != http.StatusOK {
		t.Errorf("the used link, opened again by its user: status %d, want 200 (the page it led to)\npage text: %q", resp.Status, bodyText(t, bctx))
	}
	screenshot(t, bctx, shots, "magic-link-used.png")
	if loc, err := chromedp.Run(bctx, chromedp.Location()); err != nil || loc != g.url+"/welcome?from=mail" {
		t.Errorf("after the used link: location %q (%v), want the clean URL", redact(loc, token), err)
	}
	// The page (and whatever else the browser fetches, like a favicon) comes
	// through the session; the link itself is not used again (checked below).
	if n := g.upstream.count(); n <= before {
		t.Errorf("upstream requests %d, want more than %d: the page did not load through the session", n, before)
	}
	if row, err := g.st.Link(ctx, l.JTI); err != nil || row.Uses != 1 {
		t.Errorf("after the refused confirmation: row %+v (%v), want still 1 use", row, err)
	}
}

// redact hides the token in s, for logs.
func redact(s, token string) string {
	return strings.ReplaceAll(s, token, "<token>")
}
