package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

type createdTicket struct {
	UUID     string `json:"uuid"`
	Password string `json:"password"`
	URL      string `json:"url"`
}

func (g *gateway) createTickets(o gwOpts, args ...string) []createdTicket {
	g.t.Helper()
	out := g.cli(o, append([]string{"tickets", "create", "--json"}, args...)...)
	var ts []createdTicket
	if err := json.Unmarshal([]byte(out), &ts); err != nil || len(ts) == 0 {
		g.t.Fatalf("tickets create output %q: %v", out, err)
	}
	return ts
}

func (g *gateway) lastURI() string {
	g.upstream.mu.Lock()
	defer g.upstream.mu.Unlock()
	return g.upstream.uris[len(g.upstream.uris)-1]
}

func TestTicketGreetsLeonardOnce(t *testing.T) {
	o := gwOpts{handler: "ticket louvre visit"}
	g := startGateway(t, o)
	tk := g.createTickets(o, "--place", "louvre", "--purpose", "visit", "--data", `{"first_name":"Léonard"}`, "--url", g.url+"/louvre?lang=fr")[0]
	if !strings.Contains(tk.URL, "uuid="+tk.UUID) || !strings.Contains(tk.URL, "password=") {
		t.Fatalf("ticket URL %q", tk.URL)
	}
	resp := g.send(http.MethodGet, tk.URL, "", map[string]string{"X-Ticket-Data": `{"first_name":"Mallory"}`, "X-Ticket-Place": "orsay"})
	if resp.StatusCode != 200 {
		t.Fatalf("first use: %d", resp.StatusCode)
	}
	seen := g.upstream.last(t)
	var data map[string]string
	if err := json.Unmarshal([]byte(seen.Get("X-Ticket-Data")), &data); err != nil || data["first_name"] != "Léonard" {
		t.Errorf("X-Ticket-Data %q: %v", seen.Get("X-Ticket-Data"), err)
	}
	if seen.Get("X-Ticket-Place") != "louvre" || seen.Get("X-Ticket-Purpose") != "visit" || seen.Get("X-Ticket-ID") != tk.UUID {
		t.Errorf("ticket headers %v", seen)
	}
	if uri := g.lastURI(); uri != "/louvre?lang=fr" {
		t.Errorf("upstream URI %q, want the credentials removed", uri)
	}
	for k, vs := range seen {
		for _, v := range vs {
			if strings.Contains(v, tk.Password) {
				t.Errorf("the password reached the upstream in %s", k)
			}
		}
	}
	if r := g.send(http.MethodGet, tk.URL, "", nil); r.StatusCode != http.StatusGone {
		t.Errorf("second use: %d, want 410", r.StatusCode)
	}
	row, err := g.st.Ticket(t.Context(), tk.UUID)
	if err != nil || row.State != store.TicketUsed || row.UseStatus != 200 || row.UseIP != "127.0.0.1" {
		t.Errorf("ticket after use: %+v %v", row, err)
	}
}

func TestTicketRefusals(t *testing.T) {
	o := gwOpts{handler: "ticket louvre visit"}
	g := startGateway(t, o)
	tk := g.createTickets(o, "--place", "louvre", "--purpose", "visit")[0]
	// A ticket for another museum: made while the config takes it, used
	// after the route stopped taking it.
	if _, err := g.cliErr(o, "tickets", "create", "--place", "orsay", "--purpose", "visit"); err == nil || !strings.Contains(err.Error(), "louvre visit") {
		t.Errorf("a ticket for a place no route takes: %v, want refused naming the pairs taken", err)
	}
	both := gwOpts{handler: "ticket louvre visit\nticket orsay visit"}
	g.load(both)
	other := g.createTickets(both, "--place", "orsay", "--purpose", "visit")[0]
	g.load(o)
	expired := g.createTickets(o, "--place", "louvre", "--purpose", "visit", "--expires", "1s")[0]
	revoked := g.createTickets(o, "--place", "louvre", "--purpose", "visit")[0]
	g.cli(o, "tickets", "revoke", revoked.UUID)
	time.Sleep(1100 * time.Millisecond)
	q := func(uuid, password string) string {
		return g.url + "/louvre?" + url.Values{"uuid": {uuid}, "password": {password}}.Encode()
	}
	cases := []struct {
		name   string
		url    string
		status int
		reason string
	}{
		{"missing", g.url + "/louvre", 401, "missing"},
		{"bad password", q(tk.UUID, "wrong-password"), 403, "bad_password"},
		{"unknown uuid", q("8c0e7e3e-4b8e-4c52-9b1e-0a6d8d1f2a3b", tk.Password), 403, "unknown"},
		{"wrong place", q(other.UUID, other.Password), 403, "wrong_place"},
		{"expired", q(expired.UUID, expired.Password), 410, "expired"},
		{"revoked", q(revoked.UUID, revoked.Password), 410, "revoked"},
	}
	for _, c := range cases {
		if r := g.send(http.MethodGet, c.url, "", nil); r.StatusCode != c.status {
			t.Errorf("%s: %d, want %d", c.name, r.StatusCode, c.status)
		}
	}
	if g.upstream.count() != 0 {
		t.Fatal("a refused ticket reached the upstream")
	}
	evs := g.waitAudit(store.AuditFilter{Kind: "ticket", Outcome: store.OutcomeRefused}, len(cases))
	reasons := map[string]bool{}
	for _, e := range evs {
		reasons[e.Reason] = true
	}
	for _, c := range cases {
		if !reasons[c.reason] {
			t.Errorf("no refusal audited as %q: %v", c.reason, reasons)
		}
	}
}

