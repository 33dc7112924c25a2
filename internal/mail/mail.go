// Package mail sends invite e-mails. The SMTP conversation is left to
// github.com/wneessen/go-mail; this package only decides what is said (from
// templates a site may replace, like the gateway's pages) and how the
// connection is secured.
package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"net"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"

	gomail "github.com/wneessen/go-mail"
)

//go:embed templates/*
var embedded embed.FS

// Template names. A file of the same name in Config.TemplatesDir replaces
// the embedded one.
const (
	TemplateSubject = "invite.subject.txt"
	TemplateText    = "invite.txt"
	TemplateHTML    = "invite.html"
	// A login link asked for on the login page.
	TemplateLoginSubject = "login.subject.txt"
	TemplateLoginText    = "login.txt"
	TemplateLoginHTML    = "login.html"
)

// LoginLink is what a login-link mail says; the templates see it.
type LoginLink struct {
	To   string
	Name string
	URL  string // the magic link
	Site string
	// ValidFor is how long the link works; zero leaves the sentence out.
	ValidFor time.Duration
}

// templateSet is one kind of mail.
type templateSet struct {
	subject, text *texttemplate.Template
	html          *htmltemplate.Template
}

// TLS modes for Config.TLS.
const (
	// TLSStartTLS refuses a server that does not offer STARTTLS, so that a
	// downgrade cannot make the password or the invite code travel in clear.
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (submissions, port 465).
	TLSImplicit = "tls"
	// TLSOpportunistic upgrades when the server offers STARTTLS and goes on
	// in clear otherwise; a password is then only sent with a mechanism
	// that does not reveal it (no PLAIN or LOGIN in clear).
	TLSOpportunistic = "opportunistic"
	// TLSNone never encrypts: for a relay on the same host or in tests.
	TLSNone = "none"
)

// DefaultTimeout bounds connecting and each step of the SMTP conversation
// when Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Config says where and how invite mails are sent.
type Config struct {
	Addr     string // host:port of the SMTP server
	Username string // empty: no SMTP AUTH
	Password string
	From     string // "latchkey <noreply@example.com>" or a bare address
	// TLS is one of TLSStartTLS (the default), TLSImplicit,
	// TLSOpportunistic, TLSNone.
	TLS string
	// InsecureSkipVerify accepts any server certificate, for relays with a
	// self-signed one.
	InsecureSkipVerify bool
	Timeout            time.Duration // 0: DefaultTimeout
	TemplatesDir       string        // files here replace embedded templates of the same name
}

// Invite is what an invite mail says. It is also the data the templates see.
type Invite struct {
	To       string // bare address, or "Name <address>"
	Name     string // recipient's name, used when To carries none
	Code     string
	LoginURL string // the page where the code is entered, without the code
	Site     string
	// UsageWindow is how long the code stays usable ("use it within 14
	// days"); zero leaves the sentence out.
	UsageWindow time.Duration
}

// Sender sends invite mails. It is safe for concurrent use: every send dials
// its own connection, as invites are rare and a kept-open connection would
// only go stale.
type Sender struct {
	addr   string
	host   string
	from   *netmail.Address
	opts   []gomail.Option
	invite templateSet
	login  templateSet
}

