package gate

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/latchkeyhq/latchkey/internal/invite"
	"github.com/latchkeyhq/latchkey/internal/mail"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/web"
)

// StaffRole may use the invite page.
const StaffRole = "staff"

// maxFormBytes bounds what the gateway's own forms read.
const maxFormBytes = 64 << 10

// Mailer sends an invite; inviteID lets it record the delivery.
type Mailer interface {
	SendInvite(ctx context.Context, inv *store.Invite, code, loginURL string, usageWindow time.Duration) error
}

type loginPage struct {
	Title   string
	Action  string
	Next    string
	Message string
	Sent    bool // the message is good news
	Codes   bool // show the invite code form
	Links   bool // show the email form for a sign-in link
}

// Messages shown on the login form. One message for every refusal, so that
// the page does not tell a guesser which codes exist.
const (
	msgBadCode   = "That code did not work. Check it and try again, or ask for a new invite."
	msgThrottled = "Too many attempts. Please wait a moment and try again."
)

// retryAfter is a Retry-After value that never says 0 while still limited.
func retryAfter(wait time.Duration) string {
	return strconv.Itoa(int(wait.Seconds()) + 1)
}

// serveLogin shows the code form on GET and redeems a code on POST.
func (g *Gate) serveLogin(w http.ResponseWriter, r *http.Request, env Env, start time.Time) error {
	page := loginPage{Title: "Sign in", Action: g.login, Next: SafeNext(r.URL.Query().Get("next")),
		Codes: g.d.Invites != nil, Links: g.d.LoginLinks != nil}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return g.d.Pages.Render(w, http.StatusOK, web.PageLogin, page)
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return nil
	}
	ev := g.event(r, env, start)
	ev.Kind = invite.Kind
	if err := g.csrf.Check(r); err != nil {
		ev.Reason = "cross_origin"
		return g.refuse(w, r, ev, http.StatusForbidden, start)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return nil
	}
	page.Next = SafeNext(r.PostForm.Get("next"))
	if r.PostForm.Get("code") == "" && r.PostForm.Has("email") && g.d.LoginLinks != nil {
		return g.serveLinkRequest(w, r, env, start, page)
	}
	if g.d.Invites == nil {
		http.Error(w, "this site signs in with emailed links only", http.StatusBadRequest)
		return nil
	}
	now := g.d.Now()
	if ok, wait := g.d.Throttle.Allow(env.ClientIP, now); !ok {
		ev.Reason = invite.ReasonThrottled
		ev.Status = http.StatusTooManyRequests
		ev.Latency = g.d.Now().Sub(start)
		g.d.Audit.Record(ev)
		w.Header().Set("Retry-After", retryAfter(wait))
		page.Message = msgThrottled
		return g.d.Pages.Render(w, http.StatusTooManyRequests, web.PageLogin, page)
	}

	token, sess, err := g.d.Sessions.Prepare(invite.Kind, "", env.ClientIP, r.UserAgent())
	if err != nil {
		return err
	}
	ev.Status = http.StatusSeeOther
	ev.SessionID = sess.ID
	g.d.Audit.Describe(&ev)
	res, err := g.d.Invites.Redeem(r.Context(), invite.Attempt{
		Code: r.PostForm.Get("code"), Host: r.Host, IP: env.ClientIP, Session: sess, Audit: &ev,
	})
	if err != nil {
		g.d.Logger.Error("redeeming invite code", zap.Error(err))
		ev.Outcome, ev.SessionID, ev.Reason = store.OutcomeRefused, "", "store_error"
		return g.refuse(w, r, ev, http.StatusServiceUnavailable, start)
	}
	if res.Reason != "" {
		g.d.Throttle.Fail(env.ClientIP, now)
		ev.Outcome, ev.SessionID, ev.Reason = store.OutcomeRefused, "", res.Reason
		if res.Invite != nil {
			ev.CredentialID = strconv.FormatInt(res.Invite.ID, 10)
		}
		if res.User != nil {
			ev.UserID = res.User.ID
		}
		ev.Status = http.StatusUnauthorized
		ev.Latency = g.d.Now().Sub(start)
		g.d.Audit.Record(ev)
		page.Message = msgBadCode
		return g.d.Pages.Render(w, http.StatusUnauthorized, web.PageLogin, page)
	}
	// Accepted: the store wrote the use, session and audit record together.
	sess.CredentialID = strconv.FormatInt(res.Invite.ID, 10)
	g.SetCookie(w, r, token, sess)
	target := page.Next
	if target == "" {
		target = "/"
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusSeeOther)
	return nil
}

