// Package gate is latchkey's request pipeline. Every request goes one way:
// guard the request (strip what a client may not say, cross-origin check,
// throttle reservation) → find the credential → verify and consume it → set
// the identity the upstream sees → call the upstream → finish the
// credential with the upstream's status → audit. Each kind of credential
// implements Credential; the guards are the pipeline's and apply to every
// kind. It knows nothing of Caddy; caddymodule adapts it.
package gate

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/latchkeyhq/latchkey/internal/invite"
	"github.com/latchkeyhq/latchkey/internal/link"
	"github.com/latchkeyhq/latchkey/internal/password"
	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/site"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/throttle"
	"github.com/latchkeyhq/latchkey/internal/ticket"
	"github.com/latchkeyhq/latchkey/internal/web"
)

// Default names users see.
const (
	DefaultUserHeader    = "X-User-ID"
	DefaultSessionHeader = "X-Session-ID"
	// RolesHeader carries the user's roles on the route's site,
	// comma-separated, whenever there are any; EmailHeader and NameHeader
	// carry the user's address and name on routes that forward them. No
	// client copy of any of them reaches the upstream.
	RolesHeader       = "X-User-Roles"
	EmailHeader       = "X-User-Email"
	NameHeader        = "X-User-Name"
	DefaultCookieName = "latchkey_session"
	DefaultPrefix     = "/.latchkey/"
)

// Placeholders set for an accepted request, for reverse_proxy's header_up,
// log fields and templates. http.auth.user.id is also what Caddy's access
// log reads for its user_id field.
const (
	VarUserID    = "http.auth.user.id"
	VarUserEmail = "http.auth.user.email"
	VarSessionID = "latchkey.session.id"
	VarUserRoles = "latchkey.user.roles"
	// ReasonMissingRole refuses a user who lacks a role the route requires.
	ReasonMissingRole = "missing_role"
	VarUserName       = "latchkey.user.name"
	VarLinkJTI        = "latchkey.link.jti"
	// VarLinkData prefixes each key of a link's data.
	VarLinkData = "latchkey.link.data."
	// VarReason is the reason of a refusal, for handle_errors.
	VarReason = "latchkey.reason"
)

// Kinds of credential the pipeline carries, as the audit trail names them.
const (
	KindSession = "session"
	KindInvite  = invite.Kind
	KindLink    = "link"
	KindTicket  = "ticket"
)

// Config is a route's gateway settings. Zero values take the defaults.
type Config struct {
	UserHeader    string
	SessionHeader string
	CookieName    string
	// Prefix is where the gateway's own pages live; it must start and end
	// with '/'.
	Prefix string
	// LoginURL, when set, is where a browser without a credential is sent
	// (with next= the page it asked for) instead of getting a 401 page.
	// When invites or sign-in links are on it defaults to the login page.
	LoginURL string
	// Link is how the route takes signed links (when Deps.Links is set).
	Link LinkConfig
	// Tickets, with pairs, makes the route require a one-shot ticket.
	Tickets TicketConfig
	// Sessions makes the route accept the session cookie. On a ticket
	// route it is off unless the config says so.
	Sessions bool
	// RequireRoles: the user must hold, on the route's site, one role of
	// each entry (an entry is one `require role a b` line: a or b). A
	// request without a user, or whose user falls short, is refused 403
	// (missing_role) before it reaches the upstream.
	RequireRoles [][]string
	// ForwardEmail and ForwardName send EmailHeader and NameHeader.
	ForwardEmail, ForwardName bool
	// BindUserAgent and BindIPPrefix end a session whose cookie comes from
	// another browser family or operating system, or from another network
	// (/24 for IPv4, /48 for IPv6), than the session started in, refused
	// 401 as possible_theft.
	BindUserAgent, BindIPPrefix bool
	// SiteName is the name the pages show for the site; default its host.
	SiteName string
	// Contact is whom refusal pages tell people to ask for a new link or
	// for access; default whoever sent it, or the person who runs the site.
	Contact string
}

// Chrome is what every page shows around its content: the site's name.
type Chrome struct{ SiteName string }

