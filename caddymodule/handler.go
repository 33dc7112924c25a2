package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"

	"github.com/latchkeyhq/latchkey/internal/gate"
	"github.com/latchkeyhq/latchkey/internal/invite"
	"github.com/latchkeyhq/latchkey/internal/ops"
	"github.com/latchkeyhq/latchkey/internal/pathsafe"
	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/site"
	"github.com/latchkeyhq/latchkey/internal/throttle"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler lets a request through only with a latchkey credential, and tells
// the upstream who it is with X-User-ID and X-Session-ID.
type Handler struct {
	// The site the route belongs to: handlers that name one site share its
	// users, sessions, roles, invites and links; nothing crosses sites.
	// Default: the first of Hosts, or "default".
	SiteName string `json:"site,omitempty"`
	// The site's canonical origin (scheme://host[:port]): every absolute
	// URL the gateway makes for the site (mails, CLI output) starts with
	// it, never with a request's Host. The Caddyfile fills it in from the
	// site block's address; a catch-all block (":80") has none unless set.
	Origin string `json:"origin,omitempty"`
	// The name the gateway's pages show for the site ("Example members").
	// Default: the site's host.
	SiteTitle string `json:"site_name,omitempty"`
	// Whom a refusal page tells people to ask for a new link, ticket or
	// code, or for access ("the front desk, help@example.com"). Default:
	// whoever sent the link, or the site's administrator.
	Contact string `json:"contact,omitempty"`
	// Host names the site answers for; the Caddyfile fills them in from the
	// site block's addresses. Empty: any host.
	Hosts []string `json:"hosts,omitempty"`
	// Header that carries the user's id upstream. Default X-User-ID.
	UserHeader string `json:"user_header,omitempty"`
	// Header that carries the session's public id upstream. Default X-Session-ID.
	SessionHeader string `json:"session_header,omitempty"`
	// Where the gateway's own pages live. Default /.latchkey/.
	Prefix string `json:"prefix,omitempty"`
	// Where browsers without a credential are sent (with ?next=). Default:
	// none, they get a 401 page.
	LoginURL string `json:"login_url,omitempty"`
	// Session cookie and lifetimes.
	Session *SessionConfig `json:"session,omitempty"`
	// Invite codes: present turns on the login page and the staff invite
	// page.
	Invite *InviteConfig `json:"invite,omitempty"`
	// Signed links: present makes the route take them.
	Link *LinkConfig `json:"link,omitempty"`
	// One-shot tickets: with pairs, the route requires a ticket.
	Tickets *TicketsConfig `json:"tickets,omitempty"`
	// Password login: present shows an email and password form on the
	// login page, for users with a password (set on the sessions page, or
	// imported from a legacy app).
	Password *PasswordConfig `json:"password,omitempty"`
	// Roles the user must hold on the route's site: one of each entry (a
	// Caddyfile `require role a b` line is the entry [a b]). Requests
	// without a user, or whose user falls short, get 403 (missing_role).
	RequireRoles [][]string `json:"require_roles,omitempty"`
	// Forward names more about the user for the upstream: "email"
	// (X-User-Email), "name" (X-User-Name). Roles (X-User-Roles) always go.
	Forward []string `json:"forward,omitempty"`

	gate *gate.Gate
}

// PasswordConfig sets password login.
type PasswordConfig struct {
	// Failed attempts allowed per client IP and per account, each, in a
	// window, on every gateway of the store. Default 10 per minute.
	Throttle *ThrottleConfig `json:"throttle,omitempty"`
}

// SessionConfig sets the gateway session.
type SessionConfig struct {
	// Cookie name. Default latchkey_session.
	Cookie string `json:"cookie,omitempty"`
	// A session unused this long ends. Default 2h.
	Idle caddy.Duration `json:"idle,omitempty"`
	// A session ends this long after it started, used or not. Default 30d.
	Lifetime caddy.Duration `json:"lifetime,omitempty"`
	// Bind ends a session whose cookie arrives from another "user_agent"
	// (browser family or operating system) or "ip_prefix" (/24, /48) than
	// it started in: possible theft.
	Bind []string `json:"bind,omitempty"`
}

// LinkConfig sets how a route takes signed links.
type LinkConfig struct {
	// Query parameter that carries the token. Default "token".
	Param string `json:"param,omitempty"`
	// A link whose path is under one of these prefixes works anywhere under
	// it; otherwise a link works on its exact path only.
	PathPrefixes []string `json:"path_prefixes,omitempty"`
	// Login-mode links show a confirmation page on GET. Default true.
	Confirm *bool `json:"confirm,omitempty"`
}

