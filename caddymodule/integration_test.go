package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/latchkeyhq/latchkey/caddymodule"
	"github.com/latchkeyhq/latchkey/internal/keys"
	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
)

const testSecret = "integration-test-secret-0123456789abcdef"

// upstream is a real HTTP server behind reverse_proxy that remembers the
// headers of every request it got.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []http.Header
	uris []string
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, r.Header.Clone())
		u.uris = append(u.uris, r.RequestURI)
		u.mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/teapot") {
			w.WriteHeader(http.StatusTeapot)
		}
		fmt.Fprintf(w, "upstream saw user=%q session=%q", r.Header.Get("X-User-ID"), r.Header.Get("X-Session-ID"))
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) last(t *testing.T) http.Header {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		t.Fatal("upstream got no request")
	}
	return u.seen[len(u.seen)-1]
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.seen)
}

// gateway is a real Caddy, started in-process from a Caddyfile.
type gateway struct {
	t        *testing.T
	dir      string
	db       string
	url      string
	port     int
	admin    string
	upstream *upstream
	st       store.Store // a second handle on the same file, like the CLI's
	secret   []byte
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type gwOpts struct {
	handler string // body of the latchkey directive
	global  string // extra lines in the latchkey global option
	// generatedSecret leaves the secret out, so the gateway makes one and
	// keeps it in a file beside the store.
	generatedSecret bool
}

func startGateway(t *testing.T, o gwOpts) *gateway {
	t.Helper()
	dir := t.TempDir()
	g := &gateway{t: t, dir: dir, db: filepath.Join(dir, "state", "latchkey.db"), port: freePort(t), upstream: newUpstream(t)}
	g.url = fmt.Sprintf("http://127.0.0.1:%d", g.port)
	g.admin = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	g.load(o)
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
	})
	st, err := sqlite.Open(context.Background(), g.db)
	if err != nil {
		t.Fatalf("opening the gateway's store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	g.st = st
	g.secret = []byte(testSecret)
	if o.generatedSecret {
		// As the CLI does: the secret the gateway generated, in the file
		// beside the store.
		if g.secret, err = keys.ReadSecretFile(keys.SecretPath(g.db)); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

func (g *gateway) caddyfile(o gwOpts) string {
	secretLine := "secret " + testSecret
	if o.generatedSecret {
		secretLine = ""
	}
	return fmt.Sprintf(`{
	admin %s
	auto_https off
	storage file_system %s
	log {
		output discard
	}
	latchkey {
		storage sqlite %s
		%s
		%s
	}
}

http://127.0.0.1:%d {
	latchkey {
		%s
	}
	reverse_proxy %s
}
`, g.admin, filepath.Join(g.dir, "caddy"), g.db, secretLine, o.global, g.port, o.handler, strings.TrimPrefix(g.upstream.URL, "http://"))
}

// load adapts and (re)loads the config, as `caddy reload` does.
func (g *gateway) load(o gwOpts) {
	g.t.Helper()
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(g.caddyfile(o)), nil)
	if err != nil {
		g.t.Fatalf("adapting Caddyfile: %v", err)
	}
	for _, w := range warnings {
		g.t.Logf("caddyfile warning: %s", w.Message)
	}
	if err := caddy.Load(cfg, true); err != nil {
		g.t.Fatalf("loading config: %v", err)
	}
}

// user adds an active user through the store.
func (g *gateway) user(email string) *store.User {
	g.t.Helper()
	u := &store.User{Email: email, Active: true}
	if err := g.st.CreateUser(context.Background(), u); err != nil {
		g.t.Fatal(err)
	}
	return u
}

// session starts a session for u as the gateway would, with the clock at now.
func (g *gateway) session(u *store.User, now time.Time) (string, *store.Session) {
	g.t.Helper()
	m := session.New(g.st, g.secret, session.Config{Site: "127.0.0.1"}, nil, func() time.Time { return now })
	token, s, err := m.Start(context.Background(), u.ID, "test", "", "127.0.0.1", "go-test")
	if err != nil {
		g.t.Fatal(err)
	}
	return token, s
}

func (g *gateway) get(path string, hdr map[string]string) *http.Response {
	g.t.Helper()
	req, err := http.NewRequest(http.MethodGet, g.url+path, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	for k, v := range hdr {
		// Set directly so the key goes out exactly as written (x_user_id…).
		req.Header[k] = []string{v}
	}
	return g.do(req)
}

func (g *gateway) do(req *http.Request) *http.Response {
	g.t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// waitAudit waits for the audit writer to have written records of at least
// n attempts matching f (a flood of identical refusals is one record with
// a count), and returns them.
func (g *gateway) waitAudit(f store.AuditFilter, n int) []store.AuditEvent {
	g.t.Helper()
	f.Limit = 100000
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, err := g.st.Audit(context.Background(), f)
		if err != nil {
			g.t.Fatal(err)
		}
		if attempts(evs) >= n || time.Now().After(deadline) {
			if attempts(evs) < n {
				g.t.Fatalf("want audit records of %d attempts matching %+v, have %d (%d records)", n, f, attempts(evs), len(evs))
			}
			return evs
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// attempts is how many attempts records stand for: each counts its Count.
func attempts(evs []store.AuditEvent) int {
	var n int
	for _, e := range evs {
		n += int(max(e.Count, 1))
	}
	return n
}

func cookie(token string) map[string]string {
	return map[string]string{"Cookie": "latchkey_session=" + token}
}

func TestNoCredentialIsRefusedAndAudited(t *testing.T) {
	g := startGateway(t, gwOpts{})
	resp := g.get("/private?x=1", map[string]string{"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "X-Forwarded-For": "203.0.113.9"})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", resp.StatusCode)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("content type %q, want a page", resp.Header.Get("Content-Type"))
	}
	if g.upstream.count() != 0 {
		t.Fatal("a request without credential reached the upstream")
	}
	evs := g.waitAudit(store.AuditFilter{Outcome: store.OutcomeRefused}, 1)
	e := evs[0]
	if e.Kind != "session" || e.Reason != session.ReasonMissing || e.Status != 401 || e.Path != "/private" || e.Method != "GET" {
		t.Errorf("audit record %+v", e)
	}
	// X-Forwarded-For from an untrusted client must not become the client IP.
	if e.ClientIP != "127.0.0.1" {
		t.Errorf("client IP %q, want 127.0.0.1 (X-Forwarded-For is not trusted)", e.ClientIP)
	}
	if e.UABrowser != "Firefox" || e.UAOS == "" || e.UABot {
		t.Errorf("user agent parsed as browser=%q os=%q bot=%v", e.UABrowser, e.UAOS, e.UABot)
	}
}

func TestRefusalIsJSONWhenAsked(t *testing.T) {
	g := startGateway(t, gwOpts{})
	req, _ := http.NewRequest(http.MethodGet, g.url+"/api/things", nil)
	req.Header.Set("Accept", "application/json")
	client := &http.Client{}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Error, Reason string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decoding JSON refusal: %v", err)
	}
	if resp.StatusCode != 401 || body.Error != "unauthorized" || body.Reason != "missing" {
		t.Errorf("status %d body %+v", resp.StatusCode, body)
	}
}

func TestLoginRedirectKeepsSafeNext(t *testing.T) {
	g := startGateway(t, gwOpts{handler: "login_url /signin"})
	resp := g.get("/reports/q3?year=2026", map[string]string{"Accept": "text/html"})
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d, want 302", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); loc != "/signin?next=%2Freports%2Fq3%3Fyear%3D2026" {
		t.Errorf("Location %q", loc)
	}
	// An API client still gets 401, not a page it cannot follow.
	if resp := g.get("/reports", map[string]string{"Accept": "application/json"}); resp.StatusCode != 401 {
		t.Errorf("JSON client got %d, want 401", resp.StatusCode)
	}
}

func TestForgedIdentityHeadersNeverReachUpstream(t *testing.T) {
	g := startGateway(t, gwOpts{})
	u := g.user("ada@example.com")
	token, s := g.session(u, time.Now())
	forged := map[string]string{
		"X-User-ID":            "1337",
		"x_user_id":            "1338",
		"X-USER-ID":            "1339",
		"X_Session_Id":         "forged-session",
		"x-session-id":         "forged-session-2",
		"X-Latchkey-Link-Data": `{"admin":true}`,
		"x_latchkey_whatever":  "1",
	}
	// Without a session the request is refused; with one, only the gateway's
	// values arrive.
	if resp := g.get("/", forged); resp.StatusCode != 401 {
		t.Fatalf("forged headers without session: status %d, want 401", resp.StatusCode)
	}
	if g.upstream.count() != 0 {
		t.Fatal("forged request reached upstream")
	}
	hdr := cookie(token)
	for k, v := range forged {
		hdr[k] = v
	}
	if resp := g.get("/", hdr); resp.StatusCode != 200 {
		t.Fatalf("with session: status %d, want 200", resp.StatusCode)
	}
	seen := g.upstream.last(t)
	for k, vs := range seen {
		n := strings.ReplaceAll(strings.ToLower(k), "_", "-")
		switch {
		case n == "x-user-id":
			if len(vs) != 1 || vs[0] != fmt.Sprint(u.ID) {
				t.Errorf("upstream got %s: %q, want only %d", k, vs, u.ID)
			}
		case n == "x-session-id":
			if len(vs) != 1 || vs[0] != s.ID {
				t.Errorf("upstream got %s: %q, want only %s", k, vs, s.ID)
			}
		case strings.HasPrefix(n, "x-latchkey-"):
			t.Errorf("upstream got client-sent %s: %q", k, vs)
		}
	}
	if seen.Get("X-User-ID") == "" || seen.Get("X-Session-ID") == "" {
		t.Errorf("upstream did not get identity headers: %v", seen)
	}
}

func TestSessionReachesUpstreamAndIsAudited(t *testing.T) {
	t.Run("configured secret", func(t *testing.T) { testSessionReachesUpstream(t, gwOpts{}) })
	t.Run("generated secret", func(t *testing.T) { testSessionReachesUpstream(t, gwOpts{generatedSecret: true}) })
}

func testSessionReachesUpstream(t *testing.T, o gwOpts) {
	g := startGateway(t, o)
	u := g.user("grace@example.com")
	token, s := g.session(u, time.Now())
	if resp := g.get("/teapot", cookie(token)); resp.StatusCode != http.StatusTeapot {
		t.Fatalf("status %d, want the upstream's 418", resp.StatusCode)
	}
	seen := g.upstream.last(t)
	if seen.Get("X-User-ID") != fmt.Sprint(u.ID) || seen.Get("X-Session-ID") != s.ID {
		t.Errorf("upstream saw X-User-ID=%q X-Session-ID=%q, want %d %s", seen.Get("X-User-ID"), seen.Get("X-Session-ID"), u.ID, s.ID)
	}
	if strings.Contains(seen.Get("Cookie"), token) && seen.Get("X-Session-ID") == token {
		t.Error("the session id sent upstream is the cookie value")
	}
	evs := g.waitAudit(store.AuditFilter{Outcome: store.OutcomeAccepted}, 1)
	if e := evs[0]; e.UserID != u.ID || e.SessionID != s.ID || e.Status != http.StatusTeapot {
		t.Errorf("audit record %+v, want user %d session %s status 418", e, u.ID, s.ID)
	}
}

func TestEndedSessionsAreRefused(t *testing.T) {
	g := startGateway(t, gwOpts{handler: "session {\n\t\t\tidle 1h\n\t\t\tlifetime 24h\n\t\t}"})
	u := g.user("lin@example.com")
	expired, _ := g.session(u, time.Now().Add(-25*time.Hour))
	idle, _ := g.session(u, time.Now().Add(-2*time.Hour))
	revoked, rs := g.session(u, time.Now())
	if err := g.st.RevokeSession(context.Background(), rs.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	inactive := g.user("gone@example.com")
	inactiveTok, _ := g.session(inactive, time.Now())
	if err := g.st.SetUserActive(context.Background(), inactive.ID, false); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, token, reason string }{
		{"expired", expired, session.ReasonExpired},
		{"idle", idle, session.ReasonIdle},
		{"revoked", revoked, session.ReasonRevoked},
		{"inactive-user", inactiveTok, session.ReasonInactiveUser},
		{"unknown", strings.Repeat("A", 43), session.ReasonUnknown},
		{"malformed", "not-a-token", session.ReasonMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := g.get("/"+c.name, cookie(c.token))
			if resp.StatusCode != 401 {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			cleared := false
			for _, ck := range resp.Cookies() {
				if ck.Name == "latchkey_session" && ck.MaxAge < 0 {
					cleared = true
				}
			}
			if !cleared {
				t.Error("refused cookie was not cleared")
			}
		})
	}
	if g.upstream.count() != 0 {
		t.Fatal("an ended session reached the upstream")
	}
	evs := g.waitAudit(store.AuditFilter{Outcome: store.OutcomeRefused}, len(cases))
	reasons := map[string]string{}
	for _, e := range evs {
		reasons[e.Path] = e.Reason
	}
	for _, c := range cases {
		if got := reasons["/"+c.name]; got != c.reason {
			t.Errorf("%s: audited reason %q, want %q", c.name, got, c.reason)
		}
	}
}

func TestLogoutEndsSession(t *testing.T) {
	g := startGateway(t, gwOpts{})
	u := g.user("out@example.com")
	token, s := g.session(u, time.Now())
	req, _ := http.NewRequest(http.MethodPost, g.url+"/.latchkey/logout", nil)
	req.Header.Set("Cookie", "latchkey_session="+token)
	resp := g.do(req)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/.latchkey/logout?signed_out=1" {
		t.Fatalf("logout: status %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if r, err := http.Get(g.url + "/.latchkey/logout?signed_out=1"); err != nil || r.StatusCode != 200 || !strings.Contains(readBody(t, r), "You have been signed out of 127.0.0.1") {
		t.Errorf("the sign-out confirmation: %v", err)
	}
	if r := g.get("/", cookie(token)); r.StatusCode != 401 {
		t.Errorf("after logout: status %d, want 401", r.StatusCode)
	}
	ss, err := g.st.Sessions(context.Background(), store.SessionFilter{UserID: u.ID})
	if err != nil || len(ss) != 1 || ss[0].ID != s.ID || ss[0].RevokedAt.IsZero() {
		t.Errorf("session after logout: %+v %v", ss, err)
	}
	// A cross-site form post cannot log anyone out.
	token2, _ := g.session(u, time.Now())
	req, _ = http.NewRequest(http.MethodPost, g.url+"/.latchkey/logout", nil)
	req.Header.Set("Cookie", "latchkey_session="+token2)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if r := g.do(req); r.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site logout: status %d, want 403", r.StatusCode)
	}
	if r := g.get("/", cookie(token2)); r.StatusCode != 200 {
		t.Errorf("session after refused cross-site logout: status %d, want 200", r.StatusCode)
	}
}

func TestReloadKeepsServingFromSameStore(t *testing.T) {
	g := startGateway(t, gwOpts{})
	u := g.user("reload@example.com")
	token, _ := g.session(u, time.Now())
	if r := g.get("/before", cookie(token)); r.StatusCode != 200 {
		t.Fatalf("before reload: %d", r.StatusCode)
	}
	// Reload with a different header name: same store, same session.
	for i := 0; i < 3; i++ {
		g.load(gwOpts{handler: "user_header X-Remote-User"})
	}
	if r := g.get("/after", cookie(token)); r.StatusCode != 200 {
		t.Fatalf("after reload: %d", r.StatusCode)
	}
	if got := g.upstream.last(t).Get("X-Remote-User"); got != fmt.Sprint(u.ID) {
		t.Errorf("after reload upstream X-Remote-User=%q, want %d", got, u.ID)
	}
	evs := g.waitAudit(store.AuditFilter{UserID: u.ID}, 2)
	paths := map[string]bool{}
	for _, e := range evs {
		paths[e.Path] = true
	}
	if !paths["/before"] || !paths["/after"] {
		t.Errorf("audit records across reload: %v", paths)
	}
}

func TestGracefulStopKeepsEveryAuditRecord(t *testing.T) {
	dir := t.TempDir()
	g := &gateway{t: t, dir: dir, db: filepath.Join(dir, "latchkey.db"), port: freePort(t), upstream: newUpstream(t)}
	g.url = fmt.Sprintf("http://127.0.0.1:%d", g.port)
	g.admin = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	// A flush interval longer than the test: only the stop can write them.
	g.load(gwOpts{global: "audit {\n flush_interval 1h\n batch_size 100000\n queue_size 100000\n }"})
	const n = 300
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if r := g.get(fmt.Sprintf("/stop/%d", i), nil); r.StatusCode != 401 {
				t.Errorf("request %d: %d", i, r.StatusCode)
			}
		}(i)
		if i%50 == 49 {
			wg.Wait()
		}
	}
	wg.Wait()
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), g.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, err := st.Audit(context.Background(), store.AuditFilter{Limit: 10 * n})
	if err != nil {
		t.Fatal(err)
	}
	// Identical refusals within a second are one record with a count.
	if attempts(evs) != n {
		t.Fatalf("after graceful stop: audit records of %d attempts on disk (%d records), want %d", attempts(evs), len(evs), n)
	}
}

func TestUnwritableStorePathFailsAtStart(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plain-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(file, "latchkey.db")
	cfg := fmt.Sprintf(`{
	admin off
	log {
		output discard
	}
	latchkey {
		storage sqlite %s
	}
}
http://127.0.0.1:%d {
	latchkey
	respond "secret"
}`, bad, freePort(t))
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = caddy.Load(adapted, true)
	if err == nil {
		caddy.Stop()
		t.Fatal("config with an unwritable store path loaded")
	}
	if !strings.Contains(err.Error(), bad) {
		t.Errorf("error %q does not name the path %s", err, bad)
	}
}

// getAtOnce sends n GETs of rawURL at the same moment, each on its own
// connection, and counts the statuses.
func getAtOnce(t *testing.T, rawURL string, n int) map[int]int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	start := make(chan struct{})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := client.Get(rawURL)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return statuses
}

// readBody reads and closes a response's body.
func readBody(t *testing.T, r *http.Response) string {
	t.Helper()
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
