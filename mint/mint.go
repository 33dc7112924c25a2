// Package mint makes latchkey signed links without a running gateway: an
// application that knows the gateway's secret (or holds one of its Ed25519
// link keys) signs links for its users, e.g. the one-click unsubscribe link
// of a newsletter or a magic sign-in link, and the gateway accepts them.
//
//	m := mint.New([]byte(os.Getenv("LATCHKEY_SECRET")))
//	u, info, err := m.Link(mint.Options{UserID: 42, URL: "https://app.example.com/unsubscribe?list=news"})
//
// A link minted here has no row in the gateway's store until its first use;
// the gateway counts its uses from then on (and it can be revoked by its
// jti, or with all of its user's links, before that).
package mint

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/internal/link"
)

// Modes of a link.
const (
	// ModeRequest lets the one request that carries the link through, as
	// the user (one-click unsubscribe). The default.
	ModeRequest = link.ModeRequest
	// ModeLogin starts a session for the user (magic-link login).
	ModeLogin = link.ModeLogin
)

// Defaults for Options.
const (
	DefaultTTL   = 7 * 24 * time.Hour
	DefaultParam = link.DefaultParam
)

// MinSecretLen is the shortest gateway secret the gateway accepts.
const MinSecretLen = 32

// Minter signs links. It is safe for concurrent use.
type Minter struct {
	ring *link.KeyRing
	err  error // a bad key, reported by Link
	// Clock is the time links are issued at; nil is time.Now.
	Clock func() time.Time
}

// New signs with the gateway's default key (HS256, kid "default"), derived
// from the gateway secret: the value of its `secret` option, or of its
// `secret_file` with surrounding white space removed. A secret shorter than
// MinSecretLen is reported by Link.
func New(gatewaySecret []byte) *Minter {
	if len(gatewaySecret) < MinSecretLen {
		return &Minter{err: fmt.Errorf("mint: gateway secret of %d bytes is too short; the gateway needs at least %d", len(gatewaySecret), MinSecretLen)}
	}
	return fromKey(link.HS256Key(gatewaySecret, "default"))
}

// NewEd25519 signs with an Ed25519 key the gateway lists among its link
// keys under kid (as the first key or as a verifier). A bad kid or key is
// reported by Link. ParseEd25519PrivateKeyPEM reads the key from PEM.
func NewEd25519(kid string, priv ed25519.PrivateKey) *Minter {
	if len(priv) != ed25519.PrivateKeySize {
		return &Minter{err: fmt.Errorf("mint: Ed25519 private key has %d bytes, want %d", len(priv), ed25519.PrivateKeySize)}
	}
	return fromKey(link.Ed25519Key(kid, priv))
}

func fromKey(k link.Key) *Minter {
	ring, err := link.NewKeyRing(k)
	if err != nil {
		return &Minter{err: fmt.Errorf("mint: %w", err)}
	}
	return &Minter{ring: ring}
}

// ParseEd25519PrivateKeyPEM reads an Ed25519 private key from a PKCS#8 PEM
// block ("PRIVATE KEY"), as `openssl genpkey -algorithm ed25519` writes it.
func ParseEd25519PrivateKeyPEM(pemBytes []byte) (ed25519.PrivateKey, error) {
	k, err := link.ParseEd25519PrivateKeyPEM(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("mint: %w", err)
	}
	return k, nil
}

// Options describe one link.
type Options struct {
	// UserID is the gateway's id of the user the link is for (required).
	UserID int64
	// URL is the absolute http(s) URL the link opens. The link works for its
	// host (ports 80 and 443 counting as none) and path; its query is kept,
	// and bound too with BindQuery.
	URL string
	// TTL is how long the link works, from now; 0 is DefaultTTL (7 days).
	TTL time.Duration
	// NotBefore, when set, is when the link starts working.
	NotBefore time.Time
	// MaxUses is how many times the link works; 0 is 1. Set Unlimited (and
	// leave MaxUses 0) for a link that works any number of times until it
	// expires.
	MaxUses   int
	Unlimited bool
	// Mode is ModeRequest (the default) or ModeLogin.
	Mode string
	// Methods the link works with; none means GET and HEAD (and the RFC 8058
	// one-click POST, which the gateway always allows). Upper-cased.
	Methods []string
	// Data is handed to the upstream with the request (request mode), as
	// JSON in X-Latchkey-Link-Data.
	Data map[string]any
	// BindQuery binds the link to URL's query exactly (its parameters in any
	// order, each value as given): the link then refuses other queries. A URL
	// without a query binds nothing.
	BindQuery bool
	// Param is the query parameter that carries the token; "" is
	// DefaultParam. It must match the gateway route's.
	Param string
}

