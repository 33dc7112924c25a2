// Package gate is latchkey's request pipeline: strip the identity headers a
// client sent, find a credential, check it, set the identity the upstream
// sees, pass the request on, and audit the attempt with the upstream's
// status. It knows nothing of Caddy; caddymodule adapts it.
package gate

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/latchkeyhq/latchkey/internal/invite"
	"github.com/latchkeyhq/latchkey/internal/link"
	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/throttle"
	"github.com/latchkeyhq/latchkey/internal/ticket"
	"github.com/latchkeyhq/latchkey/internal/web"
)

// Default names users see.
const (
	DefaultUserHeader    = "X-User-ID"
	DefaultSessionHeader = "X-Session-ID"
	DefaultCookieName    = "latchkey_session"
	DefaultPrefix        = "/.latchkey/"
)

// Placeholders set for an accepted request, for reverse_proxy's header_up,
// log fields and templates. http.auth.user.id is also what Caddy's access
// log reads for its user_id field.
const (
	VarUserID    = "http.auth.user.id"
	VarUserEmail = "http.auth.user.email"
	VarSessionID = "latchkey.session.id"
	VarLinkJTI   = "latchkey.link.jti"
	// VarLinkData prefixes each key of a link's data.
	VarLinkData = "latchkey.link.data."
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
	// When invites are on it defaults to the login page.
	LoginURL string
	// InviteLength is the length of codes made on the staff page.
	InviteLength int
	// Link is how the route takes signed links (when Deps.Links is set).
	Link LinkConfig
	// Tickets, with pairs, makes the route require a one-shot ticket.
	Tickets TicketConfig
}

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
	if c.InviteLength == 0 {
		c.InviteLength = invite.DefaultLength
	}
	return c
}

// Recorder receives audit events; audit.Writer is one.
type Recorder interface {
	Record(e store.AuditEvent)
	// Describe fills in the parsed user agent of an event the caller writes
	// itself.
	Describe(e *store.AuditEvent)
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
	Vars     Vars
}

// Next passes the request on to the upstream.
type Next func(w http.ResponseWriter, r *http.Request) error

// Deps are the parts a Gate is built from.
type Deps struct {
	Sessions *session.Manager
	Store    store.Store
	Audit    Recorder
	Pages    *web.Pages
	Logger   *zap.Logger
	// Links, when set, makes the route take signed links.
	Links *link.KeyRing
	// Invites, when set, turns on the login page and the staff invite page.
	Invites *invite.Service
	// Throttle limits failed code attempts per client IP.
	Throttle *throttle.Limiter
	// LoginLinks, when set, adds an email form to the login page that mails
	// a sign-in link; the limiters count every request.
	LoginLinks             LoginLinker
	LinkRequestsPerIP      *throttle.Limiter
	LinkRequestsPerAddress *throttle.Limiter
	// Tickets checks ticket passwords; the limiters count failures per
	// client IP and per ticket.
	Tickets            *ticket.Hasher
	TicketThrottleIP   *throttle.Limiter
	TicketThrottleUUID *throttle.Limiter
	// Mailer sends invite mails from the staff page; nil when no SMTP
	// server is configured (the page then shows the code).
	Mailer Mailer
	// ErrorStatus maps an error returned by Next to the status the client
	// got, for the audit trail. Nil means 500 for every error.
	ErrorStatus func(error) int
	Now         func() time.Time
}

// Gate serves one route.
type Gate struct {
	cfg     Config
	d       Deps
	strip   *HeaderStripper
	logout  string
	login   string
	invite  string
	jwks    string
	csrf    *http.CrossOriginProtection
	userKey string // canonical forms, set with direct map writes
	sessKey string
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
	if (d.Invites != nil || d.LoginLinks != nil) && cfg.LoginURL == "" {
		cfg.LoginURL = cfg.Prefix + "login"
	}
	names := []string{cfg.UserHeader, cfg.SessionHeader, DefaultUserHeader, DefaultSessionHeader}
	return &Gate{
		cfg:     cfg,
		d:       d,
		strip:   NewHeaderStripper(names, []string{"X-Latchkey-", "X-Ticket-"}),
		logout:  cfg.Prefix + "logout",
		login:   cfg.Prefix + "login",
		invite:  cfg.Prefix + "invite",
		jwks:    cfg.Prefix + "jwks.json",
		csrf:    http.NewCrossOriginProtection(),
		userKey: http.CanonicalHeaderKey(cfg.UserHeader),
		sessKey: http.CanonicalHeaderKey(cfg.SessionHeader),
	}
}

