package gate

import (
	"net/http"
	"net/netip"

	"go.uber.org/zap"

	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// sessionCredential is the gateway's session cookie: the credential every
// other one (but tickets and request-mode links) leads to.
type sessionCredential struct{ g *Gate }

func (c *sessionCredential) Kind() string                   { return KindSession }
func (c *sessionCredential) Present(*Request) bool          { return true }
func (c *sessionCredential) ThrottleKey(rq *Request) string { return "" }

func (c *sessionCredential) Use(rq *Request) Outcome {
	g := c.g
	token := g.cookie(rq.R)
	su, reason, err := g.d.Sessions.Check(rq.R.Context(), token)
	if err != nil {
		// A store failure is not the client's fault: 503, audited, and the
		// request goes no further.
		g.d.Logger.Error("checking session", zap.Error(err))
		return Outcome{Refused: &Refusal{Status: http.StatusServiceUnavailable, Reason: "store_error", Free: true}}
	}
	if su != nil {
		rq.Ev.UserID, rq.Ev.SessionID, rq.Ev.CredentialID = su.UserID, su.ID, su.ID
	}
	if reason != "" {
		// A cookie of another site may be that site's live session (hosts
		// that share a cookie jar): leave it alone.
		clear := token != "" && reason != session.ReasonWrongSite
		return Outcome{Refused: &Refusal{Status: http.StatusUnauthorized, Reason: reason, ClearCookie: clear}}
	}
	r := rq.R
	if su.IP != "" && (su.IP != rq.Env.ClientIP || su.UserAgent != r.UserAgent()) {
		// Seen from a client it did not start in: recorded once per new
		// client (the activity record), as the start of a possible theft.
		rq.Ev.Reason = ReasonSessionMoved
		if why := g.stolen(su, rq); why != "" {
			if err := g.d.Sessions.End(r.Context(), su.ID); err != nil {
				g.d.Logger.Error("ending a session that moved", zap.String("session", su.ID), zap.Error(err))
				return storeError()
			}
			g.d.Logger.Warn("session ended: its cookie came from another "+why, zap.String("session", su.ID), zap.Int64("user", su.UserID))
			return Outcome{Refused: &Refusal{Status: http.StatusUnauthorized, Reason: ReasonPossibleTheft, ClearCookie: true}}
		}
	}
	return Outcome{UserID: su.UserID, SessionID: su.ID}
}

// Reasons of the session theft signals.
const (
	ReasonSessionMoved  = "session_moved"
	ReasonPossibleTheft = "possible_theft"
)

// stolen says what the route binds sessions to that the request does not
// match ("browser", "network"), or "".
func (g *Gate) stolen(su *store.SessionUser, rq *Request) string {
	if g.cfg.BindUserAgent && su.UserAgent != rq.R.UserAgent() {
		then, now := store.AuditEvent{UserAgent: su.UserAgent}, store.AuditEvent{UserAgent: rq.R.UserAgent()}
		g.d.Audit.Describe(&then)
		g.d.Audit.Describe(&now)
		if then.UABrowser != now.UABrowser || then.UAOS != now.UAOS {
			return "browser"
		}
	}
	if g.cfg.BindIPPrefix && netPrefix(su.IP) != netPrefix(rq.Env.ClientIP) {
		return "network"
	}
	return ""
}

// netPrefix is the network an address is in for ip_prefix binding: its
// /24 (IPv4) or /48 (IPv6); the text itself when it is not an address.
func netPrefix(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return ip
	}
	return p.String()
}

// currentSession is the request's live session on this site, or nil.
func (g *Gate) currentSession(r *http.Request) *store.SessionUser {
	su, reason, err := g.d.Sessions.Check(r.Context(), g.cookie(r))
	if err != nil || reason != "" {
		return nil
	}
	return su
}

func (g *Gate) cookie(r *http.Request) string {
	c, err := r.Cookie(g.cfg.CookieName)
	if err != nil {
		return ""
	}
	return c.Value
}

// secure reports whether the browser reached the site over HTTPS: directly,
// through a trusted proxy that terminated TLS, or per the site's origin.
func (g *Gate) secure(rq *Request) bool {
	return rq.R.TLS != nil || rq.Env.ForwardedHTTPS || g.site.Secure()
}

// setCookie sends a session cookie that lasts until the session's absolute
// end. Secure whenever the browser uses HTTPS, so the cookie never leaks
// over HTTP; plain-HTTP development setups still work.
func (g *Gate) setCookie(w http.ResponseWriter, rq *Request, token string, s *store.Session) {
	http.SetCookie(w, &http.Cookie{
		Name:     g.cfg.CookieName,
		Value:    token,
		Path:     "/",
		Expires:  s.ExpiresAt,
		HttpOnly: true,
		Secure:   g.secure(rq),
		SameSite: http.SameSiteLaxMode,
	})
}

func (g *Gate) clearCookie(w http.ResponseWriter, rq *Request) {
	http.SetCookie(w, &http.Cookie{
		Name:     g.cfg.CookieName,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   g.secure(rq),
		SameSite: http.SameSiteLaxMode,
	})
}