// Info describes a minted link.
type Info struct {
	Token     string // the JWT
	JTI       string // the link's id, to look it up or revoke it in the gateway
	UserID    int64
	Target    string // host and path the link works for
	Query     string // the query it is bound to (BindQuery), or ""
	Mode      string
	Methods   []string
	MaxUses   int // 0 = unlimited
	IssuedAt  time.Time
	NotBefore time.Time // zero when none
	ExpiresAt time.Time
	// MailHeaders, for a request-mode link, are the List-Unsubscribe and
	// List-Unsubscribe-Post headers of a mail that carries it (one-click
	// unsubscribe, RFC 8058); nil for a login link.
	MailHeaders map[string]string
}

// Link mints a link and returns its URL (Options.URL with the token
// parameter added, any existing one replaced) and what it holds.
func (m *Minter) Link(o Options) (string, *Info, error) {
	if m == nil || (m.ring == nil && m.err == nil) {
		return "", nil, errors.New("mint: use New or NewEd25519 to make a Minter")
	}
	if m.err != nil {
		return "", nil, m.err
	}
	if o.UserID <= 0 {
		return "", nil, fmt.Errorf("mint: user id %d is not positive", o.UserID)
	}
	u, err := url.Parse(strings.TrimSpace(o.URL))
	switch {
	case o.URL == "":
		return "", nil, errors.New("mint: URL is required")
	case err != nil:
		return "", nil, fmt.Errorf("mint: URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", nil, fmt.Errorf("mint: URL %q is not an absolute http or https URL", o.URL)
	case u.Host == "" || u.Hostname() == "":
		return "", nil, fmt.Errorf("mint: URL %q has no host", o.URL)
	case u.User != nil:
		return "", nil, fmt.Errorf("mint: URL must not carry user info")
	}
	ttl := o.TTL
	switch {
	case ttl == 0:
		ttl = DefaultTTL
	case ttl < 0:
		return "", nil, fmt.Errorf("mint: TTL %v is negative", ttl)
	case ttl < time.Second:
		return "", nil, fmt.Errorf("mint: TTL %v is under a second (links expire in whole seconds)", ttl)
	}
	maxUses := o.MaxUses
	switch {
	case maxUses < 0:
		return "", nil, fmt.Errorf("mint: MaxUses %d is negative (set Unlimited for no limit)", maxUses)
	case o.Unlimited && maxUses != 0:
		return "", nil, fmt.Errorf("mint: MaxUses %d and Unlimited contradict each other", maxUses)
	case o.Unlimited:
		maxUses = 0
	case maxUses == 0:
		maxUses = 1
	}
	mode := o.Mode
	if mode == "" {
		mode = ModeRequest
	}
	if mode != ModeRequest && mode != ModeLogin {
		return "", nil, fmt.Errorf("mint: mode %q is not %q or %q", o.Mode, ModeRequest, ModeLogin)
	}
	var methods []string
	for _, meth := range o.Methods {
		up := strings.ToUpper(strings.TrimSpace(meth))
		if up == "" || strings.IndexFunc(up, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
			return "", nil, fmt.Errorf("mint: method %q is not an HTTP method", meth)
		}
		methods = append(methods, up)
	}
	param := o.Param
	if param == "" {
		param = DefaultParam
	}
	if !link.ValidParam(param) {
		return "", nil, fmt.Errorf("mint: parameter name %q is not usable in a query", param)
	}

	now := time.Now()
	if m.Clock != nil {
		now = m.Clock()
	}
	now = now.Truncate(time.Second)
	exp := now.Add(ttl)
	if !o.NotBefore.IsZero() && !o.NotBefore.Before(exp) {
		return "", nil, fmt.Errorf("mint: NotBefore %v is not before the expiry %v", o.NotBefore, exp)
	}

	minted, err := link.Mint(m.ring, link.MintOptions{
		UserID: o.UserID, URL: u, Now: now, TTL: ttl, NotBefore: o.NotBefore, MaxUses: maxUses,
		Mode: mode, Methods: methods, Data: o.Data, BindQuery: o.BindQuery, Param: param,
	})
	if err != nil {
		return "", nil, fmt.Errorf("mint: %w", err)
	}
	c := minted.Claims
	info := &Info{
		Token: minted.Token, JTI: c.ID, UserID: o.UserID, Target: c.Target, Query: c.Query, Mode: mode,
		Methods: methods, MaxUses: maxUses, IssuedAt: now, ExpiresAt: exp, MailHeaders: minted.MailHeaders(),
	}
	if c.NotBefore != nil {
		info.NotBefore = c.NotBefore.Time
	}
	return minted.URL, info, nil
}
