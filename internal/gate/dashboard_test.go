package gate_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/audit"
	"github.com/latchkeyhq/latchkey/internal/gate"
	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/site"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
	"github.com/latchkeyhq/latchkey/internal/web"
)

// uaRecorder is a recorder that parses user agents as the audit writer does.
type uaRecorder struct {
	*recorder
	ua *audit.UAParser
}

func (r uaRecorder) Describe(e *store.AuditEvent) {
	u := r.ua.Parse(e.UserAgent)
	e.UABrowser, e.UAVersion, e.UAOS, e.UADevice = u.Browser, u.Version, u.OS, u.Device
}

// dashRig is two sites, a and b, on one SQLite store, with a clock the
// test sets: a gate for each, and cookies for their users.
type dashRig struct {
	st    store.Store
	pages *web.Pages
	now   time.Time
	gate  map[string]*gate.Gate
	rec   *recorder
	mgr   map[string]*session.Manager
}

// dashNow is the rig's clock: 15:40, so that the current hour is 15:00.
var dashNow = time.Date(2025, 3, 14, 15, 40, 0, 0, time.UTC)

const (
	dashFirefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
	dashChrome  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)

func newDashRig(t *testing.T) *dashRig {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "d.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pages, err := web.New("")
	if err != nil {
		t.Fatal(err)
	}
	r := &dashRig{st: st, pages: pages, now: dashNow, gate: map[string]*gate.Gate{}, rec: &recorder{}, mgr: map[string]*session.Manager{}}
	for _, name := range []string{"a", "b"} {
		r.addSite(t, name, []string{name + ".example"}, "https://"+name+".example")
	}
	return r
}

// addSite adds a site and its gate.
func (r *dashRig) addSite(t *testing.T, name string, hosts []string, origin string) {
	t.Helper()
	s, err := site.New(name, hosts, origin)
	if err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return r.now }
	m := session.New(r.st, []byte("0123456789abcdef0123456789abcdef"), session.Config{Site: name}, nil, clock)
	r.mgr[name] = m
	r.gate[name] = gate.New(gate.Config{LoginURL: "/.latchkey/login"}, gate.Deps{Site: s, Sessions: m, Store: r.st,
		Audit: uaRecorder{r.rec, audit.NewUAParser(64)}, Pages: r.pages, Now: clock})
}

// user creates an active user of site with roles (role@site).
func (r *dashRig) user(t *testing.T, site, email string, roles ...store.Role) *store.User {
	t.Helper()
	u := &store.User{Site: site, Email: email, Active: true, Roles: roles}
	if err := r.st.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

// signIn starts a session for u on site, started ago before the clock.
func (r *dashRig) signIn(t *testing.T, site string, u *store.User, ip, ua string) string {
	t.Helper()
	token, _, err := r.mgr[site].Start(context.Background(), u.ID, gate.KindInvite, "", ip, ua)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// get asks site's gate for the dashboard, as a browser (html) or not.
func (r *dashRig) get(t *testing.T, site, cookie string, html bool) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "https://"+site+".example/.latchkey/admin", nil)
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: gate.DefaultCookieName, Value: cookie})
	}
	if html {
		req.Header.Set("Accept", "text/html")
	}
	w := httptest.NewRecorder()
	err := r.gate[site].ServeHTTP(w, req, gate.Env{ClientIP: "192.0.2.200"}, func(http.ResponseWriter, *http.Request) error {
		t.Error("the dashboard reached the upstream")
		return nil
	})
	if err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	return w
}

func admin(site string) store.Role { return store.Role{Site: site, Name: gate.AdminRole} }