// New checks cfg and parses the templates, so that a typo in the address or
// in an overriding template stops the server at start rather than at the
// first invite.
func New(cfg Config) (*Sender, error) {
	from, err := netmail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("mail from %q is not an e-mail address: %w", cfg.From, err)
	}
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" {
		return nil, fmt.Errorf("smtp server %q: want host:port, e.g. smtp.example.com:587", cfg.Addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return nil, fmt.Errorf("smtp server %q: port %q is not a number from 1 to 65535", cfg.Addr, portStr)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}

	opts := []gomail.Option{
		gomail.WithPort(port),
		gomail.WithTimeout(timeout),
		gomail.WithTLSConfig(&tls.Config{
			ServerName:         host,
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: cfg.InsecureSkipVerify,
		}),
	}
	// Without credentials no AUTH is attempted at all, which is what a local
	// relay that trusts its network expects.
	auth := gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover)
	switch cfg.TLS {
	case "", TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	case TLSOpportunistic:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
		// Choosing "none" with a password accepts that it travels in
		// clear; prefer mechanisms that hide it all the same.
		auth = gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthSCRAMSHA256, gomail.SMTPAuthSCRAMSHA1,
			gomail.SMTPAuthCramMD5, gomail.SMTPAuthPlainNoEnc, gomail.SMTPAuthLoginNoEnc)
	default:
		return nil, fmt.Errorf("smtp tls %q: want %s, %s, %s or %s", cfg.TLS, TLSStartTLS, TLSImplicit, TLSOpportunistic, TLSNone)
	}
	if cfg.Username != "" {
		opts = append(opts, auth, gomail.WithUsername(cfg.Username), gomail.WithPassword(cfg.Password))
	}
	if _, err := gomail.NewClient(host, opts...); err != nil {
		return nil, fmt.Errorf("smtp server %q: %w", cfg.Addr, err)
	}

	s := &Sender{addr: cfg.Addr, host: host, from: from, opts: opts}
	if err := s.parse(cfg.TemplatesDir); err != nil {
		return nil, err
	}
	// Executing once catches what parsing cannot, such as {{.Cod}}.
	if _, _, _, err := s.Render(Invite{To: "someone@example.com", Name: "Someone", Code: "ABCXYZ123",
		LoginURL: "https://example.com/.latchkey/login", Site: "example.com", UsageWindow: 14 * 24 * time.Hour}); err != nil {
		return nil, err
	}
	if _, _, _, err := s.RenderLogin(LoginLink{To: "someone@example.com", Name: "Someone",
		URL: "https://example.com/?token=x", Site: "example.com", ValidFor: 15 * time.Minute}); err != nil {
		return nil, err
	}
	return s, nil
}

// readTemplate reads name from dir if it is there and from the embedded
// templates otherwise.
func readTemplate(dir, name string) (string, error) {
	if dir != "" {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil {
			return string(b), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("reading mail template %q: %w", filepath.Join(dir, name), err)
		}
	}
	b, err := embedded.ReadFile("templates/" + name)
	return string(b), err
}

func (s *Sender) parse(dir string) error {
	var err error
	if s.invite, err = parseSet(dir, TemplateSubject, TemplateText, TemplateHTML); err != nil {
		return err
	}
	s.login, err = parseSet(dir, TemplateLoginSubject, TemplateLoginText, TemplateLoginHTML)
	return err
}

func parseSet(dir, subject, text, html string) (templateSet, error) {
	src := make(map[string]string)
	for _, name := range []string{subject, text, html} {
		var err error
		if src[name], err = readTemplate(dir, name); err != nil {
			return templateSet{}, err
		}
	}
	funcs := map[string]any{"human": human}
	var ts templateSet
	var err error
	if ts.subject, err = texttemplate.New(subject).Funcs(funcs).Parse(src[subject]); err != nil {
		return ts, fmt.Errorf("parsing mail template %s: %w", subject, err)
	}
	if ts.text, err = texttemplate.New(text).Funcs(funcs).Parse(src[text]); err != nil {
		return ts, fmt.Errorf("parsing mail template %s: %w", text, err)
	}
	if ts.html, err = htmltemplate.New(html).Funcs(funcs).Parse(src[html]); err != nil {
		return ts, fmt.Errorf("parsing mail template %s: %w", html, err)
	}
	return ts, nil
}

// render executes a set. The subject is folded onto one line, whatever the
// template's line breaks.
func (ts templateSet) render(data any) (subject, text, html string, err error) {
	var b bytes.Buffer
	if err := ts.subject.Execute(&b, data); err != nil {
		return "", "", "", fmt.Errorf("rendering mail template %s: %w", ts.subject.Name(), err)
	}
	subject = strings.Join(strings.Fields(b.String()), " ")
	b.Reset()
	if err := ts.text.Execute(&b, data); err != nil {
		return "", "", "", fmt.Errorf("rendering mail template %s: %w", ts.text.Name(), err)
	}
	text = b.String()
	b.Reset()
	if err := ts.html.Execute(&b, data); err != nil {
		return "", "", "", fmt.Errorf("rendering mail template %s: %w", ts.html.Name(), err)
	}
	return subject, text, b.String(), nil
}

