package caddymodule_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/latchkeyhq/latchkey/internal/invite"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// The one message the login page shows for every refused code
// (internal/gate/invite.go, msgBadCode).
const browserBadCodeMessage = "That code did not work. Check it and try again, or ask for a new invite."

// chromiumPath is the browser the browser tests drive: $CHROMIUM, else
// Debian's /usr/bin/chromium. A missing browser fails the test: a skipped
// browser test would look like a passing one.
func chromiumPath(t *testing.T) string {
	t.Helper()
	path, from := os.Getenv("CHROMIUM"), "$CHROMIUM"
	if path == "" {
		path, from = "/usr/bin/chromium", "the default path"
	}
	fi, err := os.Stat(path)
	if err == nil && fi.IsDir() {
		err = errors.New("is a directory")
	}
	if err != nil {
		t.Fatalf("the browser tests need Chromium, which is not at %s (%s): %v\n"+
			"Install it with `apt-get install -y chromium` (Debian/Ubuntu), "+
			"or set CHROMIUM to the path of a Chromium or Chrome binary.", path, from, err)
	}
	return path
}

// lockedBuffer collects the browser's output, written from chromedp's
// goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startBrowser starts headless Chromium with a fresh profile, bound to ctx.
// The returned func stops it and waits for it to exit.
func startBrowser(t *testing.T, ctx context.Context) (context.Context, func()) {
	t.Helper()
	exe := chromiumPath(t)
	profile, err := os.MkdirTemp("", "latchkey-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	out := new(lockedBuffer)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1024, 768),
		chromedp.UserDataDir(profile),
		chromedp.CombinedOutput(out),
	)
	bctx, cancelTab := chromedp.NewContext(actx)
	// Start the browser now, so that a browser that cannot start is told
	// apart from a page that does not work.
	if err := chromedp.Do(bctx); err != nil {
		cancelTab()
		cancelAlloc()
		os.RemoveAll(profile)
		t.Fatalf("starting %s: %v\nbrowser output:\n%s", exe, err, out.String())
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancelTab()
			cancelAlloc() // kills the browser and waits for it
			if t.Failed() {
				if s := out.String(); s != "" {
					t.Logf("browser output:\n%s", s)
				}
			}
			// Helpers of the browser can outlive it for a moment.
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				err := os.RemoveAll(profile)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Logf("removing the browser profile %s: %v", profile, err)
					break
				}
			}
		})
	}
	return bctx, stop
}

// screenshot saves a full-page screenshot in dir and, when
// $LATCHKEY_SCREENSHOTS is a directory, there too.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dirs := []string{dir}
	if extra := os.Getenv("LATCHKEY_SCREENSHOTS"); extra != "" {
		if fi, err := os.Stat(extra); err == nil && fi.IsDir() {
			dirs = append(dirs, extra)
		} else {
			t.Logf("LATCHKEY_SCREENSHOTS=%q is not a directory; screenshots only in %s", extra, dir)
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
}

// location is the browser's current URL.
func location(t *testing.T, ctx context.Context) *url.URL {
	t.Helper()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatalf("reading the location: %v", err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("location %q: %v", loc, err)
	}
	return u
}

func bodyText(t *testing.T, ctx context.Context) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		t.Fatalf("reading the page text: %v", err)
	}
	return s
}

