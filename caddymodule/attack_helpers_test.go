package caddymodule_test

// The harness of the attack suite (attack_test.go): one real Caddy with
// three sites on one latchkey store, each in front of its own recording
// upstream, a raw HTTP/1.1 client that writes requests byte for byte, and a
// real SMTP server that keeps every mail.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	netmail "net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/latchkeyhq/latchkey/caddymodule"
	"github.com/latchkeyhq/latchkey/internal/invite"
	"github.com/latchkeyhq/latchkey/internal/mail/mailtest"
	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
)

// atkSeen is one request as an upstream received it, body and trailers
// included.
type atkSeen struct {
	Method  string
	URI     string
	Host    string
	Header  http.Header
	Trailer http.Header
	Body    []byte
}

// atkUpstream records every request, reading the body to its end first so
// that the request's trailers are known.
type atkUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []atkSeen
}

func newAtkUpstream(t *testing.T, name string) *atkUpstream {
	u := &atkUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s := atkSeen{Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), Trailer: r.Trailer.Clone(), Body: body}
		u.mu.Lock()
		u.reqs = append(u.reqs, s)
		u.mu.Unlock()
		fmt.Fprintf(w, "upstream %s", name)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *atkUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

func (u *atkUpstream) all() []atkSeen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]atkSeen(nil), u.reqs...)
}

func (u *atkUpstream) last(t *testing.T) atkSeen {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		t.Fatal("the upstream got no request")
	}
	return u.reqs[len(u.reqs)-1]
}

// atkSite is one site block of the rig.
type atkSite struct {
	label  string // A, B or C
	name   string // the site's name in the store
	port   int
	host   string // the Host header a browser sends
	origin string // the site's configured origin
	up     *atkUpstream
}

// atkRig is one Caddy config with three sites on one store:
//
//	A  http://127.0.0.1:PA  site "127.0.0.1": routes /unsubscribe/* (link,
//	   prefix /unsubscribe/), /louvre/* (ticket louvre visit), /custom/*
//	   (user_header X-Remote-User) and the rest (invite, link)
//	B  http://localhost:PB  site "localhost": invite, link
//	C  http://:PC           site "shop", origin http://a.example.test:PC,
//	   user_header X-Shop-User: invite, link
type atkRig struct {
	t       *testing.T
	dir     string
	db      string
	admin   string
	cfgPath string
	st      store.Store
	secret  []byte
	mail    *mailtest.Backend
	A, B, C *atkSite
}

type atkOpts struct {
	// global: extra lines in the global options block (servers { … }).
	global string
	// aExtra, bExtra, cExtra: extra directives in each site block
	// (handle_errors { … }).
	aExtra, bExtra, cExtra string
	// noSMTP leaves the mail server out: the staff page then shows codes.
	noSMTP bool
	// siteExtra, when set, adds what it returns to sites A and B (after
	// aExtra, bExtra), given the site (its upstream is known by then).
	siteExtra func(s *atkSite) string
}