// InviteConfig sets the invite codes a route accepts.
type InviteConfig struct {
	// Code length, 6 to 30. Default 9.
	Length int `json:"length,omitempty"`
	// An invite not used this long after creation is refused. Default 14d.
	UsageWindow *caddy.Duration `json:"usage_window,omitempty"`
	// After its first use the code logs its user in for this long; 0 makes
	// it one-shot. Default 30d.
	Expiry *caddy.Duration `json:"expiry,omitempty"`
	// Failed code attempts allowed per client IP and window. Default 10 a
	// minute; attempts 0 turns throttling off.
	Throttle *ThrottleConfig `json:"throttle,omitempty"`
}

// ThrottleConfig is a failure limit per client IP.
type ThrottleConfig struct {
	Attempts int            `json:"attempts"`
	Window   caddy.Duration `json:"window,omitempty"`
}

// Throttling defaults.
const (
	defaultThrottleAttempts = 10
	defaultThrottleWindow   = time.Minute
	// linkFailuresPerIP bounds forged or misdirected links per client IP
	// and minute; genuine links that are used up or expired do not count.
	linkFailuresPerIP = 30
)

// rules turns the config into invite rules, applying defaults.
func (c *InviteConfig) rules() invite.Rules {
	r := invite.DefaultRules()
	if c.UsageWindow != nil {
		r.UsageWindow = time.Duration(*c.UsageWindow)
	}
	if c.Expiry != nil {
		r.Expiry = time.Duration(*c.Expiry)
	}
	return r
}

func (c *InviteConfig) rulesOrDefault() invite.Rules {
	if c == nil {
		return invite.DefaultRules()
	}
	return c.rules()
}

func (c *InviteConfig) length() int {
	if c == nil || c.Length == 0 {
		return invite.DefaultLength
	}
	return c.Length
}

