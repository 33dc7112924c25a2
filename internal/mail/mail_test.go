package mail

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/latchkeyhq/latchkey/internal/mail/mailtest"
)

// testCert is a certificate for 127.0.0.1 that nothing trusts.
func testCert(t *testing.T) *tls.Config {
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	ts.Close()
	return &tls.Config{Certificates: ts.TLS.Certificates}
}

func newSender(t *testing.T, cfg Config) *Sender {
	t.Helper()
	if cfg.From == "" {
		cfg.From = "latchkey <noreply@example.com>"
	}
	if cfg.TLS == "" {
		cfg.TLS = TLSNone
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var leonard = Invite{
	To:          "leonard@example.com",
	Name:        "Léonard Müller",
	Code:        "ABCXYZ123",
	LoginURL:    "https://app.example.com/.latchkey/login",
	Site:        "app.example.com",
	UsageWindow: 14 * 24 * time.Hour,
}

// message is a received mail taken apart.
type message struct {
	header     netmail.Header
	subject    string
	text, html string
}

func parse(t *testing.T, data []byte) message {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("reading message: %v\n%s", err, data)
	}
	out := message{header: m.Header}
	if out.subject, err = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject")); err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q (%v), want multipart/alternative", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart() // undoes quoted-printable itself
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		if cte := p.Header.Get("Content-Transfer-Encoding"); cte != "" {
			t.Fatalf("part left in %s", cte)
		}
		body := strings.ReplaceAll(string(b), "\r\n", "\n")
		switch ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct {
		case "text/plain":
			out.text = body
		case "text/html":
			out.html = body
		default:
			t.Errorf("unexpected part %q", ct)
		}
	}
	return out
}

func TestSendInvite(t *testing.T) {
	be := &mailtest.Backend{}
	addr := mailtest.Serve(t, be, nil)
	s := newSender(t, Config{Addr: addr})
	if err := s.SendInvite(context.Background(), leonard); err != nil {
		t.Fatal(err)
	}

	msgs := be.Messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages, want 1", len(msgs))
	}
	r := msgs[0]
	if r.From != "noreply@example.com" || len(r.To) != 1 || r.To[0] != "leonard@example.com" {
		t.Errorf("envelope from %q to %q", r.From, r.To)
	}
	if r.User != "" {
		t.Errorf("authenticated as %q without credentials", r.User)
	}
	m := parse(t, r.Data)
	if from, err := m.header.AddressList("From"); err != nil || len(from) != 1 || from[0].Name != "latchkey" || from[0].Address != "noreply@example.com" {
		t.Errorf("From %q: %v %v", m.header.Get("From"), from, err)
	}
	if to, err := m.header.AddressList("To"); err != nil || len(to) != 1 || to[0].Name != "Léonard Müller" || to[0].Address != "leonard@example.com" {
		t.Errorf("To %q: %v %v", m.header.Get("To"), to, err)
	}
	if id := m.header.Get("Message-ID"); !strings.HasSuffix(id, "@example.com>") {
		t.Errorf("Message-ID %q, want one in the sender's domain", id)
	}
	if m.subject != "Your invitation to app.example.com" {
		t.Errorf("Subject %q", m.subject)
	}
	for part, body := range map[string]string{"text": m.text, "html": m.html} {
		for _, want := range []string{"ABCXYZ123", leonard.LoginURL, "Léonard Müller", "within 14 days"} {
			if !strings.Contains(body, want) {
				t.Errorf("%s part lacks %q:\n%s", part, want, body)
			}
		}
	}
	if bytes.Contains(r.Data, []byte("code=")) {
		t.Errorf("the mail carries the code in a URL:\n%s", r.Data)
	}
	if !strings.Contains(m.html, `href="https://app.example.com/.latchkey/login"`) {
		t.Errorf("html part has no link to the login page:\n%s", m.html)
	}

	subject, text, html, err := s.Render(leonard)
	if err != nil {
		t.Fatal(err)
	}
	if subject != m.subject || text != m.text || html != m.html {
		t.Errorf("sent mail differs from Render:\n%q\n%q\n%q", subject, text, html)
	}
}