// Render returns what SendInvite would send for inv, for previews and tests.
func (s *Sender) Render(inv Invite) (subject, text, html string, err error) {
	return s.invite.render(inv)
}

// RenderLogin returns what SendLoginLink would send.
func (s *Sender) RenderLogin(l LoginLink) (subject, text, html string, err error) {
	return s.login.render(l)
}

// SendLoginLink delivers a magic link.
func (s *Sender) SendLoginLink(ctx context.Context, l LoginLink) error {
	if l.URL == "" {
		return fmt.Errorf("sending login link to %q: no URL", l.To)
	}
	subject, text, html, err := s.RenderLogin(l)
	if err == nil {
		err = s.deliver(ctx, l.To, l.Name, subject, text, html)
	}
	if err != nil {
		return fmt.Errorf("sending login link to %q via %s: %w", l.To, s.addr, err)
	}
	return nil
}

// SendInvite renders inv and delivers it. ctx bounds connecting; the
// configured timeout bounds each step after that, since go-mail does not
// watch ctx mid-conversation.
func (s *Sender) SendInvite(ctx context.Context, inv Invite) error {
	if inv.Code == "" || inv.LoginURL == "" {
		return fmt.Errorf("sending invite to %q: an invite needs a code and a login URL", inv.To)
	}
	subject, text, html, err := s.Render(inv)
	if err != nil {
		return fmt.Errorf("sending invite to %q: %w", inv.To, err)
	}
	if err := s.deliver(ctx, inv.To, inv.Name, subject, text, html); err != nil {
		return fmt.Errorf("sending invite to %q via %s: %w", inv.To, s.addr, err)
	}
	return nil
}

// deliver sends one multipart/alternative mail over its own connection.
func (s *Sender) deliver(ctx context.Context, rcpt, name, subject, text, html string) error {
	m, err := s.message(rcpt, name, subject, text, html)
	if err != nil {
		return err
	}
	c, err := gomail.NewClient(s.host, s.opts...)
	if err == nil {
		err = c.DialAndSendWithContext(ctx, m)
	}
	return err
}

func (s *Sender) message(rcpt, name, subject, text, html string) (*gomail.Msg, error) {
	to, err := netmail.ParseAddress(rcpt)
	if err != nil {
		return nil, fmt.Errorf("not an e-mail address: %w", err)
	}
	if to.Name == "" {
		to.Name = name
	}
	m := gomail.NewMsg()
	// Set from parsed addresses rather than strings, so that a name with
	// quotes or non-ASCII letters is encoded, not re-parsed.
	m.SetAddrHeaderFromMailAddress(gomail.HeaderFrom, s.from)
	m.SetAddrHeaderFromMailAddress(gomail.HeaderTo, to)
	m.Subject(subject)
	m.SetBodyString(gomail.TypeTextPlain, text)
	m.AddAlternativeString(gomail.TypeTextHTML, html)
	// In the sender's domain rather than after this host's name, which is
	// often not a public one and then counts against the mail with filters.
	if at := strings.LastIndexByte(s.from.Address, '@'); at >= 0 {
		m.SetMessageIDWithValue(rand.Text() + s.from.Address[at:])
	}
	return m, nil
}

// human writes d the way a person would promise it, rounding down so that
// the mail never promises more time than the code has.
func human(d time.Duration) string {
	unit := func(n time.Duration, name string) string {
		if n == 1 {
			return "1 " + name
		}
		return strconv.FormatInt(int64(n), 10) + " " + name + "s"
	}
	switch {
	case d >= 48*time.Hour:
		return unit(d/(24*time.Hour), "day")
	case d >= 2*time.Hour:
		return unit(d/time.Hour, "hour")
	case d >= time.Minute:
		return unit(d/time.Minute, "minute")
	default:
		return unit(d/time.Second, "second")
	}
}