func (c Config) withDefaults() Config {
	if c.UserHeader == "" {
		c.UserHeader = DefaultUserHeader
	}
	if c.SessionHeader == "" {
		c.SessionHeader = DefaultSessionHeader
	}
	if c.CookieName == "" {
		c.CookieName = DefaultCookieName
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Tickets.Names.UUID == "" {
		c.Tickets.Names.UUID = "uuid"
	}
	if c.Tickets.Names.Password == "" {
		c.Tickets.Names.Password = "password"
	}
	if c.Tickets.Lease <= 0 {
		c.Tickets.Lease = DefaultTicketLease
	}
	if c.Link.Param == "" {
		c.Link.Param = "token"
	}
	return c
}

// Recorder receives audit events; audit.Writer is one.
type Recorder interface {
	Record(e store.AuditEvent)
	// Describe fills in the parsed user agent of an event the caller writes
	// itself.
	Describe(e *store.AuditEvent)
	// SetStatus fills in, in a later batch, the upstream's status of a
	// record the store wrote with a consumed credential.
	SetStatus(id int64, status int, latency time.Duration)
}

// Observer counts what the pipeline decides, for metrics; *metrics.Metrics
// is one. Its methods run on the request path and must not block.
type Observer interface {
	// Attempt is called once for every audited request, as it ends: the
	// audit record's kind, outcome and reason, the response status, and the
	// time the request spent in the gateway (the upstream's excluded).
	Attempt(kind, outcome, reason string, status int, d time.Duration)
	// Consumed is called when a request took a use of a limited credential
	// (Outcome.Consumed said so).
	Consumed(kind string)
}

// Vars receives placeholders; *caddy.Replacer is one.
type Vars interface {
	Set(variable string, value any)
}

// Env is what the server knows about a request that the request itself does
// not say reliably.
type Env struct {
	// ClientIP is the client address after trusted-proxy handling; the gateway
	// never reads X-Forwarded-For itself.
	ClientIP string
	// ForwardedHTTPS: a trusted proxy in front terminated TLS for this
	// request (X-Forwarded-Proto: https from a peer in trusted_proxies).
	ForwardedHTTPS bool
	// ErrorRoutes: the server has handle_errors routes, so a refusal is
	// returned as an error for them to answer instead of being rendered.
	ErrorRoutes bool
	Vars        Vars
}

// Next passes the request on to the upstream.
type Next func(w http.ResponseWriter, r *http.Request) error

// Throttle limits attempts at one kind of credential per client IP and per
// credential; either may be nil.
type Throttle struct {
	PerIP, PerCredential *throttle.Limiter
}

// Deps are the parts a Gate is built from.
type Deps struct {
	// Site is the trust boundary the route belongs to. Nil: a site named
	// site.DefaultName with no origin.
	Site     *site.Site
	Sessions *session.Manager
	Store    store.Store
	Audit    Recorder
	Pages    *web.Pages
	Logger   *zap.Logger
	// Protected lists every identity header of every latchkey handler in
	// the app, so that each route strips them all; nil strips this route's.
	Protected *HeaderStripper
	// Links, when set, makes the route take signed links.
	Links *link.KeyRing
	// Invites, when set, turns on the login page; with Inviter, the staff
	// invite page too.
	Invites *invite.Service
	// Inviter creates the staff page's invites, with the operation the CLI
	// and the admin API use, and mails them when it can.
	Inviter Inviter
	// Throttles per credential kind (KindInvite, KindTicket, KindLink).
	Throttles map[string]Throttle
	// LoginLinks, when set, adds an email form to the login page that mails
	// a sign-in link; the limiters count every request.
	LoginLinks             LoginLinker
	LinkRequestsPerIP      *throttle.Limiter
	LinkRequestsPerAddress *throttle.Limiter
	// Tickets checks ticket passwords.
	Tickets *ticket.Hasher
	// Passwords, when set, turns on password login: the login page's email
	// and password form (Throttles[KindPassword] limits it).
	Passwords *password.Hasher
	// Extra are further kinds of credential, tried after the built-in ones
	// and before the session cookie.
	Extra []Credential
	// Metrics, when set, observes every audited request.
	Metrics Observer
	// ErrorStatus maps an error returned by Next to the status the client
	// got, for the audit trail. Nil means 500 for every error.
	ErrorStatus func(error) int
	Now         func() time.Time
}

// Gate serves one route.
type Gate struct {
	cfg     Config
	d       Deps
	site    *site.Site
	strip   *HeaderStripper
	creds   []Credential // tried in order; the first present one carries the request
	session Credential   // when the route takes the session cookie
	logout  string
	login   string
	invite  string
	mine    string // the sessions page
	admin   string // the dashboard
	jwks    string
	csrf    *http.CrossOriginProtection
	userKey string // canonical forms, set with direct map writes
	sessKey string
	// refusalPages holds each rendered refusal page, by refusalKey.
	refusalPages sync.Map
	// defaultTitle is the site's name on pages when none is configured.
	defaultTitle string
}

// New returns a Gate for cfg.
func New(cfg Config, d Deps) *Gate {
	cfg = cfg.withDefaults()
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	if d.ErrorStatus == nil {
		d.ErrorStatus = func(error) int { return http.StatusInternalServerError }
	}
	if d.Site == nil {
		d.Site, _ = site.New("", nil, "")
	}
	if (d.Invites != nil || d.LoginLinks != nil || d.Passwords != nil) && cfg.LoginURL == "" {
		cfg.LoginURL = cfg.Prefix + "login"
	}
	strip := d.Protected
	if strip == nil {
		strip = NewHeaderStripper(IdentityHeaders(cfg.UserHeader, cfg.SessionHeader), ProtectedPrefixes)
	}
	g := &Gate{
		cfg:     cfg,
		d:       d,
		site:    d.Site,
		strip:   strip,
		logout:  cfg.Prefix + "logout",
		login:   cfg.Prefix + "login",
		invite:  cfg.Prefix + "invite",
		mine:    cfg.Prefix + "sessions",
		admin:   cfg.Prefix + "admin",
		jwks:    cfg.Prefix + "jwks.json",
		csrf:    http.NewCrossOriginProtection(),
		userKey: http.CanonicalHeaderKey(cfg.UserHeader),
		sessKey: http.CanonicalHeaderKey(cfg.SessionHeader),
	}
	g.defaultTitle = cfg.SiteName
	if g.defaultTitle == "" {
		g.defaultTitle = defaultSiteTitle(d.Site.Origin, d.Site.Name, d.Site.Hosts)
	}
	// The registration of every kind the route takes: a ticket route takes
	// tickets only, unless the config adds sessions explicitly.
	if len(cfg.Tickets.Pairs) > 0 && d.Tickets != nil {
		g.creds = append(g.creds, &ticketCredential{g: g})
	}
	if d.Links != nil {
		g.creds = append(g.creds, &linkCredential{g: g})
	}
	if d.Invites != nil {
		g.creds = append(g.creds, &inviteCredential{g: g})
	}
	if d.Passwords != nil {
		g.creds = append(g.creds, &passwordCredential{g: g})
	}
	g.creds = append(g.creds, d.Extra...)
	if cfg.Sessions || len(cfg.Tickets.Pairs) == 0 {
		g.session = &sessionCredential{g: g}
	}
	return g
}

// Config returns the effective configuration.
func (g *Gate) Config() Config { return g.cfg }

// Site is the site the route belongs to.
func (g *Gate) Site() *site.Site { return g.site }

// ServeHTTP runs the pipeline for one request.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request, env Env, next Next) error {
	rq := g.begin(w, r, env)
	for _, c := range g.creds {
		if c.Present(rq) {
			return g.run(rq, c, next)
		}
	}
	if strings.HasPrefix(r.URL.Path, g.cfg.Prefix) {
		return g.servePage(rq)
	}
	if g.session != nil {
		return g.run(rq, g.session, next)
	}
	// A ticket route without a ticket.
	rq.Ev.Kind = KindTicket
	setCredentialHeaders(w)
	return g.refuse(rq, &Refusal{Status: http.StatusUnauthorized, Reason: "missing"})
}
