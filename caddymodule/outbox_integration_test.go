package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/latchkeyhq/latchkey/internal/mail"
	"github.com/latchkeyhq/latchkey/internal/mail/mailtest"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// waitMails waits until the relay has received n mails, and returns them.
// Mail goes out from the outbox after the request that asked for it has
// been answered, so a test cannot look at the relay right after asking.
func waitMails(t *testing.T, be *mailtest.Backend, n int) []mailtest.Message {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		msgs := be.Messages()
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("the relay got %d mails, want %d", len(msgs), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// slowGreetingConn is a relay connection that waits before its first word,
// like a relay that does reverse DNS lookups before it greets.
type slowGreetingConn struct {
	net.Conn
	delay time.Duration
	once  sync.Once
}

func (c *slowGreetingConn) Write(b []byte) (int, error) {
	c.once.Do(func() { time.Sleep(c.delay) })
	return c.Conn.Write(b)
}

type slowGreetingListener struct {
	net.Listener
	delay time.Duration
}

func (l slowGreetingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &slowGreetingConn{Conn: c, delay: l.delay}, nil
}

// switchListener is a relay's listener that can be down: it then hangs up
// on every connection before the greeting.
type switchListener struct {
	net.Listener
	down atomic.Bool
}

func (l *switchListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || !l.down.Load() {
			return c, err
		}
		c.Close()
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

type listedMail struct {
	ID        int64  `json:"id"`
	Kind      string `json:"kind"`
	Ref       string `json:"ref"`
	To        string `json:"to"`
	State     string `json:"state"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error"`
}

// mailList runs `caddy latchkey mail list --json` and checks that it shows
// no body: the mails hold sign-in links and invite codes.
func (g *gateway) mailList(o gwOpts, args ...string) []listedMail {
	g.t.Helper()
	out := g.cli(o, append([]string{"mail", "list", "--json"}, args...)...)
	for _, secret := range []string{"token=", "text_body", "html_body", `"text"`, `"html"`} {
		if strings.Contains(out, secret) {
			g.t.Fatalf("mail list shows %q:\n%s", secret, out)
		}
	}
	var ms []listedMail
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		g.t.Fatalf("mail list output %q: %v", out, err)
	}
	return ms
}

// The login page's email form answers as fast for an address with an
// account, whose sign-in link is mailed through a relay that takes 150 ms
// to greet, as for one without: the mail is queued, not sent, while the
// request waits. A difference would tell an attacker who has an account.
func TestLoginLinkFormTimingDoesNotTellAccounts(t *testing.T) {
	be := &mailtest.Backend{}
	addr := mailtest.Serve(t, be, func(_ *smtp.Server, l net.Listener) net.Listener {
		return slowGreetingListener{Listener: l, delay: 150 * time.Millisecond}
	})
	o := smtpOpts(addr)
	o.handler = "link"
	g := startGateway(t, o)
	const n = 10
	for i := range n {
		g.user(fmt.Sprintf("account%d@example.com", i))
	}
	ask := func(email string) time.Duration {
		// One address per request: the form allows five per address.
		body := url.Values{"email": {email}, "next": {"/inbox"}}.Encode()
		start := time.Now()
		r := g.send(http.MethodPost, g.url+"/.latchkey/login", body, nil)
		d := time.Since(start)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("asking for a link for %s: %d", email, r.StatusCode)
		}
		return d
	}
	var known, unknown []time.Duration
	for i := range n {
		known = append(known, ask(fmt.Sprintf("account%d@example.com", i)))
		unknown = append(unknown, ask(fmt.Sprintf("nobody%d@example.com", i)))
	}
	mk, mu := median(known), median(unknown)
	t.Logf("median answer: %v with an account, %v without", mk, mu)
	if diff := (mk - mu).Abs(); diff >= 50*time.Millisecond {
		t.Errorf("median answers differ by %v (%v with an account, %v without): the form tells who has an account", diff, mk, mu)
	}

	// The links go out afterwards, one per account and none for the others.
	msgs := waitMails(t, be, n)
	var to []string
	for _, m := range msgs {
		to = append(to, m.To...)
	}
	slices.Sort(to)
	for i := range n {
		if want := fmt.Sprintf("account%d@example.com", i); !slices.Contains(to, want) {
			t.Errorf("no mail for %s; mails went to %v", want, to)
		}
	}
	if len(to) != n {
		t.Errorf("mails went to %v, want the %d accounts only", to, n)
	}
	var listed []listedMail
	waitFor := time.Now().Add(5 * time.Second)
	for {
		listed = g.mailList(o, "--state", "sent")
		if len(listed) == n || time.Now().After(waitFor) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(listed) != n || listed[0].Kind != store.MailKindLoginLink || listed[0].Ref == "" {
		t.Errorf("mail list --state sent: %+v", listed)
	}
}

// shortRetries makes the outbox retry within a test's patience. It must be
// called before the gateway starts: a worker reads the schedule when made.
func shortRetries(t *testing.T) {
	first, most := mail.RetryFirst, mail.RetryMax
	mail.RetryFirst, mail.RetryMax = 100*time.Millisecond, 300*time.Millisecond
	t.Cleanup(func() { mail.RetryFirst, mail.RetryMax = first, most })
}

// A relay that is down when mail is asked for delays it: the mails stay
// queued with the relay's error, and go out once it is back, without
// restarting Caddy.
func TestMailWaitsForTheRelayToComeBack(t *testing.T) {
	shortRetries(t) // before startGateway, and so restored after Caddy stops
	be := &mailtest.Backend{}
	var relay *switchListener
	addr := mailtest.Serve(t, be, func(_ *smtp.Server, l net.Listener) net.Listener {
		relay = &switchListener{Listener: l}
		relay.down.Store(true)
		return relay
	})
	o := smtpOpts(addr)
	o.handler = "invite\n\t\tlink"
	g := startGateway(t, o)
	g.user("nia@example.com")

	// A sign-in link asked for on the login page: answered at once.
	r := g.send(http.MethodPost, g.url+"/.latchkey/login", url.Values{"email": {"nia@example.com"}}.Encode(), nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("asking for a sign-in link: %d", r.StatusCode)
	}
	// An invite mailed from the CLI: the CLI tries once, says it failed and
	// that the mail stays queued.
	out := g.cli(o, "invites", "create", "--email", "leia@example.com", "--send", "--json")
	var inv struct {
		ID        int64  `json:"id"`
		Code      string `json:"code"`
		Sent      bool   `json:"sent"`
		SendError string `json:"send_error"`
	}
	if err := json.Unmarshal([]byte(out), &inv); err != nil || inv.Code == "" || inv.Sent || !strings.Contains(inv.SendError, "stays queued") {
		t.Fatalf("invites create --send with the relay down: %q %v", out, err)
	}

	// Both are queued, with the relay's error, and retried meanwhile.
	var queued []listedMail
	deadline := time.Now().Add(5 * time.Second)
	for {
		queued = g.mailList(o, "--state", "queued")
		if len(queued) == 2 && queued[0].LastError != "" && queued[1].LastError != "" && queued[1].Attempts >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mail list --state queued: %+v, want the invite and the sign-in link with errors", queued)
		}
		time.Sleep(10 * time.Millisecond)
	}
	kinds := map[string]listedMail{}
	for _, m := range queued {
		kinds[m.Kind] = m
		if !strings.Contains(m.LastError, addr) {
			t.Errorf("queued mail %d: error %q does not name the relay %s", m.ID, m.LastError, addr)
		}
	}
	if kinds[store.MailKindInvite].Ref != fmt.Sprint(inv.ID) || kinds[store.MailKindInvite].To != "leia@example.com" ||
		kinds[store.MailKindLoginLink].To != "nia@example.com" {
		t.Errorf("queued: %+v", queued)
	}
	// `invites list` is honest: not sent, and why.
	if stored, err := g.st.Invite(t.Context(), inv.ID); err != nil || !stored.SentAt.IsZero() || !strings.Contains(stored.SendError, addr) {
		t.Errorf("invite while its mail is queued: %+v %v", stored, err)
	}
	// The admin API lists the same, without bodies (all states: the worker
	// may be retrying one of them right now, "sending").
	resp, err := http.Get("http://" + g.admin + "/latchkey/mail")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var api []listedMail
	if err := json.Unmarshal(body, &api); err != nil || resp.StatusCode != 200 || len(api) != 2 || strings.Contains(string(body), inv.Code) || strings.Contains(string(body), "token=") {
		t.Errorf("GET /latchkey/mail: %d %s", resp.StatusCode, body)
	}
	for _, m := range api {
		if m.State != store.MailQueued && m.State != store.MailSending {
			t.Errorf("GET /latchkey/mail: mail %d is %s while the relay is down", m.ID, m.State)
		}
	}

	// The relay comes back; the running gateway delivers both.
	relay.down.Store(false)
	msgs := waitMails(t, be, 2)
	var invite, signIn string
	for _, m := range msgs {
		_, text, _ := mailParts(t, m.Data)
		switch m.To[0] {
		case "leia@example.com":
			invite = text
		case "nia@example.com":
			signIn = text
		}
	}
	if !strings.Contains(invite, inv.Code) || !strings.Contains(signIn, "token=") {
		t.Errorf("delivered:\ninvite: %s\nsign-in: %s", invite, signIn)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		sent := g.mailList(o, "--state", "sent")
		stored, err := g.st.Invite(t.Context(), inv.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(sent) == 2 && !stored.SentAt.IsZero() && stored.SendError == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after delivery: mail list --state sent %+v, invite %+v", sent, stored)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if q := g.mailList(o, "--state", "queued"); len(q) != 0 {
		t.Errorf("still queued: %+v", q)
	}
	// The table shows the envelope, never a body.
	table := g.cli(o, "mail", "list")
	if !strings.Contains(table, "leia@example.com") || !strings.Contains(table, "sent") || strings.Contains(table, inv.Code) || strings.Contains(table, "token=") {
		t.Errorf("mail list:\n%s", table)
	}
}