type invitePage struct {
	Title    string
	Action   string
	Message  string
	Failed   bool
	Code     string
	LoginURL string
}

// serveInvitePage lets staff invite someone to this site.
func (g *Gate) serveInvitePage(w http.ResponseWriter, r *http.Request, env Env, start time.Time) error {
	su, reason, err := g.d.Sessions.Check(r.Context(), g.cookie(r))
	if err != nil {
		return err
	}
	if reason != "" {
		ev := g.event(r, env, start)
		ev.Reason = reason
		return g.refuse(w, r, ev, http.StatusUnauthorized, start)
	}
	u, err := g.d.Store.User(r.Context(), su.UserID)
	if err != nil {
		return err
	}
	if !u.HasRole(StaffRole) {
		ev := g.event(r, env, start)
		ev.Kind, ev.UserID, ev.SessionID, ev.Reason = "invite_page", u.ID, su.ID, "not_staff"
		return g.refuse(w, r, ev, http.StatusForbidden, start)
	}
	page := invitePage{Title: "Invite someone", Action: g.invite}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return g.d.Pages.Render(w, http.StatusOK, web.PageInvite, page)
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return nil
	}
	if err := g.csrf.Check(r); err != nil {
		ev := g.event(r, env, start)
		ev.Kind, ev.UserID, ev.Reason = "invite_page", u.ID, "cross_origin"
		return g.refuse(w, r, ev, http.StatusForbidden, start)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return nil
	}
	email, ok := mail.NormalizeAddress(r.PostForm.Get("email"))
	if !ok {
		page.Message, page.Failed = "Please enter one email address.", true
		return g.d.Pages.Render(w, http.StatusBadRequest, web.PageInvite, page)
	}
	inv := &store.Invite{
		Site:      invite.SiteOf(r.Host),
		Email:     email,
		Name:      strings.TrimSpace(r.PostForm.Get("name")),
		Phone:     strings.TrimSpace(r.PostForm.Get("phone")),
		CreatedBy: "user:" + strconv.FormatInt(u.ID, 10),
	}
	code, err := g.d.Invites.Create(r.Context(), inv, g.cfg.InviteLength)
	if err != nil {
		return err
	}
	loginURL := "http://" + r.Host + g.login
	if r.TLS != nil {
		loginURL = "https://" + r.Host + g.login
	}
	switch {
	case g.d.Mailer == nil:
		page.Message = "Invite created for " + inv.Email + ". No mail server is configured, so give them this code yourself."
		page.Code, page.LoginURL = code, loginURL
	default:
		if err := g.d.Mailer.SendInvite(r.Context(), inv, code, loginURL, g.d.Invites.Rules().UsageWindow); err != nil {
			g.d.Logger.Warn("sending invite", zap.Int64("invite", inv.ID), zap.Error(err))
			page.Message = "Invite created for " + inv.Email + " but the mail was not sent (" + err.Error() + "). Give them this code, or resend it later."
			page.Failed, page.Code, page.LoginURL = true, code, loginURL
		} else {
			page.Message = "Invite sent to " + inv.Email + "."
		}
	}
	return g.d.Pages.Render(w, http.StatusOK, web.PageInvite, page)
}
