package caddymodule_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"

	"github.com/latchkeyhq/latchkey/internal/link"
	"github.com/latchkeyhq/latchkey/internal/loadrig"
	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
	"github.com/latchkeyhq/latchkey/internal/ticket"
)

// throughputClients is about how many keep-alive clients RunParallel runs
// at once (rounded to a multiple of GOMAXPROCS).
const throughputClients = 16

// BenchmarkThroughCaddy measures what latchkey costs a request next to plain
// reverse_proxy, through a real in-process Caddy. One config, loaded once,
// has three sites on three loopback ports proxying to the same upstream: one
// is reverse_proxy alone, one latchkey in front of the same reverse_proxy,
// and one `latchkey { link }` in front of it too. Compare the req/s (or
// ns/op) of the sub-benchmarks:
//
//   - reverse_proxy: the baseline;
//   - latchkey_session: a valid session cookie, 200 from the upstream
//     (session check, identity headers, an audit record written to SQLite);
//   - latchkey_refused: no cookie, the gateway's 401 page (and its audit
//     record); the upstream is not reached;
//   - latchkey_link: every request carries the same request-mode signed link
//     with unlimited uses, 200 from the upstream: JWT verify, user lookup,
//     the use counted and its audit record written in one SQLite
//     transaction on the request path, then the upstream's status written
//     to that record (SetAuditStatus), a second write;
//   - latchkey_ticket: `latchkey { ticket bench run }` (throttle off: one
//     client IP sends all the load), every request with
//     its own fresh one-shot ticket (generated password) in the query, 200
//     from the upstream: ticket lookup, HMAC check, the claim and its audit
//     record in one SQLite transaction, the credentials stripped, the
//     ticket headers set, and the ticket stamped used in a second
//     transaction. The tickets are created through the store before the
//     timer starts, and all of them must be used afterwards.
//
// Client, Caddy and upstream share the process and its CPUs, so req/s is
// what the whole loop sustains and the ratio understates the gateway's
// share of Caddy's own work. The upstream answers a tiny body, so the
// per-request overhead is as visible as it gets. allocs/op count every
// goroutine in the process, client and upstream included.
func BenchmarkThroughCaddy(b *testing.B) {
	rig := startThroughputRig(b)
	b.Run("reverse_proxy", func(b *testing.B) {
		rig.run(b, rig.plain, http.StatusOK)
	})
	b.Run("latchkey_session", func(b *testing.B) {
		rig.run(b, rig.session, http.StatusOK)
	})
	b.Run("latchkey_refused", func(b *testing.B) {
		rig.run(b, rig.refused, http.StatusUnauthorized)
	})
	b.Run("latchkey_link", func(b *testing.B) {
		rig.run(b, rig.link, http.StatusOK)
	})
	b.Run("latchkey_ticket", func(b *testing.B) {
		rig.runTickets(b)
	})
}

// throughputRig is the Caddy, upstream and clients the sub-benchmarks
// share. Caddy's config is process-wide, so it is loaded once here and
// stopped once when the parent benchmark ends.
type throughputRig struct {
	parallelism int
	plain       *throughputTarget
	session     *throughputTarget
	refused     *throughputTarget
	link        *throughputTarget
	ticket      *throughputTarget

	// The tickets are created through a second handle on Caddy's database,
	// with the gateway's secret.
	st      store.Store
	tickets *ticket.Hasher

	// Requests that reached the upstream through the latchkey site without
	// the session's user in X-User-ID (a refused request reaching the
	// upstream counts too).
	badIdentity atomic.Int64
	// Requests that reached the upstream through the ticket site without
	// X-Ticket-ID, or with the credentials still in the query.
	badTicket atomic.Int64
}

type throughputTarget struct {
	url    string
	cookie string
	client *http.Client
}

