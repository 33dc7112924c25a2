package caddymodule

import (
	"net"
	"reflect"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"golang.org/x/net/http/httpguts"

	"github.com/latchkeyhq/latchkey/internal/audit"
	"github.com/latchkeyhq/latchkey/internal/invite"
	"github.com/latchkeyhq/latchkey/internal/ops"
	"github.com/latchkeyhq/latchkey/internal/site"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("latchkey", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("latchkey", parseHandlerDirective)
	// Before every other auth handler, so that identity headers are
	// stripped and set before anything can read them, and so that users need
	// no route block to get the order right.
	httpcaddyfile.RegisterDirectiveOrder("latchkey", httpcaddyfile.Before, "basic_auth")
}

// parseGlobalOption sets up the latchkey app:
//
//	latchkey {
//		storage sqlite <path>
//		storage postgres <dsn>
//		storage postgres {
//			dsn <dsn>
//			dsn_file <path>
//		}
//		secret <value>
//		secret_file <path>
//		previous_secrets <value>...
//		templates <dir>
//		audit {
//			queue_size <n>
//			batch_size <n>
//			flush_interval <duration>
//			sessions activity|every_request
//		}
//		retention {
//			every <duration>
//			retain_ip <duration>
//			retain_sessions <duration>
//			retain_audit <duration>
//		}
//	}
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("the latchkey global option may appear only once")
	}
	app := new(App)
	d.Next() // the option's name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "storage":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.Err("storage needs a driver: storage sqlite <path>, or storage postgres <dsn>")
			}
			switch args[0] {
			case "sqlite":
				if len(args) != 2 {
					return nil, d.Err("storage sqlite needs exactly one path: storage sqlite <path>")
				}
				app.Storage = &StorageConfig{Driver: "sqlite", Path: args[1]}
			case "postgres":
				sc, err := parsePostgresStorage(d, args[1:])
				if err != nil {
					return nil, err
				}
				app.Storage = sc
			default:
				return nil, d.Errf("unknown storage driver %q (want sqlite or postgres)", args[0])
			}
		case "secret":
			if err := oneArg(d, &app.Secret); err != nil {
				return nil, err
			}
		case "secret_file":
			if err := oneArg(d, &app.SecretFile); err != nil {
				return nil, err
			}
		case "previous_secrets":
			// Newest first, as many as the line gives; placeholders are
			// expanded (and lengths checked) when the app starts.
			vals := d.RemainingArgs()
			if len(vals) == 0 {
				return nil, d.Err("previous_secrets needs at least one secret, e.g. previous_secrets {env.LATCHKEY_OLD_SECRET}")
			}
			if app.PreviousSecrets != nil {
				return nil, d.Err("previous_secrets given twice; list them all on one line, newest first")
			}
			app.PreviousSecrets = vals
		case "templates":
			if err := oneArg(d, &app.Templates); err != nil {
				return nil, err
			}
		case "audit":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			app.Audit = new(AuditConfig)
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch d.Val() {
				case "queue_size":
					if err := positiveInt(d, &app.Audit.QueueSize); err != nil {
						return nil, err
					}
				case "batch_size":
					if err := positiveInt(d, &app.Audit.BatchSize); err != nil {
						return nil, err
					}
				case "flush_interval":
					if err := duration(d, &app.Audit.FlushInterval); err != nil {
						return nil, err
					}
				case "sessions":
					if err := oneArg(d, &app.Audit.Sessions); err != nil {
						return nil, err
					}
					if !audit.ValidSessions(app.Audit.Sessions) {
						return nil, d.Errf("audit sessions %q: want %s (a record of each session's first request from each client) or %s",
							app.Audit.Sessions, audit.SessionsActivity, audit.SessionsEveryRequest)
					}
				default:
					return nil, d.Errf("unknown audit subdirective %q", d.Val())
				}
			}
		case "argon2":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			app.Argon2 = new(Argon2Config)
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				name := d.Val()
				var n int
				if err := positiveInt(d, &n); err != nil {
					return nil, err
				}
				switch {
				case name == "time" && n <= 100:
					app.Argon2.Time = uint32(n)
				case name == "memory_kib" && n <= 4<<20:
					app.Argon2.MemoryKiB = uint32(n)
				case name == "threads" && n <= 255:
					app.Argon2.Threads = uint8(n)
				case name == "time" || name == "memory_kib" || name == "threads":
					return nil, d.Errf("argon2 %s %d is out of range", name, n)
				default:
					return nil, d.Errf("unknown argon2 subdirective %q", name)
				}
			}
		case "link_keys":
			if err := parseLinkKeys(d, app); err != nil {
				return nil, err
			}
		case "smtp":
			smtp, err := parseSMTP(d)
			if err != nil {
				return nil, err
			}
			app.SMTP = smtp
		case "retention":
			rc, err := parseRetention(d)
			if err != nil {
				return nil, err
			}
			app.Retention = rc
		default:
			return nil, d.Errf("unknown latchkey subdirective %q", d.Val())
		}
	}
	if err := app.Validate(); err != nil {
		return nil, d.Err(err.Error())
	}
	return httpcaddyfile.App{Name: "latchkey", Value: caddyconfig.JSON(app, nil)}, nil
}

func parseHandlerDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	if err := m.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	// The site is the site block's hosts, and its origin the block's first
	// address, unless the handler names them.
	if len(m.Hosts) == 0 {
		hosts, origin := blockSite(siteBlockKeys(h))
		m.Hosts = hosts
		if m.Origin == "" && (m.SiteName == "" || len(hosts) > 0 && m.SiteName == hosts[0]) {
			m.Origin = origin
		}
	}
	if err := m.Validate(); err != nil {
		return nil, h.Err(err.Error())
	}
	return m, nil
}

// siteBlockKeys are the addresses of the site block a directive is in.
// Helper keeps its block unexported, so it is read by reflection, which
// only reads; TestCaddyfileGolden fails if a Caddy upgrade moves it.
func siteBlockKeys(h httpcaddyfile.Helper) []string {
	block := reflect.ValueOf(h).FieldByName("parentBlock")
	if !block.IsValid() {
		return nil
	}
	keys := block.FieldByName("Keys")
	if !keys.IsValid() || keys.Kind() != reflect.Slice {
		return nil
	}
	var out []string
	for i := 0; i < keys.Len(); i++ {
		if t := keys.Index(i).FieldByName("Text"); t.IsValid() && t.Kind() == reflect.String {
			out = append(out, t.String())
		}
	}
	return out
}

// blockSite reads site block addresses: their host names, and the origin
// of the first, as Caddy serves it (HTTPS unless http:// or port 80).
// Wildcards and catch-alls (":8080", "http://") give no origin; any
// catch-all address makes the site answer for every host.
func blockSite(keys []string) (hosts []string, origin string) {
	for i, k := range keys {
		a, err := httpcaddyfile.ParseAddress(k)
		if err != nil {
			continue
		}
		if a.Host == "" {
			return nil, ""
		}
		hosts = append(hosts, strings.ToLower(a.Host))
		if i > 0 || strings.Contains(a.Host, "*") || strings.HasPrefix(a.Host, "{") {
			continue
		}
		scheme := a.Scheme
		if scheme == "" {
			scheme = "https"
			if a.Port == "80" {
				scheme = "http"
			}
		}
		port := a.Port
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[scheme]
		}
		if o, err := site.ParseOrigin(scheme + "://" + net.JoinHostPort(a.Host, port)); err == nil {
			origin = o
		}
	}
	return hosts, origin
}

