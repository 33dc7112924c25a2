package gate

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/latchkeyhq/latchkey/internal/invite"
	"github.com/latchkeyhq/latchkey/internal/mail"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/throttle"
	"github.com/latchkeyhq/latchkey/internal/web"
)

// LoginLinker mints a login-mode link for a user and mails it.
type LoginLinker interface {
	SendLoginLink(ctx context.Context, u *store.User, targetURL string) error
}

// Limits on asking for sign-in links: each request may send a mail, so every
// request counts, not only failures.
var (
	LinkRequestsPerIP      = 20
	LinkRequestsPerAddress = 5
	LinkRequestWindow      = 15 * time.Minute
)

// NewLinkRequestLimiters returns the per-IP and per-address limiters.
func NewLinkRequestLimiters() (perIP, perAddress *throttle.Limiter) {
	return throttle.New(LinkRequestsPerIP, LinkRequestWindow), throttle.New(LinkRequestsPerAddress, LinkRequestWindow)
}

// msgLinkSent is the one answer, whether or not the address has an account,
// so that the form does not tell who is a user.
const msgLinkSent = "If an account uses that address, we have sent it a sign-in link. It works once, for 15 minutes."

// serveLinkRequest mails a sign-in link to an active user with the address.
func (g *Gate) serveLinkRequest(w http.ResponseWriter, r *http.Request, env Env, start time.Time, page loginPage) error {
	ev := g.event(r, env, start)
	ev.Kind = linkKind
	now := g.d.Now()
	email, _ := mail.NormalizeAddress(r.PostForm.Get("email"))
	okIP, waitIP := g.d.LinkRequestsPerIP.Allow(env.ClientIP, now)
	okAddr, waitAddr := g.d.LinkRequestsPerAddress.Allow(email, now)
	if !okIP || !okAddr {
		ev.Reason, ev.Status = "throttled", http.StatusTooManyRequests
		ev.Latency = g.d.Now().Sub(start)
		g.d.Audit.Record(ev)
		w.Header().Set("Retry-After", retryAfter(max(waitIP, waitAddr)))
		page.Message = msgThrottled
		return g.d.Pages.Render(w, http.StatusTooManyRequests, web.PageLogin, page)
	}
	g.d.LinkRequestsPerIP.Fail(env.ClientIP, now)
	g.d.LinkRequestsPerAddress.Fail(email, now)

	ev.Reason = "no_account"
	if email != "" {
		u, err := g.d.Store.UserByEmail(r.Context(), invite.SiteOf(r.Host), email)
		if errors.Is(err, store.ErrNotFound) {
			u, err = g.d.Store.UserByEmail(r.Context(), "", email)
		}
		switch {
		case err == nil && u.Active:
			ev.UserID = u.ID
			scheme := "http://"
			if r.TLS != nil {
				scheme = "https://"
			}
			target := page.Next
			if target == "" {
				target = "/"
			}
			if err := g.d.LoginLinks.SendLoginLink(r.Context(), u, scheme+r.Host+target); err != nil {
				g.d.Logger.Warn("sending a sign-in link", zap.Int64("user", u.ID), zap.Error(err))
				ev.Reason = "send_failed"
			} else {
				ev.Outcome, ev.Reason = store.OutcomeAccepted, "login_link_sent"
			}
		case err == nil:
			ev.UserID, ev.Reason = u.ID, ReasonInactiveUser
		case !errors.Is(err, store.ErrNotFound):
			g.d.Logger.Error("looking up user for a sign-in link", zap.Error(err))
			ev.Reason = "store_error"
		}
	}
	ev.Status = http.StatusOK
	ev.Latency = g.d.Now().Sub(start)
	g.d.Audit.Record(ev)
	page.Message, page.Sent = msgLinkSent, true
	return g.d.Pages.Render(w, http.StatusOK, web.PageLogin, page)
}