func startThroughputRig(b *testing.B) *throughputRig {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	db := filepath.Join(dir, "latchkey.db")

	// The user and session go in before Caddy opens the store, through the
	// same store code and secret the gateway uses.
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	u := &store.User{Email: "bench@example.com", Active: true}
	if err := st.CreateUser(ctx, u); err != nil {
		st.Close()
		b.Fatal(err)
	}
	plainPort, gatePort, linkPort, ticketPort := throughputFreePort(b), throughputFreePort(b), throughputFreePort(b), throughputFreePort(b)
	token, _, err := session.New(st, []byte(testSecret), session.Config{Site: "127.0.0.1"}, nil, nil).Start(ctx, u.ID, "bench", "", "127.0.0.1", "go-bench")
	var linkURL string
	if err == nil {
		linkURL, err = benchLink(ctx, st, []byte(testSecret), u.ID, fmt.Sprintf("http://127.0.0.1:%d/latchkey/link?x=1", linkPort))
	}
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}

	rig := &throughputRig{parallelism: max(1, throughputClients/runtime.GOMAXPROCS(0))}
	clients := rig.parallelism * runtime.GOMAXPROCS(0)
	wantUID := strconv.FormatInt(u.ID, 10)
	body := []byte("hello from the upstream\n")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/latchkey/") && r.Header.Get("X-User-ID") != wantUID {
			rig.badIdentity.Add(1)
		}
		if strings.HasPrefix(r.URL.Path, "/ticket/") && (r.Header.Get("X-Ticket-ID") == "" || r.URL.RawQuery != "") {
			rig.badTicket.Add(1)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(body)
	}))
	b.Cleanup(up.Close)

	upstreamAddr := strings.TrimPrefix(up.URL, "http://")
	cfg := loadrig.Caddyfile(dir, db, testSecret, upstreamAddr, clients, []loadrig.Site{
		{Port: plainPort},
		{Port: gatePort, Latchkey: "latchkey"},
		{Port: linkPort, Latchkey: "latchkey {\n\t\tlink\n\t}"},
		// One client IP sends every request: the per-IP throttle, which
		// holds attempts in flight, would turn most of the load away.
		{Port: ticketPort, Latchkey: "latchkey {\n\t\tticket bench run\n\t\ttickets {\n\t\t\tthrottle 0 1m\n\t\t}\n\t}"},
	})
	warnings, err := loadrig.Load(cfg)
	for _, w := range warnings {
		b.Logf("caddyfile warning: %s", w.Message)
	}
	if err != nil {
		b.Fatal(err)
	}
	// Registered after up.Close, so it runs first: Caddy lets go of its
	// upstream connections before the upstream shuts down.
	b.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			b.Errorf("stopping caddy: %v", err)
		}
	})

	newTarget := func(rawURL, cookie string) *throughputTarget {
		tr := &http.Transport{
			Proxy:               nil, // loopback only, whatever HTTP_PROXY says
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        clients,
			MaxIdleConnsPerHost: clients, // the default of 2 would reconnect all the time
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		}
		b.Cleanup(tr.CloseIdleConnections)
		return &throughputTarget{
			url:    rawURL,
			cookie: cookie,
			client: &http.Client{
				Transport:     tr,
				Timeout:       10 * time.Second,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			},
		}
	}
	site := func(port int, path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", port, path) }
	rig.plain = newTarget(site(plainPort, "/plain/page"), "")
	rig.session = newTarget(site(gatePort, "/latchkey/page"), "latchkey_session="+token)
	rig.refused = newTarget(site(gatePort, "/latchkey/refused"), "")
	rig.link = newTarget(linkURL, "")
	rig.ticket = newTarget(site(ticketPort, "/ticket/page"), "")

	// Opened after Caddy, and closed after Caddy stops (cleanups run last
	// in, first out).
	if rig.st, err = sqlite.Open(ctx, db); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rig.st.Close() })
	// Only the keyed hash of generated passwords is used, which depends on
	// the secret alone.
	if rig.tickets, err = ticket.NewHasher([]byte(testSecret), ticket.DefaultArgon2Params); err != nil {
		b.Fatal(err)
	}

	// Open every client's connections (and fill the session cache) before
	// any timing, so the first measured requests do not pay for dials.
	for _, t := range []struct {
		tg   *throughputTarget
		want int
	}{{rig.plain, 200}, {rig.session, 200}, {rig.refused, 401}, {rig.link, 200}} {
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for range clients {
			wg.Go(func() {
				if err := t.tg.do(t.tg.newRequest(), t.want); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			b.Fatalf("warm-up: %v", err)
		}
	}
	if n := rig.badIdentity.Load(); n != 0 {
		b.Fatalf("warm-up: %d requests reached the upstream through latchkey without X-User-ID %s", n, wantUID)
	}
	// The ticket site's clients, one fresh ticket each.
	queries, uuids := rig.makeTickets(b, clients)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Go(func() {
			req := rig.ticket.newRequest()
			req.URL.RawQuery = queries[i]
			if err := rig.ticket.do(req, http.StatusOK); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatalf("warm-up: %v", err)
	}
	rig.checkUsed(b, uuids)
	if n := rig.badTicket.Load(); n != 0 {
		b.Fatalf("warm-up: %d requests reached the upstream through the ticket site without X-Ticket-ID or with credentials", n)
	}
	return rig
}

// makeTickets creates n bench/run tickets with generated passwords, as
// `caddy latchkey tickets create` does, and returns each one's query
// (uuid and password) and uuid.
func (rig *throughputRig) makeTickets(b *testing.B, n int) (queries, uuids []string) {
	b.Helper()
	ctx := context.Background()
	queries, uuids = make([]string, n), make([]string, n)
	now := time.Now()
	for i := range n {
		pw, err := ticket.GeneratePassword()
		if err != nil {
			b.Fatal(err)
		}
		hash, err := rig.tickets.HashGenerated(pw)
		if err != nil {
			b.Fatal(err)
		}
		t := &store.Ticket{UUID: ticket.NewUUID(), Place: "bench", Purpose: "run", PasswordHash: hash,
			PasswordKind: ticket.KindKeyed, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := rig.st.CreateTicket(ctx, t); err != nil {
			b.Fatal(err)
		}
		queries[i] = url.Values{"uuid": {t.UUID}, "password": {pw}}.Encode()
		uuids[i] = t.UUID
	}
	return queries, uuids
}

// checkUsed fails b unless every ticket is used. The client can have the
// whole response before the gateway has stamped the ticket, so one still
// in use gets a few seconds.
func (rig *throughputRig) checkUsed(b *testing.B, uuids []string) {
	b.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(5 * time.Second)
	for _, id := range uuids {
		for {
			t, err := rig.st.Ticket(ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			if t.State == store.TicketUsed {
				break
			}
			if t.State != store.TicketInUse || time.Now().After(deadline) {
				b.Fatalf("ticket %s is %s after its request, want %s", id, t.State, store.TicketUsed)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (t *throughputTarget) newRequest() *http.Request {
	req, err := http.NewRequest(http.MethodGet, t.url, nil)
	if err != nil {
		panic(err)
	}
	req.Header.Set("User-Agent", "latchkey-bench/1")
	if t.cookie != "" {
		req.Header.Set("Cookie", t.cookie)
	}
	return req
}

// do sends req (which may be reused once this returns) and reads the whole
// body, so that the connection goes back to the pool.
func (t *throughputTarget) do(req *http.Request, want int) error {
	resp, err := t.client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("GET %s: reading body: %w", t.url, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("GET %s: status %d, want %d", t.url, resp.StatusCode, want)
	}
	return nil
}

func (rig *throughputRig) run(b *testing.B, t *throughputTarget, want int) {
	var failed atomic.Int64
	var first sync.Once
	var firstErr error
	bad := rig.badIdentity.Load()
	b.SetParallelism(rig.parallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := t.newRequest()
		for pb.Next() {
			if err := t.do(req, want); err != nil {
				failed.Add(1)
				first.Do(func() { firstErr = err })
			}
		}
	})
	b.StopTimer()
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "req/s")
	}
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed; first: %v", n, b.N, firstErr)
	}
	if n := rig.badIdentity.Load() - bad; n != 0 {
		b.Fatalf("%d requests reached the upstream through latchkey without the session's X-User-ID", n)
	}
}

// runTickets is run for the ticket site: each request takes the next of b.N
// tickets made before the timer starts.
func (rig *throughputRig) runTickets(b *testing.B) {
	queries, uuids := rig.makeTickets(b, b.N)
	t := rig.ticket
	var next, failed atomic.Int64
	var first sync.Once
	var firstErr error
	bad := rig.badTicket.Load()
	b.SetParallelism(rig.parallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := t.newRequest()
		for pb.Next() {
			req.URL.RawQuery = queries[next.Add(1)-1]
			if err := t.do(req, http.StatusOK); err != nil {
				failed.Add(1)
				first.Do(func() { firstErr = err })
			}
		}
	})
	b.StopTimer()
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "req/s")
	}
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed; first: %v", n, b.N, firstErr)
	}
	if n := rig.badTicket.Load() - bad; n != 0 {
		b.Fatalf("%d requests reached the upstream through the ticket site without X-Ticket-ID or with credentials", n)
	}
	rig.checkUsed(b, uuids)
}