// UnmarshalCaddyfile sets up the handler:
//
//	latchkey {
//		user_header <name>
//		session_header <name>
//		prefix <path>
//		login_url <url>
//		session {
//			cookie <name>
//			idle <duration>
//			lifetime <duration>
//		}
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive's name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "user_header":
			if err := headerName(d, &h.UserHeader); err != nil {
				return err
			}
		case "session_header":
			if err := headerName(d, &h.SessionHeader); err != nil {
				return err
			}
		case "prefix":
			if err := oneArg(d, &h.Prefix); err != nil {
				return err
			}
		case "site":
			if err := oneArg(d, &h.SiteName); err != nil {
				return err
			}
		case "site_name":
			if err := oneArg(d, &h.SiteTitle); err != nil {
				return err
			}
		case "contact":
			if err := oneArg(d, &h.Contact); err != nil {
				return err
			}
		case "origin":
			if err := oneArg(d, &h.Origin); err != nil {
				return err
			}
			if _, err := site.ParseOrigin(h.Origin); err != nil {
				return d.Err(err.Error())
			}
		case "require":
			// require role <name>...: one of them; several lines: all.
			if !d.NextArg() || d.Val() != "role" {
				return d.Err("require: want `require role <name>...`")
			}
			names := d.RemainingArgs()
			if len(names) == 0 {
				return d.Err("require role: name at least one role")
			}
			h.RequireRoles = append(h.RequireRoles, names)
		case "forward":
			fs := d.RemainingArgs()
			if len(fs) == 0 {
				return d.Err("forward: want email and/or name")
			}
			for _, f := range fs {
				if f != "email" && f != "name" {
					return d.Errf("forward %q: want email or name", f)
				}
			}
			h.Forward = append(h.Forward, fs...)
		case "login_url":
			if err := oneArg(d, &h.LoginURL); err != nil {
				return err
			}
		case "session":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.Session = new(SessionConfig)
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch d.Val() {
				case "cookie":
					if err := oneArg(d, &h.Session.Cookie); err != nil {
						return err
					}
					if !validCookieName(h.Session.Cookie) {
						return d.Errf("session cookie name %q is not a valid cookie name", h.Session.Cookie)
					}
				case "idle":
					if err := duration(d, &h.Session.Idle); err != nil {
						return err
					}
				case "lifetime":
					if err := duration(d, &h.Session.Lifetime); err != nil {
						return err
					}
				case "bind":
					bs := d.RemainingArgs()
					if len(bs) == 0 {
						return d.Err("session bind: want user_agent and/or ip_prefix")
					}
					for _, b := range bs {
						if b != "user_agent" && b != "ip_prefix" {
							return d.Errf("session bind %q: want user_agent or ip_prefix", b)
						}
					}
					h.Session.Bind = append(h.Session.Bind, bs...)
				default:
					return d.Errf("unknown session subdirective %q", d.Val())
				}
			}
		case "invite":
			if err := parseInvite(d, h); err != nil {
				return err
			}
		case "password":
			// password [{ throttle <attempts> <window> }]
			h.Password = new(PasswordConfig)
			if d.NextArg() {
				return d.ArgErr()
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch d.Val() {
				case "throttle":
					t, err := parseThrottle(d)
					if err != nil {
						return err
					}
					h.Password.Throttle = t
				default:
					return d.Errf("unknown password subdirective %q", d.Val())
				}
			}
		case "link":
			if err := parseLink(d, h); err != nil {
				return err
			}
		case "ticket":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Err("ticket needs a place and a purpose: ticket louvre visit")
			}
			if !ops.ValidName(args[0]) || !ops.ValidName(args[1]) {
				return d.Errf("ticket place %q and purpose %q must be words without spaces", args[0], args[1])
			}
			if h.Tickets == nil {
				h.Tickets = new(TicketsConfig)
			}
			h.Tickets.Accept = append(h.Tickets.Accept, TicketPair{Place: args[0], Purpose: args[1]})
		case "tickets":
			if err := parseTickets(d, h); err != nil {
				return err
			}
		default:
			return d.Errf("unknown latchkey subdirective %q", d.Val())
		}
	}
	if err := h.Validate(); err != nil {
		return d.Err(err.Error())
	}
	return nil
}

// parseRetention reads
//
//	retention {
//		every <duration>
//		retain_ip <duration>
//		retain_sessions <duration>
//		retain_audit <duration>
//	}
//
// Each may be left out for its default; App.Validate checks them together
// (ops.Retention.Validate).
func parseRetention(d *caddyfile.Dispenser) (*RetentionConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	rc := new(RetentionConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var dst *caddy.Duration
		switch d.Val() {
		case "every":
			dst = &rc.Every
		case "retain_ip":
			dst = &rc.RetainIP
		case "retain_sessions":
			dst = &rc.RetainSessions
		case "retain_audit":
			dst = &rc.RetainAudit
		default:
			return nil, d.Errf("unknown retention subdirective %q (want every, retain_ip, retain_sessions or retain_audit)", d.Val())
		}
		name := d.Val()
		if err := duration(d, dst); err != nil {
			return nil, err
		}
		if *dst == 0 {
			// 0 would read as "not set", which is the default, not none.
			if name == "retain_audit" {
				return nil, d.Err("retain_audit 0: leave retain_audit out to keep audit records for ever")
			}
			return nil, d.Errf("%s 0: give a duration of more than 0, or leave %s out for its default", name, name)
		}
	}
	return rc, nil
}