// TestBrowserInviteLogin drives a real browser through the invite login: the
// gateway sends it to the login page, a wrong code is refused with the one
// generic message, and the right code, typed carelessly, lands it on the
// page it asked for, where the upstream sees the new user.
func TestBrowserInviteLogin(t *testing.T) {
	exe := chromiumPath(t) // fail early, before starting a gateway
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	g := startGateway(t, gwOpts{handler: "invite"})
	svc := invite.NewService(g.st, g.secret, invite.DefaultRules(), nil)
	code, err := svc.Create(ctx, &store.Invite{Site: "127.0.0.1", Email: "luke@example.com", Name: "Luke"}, 9)
	if err != nil {
		t.Fatalf("creating the invite: %v", err)
	}
	wrong := code
	for wrong == code {
		if wrong, err = invite.Generate(9); err != nil {
			t.Fatal(err)
		}
	}
	shots := t.TempDir()

	bctx, stop := startBrowser(t, ctx)
	defer stop()
	t.Logf("browser: %s", exe)

	// 1. An unauthenticated browser is sent to the login page.
	resp, err := chromedp.Run(bctx, chromedp.NavigateResponse(g.url+"/reports/q3"))
	if err != nil {
		t.Fatalf("opening %s/reports/q3: %v", g.url, err)
	}
	if resp.Status != http.StatusOK {
		t.Errorf("login page: status %d, want 200", resp.Status)
	}
	loc := location(t, bctx)
	if loc.Path != "/.latchkey/login" || loc.Query().Get("next") != "/reports/q3" {
		t.Fatalf("the browser is at %s, want /.latchkey/login?next=/reports/q3", loc)
	}
	if err := chromedp.Do(bctx, chromedp.WaitVisible(chromedp.ID("code")), chromedp.WaitVisible(chromedp.ID("submit"))); err != nil {
		t.Fatalf("the login form has no visible #code and #submit: %v", err)
	}
	screenshot(t, bctx, shots, "login.png")
	if g.upstream.count() != 0 {
		t.Fatalf("the upstream got %d requests before any login", g.upstream.count())
	}

	// 2. A wrong code re-shows the form, with the one generic message.
	before := g.upstream.count()
	if err := chromedp.Do(bctx, chromedp.SendKeys(chromedp.ID("code"), wrong)); err != nil {
		t.Fatalf("typing the wrong code: %v", err)
	}
	resp, err = chromedp.RunResponse(bctx, chromedp.Click(chromedp.ID("submit")))
	if err != nil {
		t.Fatalf("submitting the wrong code: %v", err)
	}
	if resp.Status != http.StatusUnauthorized {
		t.Errorf("wrong code: status %d, want 401", resp.Status)
	}
	if loc := location(t, bctx); loc.Path != "/.latchkey/login" {
		t.Errorf("after a wrong code the browser is at %s, want the login page", loc)
	}
	msg, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("message")))
	if err != nil {
		t.Fatalf("wrong code: no #message on the page: %v\npage text: %q", err, bodyText(t, bctx))
	}
	if strings.TrimSpace(msg) != browserBadCodeMessage {
		t.Errorf("wrong code: message %q, want %q", msg, browserBadCodeMessage)
	}
	if err := chromedp.Do(bctx, chromedp.WaitVisible(chromedp.ID("code")), chromedp.WaitVisible(chromedp.ID("submit"))); err != nil {
		t.Fatalf("the form is not shown again after a wrong code: %v", err)
	}
	next, err := chromedp.Run(bctx, chromedp.Value(chromedp.CSS(`input[name="next"]`)))
	if err != nil || next != "/reports/q3" {
		t.Errorf("after a wrong code the form's next is %q (%v), want /reports/q3", next, err)
	}
	screenshot(t, bctx, shots, "login-refused.png")
	if n := g.upstream.count(); n != before {
		t.Fatalf("a wrong code reached the upstream: %d requests, want %d", n, before)
	}

	// 3. The right code, in lower case with spaces around it, logs in and
	// lands on the page first asked for.
	typed := "  " + strings.ToLower(code) + " "
	if err := chromedp.Do(bctx, chromedp.SendKeys(chromedp.ID("code"), typed)); err != nil {
		t.Fatalf("typing the code: %v", err)
	}
	if v, err := chromedp.Run(bctx, chromedp.Value(chromedp.ID("code"))); err == nil {
		t.Logf("the code field holds %q before submitting", v)
	}
	resp, err = chromedp.RunResponse(bctx, chromedp.Click(chromedp.ID("submit")))
	if err != nil {
		t.Fatalf("submitting the code: %v", err)
	}
	if resp.Status != http.StatusOK {
		t.Errorf("after login: status %d, want the upstream's 200\npage text: %q", resp.Status, bodyText(t, bctx))
	}
	if loc := location(t, bctx); loc.Path != "/reports/q3" {
		t.Errorf("after login the browser is at %s, want /reports/q3", loc)
	}
	screenshot(t, bctx, shots, "landing.png")

	user, err := g.st.UserByEmail(ctx, "127.0.0.1", "luke@example.com")
	if err != nil {
		t.Fatalf("the invite did not register luke@example.com: %v", err)
	}
	text := bodyText(t, bctx)
	if want := fmt.Sprintf("user=%q", strconv.FormatInt(user.ID, 10)); !strings.Contains(text, want) {
		t.Errorf("the landing page shows %q, want it to contain %s", text, want)
	}
	if strings.Contains(text, `session=""`) || !strings.Contains(text, "session=") {
		t.Errorf("the landing page shows %q, want a session id", text)
	}
	if g.upstream.count() <= before {
		t.Error("the upstream got no request after the login")
	}
	// The session cookie is HttpOnly: the page's script cannot read it.
	if js, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.cookie`)); err != nil {
		t.Errorf("reading document.cookie: %v", err)
	} else if strings.Contains(js, "latchkey_session") {
		t.Errorf("the session cookie is visible to scripts: %q", js)
	}
}