func startAtkRig(t *testing.T, o atkOpts) *atkRig {
	t.Helper()
	dir := t.TempDir()
	r := &atkRig{t: t, dir: dir, db: filepath.Join(dir, "state", "latchkey.db"), admin: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		secret: []byte(testSecret), mail: &mailtest.Backend{}}
	smtp := fmt.Sprintf("smtp %s {\n\t\t\tfrom \"Example <noreply@example.com>\"\n\t\t\ttls none\n\t\t\ttimeout 2s\n\t\t}", mailtest.Serve(t, r.mail, nil))
	if o.noSMTP {
		smtp = ""
	}
	pa, pb, pc := freePort(t), freePort(t), freePort(t)
	r.A = &atkSite{label: "A", name: "127.0.0.1", port: pa, host: fmt.Sprintf("127.0.0.1:%d", pa), origin: fmt.Sprintf("http://127.0.0.1:%d", pa), up: newAtkUpstream(t, "A")}
	r.B = &atkSite{label: "B", name: "localhost", port: pb, host: fmt.Sprintf("localhost:%d", pb), origin: fmt.Sprintf("http://localhost:%d", pb), up: newAtkUpstream(t, "B")}
	r.C = &atkSite{label: "C", name: "shop", port: pc, host: fmt.Sprintf("a.example.test:%d", pc), origin: fmt.Sprintf("http://a.example.test:%d", pc), up: newAtkUpstream(t, "C")}
	up := func(s *atkSite) string { return strings.TrimPrefix(s.up.URL, "http://") }
	if o.siteExtra != nil {
		o.aExtra += "\n" + o.siteExtra(r.A)
		o.bExtra += "\n" + o.siteExtra(r.B)
	}
	cfg := fmt.Sprintf(`{
	admin %s
	auto_https off
	storage file_system %s
	log {
		output discard
	}
	%s
	latchkey {
		storage sqlite %s
		secret %s
		%s
	}
}

http://127.0.0.1:%d {
	handle /unsubscribe/* {
		latchkey {
			link {
				prefix /unsubscribe/
			}
		}
		reverse_proxy %s
	}
	handle /louvre/* {
		latchkey {
			ticket louvre visit
			tickets {
				throttle 10 1m
			}
		}
		reverse_proxy %s
	}
	handle /custom/* {
		latchkey {
			user_header X-Remote-User
			session_header X-Remote-Session
		}
		reverse_proxy %s
	}
	handle {
		latchkey {
			invite {
				throttle 10 1m
			}
			link
		}
		reverse_proxy %s
	}
	%s
}

http://localhost:%d {
	handle {
		latchkey {
			invite
			link
		}
		reverse_proxy %s
	}
	%s
}

http://:%d {
	latchkey {
		site shop
		origin %s
		user_header X-Shop-User
		invite
		link
	}
	reverse_proxy %s
	%s
}
`, r.admin, filepath.Join(dir, "caddy"), o.global, r.db, testSecret, smtp,
		pa, up(r.A), up(r.A), up(r.A), up(r.A), o.aExtra,
		pb, up(r.B), o.bExtra,
		pc, r.C.origin, up(r.C), o.cExtra)
	r.cfgPath = filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(r.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
	if err != nil {
		t.Fatalf("adapting the attack rig's Caddyfile: %v\n%s", err, cfg)
	}
	if err := caddy.Load(adapted, true); err != nil {
		t.Fatalf("loading the attack rig: %v", err)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
	})
	st, err := sqlite.Open(context.Background(), r.db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r.st = st
	return r
}

// user adds an active user of site (""": known on every site).
func (r *atkRig) user(site, email string, roles ...store.Role) *store.User {
	r.t.Helper()
	u := &store.User{Site: site, Email: email, Active: true, Roles: roles}
	if err := r.st.CreateUser(context.Background(), u); err != nil {
		r.t.Fatal(err)
	}
	return u
}

// session starts a session for u on the named site, as a credential of that
// site would.
func (r *atkRig) session(site string, u *store.User) (string, *store.Session) {
	r.t.Helper()
	m := session.New(r.st, r.secret, session.Config{Site: site}, nil, nil)
	token, s, err := m.Start(context.Background(), u.ID, "test", "", "127.0.0.1", "go-test")
	if err != nil {
		r.t.Fatal(err)
	}
	return token, s
}

// invite makes an invite code for email on the named site.
func (r *atkRig) invite(site, email string) (string, *store.Invite) {
	r.t.Helper()
	inv := &store.Invite{Site: site, Email: email}
	code, err := invite.NewService(r.st, r.secret, invite.DefaultRules(), nil).Create(context.Background(), inv, 9)
	if err != nil {
		r.t.Fatal(err)
	}
	return code, inv
}

// cli runs `caddy latchkey …` on the rig's Caddyfile.
func (r *atkRig) cli(args ...string) string {
	r.t.Helper()
	out, err := caddymodule.RunCLI(append(args, "--config", r.cfgPath, "--adapter", "caddyfile")...)
	if err != nil {
		r.t.Fatalf("caddy latchkey %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

type atkLink struct {
	JTI  string `json:"jti"`
	URL  string `json:"url"`
	Site string `json:"site"`
}

// token is the link's token and its URL's path and query without it.
func (l atkLink) split(t *testing.T) (token, pathAndQuery string) {
	t.Helper()
	u, err := url.Parse(l.URL)
	if err != nil {
		t.Fatal(err)
	}
	token = u.Query().Get("token")
	return token, u.RequestURI()
}

func (r *atkRig) mintLink(args ...string) atkLink {
	r.t.Helper()
	out := r.cli(append([]string{"links", "create", "--json"}, args...)...)
	var l atkLink
	if err := json.Unmarshal([]byte(out), &l); err != nil || l.URL == "" {
		r.t.Fatalf("links create output %q: %v", out, err)
	}
	return l
}

type atkTicket struct {
	UUID     string `json:"uuid"`
	Password string `json:"password"`
}

func (r *atkRig) ticket(args ...string) atkTicket {
	r.t.Helper()
	out := r.cli(append([]string{"tickets", "create", "--json"}, args...)...)
	var ts []atkTicket
	if err := json.Unmarshal([]byte(out), &ts); err != nil || len(ts) != 1 {
		r.t.Fatalf("tickets create output %q: %v", out, err)
	}
	return ts[0]
}

// audit returns every audit record written so far that matches f.
func (r *atkRig) audit(f func(store.AuditEvent) bool) []store.AuditEvent {
	r.t.Helper()
	evs, err := r.st.Audit(context.Background(), store.AuditFilter{Limit: 1000000})
	if err != nil {
		r.t.Fatal(err)
	}
	var out []store.AuditEvent
	for _, e := range evs {
		if f == nil || f(e) {
			out = append(out, e)
		}
	}
	return out
}

// waitAudit waits until records of at least n attempts match f (the
// batching writer flushes every few milliseconds, and writes a flood of
// identical refusals as one record with a count when its second ends) and
// returns them.
func (r *atkRig) waitAudit(n int, f func(store.AuditEvent) bool) []store.AuditEvent {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := r.audit(f)
		if attempts(evs) >= n {
			return evs
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("want audit records of %d matching attempts, have %d: %+v\nall records: %+v", n, attempts(evs), evs, r.audit(nil))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitRefusal waits for a refused record on host+path and checks its
// reason.
func (r *atkRig) waitRefusal(t *testing.T, s *atkSite, path, reason string) store.AuditEvent {
	t.Helper()
	evs := r.waitAudit(1, func(e store.AuditEvent) bool {
		return e.Outcome == store.OutcomeRefused && e.Path == path && (s == nil || e.Host == s.host)
	})
	e := evs[len(evs)-1]
	if e.Reason != reason {
		t.Errorf("refusal of %s%s audited with reason %q (%+v), want %q", atkHostOf(s), path, e.Reason, e, reason)
	}
	return e
}

func atkHostOf(s *atkSite) string {
	if s == nil {
		return ""
	}
	return s.host
}

// atkMail is one delivered mail, decoded.
type atkMail struct {
	To     []string
	Header netmail.Header
	// Texts are the decoded bodies of every text part.
	Texts []string
}

// all is every header value and body text of the mail, decoded.
func (m atkMail) all() string {
	var b strings.Builder
	dec := new(mime.WordDecoder)
	for k, vs := range m.Header {
		for _, v := range vs {
			if d, err := dec.DecodeHeader(v); err == nil {
				v = d
			}
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	for _, s := range m.Texts {
		b.WriteString(s)
		b.WriteString("\n")
	}
	return b.String()
}

var atkURLRE = regexp.MustCompile(`https?://[^\s"'<>]+`)

// urls is every absolute URL in the mail's texts (the headers name the
// mailer's home page).
func (m atkMail) urls() []string { return atkURLRE.FindAllString(strings.Join(m.Texts, "\n"), -1) }

func atkDecodeMail(t *testing.T, msg mailtest.Message) atkMail {
	t.Helper()
	parsed, err := netmail.ReadMessage(bytes.NewReader(msg.Data))
	if err != nil {
		t.Fatalf("reading mail: %v\n%s", err, msg.Data)
	}
	m := atkMail{To: msg.To, Header: parsed.Header}
	var walk func(ct, cte string, body io.Reader)
	walk = func(ct, cte string, body io.Reader) {
		mt, params, _ := mime.ParseMediaType(ct)
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(body, params["boundary"])
			for {
				p, err := mr.NextPart() // decodes quoted-printable itself
				if err != nil {
					return
				}
				walk(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p)
			}
		}
		switch strings.ToLower(cte) {
		case "base64":
			body = base64.NewDecoder(base64.StdEncoding, body)
		case "quoted-printable":
			body = quotedprintable.NewReader(body)
		}
		b, _ := io.ReadAll(body)
		m.Texts = append(m.Texts, string(b))
	}
	walk(parsed.Header.Get("Content-Type"), parsed.Header.Get("Content-Transfer-Encoding"), parsed.Body)
	return m
}

// waitMail waits for a mail to addr (delivery may go through an outbox)
// and returns the newest.
func (r *atkRig) waitMail(t *testing.T, addr string, n int) atkMail {
	t.Helper()
	deadline := time.Now().Add(8 * time.Second)
	for {
		var got []mailtest.Message
		for _, m := range r.mail.Messages() {
			for _, to := range m.To {
				if strings.EqualFold(to, addr) {
					got = append(got, m)
				}
			}
		}
		if len(got) >= n {
			return atkDecodeMail(t, got[len(got)-1])
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d mails to %s, have %d (all: %d)", n, addr, len(got), len(r.mail.Messages()))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// mailsTo counts the mails delivered to addr so far.
func (r *atkRig) mailsTo(addr string) int {
	n := 0
	for _, m := range r.mail.Messages() {
		for _, to := range m.To {
			if strings.EqualFold(to, addr) {
				n++
			}
		}
	}
	return n
}

// atkReq is an HTTP/1.1 request written byte for byte: header names go out
// exactly as given (x_user_id, two Cookie lines), in order.
type atkReq struct {
	Method string
	Target string // the request-target, as sent
	// Host is the Host header; "" sends the site's own.
	Host   string
	Header [][2]string
	Body   string
	// Chunked sends the body in one chunk followed by Trailer fields.
	Chunked bool
	Trailer [][2]string
}

type atkResp struct {
	*http.Response
	Body []byte
}

func (r atkResp) cookie(name string) *http.Cookie {
	for _, c := range r.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// send writes rq to the site's port on 127.0.0.1 and reads the answer.
func (s *atkSite) send(t *testing.T, rq atkReq) atkResp {
	t.Helper()
	resp, err := s.sendE(rq)
	if err != nil {
		t.Fatalf("%s %s on site %s: %v", rq.Method, rq.Target, s.label, err)
	}
	return resp
}

// sendE is send for goroutines: it reports errors instead of failing.
func (s *atkSite) sendE(rq atkReq) (atkResp, error) {
	host := rq.Host
	if host == "" {
		host = s.host
	}
	method := rq.Method
	if method == "" {
		method = http.MethodGet
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, rq.Target, host)
	for _, h := range rq.Header {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	switch {
	case rq.Chunked:
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		if rq.Body != "" {
			fmt.Fprintf(&b, "%x\r\n%s\r\n", len(rq.Body), rq.Body)
		}
		b.WriteString("0\r\n")
		for _, h := range rq.Trailer {
			fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
		}
		b.WriteString("\r\n")
	case rq.Body != "" || method == http.MethodPost:
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(rq.Body), rq.Body)
	default:
		b.WriteString("\r\n")
	}
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.port))
	if err != nil {
		return atkResp{}, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write(b.Bytes()); err != nil {
		return atkResp{}, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		return atkResp{}, fmt.Errorf("reading the response: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return atkResp{Response: resp, Body: body}, nil
}

// get is a GET with headers given as name, value pairs.
func (s *atkSite) get(t *testing.T, target string, hdr ...string) atkResp {
	t.Helper()
	return s.send(t, atkReq{Method: http.MethodGet, Target: target, Header: atkPairs(hdr...)})
}

// postForm posts a urlencoded form.
func (s *atkSite) postForm(t *testing.T, target string, form url.Values, hdr ...string) atkResp {
	t.Helper()
	h := append(atkPairs("Content-Type", "application/x-www-form-urlencoded"), atkPairs(hdr...)...)
	return s.send(t, atkReq{Method: http.MethodPost, Target: target, Header: h, Body: form.Encode()})
}

func atkPairs(kv ...string) [][2]string {
	var out [][2]string
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, [2]string{kv[i], kv[i+1]})
	}
	return out
}

// atkCookie is a Cookie header carrying a session token.
func atkCookie(token string) []string {
	return []string{"Cookie", "latchkey_session=" + token}
}

// atkNorm is a header name as upstreams may read it: lower case, '_' and
// '.' as '-' (CGI and PHP fold all three onto one variable).
func atkNorm(k string) string {
	return strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(k))
}

// atkHeaderValues is every value of every header whose name reads as name.
func atkHeaderValues(h http.Header, name string) []string {
	var out []string
	for k, vs := range h {
		if atkNorm(k) == atkNorm(name) {
			out = append(out, vs...)
		}
	}
	return out
}
