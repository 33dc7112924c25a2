package gate

import (
	"net/http"

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
	return Outcome{UserID: su.UserID, SessionID: su.ID}
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