// limiter builds a failure limiter from the config; nil takes the defaults.
func (c *ThrottleConfig) limiter() *throttle.Limiter {
	attempts, window := defaultThrottleAttempts, defaultThrottleWindow
	if c != nil {
		attempts = c.Attempts
		if c.Window > 0 {
			window = time.Duration(c.Window)
		}
	}
	return throttle.New(attempts, window)
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.latchkey",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision builds the route's gate on the app's shared store.
func (h *Handler) Provision(ctx caddy.Context) error {
	appIface, err := ctx.App("latchkey")
	if err != nil {
		return fmt.Errorf("latchkey handler: loading latchkey app: %w", err)
	}
	app := appIface.(*App)
	conf, err := app.registerSite(h)
	if err != nil {
		return err
	}
	st := conf.Site
	// The operations the route's own pages share with the CLI and the
	// admin API, on the route's site only.
	pageOps := ops.SiteOps{Ops: app.operations([]ops.SiteConf{conf}), Site: conf}
	var sc SessionConfig
	if h.Session != nil {
		sc = *h.Session
	}
	sessions := session.New(app.reqStore, app.secret, session.Config{
		Site:     st.Name,
		Idle:     time.Duration(sc.Idle),
		Lifetime: time.Duration(sc.Lifetime),
	}, app.sessions, nil, app.previous...)
	app.protect(h.UserHeader, h.SessionHeader)
	deps := gate.Deps{
		Site:        st,
		Sessions:    sessions,
		Store:       app.reqStore,
		Audit:       app.audit,
		Pages:       app.pages,
		Logger:      ctx.Logger(),
		Protected:   app.strip,
		ErrorStatus: errorStatus,
		Throttles:   map[string]gate.Throttle{},
	}
	if app.metrics != nil { // not a typed nil in the interface
		deps.Metrics = app.metrics
	}
	if h.Invite != nil {
		deps.Invites = invite.NewService(app.reqStore, app.secret, h.Invite.rules(), nil, app.previous...)
		// Failures count for every gateway on the store.
		deps.Throttles[gate.KindInvite] = gate.Throttle{PerIP: h.Invite.Throttle.limiter().Share(app.store, "invite.ip")}
		deps.Inviter = pageOps
	}
	if h.Password != nil {
		deps.Passwords = app.passwords
		// Failures count for every gateway on the store, per address and
		// per account, before any hashing.
		deps.Throttles[gate.KindPassword] = gate.Throttle{
			PerIP:         h.Password.Throttle.limiter().Share(app.store, "password.ip"),
			PerCredential: h.Password.Throttle.limiter().Share(app.store, "password.account"),
		}
	}
	var lc gate.LinkConfig
	if h.Link != nil {
		deps.Links = app.links
		// Per process: a link's signature cannot be guessed, so this limit
		// only slows down noise (forged and misdirected links), and a
		// shared count would cost a store read on every use of every link.
		deps.Throttles[gate.KindLink] = gate.Throttle{PerIP: throttle.New(linkFailuresPerIP, time.Minute)}
		lc = gate.LinkConfig{Param: h.Link.Param, PathPrefixes: h.Link.PathPrefixes, Confirm: h.Link.Confirm == nil || *h.Link.Confirm}
		if app.mailer != nil {
			deps.LoginLinks = pageOps
			perIP, perAddress := gate.NewLinkRequestLimiters()
			deps.LinkRequestsPerIP, deps.LinkRequestsPerAddress = perIP.Share(app.store, "linkmail.ip"), perAddress.Share(app.store, "linkmail.address")
		}
	}
	var tc gate.TicketConfig
	if h.Tickets != nil && len(h.Tickets.Accept) > 0 {
		if tc, err = h.Tickets.gateConfig(); err != nil {
			return err
		}
		deps.Tickets = app.tickets
		deps.Throttles[gate.KindTicket] = gate.Throttle{
			PerIP:         h.Tickets.Throttle.limiter().Share(app.store, "ticket.ip"),
			PerCredential: h.Tickets.Throttle.limiter().Share(app.store, "ticket.uuid"),
		}
	}
	h.gate = gate.New(gate.Config{
		UserHeader:    h.UserHeader,
		SessionHeader: h.SessionHeader,
		CookieName:    sc.Cookie,
		Prefix:        h.Prefix,
		LoginURL:      h.LoginURL,
		Link:          lc,
		Tickets:       tc,
		Sessions:      h.Tickets == nil || len(h.Tickets.Accept) == 0 || h.Tickets.also("session"),
		RequireRoles:  h.RequireRoles,
		BindUserAgent: slices.Contains(sc.Bind, "user_agent"),
		BindIPPrefix:  slices.Contains(sc.Bind, "ip_prefix"),
		ForwardEmail:  slices.Contains(h.Forward, "email"),
		ForwardName:   slices.Contains(h.Forward, "name"),
		SiteName:      h.SiteTitle,
		Contact:       h.Contact,
	}, deps)
	return nil
}

// Validate rejects settings that would make the gateway unsafe or unusable.
func (h *Handler) Validate() error {
	for _, hd := range []struct{ name, value string }{{"user_header", h.UserHeader}, {"session_header", h.SessionHeader}} {
		if hd.value != "" && !httpguts.ValidHeaderFieldName(hd.value) {
			return fmt.Errorf("%s %q is not a valid HTTP header name", hd.name, hd.value)
		}
	}
	if h.Prefix != "" && (!strings.HasPrefix(h.Prefix, "/") || !strings.HasSuffix(h.Prefix, "/") || len(h.Prefix) < 3) {
		return fmt.Errorf("prefix %q must start and end with '/' and name a directory, like /.latchkey/", h.Prefix)
	}
	if h.Invite != nil {
		if h.Invite.Length != 0 {
			if err := invite.CheckLength(h.Invite.Length); err != nil {
				return err
			}
		}
		if h.Invite.UsageWindow != nil && *h.Invite.UsageWindow <= 0 {
			return errors.New("invite usage_window must be positive")
		}
		if h.Invite.Expiry != nil && *h.Invite.Expiry < 0 {
			return errors.New("invite expiry must not be negative (0 makes codes one-shot)")
		}
		if t := h.Invite.Throttle; t != nil && (t.Attempts < 0 || t.Window < 0) {
			return errors.New("invite throttle must not be negative")
		}
	}
	if h.Origin != "" {
		if _, err := site.ParseOrigin(h.Origin); err != nil {
			return err
		}
	}
	for _, anyOf := range h.RequireRoles {
		if len(anyOf) == 0 {
			return errors.New("require role: name at least one role")
		}
		for _, r := range anyOf {
			if _, err := ops.ParseRole("site", r); err != nil || strings.Contains(r, "@") {
				return fmt.Errorf("require role %q: a role name is lower-case letters, digits, '-' or '_' (the route's site is implied)", r)
			}
		}
	}
	if len(h.RequireRoles) > 0 && h.Tickets != nil && len(h.Tickets.Accept) > 0 && !h.Tickets.also("session") {
		return errors.New("require role: this route admits ticket holders, who have no user to hold a role; require roles on another route, or add `also session` to tickets")
	}
	if h.Session != nil {
		for _, b := range h.Session.Bind {
			if b != "user_agent" && b != "ip_prefix" {
				return fmt.Errorf("session bind %q: want user_agent or ip_prefix", b)
			}
		}
	}
	for _, f := range h.Forward {
		if f != "email" && f != "name" {
			return fmt.Errorf("forward %q: want email or name", f)
		}
	}
	if _, err := h.newSite(); err != nil {
		return err
	}
	if h.Tickets != nil {
		if _, err := stampOn(h.Tickets.StampOn); err != nil {
			return err
		}
		for _, k := range h.Tickets.Also {
			if k != "session" && k != "link" && k != "invite" {
				return fmt.Errorf("tickets also %q: want session, link or invite", k)
			}
		}
		// A ticket route takes nothing else unless the config says so: a
		// link or code would otherwise let its holder past the ticket.
		if len(h.Tickets.Accept) > 0 {
			if h.Link != nil && !h.Tickets.also("link") {
				return errors.New("a route that takes tickets takes nothing else: remove link from it, or add `also link` to its tickets block")
			}
			if h.Invite != nil && !h.Tickets.also("invite") {
				return errors.New("a route that takes tickets takes nothing else: remove invite from it, or add `also invite` to its tickets block")
			}
		}
		for _, p := range h.Tickets.Accept {
			if !ops.ValidName(p.Place) || !ops.ValidName(p.Purpose) {
				return fmt.Errorf("ticket place %q and purpose %q must be words without spaces", p.Place, p.Purpose)
			}
		}
		if h.Tickets.Lease < 0 {
			return errors.New("ticket lease must not be negative")
		}
	}
	if h.Link != nil {
		if h.Link.Param != "" && !validCookieName(h.Link.Param) {
			return fmt.Errorf("link param %q is not a valid query parameter name", h.Link.Param)
		}
		for _, p := range h.Link.PathPrefixes {
			if !strings.HasPrefix(p, "/") {
				return fmt.Errorf("link prefix %q must start with '/'", p)
			}
			// "/" would make every link good for every path of the site.
			if c, ok := pathsafe.Clean(p); !ok || c == "/" {
				return fmt.Errorf("link prefix %q must name a clean path below the root, like /unsubscribe/", p)
			}
		}
	}
	if h.Session != nil {
		if h.Session.Cookie != "" && !validCookieName(h.Session.Cookie) {
			return fmt.Errorf("session cookie name %q is not a valid cookie name", h.Session.Cookie)
		}
		if h.Session.Idle < 0 || h.Session.Lifetime < 0 {
			return errors.New("session lifetimes must not be negative")
		}
	}
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	ctx := r.Context()
	repl, _ := ctx.Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	clientIP, _ := caddyhttp.GetVar(ctx, caddyhttp.ClientIPVarKey).(string)
	trusted, _ := caddyhttp.GetVar(ctx, caddyhttp.TrustedProxyVarKey).(bool)
	env := gate.Env{
		ClientIP: clientIP,
		// Only a proxy in trusted_proxies may say the browser used HTTPS.
		ForwardedHTTPS: trusted && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"),
	}
	if srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && srv.Errors != nil && len(srv.Errors.Routes) > 0 {
		env.ErrorRoutes = true
	}
	if repl != nil {
		extra, _ := ctx.Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields)
		env.Vars = logVars{repl, extra}
	}
	err := h.gate.ServeHTTP(w, r, env, next.ServeHTTP)
	var rf *gate.Refusal
	if errors.As(err, &rf) {
		// For handle_errors: {http.error.status_code} and {latchkey.reason}.
		return caddyhttp.Error(rf.Status, rf)
	}
	return err
}

// logVars are Caddy's placeholders, and the session id also goes into the
// access log beside the user_id Caddy logs from {http.auth.user.id}, so
// that a request in the log can be traced to the session that made it.
type logVars struct {
	repl  *caddy.Replacer
	extra *caddyhttp.ExtraLogFields
}

func (v logVars) Set(name string, value any) {
	v.repl.Set(name, value)
	if name == gate.VarSessionID && v.extra != nil {
		if id, ok := value.(string); ok {
			v.extra.Set(zap.String("session_id", id))
		}
	}
}

func errorStatus(err error) int {
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && he.StatusCode != 0 {
		return he.StatusCode
	}
	return http.StatusInternalServerError
}

func validCookieName(name string) bool {
	return httpguts.ValidHeaderFieldName(name) // cookie names are HTTP tokens too
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