// throughputFreePort is freePort for benchmarks.
func throughputFreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// benchLink mints a request-mode link with unlimited uses for user to
// rawURL, as `caddy latchkey links create --max-uses 0` does: signed with
// the gateway's default key (HS256 derived from the secret, kid "default")
// and recorded in the store. It returns the link's URL.
func benchLink(ctx context.Context, st store.Store, secret []byte, user int64, rawURL string) (string, error) {
	ring, err := link.NewKeyRing(link.HS256Key(secret, "default"))
	if err != nil {
		return "", err
	}
	target, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	now := time.Now()
	c := &link.Claims{Target: link.TargetOf(target), MaxUses: 0, Mode: link.ModeRequest}
	c.Subject = strconv.FormatInt(user, 10)
	c.ID = link.NewJTI()
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(24 * time.Hour))
	token, err := ring.Sign(c)
	if err != nil {
		return "", err
	}
	if err := st.CreateLink(ctx, &store.Link{
		JTI: c.ID, Site: "127.0.0.1", UserID: user, Target: c.Target, Mode: c.Mode, MaxUses: 0,
		CreatedAt: now, CreatedBy: "bench", ExpiresAt: c.ExpiresAt.Time,
	}); err != nil {
		return "", err
	}
	return rawURL + "&token=" + token, nil
}