func TestTicketFromHeaderAndChosenPassword(t *testing.T) {
	o := gwOpts{handler: "ticket louvre visit"}
	g := startGateway(t, o)
	tk := g.createTickets(o, "--place", "louvre", "--purpose", "visit", "--password", "I love Paris")[0]
	resp := g.send(http.MethodGet, g.url+"/louvre", "", map[string]string{"Authorization": "Ticket " + tk.UUID + ":I love Paris"})
	if resp.StatusCode != 200 {
		t.Fatalf("Authorization: Ticket: %d", resp.StatusCode)
	}
	if a := g.upstream.last(t).Get("Authorization"); a != "" {
		t.Errorf("the Authorization header reached the upstream: %q", a)
	}
}

func TestFailedUpstreamLeavesTicketUsable(t *testing.T) {
	o := gwOpts{handler: "ticket louvre visit"}
	g := startGateway(t, o)
	tk := g.createTickets(o, "--place", "louvre", "--purpose", "visit")[0]
	creds := "uuid=" + tk.UUID + "&password=" + url.QueryEscape(tk.Password)
	if r := g.send(http.MethodGet, g.url+"/teapot?"+creds, "", nil); r.StatusCode != http.StatusTeapot {
		t.Fatalf("upstream error: %d", r.StatusCode)
	}
	if row, _ := g.st.Ticket(t.Context(), tk.UUID); row.State != store.TicketValid {
		t.Fatalf("after an upstream 418 the ticket is %s, want valid", row.State)
	}
	// A request killed mid-flight leaves a claim; once its lease lapses the
	// guest can use the ticket.
	// The lease is long enough that a slow machine still sees it live.
	leaseEnd := time.Now().Add(2 * time.Second)
	if err := g.st.ClaimTicket(t.Context(), tk.UUID, time.Now(), leaseEnd, nil); err != nil {
		t.Fatal(err)
	}
	if r := g.send(http.MethodGet, g.url+"/louvre?"+creds, "", nil); r.StatusCode != http.StatusConflict {
		t.Errorf("while claimed: %d, want 409", r.StatusCode)
	}
	time.Sleep(time.Until(leaseEnd) + 50*time.Millisecond)
	if r := g.send(http.MethodGet, g.url+"/louvre?"+creds, "", nil); r.StatusCode != 200 {
		t.Fatalf("after the lease lapsed: %d, want 200", r.StatusCode)
	}
	if row, _ := g.st.Ticket(t.Context(), tk.UUID); row.State != store.TicketUsed {
		t.Errorf("state %s, want used", row.State)
	}
}

// TestConcurrentUsesOfOneTicket fires 200 requests at once with one ticket:
// exactly one may succeed upstream.
func TestConcurrentUsesOfOneTicket(t *testing.T) {
	o := gwOpts{handler: "ticket louvre visit"}
	g := startGateway(t, o)
	tk := g.createTickets(o, "--place", "louvre", "--purpose", "visit", "--url", g.url+"/louvre")[0]
	const n = 200
	statuses := getAtOnce(t, tk.URL, n)
	// The throttles hold attempts in flight (per IP and per ticket), so
	// part of the burst is turned away with 429 before it is checked.
	if statuses[200] != 1 || statuses[http.StatusConflict]+statuses[http.StatusGone]+statuses[http.StatusTooManyRequests] != n-1 || g.upstream.count() != 1 {
		t.Fatalf("statuses %v, upstream saw %d; want exactly one 200 and the rest 409, 410 or 429", statuses, g.upstream.count())
	}
	evs := g.waitAudit(store.AuditFilter{Kind: "ticket", CredentialID: tk.UUID}, n)
	accepted := 0
	for _, e := range evs {
		if e.Outcome == store.OutcomeAccepted {
			accepted++
		}
	}
	if accepted != 1 {
		t.Errorf("%d accepted audit records, want 1", accepted)
	}
	out := g.cli(o, "tickets", "show", tk.UUID)
	if !strings.Contains(out, "used") || !strings.Contains(out, fmt.Sprint(200)) {
		t.Errorf("tickets show:\n%s", out)
	}
}