// Config returns the effective configuration.
func (g *Gate) Config() Config { return g.cfg }

// ServeHTTP runs the pipeline for one request.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request, env Env, next Next) error {
	start := g.d.Now()
	// Before anything else, so that no path below can forward a forged identity.
	g.strip.Strip(r.Header)

	if strings.HasPrefix(r.URL.Path, g.cfg.Prefix) {
		return g.servePage(w, r, env, start)
	}

	if g.d.Links != nil {
		if token, rest, found := link.TokenFromQuery(r.URL.RawQuery, g.cfg.Link.Param); found {
			return g.serveLink(w, r, env, next, start, token, rest)
		}
	}

	if len(g.cfg.Tickets.Pairs) > 0 && g.d.Tickets != nil {
		return g.serveTicket(w, r, env, next, start)
	}

	ev := g.event(r, env, start)
	token := g.cookie(r)
	su, reason, err := g.d.Sessions.Check(r.Context(), token)
	if err != nil {
		// A store failure is not the client's fault: 503, audited, and the
		// request goes no further.
		g.d.Logger.Error("checking session", zap.Error(err))
		ev.Reason = "store_error"
		return g.refuse(w, r, ev, http.StatusServiceUnavailable, start)
	}
	if su != nil {
		ev.UserID, ev.SessionID, ev.CredentialID = su.UserID, su.ID, su.ID
	}
	if reason != "" {
		ev.Reason = reason
		if token != "" {
			g.clearCookie(w, r)
		}
		return g.refuse(w, r, ev, http.StatusUnauthorized, start)
	}

	uid := strconv.FormatInt(su.UserID, 10)
	r.Header[g.userKey] = []string{uid}
	r.Header[g.sessKey] = []string{su.ID}
	if env.Vars != nil {
		env.Vars.Set(VarUserID, uid)
		env.Vars.Set(VarSessionID, su.ID)
	}

	sw := &statusWriter{ResponseWriter: w}
	err = next(sw, r)
	ev.Outcome = store.OutcomeAccepted
	ev.Status = sw.status
	if err != nil {
		ev.Status = g.d.ErrorStatus(err)
	} else if ev.Status == 0 {
		ev.Status = http.StatusOK
	}
	ev.Latency = g.d.Now().Sub(start)
	g.d.Audit.Record(ev)
	return err
}

func (g *Gate) event(r *http.Request, env Env, start time.Time) store.AuditEvent {
	return store.AuditEvent{
		Time:      start,
		Kind:      "session",
		Outcome:   store.OutcomeRefused,
		Method:    r.Method,
		Host:      r.Host,
		Path:      r.URL.Path,
		ClientIP:  env.ClientIP,
		UserAgent: r.UserAgent(),
	}
}

func (g *Gate) cookie(r *http.Request) string {
	c, err := r.Cookie(g.cfg.CookieName)
	if err != nil {
		return ""
	}
	return c.Value
}

// SetCookie sends a session cookie that lasts until the session's absolute
// end. Secure follows the request's scheme so that plain-HTTP development
// setups work while HTTPS sites never leak the cookie over HTTP.
func (g *Gate) SetCookie(w http.ResponseWriter, r *http.Request, token string, s *store.Session) {
	http.SetCookie(w, &http.Cookie{
		Name:     g.cfg.CookieName,
		Value:    token,
		Path:     "/",
		Expires:  s.ExpiresAt,
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteLaxMode,
	})
}