// parseSMTP reads
//
//	smtp <host:port> {
//		username <name>
//		password <secret>
//		from <address>
//		tls starttls|tls|opportunistic|none
//		insecure_skip_verify
//		timeout <duration>
//		templates <dir>
//	}
func parseSMTP(d *caddyfile.Dispenser) (*SMTPConfig, error) {
	c := new(SMTPConfig)
	if !d.NextArg() {
		return nil, d.Err("smtp needs the server's host:port")
	}
	c.Addr = d.Val()
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "username":
			err = oneArg(d, &c.Username)
		case "password":
			err = oneArg(d, &c.Password)
		case "from":
			err = oneArg(d, &c.From)
		case "tls":
			if err = oneArg(d, &c.TLS); err == nil {
				switch c.TLS {
				case "starttls", "tls", "opportunistic", "none":
				default:
					err = d.Errf("tls: %q is not starttls, tls, opportunistic or none", c.TLS)
				}
			}
		case "insecure_skip_verify":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			c.InsecureSkipVerify = true
		case "timeout":
			err = duration(d, &c.Timeout)
		case "templates":
			err = oneArg(d, &c.Templates)
		default:
			err = d.Errf("unknown smtp subdirective %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	if c.From == "" {
		return nil, d.Err("smtp needs a from address: from noreply@example.com")
	}
	return c, nil
}

// parseTickets reads the route's ticket options
//
//	tickets {
//		params <uuid-name> <password-name>
//		stamp_on <status|class>...
//		lease <duration>
//		throttle <attempts> <window>
//	}
func parseTickets(d *caddyfile.Dispenser, h *Handler) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	if h.Tickets == nil {
		h.Tickets = new(TicketsConfig)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "params":
			args := d.RemainingArgs()
			if len(args) != 2 || !validCookieName(args[0]) || !validCookieName(args[1]) || args[0] == args[1] {
				return d.Err("params needs two different parameter names: params uuid password")
			}
			h.Tickets.UUIDParam, h.Tickets.PasswordParam = args[0], args[1]
		case "stamp_on":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Err("stamp_on needs statuses or classes, e.g. stamp_on 2xx 3xx")
			}
			if _, err := stampOn(args); err != nil {
				return d.Err(err.Error())
			}
			h.Tickets.StampOn = args
		case "lease":
			if err := duration(d, &h.Tickets.Lease); err != nil {
				return err
			}
		case "throttle":
			t, err := parseThrottle(d)
			if err != nil {
				return err
			}
			h.Tickets.Throttle = t
		case "also":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Err("also needs the credentials the route takes besides tickets: also session link invite")
			}
			h.Tickets.Also = append(h.Tickets.Also, args...)
		default:
			return d.Errf("unknown tickets subdirective %q", d.Val())
		}
	}
	return nil
}

func parseThrottle(d *caddyfile.Dispenser) (*ThrottleConfig, error) {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return nil, d.Err("throttle needs a number of failed attempts and a window: throttle 10 1m")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 0 {
		return nil, d.Errf("throttle: %q is not a number of attempts", args[0])
	}
	w, err := caddy.ParseDuration(args[1])
	if err != nil || w <= 0 {
		return nil, d.Errf("throttle: bad window %q (want e.g. 1m)", args[1])
	}
	return &ThrottleConfig{Attempts: n, Window: caddy.Duration(w)}, nil
}

// parseLink reads
//
//	link {
//		param <name>
//		prefix <path>...
//		confirm on|off
//	}
func parseLink(d *caddyfile.Dispenser, h *Handler) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	h.Link = new(LinkConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "param":
			if err := oneArg(d, &h.Link.Param); err != nil {
				return err
			}
		case "prefix":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Err("prefix needs at least one path, like /unsubscribe/")
			}
			for _, p := range args {
				if !strings.HasPrefix(p, "/") {
					return d.Errf("prefix %q must start with '/'", p)
				}
			}
			h.Link.PathPrefixes = append(h.Link.PathPrefixes, args...)
		case "confirm":
			var v string
			if err := oneArg(d, &v); err != nil {
				return err
			}
			switch v {
			case "on":
				t := true
				h.Link.Confirm = &t
			case "off":
				f := false
				h.Link.Confirm = &f
			default:
				return d.Errf("confirm: %q is not on or off", v)
			}
		default:
			return d.Errf("unknown link subdirective %q", d.Val())
		}
	}
	return nil
}

