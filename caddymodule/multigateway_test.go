package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/latchkeyhq/latchkey/caddymodule"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/postgres"
	"github.com/latchkeyhq/latchkey/internal/store/postgres/pgtest"
)

// Two Caddy instances cannot run in one process (caddy.Load is global), so
// the gateways of these tests are separate processes: the test binary
// itself, run again with envCaddyChild set, is `caddy` with the standard
// modules and latchkey (what cmd/caddy builds), and needs no build step.
const envCaddyChild = "LATCHKEY_TEST_CADDY_CHILD"

func init() {
	if os.Getenv(envCaddyChild) != "1" {
		return
	}
	caddycmd.Main() // os.Args: <test binary> run --config … --adapter caddyfile
	os.Exit(0)
}

// The site every gateway serves; requests name it in Host.
const mgHost = "app.test"

// mgSecret is the secret the gateways share (storage postgres needs one).
const mgSecret = "multi-gateway-test-secret-0123456789abcdef"

// mgUpstream is the protected app: it counts what reaches it; paths under
// /slow/ wait until released.
type mgUpstream struct {
	srv     *http.Server
	url     string
	hits    atomic.Int64
	arrived chan string
	release chan struct{}
}

func newMGUpstream(t *testing.T) *mgUpstream {
	u := &mgUpstream{arrived: make(chan string, 16), release: make(chan struct{})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.url = "http://" + l.Addr().String()
	u.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		if strings.Contains(r.URL.Path, "/slow") {
			u.arrived <- r.URL.Path
			<-u.release
		}
		fmt.Fprintf(w, "upstream: user=%q ticket=%q", r.Header.Get("X-User-ID"), r.Header.Get("X-Ticket-ID"))
	})}
	go u.srv.Serve(l)
	t.Cleanup(func() { u.srv.Close() })
	return u
}

// gwProc is one gateway: a Caddy process of its own on the shared store.
type gwProc struct {
	t      *testing.T
	name   string
	url    string // http://127.0.0.1:<port>
	config string // its Caddyfile, which the CLI reads too
	log    string
	cmd    *exec.Cmd
	done   chan struct{}
}

// mgCaddyfile is a gateway on storage postgres ({env.LATCHKEY_TEST_MG_DSN}):
// /louvre takes tickets, everything else sessions, invite codes and links.
func mgCaddyfile(dir string, port int, upstream, extraTickets string) string {
	return fmt.Sprintf(`{
	admin off
	auto_https off
	storage file_system %[1]s
	log {
		output file %[1]s/caddy.log
		level INFO
	}
	latchkey {
		storage postgres {env.LATCHKEY_TEST_MG_DSN}
		secret %[4]s
		audit {
			flush_interval 10ms
		}
	}
}

http://%[5]s:%[2]d {
	bind 127.0.0.1
	handle /louvre* {
		latchkey {
			ticket louvre visit
			tickets {
				%[6]s
			}
		}
		reverse_proxy %[3]s
	}
	handle {
		latchkey {
			invite {
				throttle 10 1m
			}
			link {
				confirm off
			}
		}
		reverse_proxy %[3]s
	}
}
`, dir, port, strings.TrimPrefix(upstream, "http://"), mgSecret, mgHost, extraTickets)
}