func (g *Gate) clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name:     g.cfg.CookieName,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteLaxMode,
	})
}

// refuse answers a request that has no usable credential and audits it.
func (g *Gate) refuse(w http.ResponseWriter, r *http.Request, ev store.AuditEvent, status int, start time.Time) error {
	var err error
	if status == http.StatusUnauthorized && g.cfg.LoginURL != "" && wantsPage(r) && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, loginRedirect(g.cfg.LoginURL, r), http.StatusFound)
		ev.Status = http.StatusFound
	} else {
		err = refuse(w, r, g.d.Pages, status, ev.Reason, g.cfg.LoginURL)
		ev.Status = status
	}
	ev.Latency = g.d.Now().Sub(start)
	g.d.Audit.Record(ev)
	return err
}

// servePage serves the gateway's own pages under the reserved prefix.
func (g *Gate) servePage(w http.ResponseWriter, r *http.Request, env Env, start time.Time) error {
	w.Header().Set("Cache-Control", "no-store")
	switch r.URL.Path {
	case g.logout:
		return g.serveLogout(w, r, env, start)
	case g.login:
		if g.d.Invites != nil || g.d.LoginLinks != nil {
			return g.serveLogin(w, r, env, start)
		}
	case g.invite:
		if g.d.Invites != nil {
			return g.serveInvitePage(w, r, env, start)
		}
	case g.jwks:
		if g.d.Links != nil {
			// Public keys only, so that others can verify links offline.
			w.Header().Set("Content-Type", "application/jwk-set+json")
			w.Header().Set("Cache-Control", "public, max-age=300")
			_, err := w.Write(g.d.Links.JWKS())
			return err
		}
	}
	http.NotFound(w, r)
	return nil
}

type logoutPage struct {
	Title    string
	Action   string
	SignedIn bool
}

// serveLogout ends the session on POST. GET shows a button rather than
// logging out, so that a link or a prefetch cannot end a session.
func (g *Gate) serveLogout(w http.ResponseWriter, r *http.Request, env Env, start time.Time) error {
	token := g.cookie(r)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		su, reason, err := g.d.Sessions.Check(r.Context(), token)
		signedIn := err == nil && reason == "" && su != nil
		return g.d.Pages.Render(w, http.StatusOK, web.PageLogout, logoutPage{Title: "Sign out", Action: g.logout, SignedIn: signedIn})
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return nil
	}
	ev := g.event(r, env, start)
	ev.Reason = "logout"
	if err := g.csrf.Check(r); err != nil {
		ev.Reason = "cross_origin"
		return g.refuse(w, r, ev, http.StatusForbidden, start)
	}
	if token != "" {
		if su, _, err := g.d.Sessions.Check(r.Context(), token); err == nil && su != nil {
			ev.UserID, ev.SessionID, ev.CredentialID = su.UserID, su.ID, su.ID
			if err := g.d.Sessions.End(r.Context(), su.ID); err != nil {
				g.d.Logger.Error("ending session", zap.String("session", su.ID), zap.Error(err))
				return g.refuse(w, r, ev, http.StatusServiceUnavailable, start)
			}
			ev.Outcome = store.OutcomeAccepted
		}
		g.clearCookie(w, r)
	}
	if wantsJSON(r) {
		w.WriteHeader(http.StatusNoContent)
		ev.Status = http.StatusNoContent
	} else {
		target := SafeNext(r.FormValue("next"))
		if target == "" {
			target = "/"
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
		ev.Status = http.StatusSeeOther
	}
	if ev.SessionID != "" {
		ev.Latency = g.d.Now().Sub(start)
		g.d.Audit.Record(ev)
	}
	return nil
}

// statusWriter remembers the status the upstream answered with, for the
// audit record. Unwrap keeps http.ResponseController (flush, deadlines)
// working through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Hijack is spelled out (not left to Unwrap) so that a protocol switch, such
// as a WebSocket, is audited as 101.
func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err == nil && s.status == 0 {
		s.status = http.StatusSwitchingProtocols
	}
	return c, brw, err
}