func TestSendInviteAuth(t *testing.T) {
	be := &mailtest.Backend{User: "mailer", Pass: "s3cret pass"}
	addr := mailtest.Serve(t, be, func(srv *smtp.Server, l net.Listener) net.Listener {
		srv.AllowInsecureAuth = true
		return l
	})
	s := newSender(t, Config{Addr: addr, Username: "mailer", Password: "s3cret pass"})
	if err := s.SendInvite(context.Background(), leonard); err != nil {
		t.Fatal(err)
	}
	if msgs := be.Messages(); len(msgs) != 1 || msgs[0].User != "mailer" || msgs[0].Pass != "s3cret pass" {
		t.Errorf("server got %+v", msgs)
	}

	s = newSender(t, Config{Addr: addr, Username: "mailer", Password: "wrong"})
	err := s.SendInvite(context.Background(), leonard)
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "AUTH") {
		t.Errorf("wrong password: err %v", err)
	}
	if n := len(be.Messages()); n != 1 {
		t.Errorf("server got %d messages, want still 1", n)
	}
}

func TestSendInviteTLS(t *testing.T) {
	cert := testCert(t)
	startTLS := func(srv *smtp.Server, l net.Listener) net.Listener { srv.TLSConfig = cert; return l }
	implicit := func(_ *smtp.Server, l net.Listener) net.Listener { return tls.NewListener(l, cert) }
	for _, tc := range []struct {
		name    string
		setup   func(*smtp.Server, net.Listener) net.Listener
		cfg     Config
		wantErr string
	}{
		{"starttls", startTLS, Config{TLS: TLSStartTLS, InsecureSkipVerify: true}, ""},
		{"starttls with auth", startTLS, Config{TLS: TLSStartTLS, InsecureSkipVerify: true, Username: "u", Password: "p"}, ""},
		{"implicit", implicit, Config{TLS: TLSImplicit, InsecureSkipVerify: true}, ""},
		{"opportunistic upgrades", startTLS, Config{TLS: TLSOpportunistic, InsecureSkipVerify: true, Username: "u", Password: "p"}, ""},
		{"opportunistic without tls", nil, Config{TLS: TLSOpportunistic}, ""},
		{"certificate checked", startTLS, Config{TLS: TLSStartTLS}, "certificate"},
		{"starttls required", nil, Config{TLS: TLSStartTLS}, "STARTTLS"},
		// PLAIN in clear is refused unless TLS is "none".
		{"no password in clear", func(srv *smtp.Server, l net.Listener) net.Listener { srv.AllowInsecureAuth = true; return l },
			Config{TLS: TLSOpportunistic, Username: "u", Password: "p"}, "auth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := &mailtest.Backend{User: tc.cfg.Username, Pass: tc.cfg.Password}
			tc.cfg.Addr = mailtest.Serve(t, be, tc.setup)
			err := newSender(t, tc.cfg).SendInvite(context.Background(), leonard)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if n := len(be.Messages()); n != 1 {
					t.Errorf("server got %d messages", n)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.cfg.Addr) {
				t.Errorf("err %v, want one with %q and the address", err, tc.wantErr)
			}
			if n := len(be.Messages()); n != 0 {
				t.Errorf("server got %d messages", n)
			}
		})
	}
}

func TestSendInviteUnreachable(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	// A server that accepts and then says nothing: only the timeout ends it.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	const timeout = 300 * time.Millisecond
	for name, addr := range map[string]string{"closed port": closedAddr, "silent server": silent.Addr().String()} {
		t.Run(name, func(t *testing.T) {
			s := newSender(t, Config{Addr: addr, Timeout: timeout})
			start := time.Now()
			err := s.SendInvite(context.Background(), leonard)
			took := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), `sending invite to "leonard@example.com" via `+addr+": ") {
				t.Errorf("err %v, want one naming the recipient and %s", err, addr)
			}
			// Not a speed check: a send that ignored the configured timeout
			// would wait for the 10 s default (or forever on the silent
			// server); anything well under that shows the timeout applied.
			if took >= DefaultTimeout/2 {
				t.Errorf("took %v with a timeout of %v: the configured timeout was not applied", took, timeout)
			}
		})
	}
}