// audit writes events, each at the clock minus its age.
func (r *dashRig) audit(t *testing.T, evs ...store.AuditEvent) {
	t.Helper()
	if err := r.st.WriteAudit(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

func dashEvent(age time.Duration, host, outcome, reason, ip string, count int64) store.AuditEvent {
	return store.AuditEvent{Time: dashNow.Add(-age), Kind: gate.KindInvite, Outcome: outcome, Reason: reason, Host: host, ClientIP: ip, Count: count}
}

// bar finds the bar of the hour starting at start in the chart with id,
// and returns its accepted and refused counts as the page shows them.
func bar(t *testing.T, body, id string, start time.Time) (accepted, refused string) {
	t.Helper()
	i := strings.Index(body, `id="`+id+`"`)
	if i < 0 {
		t.Fatalf("no chart %s on the page", id)
	}
	chart := body[i:]
	chart = chart[:strings.Index(chart, "</figure>")]
	m := regexp.MustCompile(`<g class="bar" data-accepted="(\d+)" data-refused="(\d+)" data-start="` + regexp.QuoteMeta(start.Format(time.RFC3339)) + `">`).FindStringSubmatch(chart)
	if m == nil {
		t.Fatalf("chart %s has no bar for %s", id, start.Format(time.RFC3339))
	}
	return m[1], m[2]
}

// tile is the figure of a summary tile.
func tile(t *testing.T, body, id string) string {
	t.Helper()
	m := regexp.MustCompile(`id="` + id + `">[^<]*<strong>([^<]*)</strong>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no tile %s", id)
	}
	return m[1]
}

// table is the text of the table with id, tags removed.
func table(t *testing.T, body, id string) string {
	t.Helper()
	i := strings.Index(body, `<table id="`+id+`">`)
	if i < 0 {
		t.Fatalf("no table %s", id)
	}
	s := body[i:]
	s = s[:strings.Index(s, "</table>")]
	return strings.Join(strings.Fields(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(s, " ")), " ")
}

// TestDashboardShowsTheSitesFigures: an admin of site a sees a's attempts
// in the hours they happened, summing aggregated records, its top refused
// addresses and reasons, its live sessions and sign-ins and its mail, and
// nothing of site b, whose admin sees b's.
func TestDashboardShowsTheSitesFigures(t *testing.T) {
	r := newDashRig(t)
	ada := r.user(t, "a", "ada@a.example", admin("a"))
	bob := r.user(t, "a", "bob@a.example")
	bea := r.user(t, "b", "bea@b.example", admin("b"))
	// cat signed in long enough ago to be idle now: not active.
	cat := r.user(t, "a", "cat@a.example")
	r.now = dashNow.Add(-session.DefaultIdle - time.Minute)
	r.signIn(t, "a", cat, "198.51.100.40", dashChrome)
	r.now = dashNow
	adaCookie := r.signIn(t, "a", ada, "192.0.2.10", dashFirefox)
	r.signIn(t, "a", bob, "198.51.100.20", dashChrome)
	beaCookie := r.signIn(t, "b", bea, "203.0.113.30", dashChrome)

	r.audit(t,
		dashEvent(10*time.Minute, "a.example", store.OutcomeAccepted, "", "192.0.2.10", 1),
		dashEvent(20*time.Minute, "A.example:443", store.OutcomeRefused, "invalid_code", "203.0.113.5", 7), // a flood, folded
		dashEvent(3*time.Hour+30*time.Minute, "a.example", store.OutcomeRefused, "throttled", "198.51.100.9", 2),
		dashEvent(2*24*time.Hour, "a.example", store.OutcomeAccepted, "", "192.0.2.10", 4),
		dashEvent(8*24*time.Hour, "a.example", store.OutcomeRefused, "invalid_code", "203.0.113.77", 100), // older than a week
		dashEvent(5*time.Minute, "b.example", store.OutcomeRefused, "only_on_b", "192.0.2.66", 50),
	)
	for _, m := range []*store.Mail{
		{Kind: store.MailKindInvite, Site: "a", To: "new@a.example", Subject: "Invite", Text: "code", CreatedAt: dashNow.Add(-time.Minute)},
		{Kind: store.MailKindLoginLink, Site: "b", To: "other@b.example", Subject: "Sign in", Text: "link", CreatedAt: dashNow.Add(-time.Minute)},
		{Kind: store.MailKindLoginLink, Site: "b", To: "third@b.example", Subject: "Sign in", Text: "link", CreatedAt: dashNow.Add(-time.Minute)},
	} {
		if err := r.st.EnqueueMail(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}

	resp := r.get(t, "a", adaCookie, true)
	body := resp.Body.String()
	if resp.Code != http.StatusOK {
		t.Fatalf("admin of a: %d\n%s", resp.Code, body)
	}
	if csp := resp.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("Content-Security-Policy %q, want the pages' strict one", csp)
	}
	if cc := resp.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	if strings.Contains(strings.ToLower(body), "<script") {
		t.Error("the dashboard has a script")
	}

	hour := dashNow.Truncate(time.Hour)
	for _, c := range []struct {
		chart             string
		start             time.Time
		accepted, refused string
	}{
		{"chart-day", hour, "1", "7"},
		{"chart-day", hour.Add(-time.Hour), "0", "0"},
		{"chart-day", hour.Add(-3 * time.Hour), "0", "2"},
		{"chart-day", hour.Add(-4 * time.Hour), "0", "0"},
		{"chart-week", hour, "1", "7"},
		{"chart-week", hour.Add(-48 * time.Hour), "4", "0"},
		{"chart-week", hour.Add(-167 * time.Hour), "0", "0"},
	} {
		if a, rf := bar(t, body, c.chart, c.start); a != c.accepted || rf != c.refused {
			t.Errorf("%s at %s: %s accepted, %s refused; want %s and %s", c.chart, c.start.Format("Jan 2 15:04"), a, rf, c.accepted, c.refused)
		}
	}
	if n := strings.Count(body, `<g class="bar"`); n != 24+168 {
		t.Errorf("%d bars, want 24 and 168", n)
	}
	if a, rf := tile(t, body, "accepted-24h"), tile(t, body, "refused-24h"); a != "1" || rf != "9" {
		t.Errorf("last 24 hours: %s accepted, %s refused; want 1 and 9", a, rf)
	}
	if got := table(t, body, "top-ips"); got != "Most refused client addresses Client address Refused 203.0.113.5 7 198.51.100.9 2" {
		t.Errorf("top refused addresses: %q", got)
	}
	if got := table(t, body, "top-reasons"); got != "Most frequent refusal reasons Reason Refused invalid_code 7 throttled 2" {
		t.Errorf("top refusal reasons: %q", got)
	}
	if got := tile(t, body, "active-sessions"); got != "2" {
		t.Errorf("active sessions %s, want 2", got)
	}
	logins := table(t, body, "logins")
	for _, want := range []string{"ada@a.example invite", "192.0.2.10", "Firefox 133.0 · Linux", "bob@a.example", "198.51.100.20", "Chrome", "Windows", "active",
		"cat@a.example invite 2025-03-14 13:39 2025-03-14 13:39 198.51.100.40 Chrome 131.0.0.0 · Windows 10 idle"} {
		if !strings.Contains(logins, want) {
			t.Errorf("sign-ins lack %q: %q", want, logins)
		}
	}
	if got := table(t, body, "outbox"); !strings.Contains(got, "new@a.example") || !strings.Contains(got, "queued") {
		t.Errorf("outbox: %q", got)
	}
	if got := tile(t, body, "mail-pending"); got != "1" {
		t.Errorf("mail pending %s, want 1", got)
	}
	for _, b := range []string{"192.0.2.66", "only_on_b", "bea@b.example", "203.0.113.30", "other@b.example", "203.0.113.77"} {
		if strings.Contains(body, b) {
			t.Errorf("a's dashboard shows %q, which is b's or older than a week", b)
		}
	}

	// b's admin sees b's figures, and none of a's.
	body = r.get(t, "b", beaCookie, true).Body.String()
	if a, rf := bar(t, body, "chart-day", hour); a != "0" || rf != "50" {
		t.Errorf("b's current hour: %s accepted, %s refused; want 0 and 50", a, rf)
	}
	for _, a := range []string{"203.0.113.5", "invalid_code", "ada@a.example", "bob@a.example", "new@a.example"} {
		if strings.Contains(body, a) {
			t.Errorf("b's dashboard shows a's %q", a)
		}
	}
	if !strings.Contains(table(t, body, "logins"), "bea@b.example") || tile(t, body, "active-sessions") != "1" {
		t.Errorf("b's dashboard: sign-ins %q, active sessions %s", table(t, body, "logins"), tile(t, body, "active-sessions"))
	}
	if tile(t, body, "mail-pending") != "2" || !strings.Contains(table(t, body, "outbox"), "third@b.example") {
		t.Errorf("b's outbox: %s pending, %q", tile(t, body, "mail-pending"), table(t, body, "outbox"))
	}

}

// TestDashboardRefusesOthers: without a session the browser is sent to
// sign in (an API client gets 401); a user of the site without the admin
// role, or with it on another site only, gets 403 missing_role, audited;
// none of them sees a figure.
func TestDashboardRefusesOthers(t *testing.T) {
	r := newDashRig(t)
	bob := r.user(t, "a", "bob@a.example", store.Role{Site: "a", Name: "staff"})
	roaming := r.user(t, "", "roam@example.org", admin("b"))
	bobCookie := r.signIn(t, "a", bob, "192.0.2.1", dashFirefox)
	roamingCookie := r.signIn(t, "a", roaming, "192.0.2.2", dashFirefox)
	r.audit(t, dashEvent(time.Minute, "a.example", store.OutcomeRefused, "secret_reason", "203.0.113.9", 3))

	if resp := r.get(t, "a", "", true); resp.Code != http.StatusFound || !strings.HasPrefix(resp.Header().Get("Location"), "/.latchkey/login?next=%2F.latchkey%2Fadmin") {
		t.Errorf("no session, browser: %d to %q; want 302 to the login page", resp.Code, resp.Header().Get("Location"))
	}
	if resp := r.get(t, "a", "", false); resp.Code != http.StatusUnauthorized {
		t.Errorf("no session, API client: %d, want 401", resp.Code)
	}
	if resp := r.get(t, "a", "not-a-session", false); resp.Code != http.StatusUnauthorized {
		t.Errorf("unknown cookie: %d, want 401", resp.Code)
	}
	for name, cookie := range map[string]string{"without the role": bobCookie, "admin of another site": roamingCookie} {
		resp := r.get(t, "a", cookie, true)
		if resp.Code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, resp.Code)
		}
		if b := resp.Body.String(); strings.Contains(b, "secret_reason") || strings.Contains(b, "203.0.113.9") || strings.Contains(b, "<svg") {
			t.Errorf("%s: the refusal shows figures", name)
		}
	}
	var refused []store.AuditEvent
	for _, e := range r.rec.all() {
		if e.Kind == "dashboard" && e.Reason == gate.ReasonMissingRole && e.Status == http.StatusForbidden && e.Outcome == store.OutcomeRefused {
			refused = append(refused, e)
		}
	}
	if len(refused) != 2 || refused[0].UserID == 0 || refused[0].ClientIP != "192.0.2.200" || refused[0].Path != "/.latchkey/admin" {
		t.Errorf("audited refusals %+v, want two missing_role records with user, address and path", refused)
	}
	if n := len(r.rec.all()); n != 5 {
		t.Errorf("%d audit records, want one per refusal (5)", n)
	}

	// Granted the role, the user sees the page.
	if err := r.st.GrantRole(context.Background(), bob.ID, admin("a")); err != nil {
		t.Fatal(err)
	}
	r.mgr["a"].ForgetUser(bob.ID)
	if resp := r.get(t, "a", bobCookie, true); resp.Code != http.StatusOK {
		t.Errorf("after the role is granted: %d, want 200", resp.Code)
	}
	req := httptest.NewRequest(http.MethodPost, "https://a.example/.latchkey/admin", nil)
	req.AddCookie(&http.Cookie{Name: gate.DefaultCookieName, Value: bobCookie})
	w := httptest.NewRecorder()
	if err := r.gate["a"].ServeHTTP(w, req, gate.Env{}, nil); err != nil || w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, %v; want 405", w.Code, err)
	}
}

// TestDashboardEmptySite: a site with nothing yet shows empty charts that
// say so, and empty lists.
func TestDashboardEmptySite(t *testing.T) {
	r := newDashRig(t)
	ada := r.user(t, "a", "ada@a.example", admin("a"))
	body := r.get(t, "a", r.signIn(t, "a", ada, "192.0.2.10", dashFirefox), true).Body.String()
	if n := strings.Count(body, "No attempts in this period"); n != 2 {
		t.Errorf("%d empty charts, want 2", n)
	}
	for _, want := range []string{"Nothing refused.", "No mail.", "ada@a.example"} {
		if !strings.Contains(body, want) {
			t.Errorf("the empty dashboard lacks %q", want)
		}
	}
	if strings.Contains(body, "NaN") {
		t.Error("NaN on the empty dashboard")
	}
}

// TestDashboardSiteWithoutHosts: a site that answers for any host is known
// in the audit trail by its origin's host; without an origin its attempts
// cannot be told from other sites', so none are shown, and the page says
// why.
func TestDashboardSiteWithoutHosts(t *testing.T) {
	r := newDashRig(t)
	r.addSite(t, "shop", nil, "https://Shop.example:8443")
	r.addSite(t, "any", nil, "")
	r.audit(t,
		dashEvent(time.Minute, "shop.example:8443", store.OutcomeRefused, "on_shop", "203.0.113.1", 3),
		dashEvent(time.Minute, "a.example", store.OutcomeRefused, "on_a", "203.0.113.2", 4),
	)
	shopAdmin := r.user(t, "shop", "s@shop.example", admin("shop"))
	body := r.get(t, "shop", r.signIn(t, "shop", shopAdmin, "192.0.2.1", dashFirefox), true).Body.String()
	if _, rf := bar(t, body, "chart-day", dashNow.Truncate(time.Hour)); rf != "3" || strings.Contains(body, "on_a") {
		t.Errorf("the site known by its origin: %s refused this hour (want 3); shows a's: %v", rf, strings.Contains(body, "on_a"))
	}
	anyAdmin := r.user(t, "any", "x@any.example", admin("any"))
	body = r.get(t, "any", r.signIn(t, "any", anyAdmin, "192.0.2.1", dashFirefox), true).Body.String()
	if !strings.Contains(body, `id="audit-note"`) || strings.Contains(body, "<svg") || strings.Contains(body, "on_") {
		t.Errorf("a site with neither hosts nor origin shows attempts:\n%s", body)
	}
	if !strings.Contains(table(t, body, "logins"), "x@any.example") {
		t.Error("a site with neither hosts nor origin lacks its sign-ins")
	}
}