// startGatewayProc starts a gateway process on the store dsn names and
// waits until it answers.
func startGatewayProc(t *testing.T, name, dsn string, up *mgUpstream, extraTickets string) *gwProc {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	g := &gwProc{t: t, name: name, url: fmt.Sprintf("http://127.0.0.1:%d", port), config: filepath.Join(dir, "Caddyfile"),
		log: filepath.Join(dir, "caddy.log"), done: make(chan struct{})}
	writeFile(t, g.config, mgCaddyfile(dir, port, up.url, extraTickets))
	g.cmd = exec.Command(os.Args[0], "run", "--config", g.config, "--adapter", "caddyfile")
	g.cmd.Env = append(os.Environ(), envCaddyChild+"=1", "LATCHKEY_TEST_MG_DSN="+dsn,
		"XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	g.cmd.Stdout, g.cmd.Stderr = out, out
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.cmd.Wait(); out.Close(); close(g.done) }()
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			g.dumpLog()
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, g.url+"/.latchkey/login", nil)
		req.Host = mgHost
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			return g
		}
		select {
		case <-g.done:
			g.dumpLog()
			t.Fatalf("gateway %s exited at start", name)
		default:
		}
		if time.Now().After(deadline) {
			g.dumpLog()
			t.Fatalf("gateway %s did not answer within 20s: %v", name, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (g *gwProc) stop() {
	select {
	case <-g.done:
		return
	default:
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
		g.cmd.Process.Kill()
		<-g.done
	}
}

func (g *gwProc) dumpLog() {
	for _, p := range []string{filepath.Join(filepath.Dir(g.log), "stdout.log"), g.log} {
		b, err := os.ReadFile(p)
		if err != nil {
			g.t.Logf("gateway %s: %v", g.name, err)
			continue
		}
		if len(b) > 6000 {
			b = b[len(b)-6000:]
		}
		g.t.Logf("gateway %s, %s:\n%s", g.name, filepath.Base(p), b)
	}
}

// mgClient sends many requests at once, each on a connection of its own.
var mgClient = &http.Client{
	Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 0},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
	Timeout: 30 * time.Second,
}

// do sends a request to the gateway as if to the site's host.
func (g *gwProc) do(method, pathQuery string, body string, hdr map[string]string) (*http.Response, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, g.url+pathQuery, r)
	if err != nil {
		return nil, err
	}
	req.Host = mgHost
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := mgClient.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

func (g *gwProc) must(method, pathQuery, body string, hdr map[string]string) *http.Response {
	g.t.Helper()
	resp, err := g.do(method, pathQuery, body, hdr)
	if err != nil {
		g.t.Fatalf("%s %s on %s: %v", method, pathQuery, g.name, err)
	}
	return resp
}

// cli runs `caddy latchkey …` on the gateway's config, in this process.
func (g *gwProc) cli(args ...string) string {
	g.t.Helper()
	out, err := caddymodule.RunCLI(append(args, "--config", g.config, "--adapter", "caddyfile")...)
	if err != nil {
		g.t.Fatalf("caddy latchkey %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// twoGateways starts two gateways on one new PostgreSQL database.
func twoGateways(t *testing.T) (a, b *gwProc, up *mgUpstream, dsn string) {
	t.Helper()
	dsn = pgtest.DSN(t)
	t.Setenv("LATCHKEY_TEST_MG_DSN", dsn) // for the CLI run in this process
	up = newMGUpstream(t)
	a = startGatewayProc(t, "A", dsn, up, "")
	b = startGatewayProc(t, "B", dsn, up, "")
	return a, b, up, dsn
}

// splitAtOnce sends n requests at the same moment, alternating between the
// gateways, and counts the statuses.
func splitAtOnce(t *testing.T, gws []*gwProc, n int, method, pathQuery string) map[int]int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := gws[i%len(gws)].do(method, pathQuery, "", nil)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			statuses[resp.StatusCode]++
		}()
	}
	close(start)
	wg.Wait()
	return statuses
}

func openPG(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestTwoGatewaysOneTicket: 200 requests with one ticket, split across two
// gateways on one database, at once: exactly one reaches the upstream.
func TestTwoGatewaysOneTicket(t *testing.T) {
	a, b, up, dsn := twoGateways(t)
	var tks []createdTicket
	if err := json.Unmarshal([]byte(a.cli("tickets", "create", "--place", "louvre", "--purpose", "visit", "--json")), &tks); err != nil || len(tks) != 1 {
		t.Fatalf("tickets create: %v", err)
	}
	q := "/louvre?" + url.Values{"uuid": {tks[0].UUID}, "password": {tks[0].Password}}.Encode()
	const n = 200
	start := time.Now()
	statuses := splitAtOnce(t, []*gwProc{a, b}, n, http.MethodGet, q)
	t.Logf("%d requests in %v: %v", n, time.Since(start), statuses)
	refused := statuses[http.StatusConflict] + statuses[http.StatusGone] + statuses[http.StatusTooManyRequests]
	if statuses[http.StatusOK] != 1 || refused != n-1 || up.hits.Load() != 1 {
		t.Fatalf("statuses %v, upstream saw %d; want exactly one 200 and the rest 409, 410 or 429", statuses, up.hits.Load())
	}
	tk, err := openPG(t, dsn).Ticket(t.Context(), tks[0].UUID)
	if err != nil || tk.State != store.TicketUsed || tk.UseStatus != 200 {
		t.Errorf("ticket after the burst: %+v %v", tk, err)
	}
}

// TestTwoGatewaysLinkMaxUses: a max-uses 3 link used at once through two
// gateways gives exactly 3 upstream requests.
func TestTwoGatewaysLinkMaxUses(t *testing.T) {
	a, b, up, dsn := twoGateways(t)
	a.cli("users", "add", "--email", "leonard@example.com", "--site", mgHost)
	var l mintedLink
	out := a.cli("links", "create", "--user", "leonard@example.com", "--url", "http://"+mgHost+"/unsubscribe",
		"--max-uses", "3", "--mode", "request", "--json")
	if err := json.Unmarshal([]byte(out), &l); err != nil || l.URL == "" {
		t.Fatalf("links create: %q %v", out, err)
	}
	u, err := url.Parse(l.URL)
	if err != nil {
		t.Fatal(err)
	}
	const n = 60
	statuses := splitAtOnce(t, []*gwProc{a, b}, n, http.MethodGet, u.RequestURI())
	t.Logf("statuses %v", statuses)
	if statuses[http.StatusOK] != 3 || statuses[http.StatusGone]+statuses[http.StatusTooManyRequests] != n-3 || up.hits.Load() != 3 {
		t.Fatalf("statuses %v, upstream saw %d; want exactly three 200 and the rest 410 or 429", statuses, up.hits.Load())
	}
	row, err := openPG(t, dsn).Link(t.Context(), l.JTI)
	if err != nil || row.Uses != 3 {
		t.Errorf("link after the burst: %+v %v", row, err)
	}
}

// TestTwoGatewaysShareThrottles: wrong invite codes alternated between two
// gateways count against one limit: with `throttle 10 1m`, after ten wrong
// codes in all the next attempt is 429 on either gateway.
func TestTwoGatewaysShareThrottles(t *testing.T) {
	a, b, up, _ := twoGateways(t)
	var inv createdInvite
	if err := json.Unmarshal([]byte(a.cli("invites", "create", "--email", "luke@example.com", "--no-send", "--json")), &inv); err != nil || inv.Code == "" {
		t.Fatalf("invites create: %v", err)
	}
	gws := []*gwProc{a, b}
	for i := range 10 {
		code := fmt.Sprintf("WRONGX%03d", i)
		resp := gws[i%2].must(http.MethodPost, "/.latchkey/login", url.Values{"code": {code}}.Encode(), nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong code %d on %s: %d, want 401", i+1, gws[i%2].name, resp.StatusCode)
		}
	}
	// The 11th attempt, on either gateway, is throttled, even with the
	// right code.
	for _, g := range gws {
		resp := g.must(http.MethodPost, "/.latchkey/login", url.Values{"code": {inv.Code}}.Encode(), nil)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("after 10 wrong codes across both gateways, %s answered %d, want 429", g.name, resp.StatusCode)
		}
	}
	if up.hits.Load() != 0 {
		t.Errorf("the upstream got %d requests", up.hits.Load())
	}
}

// loginWithInvite signs in on g with a new invite's code and returns the
// session cookie's value and the session's id.
func loginWithInvite(t *testing.T, g *gwProc, email string) (cookieValue string) {
	t.Helper()
	var inv createdInvite
	if err := json.Unmarshal([]byte(g.cli("invites", "create", "--email", email, "--no-send", "--json")), &inv); err != nil || inv.Code == "" {
		t.Fatalf("invites create: %v", err)
	}
	resp := g.must(http.MethodPost, "/.latchkey/login", url.Values{"code": {inv.Code}}.Encode(), nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login with the code on %s: %d", g.name, resp.StatusCode)
	}
	return sessionCookie(t, resp)
}

// waitRefused polls g with the session cookie until it is refused (401),
// for up to 2s, and returns how long that took.
func waitRefused(t *testing.T, g *gwProc, cookieValue string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		resp := g.must(http.MethodGet, "/private", "", map[string]string{"Cookie": "latchkey_session=" + cookieValue})
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			return time.Since(start)
		case http.StatusOK:
		default:
			t.Fatalf("%s answered %d to a session being revoked", g.name, resp.StatusCode)
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("%s still accepts a session revoked %v ago", g.name, time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTwoGatewaysSessionRevocation: a session ended through one gateway (its
// logout) or the CLI is refused by the other within a second, although
// that one had it in its cache.
func TestTwoGatewaysSessionRevocation(t *testing.T) {
	a, b, _, dsn := twoGateways(t)
	ok := func(g *gwProc, c string) {
		t.Helper()
		if resp := g.must(http.MethodGet, "/private", "", map[string]string{"Cookie": "latchkey_session=" + c}); resp.StatusCode != http.StatusOK {
			t.Fatalf("session on %s: %d, want 200", g.name, resp.StatusCode)
		}
	}

	// Logout on A.
	c1 := loginWithInvite(t, a, "ada@example.com")
	ok(a, c1)
	ok(b, c1) // now in B's cache
	ok(b, c1)
	resp := a.must(http.MethodPost, "/.latchkey/logout", "", map[string]string{"Cookie": "latchkey_session=" + c1})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout on A: %d", resp.StatusCode)
	}
	if resp := a.must(http.MethodGet, "/private", "", map[string]string{"Cookie": "latchkey_session=" + c1}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("A after its own logout: %d, want 401", resp.StatusCode)
	}
	t.Logf("B refused the session logged out on A after %v", waitRefused(t, b, c1))

	// The CLI, on the config: both gateways had it cached.
	c2 := loginWithInvite(t, b, "grace@example.com")
	ok(a, c2)
	ok(b, c2)
	ss, err := openPG(t, dsn).Sessions(t.Context(), store.SessionFilter{ActiveOnly: true, Now: time.Now()})
	if err != nil || len(ss) != 1 {
		t.Fatalf("active sessions: %v %v", ss, err)
	}
	a.cli("sessions", "revoke", ss[0].ID)
	for _, g := range []*gwProc{a, b} {
		t.Logf("%s refused the session revoked by the CLI after %v", g.name, waitRefused(t, g, c2))
	}
}

// outageGateway is a gateway on a PostgreSQL cluster of the test's own,
// which the test stops and starts.
func outageGateway(t *testing.T) (*gwProc, *mgUpstream, *pgtest.Cluster, string) {
	t.Helper()
	cluster := pgtest.StartCluster(t)
	dsn := cluster.DSN()
	t.Setenv("LATCHKEY_TEST_MG_DSN", dsn)
	up := newMGUpstream(t)
	// A short lease, so that a claim the database lost lapses within the
	// test.
	g := startGatewayProc(t, "A", dsn, up, "lease 2s")
	return g, up, cluster, dsn
}

func ticketQuery(tk createdTicket, path string) string {
	return path + "?" + url.Values{"uuid": {tk.UUID}, "password": {tk.Password}}.Encode()
}

func (g *gwProc) createTickets(n int) []createdTicket {
	g.t.Helper()
	var tks []createdTicket
	out := g.cli("tickets", "create", "--place", "louvre", "--purpose", "visit", "--count", fmt.Sprint(n), "--json")
	if err := json.Unmarshal([]byte(out), &tks); err != nil || len(tks) != n {
		g.t.Fatalf("tickets create: %q %v", out, err)
	}
	return tks
}

// TestPostgresDownFailsClosed stops PostgreSQL under a running gateway, with
// a request in flight: every request carrying a credential gets 503 and
// uses nothing, and once PostgreSQL is back the gateway serves again by
// itself, without a restart.
func TestPostgresDownFailsClosed(t *testing.T) {
	g, up, cluster, _ := outageGateway(t)
	tks := g.createTickets(3)
	g.cli("users", "add", "--email", "leonard@example.com", "--site", mgHost)
	var l mintedLink
	if err := json.Unmarshal([]byte(g.cli("links", "create", "--user", "leonard@example.com", "--url", "http://"+mgHost+"/unsubscribe",
		"--max-uses", "2", "--mode", "request", "--json")), &l); err != nil {
		t.Fatal(err)
	}
	lu, _ := url.Parse(l.URL)
	cookie := loginWithInvite(t, g, "ada@example.com")
	withCookie := map[string]string{"Cookie": "latchkey_session=" + cookie}
	var inv createdInvite
	if err := json.Unmarshal([]byte(g.cli("invites", "create", "--email", "han@example.com", "--no-send", "--json")), &inv); err != nil {
		t.Fatal(err)
	}
	if r := g.must(http.MethodGet, "/private", "", withCookie); r.StatusCode != 200 {
		t.Fatalf("session before the outage: %d", r.StatusCode)
	}
	if r := g.must(http.MethodGet, ticketQuery(tks[0], "/louvre"), "", nil); r.StatusCode != 200 {
		t.Fatalf("ticket before the outage: %d", r.StatusCode)
	}

	// A session request in flight when PostgreSQL stops.
	inflight := make(chan int, 1)
	go func() {
		resp, err := g.do(http.MethodGet, "/slow", "", withCookie)
		if err != nil {
			t.Errorf("in-flight request: %v", err)
			inflight <- 0
			return
		}
		inflight <- resp.StatusCode
	}()
	select {
	case <-up.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the in-flight request did not reach the upstream")
	}
	cluster.Stop()
	t.Log("PostgreSQL stopped")
	close(up.release)
	if st := <-inflight; st != 200 {
		t.Errorf("request in flight when PostgreSQL stopped: %d, want the upstream's 200", st)
	}
	hitsBefore := up.hits.Load()

	// The session cache stops answering from memory once it has not read
	// the store's revocations for a second (README: a gateway that cannot
	// read the fan-out for a second asks the store, and fails closed).
	time.Sleep(1500 * time.Millisecond)
	down := []struct {
		name, method, path, body string
		hdr                      map[string]string
	}{
		{"ticket", http.MethodGet, ticketQuery(tks[2], "/louvre"), "", nil},
		{"used ticket", http.MethodGet, ticketQuery(tks[0], "/louvre"), "", nil},
		{"link", http.MethodGet, lu.RequestURI(), "", nil},
		{"session cookie", http.MethodGet, "/private", "", withCookie},
		{"invite code", http.MethodPost, "/.latchkey/login", url.Values{"code": {inv.Code}}.Encode(), nil},
	}
	for _, rq := range down {
		for range 2 {
			r := g.must(rq.method, rq.path, rq.body, rq.hdr)
			if r.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("%s while PostgreSQL is down: %d, want 503", rq.name, r.StatusCode)
			}
		}
	}
	if n := up.hits.Load() - hitsBefore; n != 0 {
		t.Errorf("the upstream got %d requests while PostgreSQL was down", n)
	}

	cluster.Start()
	t.Log("PostgreSQL started again")
	// Service resumes without restarting Caddy: the session (which uses
	// nothing) is accepted again.
	resumed := time.Now()
	for {
		r := g.must(http.MethodGet, "/private", "", withCookie)
		if r.StatusCode == http.StatusOK {
			break
		}
		if r.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("session after PostgreSQL returned: %d", r.StatusCode)
		}
		if time.Since(resumed) > 10*time.Second {
			t.Fatal("the gateway did not serve again within 10s of PostgreSQL's return")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("served again %v after PostgreSQL returned", time.Since(resumed))

	// What was refused while the database was down was not used.
	if r := g.must(http.MethodGet, ticketQuery(tks[2], "/louvre"), "", nil); r.StatusCode != 200 {
		t.Errorf("ticket tried during the outage, after it: %d, want 200", r.StatusCode)
	}
	if r := g.must(http.MethodGet, ticketQuery(tks[2], "/louvre"), "", nil); r.StatusCode != http.StatusGone {
		t.Errorf("that ticket used again: %d, want 410", r.StatusCode)
	}
	if r := g.must(http.MethodGet, ticketQuery(tks[0], "/louvre"), "", nil); r.StatusCode != http.StatusGone {
		t.Errorf("the ticket used before the outage: %d, want 410", r.StatusCode)
	}
	for i := range 2 {
		if r := g.must(http.MethodGet, lu.RequestURI(), "", nil); r.StatusCode != 200 {
			t.Errorf("max-uses 2 link tried during the outage, use %d after it: %d, want 200", i+1, r.StatusCode)
		}
	}
	if r := g.must(http.MethodGet, lu.RequestURI(), "", nil); r.StatusCode != http.StatusGone {
		t.Errorf("that link's third use: %d, want 410", r.StatusCode)
	}
	if r := g.must(http.MethodPost, "/.latchkey/login", url.Values{"code": {inv.Code}}.Encode(), nil); r.StatusCode != http.StatusSeeOther {
		t.Errorf("invite code tried during the outage, after it: %d, want 303", r.StatusCode)
	}
	// And the CLI reads the store again.
	if out := g.cli("tickets", "list", "--state", "used"); !strings.Contains(out, tks[0].UUID) || !strings.Contains(out, tks[2].UUID) {
		t.Errorf("tickets list after the outage:\n%s", out)
	}
}

// TestPostgresDownInFlightTicketUsedOnce: a ticket whose request was in
// flight when PostgreSQL stopped — claimed, and its upstream answered 200
// while the database was down — was used once: it must not be usable
// again once PostgreSQL is back, not even after its claim's lease lapsed.
func TestPostgresDownInFlightTicketUsedOnce(t *testing.T) {
	g, up, cluster, dsn := outageGateway(t)
	tk := g.createTickets(1)[0]
	inflight := make(chan int, 1)
	go func() {
		resp, err := g.do(http.MethodGet, ticketQuery(tk, "/louvre/slow"), "", nil)
		if err != nil {
			t.Errorf("in-flight ticket request: %v", err)
			inflight <- 0
			return
		}
		inflight <- resp.StatusCode
	}()
	select {
	case <-up.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the in-flight ticket request did not reach the upstream")
	}
	cluster.Stop()
	close(up.release) // the upstream answers while the database is down
	if st := <-inflight; st != 200 {
		t.Errorf("in-flight ticket request: %d, want the upstream's 200", st)
	}
	time.Sleep(500 * time.Millisecond)
	cluster.Start()
	// Past the claim's 2s lease.
	time.Sleep(2500 * time.Millisecond)
	r := g.must(http.MethodGet, ticketQuery(tk, "/louvre"), "", nil)
	row, err := openPG(t, dsn).Ticket(t.Context(), tk.UUID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second use: %d; the ticket now: state %s, used %v, use status %d; the upstream got %d requests", r.StatusCode, row.State, row.UsedAt, row.UseStatus, up.hits.Load())
	if r.StatusCode == http.StatusOK || up.hits.Load() != 1 {
		t.Errorf("the ticket whose upstream answered 200 during the outage was used a second time: %d, upstream got %d requests", r.StatusCode, up.hits.Load())
	}
}

// TestTwoGatewaysLinkRevocation: an unlimited request-mode link, which both
// gateways serve from memory (its verified token, its row and its user's),
// is refused by both within a second of being revoked through the CLI; so
// is another after `links revoke --user`. Every use either served is
// counted on the link's row.
func TestTwoGatewaysLinkRevocation(t *testing.T) {
	a, b, up, dsn := twoGateways(t)
	a.cli("users", "add", "--email", "ines@example.com", "--site", mgHost)
	mint := func() (mintedLink, string) {
		var l mintedLink
		out := a.cli("links", "create", "--user", "ines@example.com", "--url", "http://"+mgHost+"/newsletter",
			"--mode", "request", "--max-uses", "0", "--json")
		if err := json.Unmarshal([]byte(out), &l); err != nil || l.URL == "" {
			t.Fatalf("links create: %q %v", out, err)
		}
		u, err := url.Parse(l.URL)
		if err != nil {
			t.Fatal(err)
		}
		return l, u.RequestURI()
	}
	served := 0
	use := func(g *gwProc, uri string) int {
		resp := g.must(http.MethodGet, uri, "", nil)
		if resp.StatusCode == http.StatusOK {
			served++
		}
		return resp.StatusCode
	}
	waitGone := func(g *gwProc, uri string) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			switch st := use(g, uri); st {
			case http.StatusGone:
				return time.Since(start)
			case http.StatusOK:
			default:
				t.Fatalf("%s answered %d to a link being revoked", g.name, st)
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("%s still accepts a link revoked %v ago", g.name, time.Since(start))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	l1, uri1 := mint()
	l2, uri2 := mint()
	for range 3 {
		for _, g := range []*gwProc{a, b} {
			for _, uri := range []string{uri1, uri2} {
				if st := use(g, uri); st != http.StatusOK {
					t.Fatalf("unlimited link on %s: %d, want 200", g.name, st)
				}
			}
		}
	}
	a.cli("links", "revoke", l1.JTI)
	for _, g := range []*gwProc{a, b} {
		t.Logf("%s refused the link revoked by the CLI after %v", g.name, waitGone(g, uri1))
	}
	if st := use(b, uri2); st != http.StatusOK {
		t.Fatalf("the other link after revoking one: %d, want 200", st)
	}
	a.cli("links", "revoke", "--user", "ines@example.com")
	for _, g := range []*gwProc{a, b} {
		t.Logf("%s refused the user's other link after %v", g.name, waitGone(g, uri2))
	}
	if int(up.hits.Load()) != served {
		t.Errorf("upstream saw %d requests, the gateways answered 200 to %d", up.hits.Load(), served)
	}
	// The uses are counted by the audit writers' batches (10ms here).
	pg := openPG(t, dsn)
	deadline := time.Now().Add(5 * time.Second)
	for {
		r1, err1 := pg.Link(t.Context(), l1.JTI)
		r2, err2 := pg.Link(t.Context(), l2.JTI)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if r1.Uses+r2.Uses == served {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("links count %d+%d uses, the gateways served %d", r1.Uses, r2.Uses, served)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