func TestTemplatesDir(t *testing.T) {
	def := newSender(t, Config{Addr: "127.0.0.1:25"})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "invite.txt"), []byte("Code {{.Code}}, enter it at {{.LoginURL}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newSender(t, Config{Addr: "127.0.0.1:25", TemplatesDir: dir})
	subject, text, html, err := s.Render(leonard)
	if err != nil {
		t.Fatal(err)
	}
	if text != "Code ABCXYZ123, enter it at "+leonard.LoginURL+"\n" {
		t.Errorf("text %q", text)
	}
	defSubject, _, defHTML, _ := def.Render(leonard)
	if subject != defSubject || html != defHTML {
		t.Errorf("overriding invite.txt changed the subject or the html part:\n%q\n%s", subject, html)
	}

	if err := os.WriteFile(filepath.Join(dir, "invite.html"), []byte("<p>{{.Cod}}</p>"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Addr: "127.0.0.1:25", From: "a@example.com", TemplatesDir: dir}); err == nil || !strings.Contains(err.Error(), "invite.html") {
		t.Errorf("broken override: err %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	ok := Config{Addr: "smtp.example.com:587", From: "noreply@example.com"}
	for _, tc := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.From = "not an address" }, `"not an address"`},
		{func(c *Config) { c.From = "" }, `mail from ""`},
		{func(c *Config) { c.Addr = "nohost" }, `"nohost"`},
		{func(c *Config) { c.Addr = ":587" }, `":587"`},
		{func(c *Config) { c.Addr = "smtp.example.com:smtp" }, `"smtp.example.com:smtp"`},
		{func(c *Config) { c.TLS = "ssl" }, `"ssl"`},
	} {
		cfg := ok
		tc.change(&cfg)
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want one with %s", cfg, err, tc.want)
		}
	}
	if _, err := New(ok); err != nil {
		t.Fatal(err)
	}

	s := newSender(t, ok)
	bad := leonard
	bad.To = "leonard at example"
	if err := s.SendInvite(context.Background(), bad); err == nil || !strings.Contains(err.Error(), `"leonard at example"`) {
		t.Errorf("bad recipient: err %v", err)
	}
}

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{
		14 * 24 * time.Hour:           "14 days",
		14*24*time.Hour + time.Hour:   "14 days",
		48 * time.Hour:                "2 days",
		24 * time.Hour:                "24 hours",
		time.Hour:                     "60 minutes",
		90*time.Minute + time.Second:  "90 minutes",
		time.Minute:                   "1 minute",
		30 * time.Second:              "30 seconds",
		2*time.Hour + 59*time.Minute:  "2 hours",
		47*time.Hour + 59*time.Minute: "47 hours",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestLoginLinkMail(t *testing.T) {
	be := &mailtest.Backend{}
	addr := mailtest.Serve(t, be, nil)
	s := newSender(t, Config{Addr: addr})
	u := "https://app.example.com/welcome?token=eyJhbGciOi.abc.def"
	if err := s.SendLoginLink(context.Background(), LoginLink{To: "ann@example.com", Name: "Ann", URL: u, Site: "app.example.com", ValidFor: 15 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	msgs := be.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d mails", len(msgs))
	}
	_, text, html, err := s.RenderLogin(LoginLink{To: "ann@example.com", Name: "Ann", URL: u, Site: "app.example.com", ValidFor: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, u) || !strings.Contains(text, "15 minutes") || !strings.Contains(html, `href="https://app.example.com/welcome?token=eyJhbGciOi.abc.def"`) {
		t.Errorf("login mail lacks the link:\n%s\n%s", text, html)
	}
	if err := s.SendLoginLink(context.Background(), LoginLink{To: "ann@example.com"}); err == nil {
		t.Error("a login mail without a URL was sent")
	}
}