// parseLinkKeys reads
//
//	link_keys {
//		hs256 <kid> [<secret>]
//		ed25519 <kid> <private-key-file>
//		ed25519_public <kid> <public-key-file>
//	}
//
// ed25519_public is a verify-only key (a PKIX "PUBLIC KEY" PEM) for links an
// app signs itself; it cannot be first, since the first key signs.
func parseLinkKeys(d *caddyfile.Dispenser, app *App) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		alg := d.Val()
		args := d.RemainingArgs()
		var k LinkKeyConfig
		switch {
		case alg == "hs256" && (len(args) == 1 || len(args) == 2):
			k = LinkKeyConfig{ID: args[0], Alg: alg}
			if len(args) == 2 {
				k.Secret = args[1]
			}
		case alg == "ed25519" && len(args) == 2:
			k = LinkKeyConfig{ID: args[0], Alg: alg, PrivateKeyFile: args[1]}
		case alg == "ed25519_public" && len(args) == 2:
			if len(app.LinkKeys) == 0 {
				return d.Errf("ed25519_public: key %q is verify-only, so it cannot be the first link key (the first one signs); put an hs256 or ed25519 key first", args[0])
			}
			k = LinkKeyConfig{ID: args[0], Alg: "ed25519", PublicKeyFile: args[1]}
		case alg == "hs256" || alg == "ed25519" || alg == "ed25519_public":
			return d.Errf("%s: want %s <kid> %s", alg, alg, map[string]string{"hs256": "[<secret>]", "ed25519": "<private-key-file>", "ed25519_public": "<public-key-file>"}[alg])
		default:
			return d.Errf("unknown link key algorithm %q (want hs256, ed25519 or ed25519_public)", alg)
		}
		if seen[k.ID] {
			return d.Errf("link key id %q used twice", k.ID)
		}
		seen[k.ID] = true
		app.LinkKeys = append(app.LinkKeys, k)
	}
	if len(app.LinkKeys) == 0 {
		return d.Err("link_keys needs at least one key")
	}
	return nil
}

// parseInvite reads
//
//	invite {
//		length <n>
//		usage_window <duration>
//		expiry <duration>
//		throttle <attempts> <window>
//	}
func parseInvite(d *caddyfile.Dispenser, h *Handler) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	h.Invite = new(InviteConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "length":
			if err := positiveInt(d, &h.Invite.Length); err != nil {
				return err
			}
			if err := invite.CheckLength(h.Invite.Length); err != nil {
				return d.Err(err.Error())
			}
		case "usage_window":
			var v caddy.Duration
			if err := duration(d, &v); err != nil {
				return err
			}
			h.Invite.UsageWindow = &v
		case "expiry":
			var v caddy.Duration
			if err := duration(d, &v); err != nil {
				return err
			}
			h.Invite.Expiry = &v
		case "throttle":
			t, err := parseThrottle(d)
			if err != nil {
				return err
			}
			h.Invite.Throttle = t
		default:
			return d.Errf("unknown invite subdirective %q", d.Val())
		}
	}
	return nil
}

func oneArg(d *caddyfile.Dispenser, dst *string) error {
	name := d.Val()
	if !d.NextArg() {
		return d.Errf("%s needs a value", name)
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.Errf("%s takes one value, got another: %q", name, d.Val())
	}
	return nil
}

func headerName(d *caddyfile.Dispenser, dst *string) error {
	name := d.Val()
	if err := oneArg(d, dst); err != nil {
		return err
	}
	if !httpguts.ValidHeaderFieldName(*dst) {
		return d.Errf("%s: %q is not a valid HTTP header name", name, *dst)
	}
	return nil
}

func duration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	v, err := caddy.ParseDuration(s)
	if err != nil || v < 0 {
		return d.Errf("%s: bad duration %q (want e.g. 90s, 15m, 2h, 30d)", name, s)
	}
	*dst = caddy.Duration(v)
	return nil
}

func positiveInt(d *caddyfile.Dispenser, dst *int) error {
	name := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return d.Errf("%s: %q is not a positive whole number", name, s)
	}
	*dst = n
	return nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*Handler)(nil)
