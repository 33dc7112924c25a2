package gate

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/latchkeyhq/latchkey/internal/mail"
	"github.com/latchkeyhq/latchkey/internal/ops"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/throttle"
	"github.com/latchkeyhq/latchkey/internal/web"
)

// LoginLinker mints a login-mode link for a user and mails it; ops.SiteOps
// is one.
type LoginLinker interface {
	SendLoginLink(ctx context.Context, u *store.User, targetURL string) error
}

// Inviter creates an invite to the gate's site for the staff page, as `caddy
// latchkey invites create` and the admin API do; ops.SiteOps is one.
type Inviter interface {
	// CreateInvite makes the invite and, with in.Send, mails it; a failed
	// mail is reported in the result (Sent false), not as an error.
	CreateInvite(ctx context.Context, in ops.NewInvite, by string) (ops.InviteJSON, error)
	// CanMail reports whether there is a mail server to send through.
	CanMail() bool
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

type loginPage struct {
	Chrome
	Title   string
	Action  string
	Next    string
	Message string
	Sent    bool // the message is good news
	Codes   bool // show the invite code form
	Links   bool // show the email form for a sign-in link
	// Passwords shows the email and password form.
	Passwords bool
}

func (g *Gate) loginPage(r *http.Request) loginPage {
	return loginPage{Chrome: g.chrome(r), Title: "Sign in", Action: g.login, Next: SafeNext(r.URL.Query().Get("next")),
		Codes: g.d.Invites != nil, Links: g.d.LoginLinks != nil, Passwords: g.d.Passwords != nil}
}

// parseForm reads a form posted to one of the gateway's pages, bounded.
func (g *Gate) parseForm(rq *Request) (url.Values, bool) {
	r := rq.R
	if r.PostForm == nil {
		r.Body = http.MaxBytesReader(rq.W, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			return nil, false
		}
	}
	return r.PostForm, true
}

// servePage serves the gateway's own pages under the reserved prefix. Every
// state-changing request to them passes the cross-origin check first.
func (g *Gate) servePage(rq *Request) error {
	w, r := rq.W, rq.R
	setCredentialHeaders(w)
	rq.Ev.Kind = "page"
	if !safeMethod(r.Method) {
		if err := g.csrf.Check(r); err != nil {
			return g.refuse(rq, &Refusal{Status: http.StatusForbidden, Reason: "cross_origin"})
		}
	}
	switch r.URL.Path {
	case g.logout:
		return g.serveLogout(rq)
	case g.login:
		if g.d.Invites != nil || g.d.LoginLinks != nil || g.d.Passwords != nil {
			return g.serveLogin(rq)
		}
	case g.invite:
		if g.d.Invites != nil && g.d.Inviter != nil {
			return g.serveInvitePage(rq)
		}
	case g.mine:
		if g.d.Sessions != nil {
			return g.serveSessionsPage(rq)
		}
	case g.admin:
		if g.d.Sessions != nil {
			return g.serveDashboard(rq)
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

func methodNotAllowed(w http.ResponseWriter) error {
	w.Header().Set("Allow", "GET, HEAD, POST")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return nil
}

// serveLogin shows the login form; a POST with a code never gets here (the
// invite credential takes it), so a POST here asks for a sign-in link.
func (g *Gate) serveLogin(rq *Request) error {
	w, r := rq.W, rq.R
	page := g.loginPage(r)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return g.d.Pages.Render(w, http.StatusOK, web.PageLogin, page)
	case http.MethodPost:
	default:
		return methodNotAllowed(w)
	}
	form, ok := g.parseForm(rq)
	if !ok {
		return g.refuse(rq, &Refusal{Status: http.StatusBadRequest, Reason: "bad_request"})
	}
	page.Next = SafeNext(form.Get("next"))
	if g.d.LoginLinks == nil || !form.Has("email") {
		rq.Ev.Kind = KindInvite
		rq.page = func(w http.ResponseWriter, rf *Refusal) error {
			page.Message = msgBadCode
			return g.d.Pages.Render(w, rf.Status, web.PageLogin, page)
		}
		return g.refuse(rq, &Refusal{Status: http.StatusUnauthorized, Reason: "missing"})
	}
	return g.serveLinkRequest(rq, page)
}

// serveLinkRequest mails a sign-in link to an active user with the address.
// The answer is the same, at the same cost, whether or not there is one:
// the mail is queued, not sent while the request waits.
func (g *Gate) serveLinkRequest(rq *Request, page loginPage) error {
	w, r, ev := rq.W, rq.R, &rq.Ev
	ev.Kind = KindLink
	email, _ := mail.NormalizeAddress(r.PostForm.Get("email"))
	// Every request counts, so reservations are never given back: each is a
	// failure, for every gateway on the store.
	held, rf := reserveAll(r.Context(), g.d.Now(), []limit{{g.d.LinkRequestsPerIP, rq.Env.ClientIP}, {g.d.LinkRequestsPerAddress, email}})
	held.fail(context.WithoutCancel(r.Context()), g.d.Now())
	if rf != nil {
		rq.page = func(w http.ResponseWriter, rf *Refusal) error {
			page.Message = msgThrottled
			return g.d.Pages.Render(w, rf.Status, web.PageLogin, page)
		}
		return g.refuse(rq, rf)
	}
	ev.Reason = "no_account"
	if email != "" {
		u, err := g.accountOf(r.Context(), email)
		switch {
		case err == nil && u.Active:
			ev.UserID = u.ID
			target := page.Next
			if target == "" {
				target = "/"
			}
			if err := g.sendLoginLink(r.Context(), u, target); err != nil {
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
	g.record(rq)
	page.Message, page.Sent = msgLinkSent, true
	return g.d.Pages.Render(w, http.StatusOK, web.PageLogin, page)
}

// accountOf is the account an address has on this site: the site's own
// user, else a user known on every site.
func (g *Gate) accountOf(ctx context.Context, email string) (*store.User, error) {
	u, err := g.d.Store.UserByEmail(ctx, g.site.Name, email)
	if errors.Is(err, store.ErrNotFound) {
		u, err = g.d.Store.UserByEmail(ctx, "", email)
	}
	return u, err
}

// sendLoginLink mails u a sign-in link to path on the site's origin — never
// to the host the request named.
func (g *Gate) sendLoginLink(ctx context.Context, u *store.User, path string) error {
	target, err := g.site.URL(path)
	if err != nil {
		return err
	}
	return g.d.LoginLinks.SendLoginLink(ctx, u, target)
}

type logoutPage struct {
	Chrome
	Title    string
	Action   string
	SignedIn bool
	// SignedOut confirms a sign-out just done; LoginURL offers the way back.
	SignedOut bool
	LoginURL  string
}

// serveLogout ends the session on POST. GET shows a button rather than
// logging out, so that a link or a prefetch cannot end a session.
func (g *Gate) serveLogout(rq *Request) error {
	w, r, ev := rq.W, rq.R, &rq.Ev
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		page := logoutPage{Chrome: g.chrome(r), Title: "Sign out", Action: g.logout, SignedIn: g.currentSession(r) != nil, LoginURL: g.cfg.LoginURL}
		if !page.SignedIn && r.URL.Query().Get("signed_out") != "" {
			page.Title, page.SignedOut = "You are signed out", true
		}
		return g.d.Pages.Render(w, http.StatusOK, web.PageLogout, page)
	case http.MethodPost:
	default:
		return methodNotAllowed(w)
	}
	ev.Kind, ev.Reason = KindSession, "logout"
	if su := g.currentSession(r); su != nil {
		ev.UserID, ev.SessionID, ev.CredentialID = su.UserID, su.ID, su.ID
		if err := g.d.Sessions.End(r.Context(), su.ID); err != nil {
			g.d.Logger.Error("ending session", zap.String("session", su.ID), zap.Error(err))
			return g.refuse(rq, &Refusal{Status: http.StatusServiceUnavailable, Reason: "store_error"})
		}
		ev.Outcome = store.OutcomeAccepted
	}
	if g.cookie(r) != "" {
		g.clearCookie(w, rq)
	}
	if wantsJSON(r) {
		w.WriteHeader(http.StatusNoContent)
		ev.Status = http.StatusNoContent
	} else {
		// Without a page to go back to, the sign-out is confirmed on the
		// sign-out page itself.
		target := SafeNext(r.FormValue("next"))
		if target == "" {
			target = g.logout + "?signed_out=1"
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
		ev.Status = http.StatusSeeOther
	}
	if ev.SessionID != "" {
		g.record(rq)
	}
	return nil
}

type invitePage struct {
	Chrome
	Title    string
	Action   string
	Message  string
	Failed   bool
	Code     string
	LoginURL string
	// What was typed, kept when the form comes back with an error.
	Email, Name, Phone string
}

// serveInvitePage lets staff of this site invite someone to it. It never
// hands over an existing account: for an address that has one on the site
// it mails that address a sign-in link instead of showing a code. It never
// grants roles. The invite itself is made by Deps.Inviter, the operation
// behind `caddy latchkey invites create` and the admin API.
func (g *Gate) serveInvitePage(rq *Request) error {
	w, r, ev := rq.W, rq.R, &rq.Ev
	ev.Kind = "invite_page"
	su, reason, err := g.d.Sessions.Check(r.Context(), g.cookie(r))
	if err != nil {
		g.d.Logger.Error("checking session", zap.Error(err))
		return g.refuse(rq, &Refusal{Status: http.StatusServiceUnavailable, Reason: "store_error"})
	}
	if reason != "" {
		return g.refuse(rq, &Refusal{Status: http.StatusUnauthorized, Reason: reason})
	}
	ev.UserID, ev.SessionID = su.UserID, su.ID
	u, err := g.d.Store.User(r.Context(), su.UserID)
	if err != nil {
		g.d.Logger.Error("looking up staff user", zap.Error(err))
		return g.refuse(rq, &Refusal{Status: http.StatusServiceUnavailable, Reason: "store_error"})
	}
	if !u.HasRole(g.site.Name, StaffRole) {
		return g.refuse(rq, &Refusal{Status: http.StatusForbidden, Reason: "not_staff"})
	}
	page := invitePage{Chrome: g.chrome(r), Title: "Invite someone", Action: g.invite}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return g.d.Pages.Render(w, http.StatusOK, web.PageInvite, page)
	case http.MethodPost:
	default:
		return methodNotAllowed(w)
	}
	form, ok := g.parseForm(rq)
	if !ok {
		return g.refuse(rq, &Refusal{Status: http.StatusBadRequest, Reason: "bad_request"})
	}
	email, ok := mail.NormalizeAddress(form.Get("email"))
	if !ok {
		page.Email, page.Name, page.Phone = form.Get("email"), form.Get("name"), form.Get("phone")
		page.Message, page.Failed = "Please enter one email address, like name@example.com.", true
		return g.d.Pages.Render(w, http.StatusBadRequest, web.PageInvite, page)
	}
	switch existing, err := g.accountOf(r.Context(), email); {
	case err == nil:
		// Showing a code here would hand the account to whoever typed the
		// address: only its owner gets a way in, by mail.
		ev.Reason = "existing_account"
		page.Message = email + " already has an account here. They can sign in from the sign-in page."
		if existing.Active && g.d.LoginLinks != nil {
			if err := g.sendLoginLink(r.Context(), existing, "/"); err != nil {
				g.d.Logger.Warn("sending a sign-in link from the staff page", zap.Int64("user", existing.ID), zap.Error(err))
			} else {
				page.Message = email + " already has an account here, so we mailed them a sign-in link instead of an invite."
			}
		}
		g.record(rq)
		return g.d.Pages.Render(w, http.StatusOK, web.PageInvite, page)
	case !errors.Is(err, store.ErrNotFound):
		g.d.Logger.Error("looking up invitee", zap.Error(err))
		return g.refuse(rq, &Refusal{Status: http.StatusServiceUnavailable, Reason: "store_error"})
	}
	loginURL, err := g.site.URL(g.login)
	if err != nil {
		loginURL = g.login // no origin: the staff member is on the site, a path will do
	}
	inv, err := g.d.Inviter.CreateInvite(r.Context(), ops.NewInvite{
		Email: email, Name: form.Get("name"), Phone: form.Get("phone"),
		LoginURL: loginURL, Send: g.d.Inviter.CanMail(),
	}, "user:"+strconv.FormatInt(u.ID, 10))
	if err != nil {
		g.d.Logger.Error("creating invite", zap.Error(err))
		return g.refuse(rq, &Refusal{Status: http.StatusServiceUnavailable, Reason: "store_error"})
	}
	ev.Outcome, ev.Reason, ev.CredentialID = store.OutcomeAccepted, "invite_created", strconv.FormatInt(inv.ID, 10)
	g.record(rq)
	switch {
	case inv.Sent == nil:
		page.Message = "Invite created for " + inv.Email + ". No mail server is configured, so give them this code yourself."
		page.Code, page.LoginURL = inv.Code, inv.LoginURL
	case !*inv.Sent:
		g.d.Logger.Warn("sending invite", zap.Int64("invite", inv.ID), zap.String("error", inv.SendError))
		page.Email, page.Name, page.Phone = form.Get("email"), form.Get("name"), form.Get("phone")
		page.Message = "Invite created for " + inv.Email + " but the mail was not sent (" + inv.SendError + "). Give them this code, or resend it later."
		page.Failed, page.Code, page.LoginURL = true, inv.Code, inv.LoginURL
	default:
		page.Message = "Invite sent to " + inv.Email + "."
	}
	return g.d.Pages.Render(w, http.StatusOK, web.PageInvite, page)
}

type sessionsPage struct {
	Chrome
	Title, Action, Email, Message string
	Failed                        bool
	Sessions                      []sessionRow
	// Passwords shows the form to set or change the password; NeedCurrent
	// asks for the current one first.
	Passwords, HasPassword, NeedCurrent bool
}

// minPasswordLen is the shortest password the sessions page sets (NIST
// SP 800-63B's minimum); the longest is the hasher's.
const minPasswordLen = 8

type sessionRow struct {
	ID, Browser, Version, OS, Device, IP, Created, LastSeen string
	Current                                                 bool
}

// serveSessionsPage shows signed-in users their sessions on this site —
// where, in which browser, since when — and lets them end any of them, or
// every one but this, as the user would when a device was lost. The list
// and every ending are the user's own: a session of another user or site
// is not shown and cannot be named.
func (g *Gate) serveSessionsPage(rq *Request) error {
	w, r, ev := rq.W, rq.R, &rq.Ev
	ev.Kind = "sessions_page"
	su, reason, err := g.d.Sessions.Check(r.Context(), g.cookie(r))
	if err != nil {
		g.d.Logger.Error("checking session", zap.Error(err))
		return g.refuse(rq, storeError().Refused)
	}
	if reason != "" {
		return g.refuse(rq, &Refusal{Status: http.StatusUnauthorized, Reason: reason})
	}
	ev.UserID, ev.SessionID, ev.CredentialID = su.UserID, su.ID, su.ID
	u, err := g.linkUser(r.Context(), su.UserID)
	if err != nil {
		g.d.Logger.Error("looking up the signed-in user", zap.Error(err))
		return g.refuse(rq, storeError().Refused)
	}
	list := func() ([]store.Session, error) {
		return g.d.Store.Sessions(r.Context(), store.SessionFilter{UserID: u.ID, Site: g.site.Name, ActiveOnly: true, Now: g.d.Now()})
	}
	ss, err := list()
	if err != nil {
		g.d.Logger.Error("listing sessions", zap.Error(err))
		return g.refuse(rq, storeError().Refused)
	}
	page := sessionsPage{Chrome: g.chrome(r), Title: "Your sessions", Action: g.mine, Email: u.Email}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		form, ok := g.parseForm(rq)
		if !ok {
			return g.refuse(rq, &Refusal{Status: http.StatusBadRequest, Reason: "bad_request"})
		}
		if form.Has("new_password") && g.d.Passwords != nil {
			page.Message, page.Failed = g.setPassword(rq, u, su.Kind, form.Get("current_password"), form.Get("new_password"))
			if !page.Failed {
				ev.Outcome, ev.Reason, ev.Status = store.OutcomeAccepted, "password_set", http.StatusOK
				g.record(rq)
				if u, err = g.d.Store.User(r.Context(), u.ID); err != nil {
					return g.refuse(rq, storeError().Refused)
				}
			}
			break
		}
		var end []string
		switch id := form.Get("revoke"); {
		case form.Get("others") == "1":
			for _, s := range ss {
				if s.ID != su.ID {
					end = append(end, s.ID)
				}
			}
			ev.Reason = "signed_out_others"
		case id != "" && slices.ContainsFunc(ss, func(s store.Session) bool { return s.ID == id }):
			end, ev.Reason = []string{id}, "signed_out_session"
		default:
			// Not one of this user's sessions here: say nothing of it.
			page.Message, page.Failed = "That session is no longer active.", true
		}
		for _, id := range end {
			if err := g.d.Sessions.End(r.Context(), id); err != nil {
				g.d.Logger.Error("ending session from the sessions page", zap.String("session", id), zap.Error(err))
				return g.refuse(rq, storeError().Refused)
			}
		}
		if len(end) > 0 {
			ev.Outcome, ev.Status, ev.Count = store.OutcomeAccepted, http.StatusSeeOther, int64(len(end))
			g.record(rq)
			if slices.Contains(end, su.ID) {
				// This browser's own: signed out here too.
				g.clearCookie(w, rq)
				http.Redirect(w, r, "/", http.StatusSeeOther)
				return nil
			}
			http.Redirect(w, r, g.mine, http.StatusSeeOther)
			return nil
		}
		if ss, err = list(); err != nil {
			return g.refuse(rq, storeError().Refused)
		}
	default:
		return methodNotAllowed(w)
	}
	for _, s := range ss {
		// The user agent is parsed as the audit trail parses it.
		ua := store.AuditEvent{UserAgent: s.UserAgent}
		g.d.Audit.Describe(&ua)
		row := sessionRow{ID: s.ID, Browser: orUnknown(ua.UABrowser), Version: ua.UAVersion, OS: orUnknown(ua.UAOS), Device: ua.UADevice,
			IP: orUnknown(s.IP), Created: s.CreatedAt.UTC().Format("2006-01-02 15:04"), LastSeen: s.LastSeenAt.UTC().Format("2006-01-02 15:04"),
			Current: s.ID == su.ID}
		if row.Current {
			page.Sessions = append([]sessionRow{row}, page.Sessions...)
		} else {
			page.Sessions = append(page.Sessions, row)
		}
	}
	page.Passwords, page.HasPassword = g.d.Passwords != nil, u.PasswordHash != ""
	page.NeedCurrent = page.HasPassword && su.Kind == KindPassword
	status := http.StatusOK
	if page.Failed {
		status = http.StatusNotFound
		if r.PostForm.Has("new_password") {
			status = http.StatusBadRequest
		}
	}
	return g.d.Pages.Render(w, status, web.PageSessions, page)
}

// setPassword sets the signed-in user's password. In a session the
// password itself started, a user must give the current one first (a
// session left open on a shared computer is not enough to take the
// account); a session started by a sign-in link or invite code proved the
// mailbox, and is how a forgotten password is replaced. It says what
// happened for the page.
func (g *Gate) setPassword(rq *Request, u *store.User, sessionKind, current, next string) (msg string, failed bool) {
	ctx := rq.R.Context()
	if u.PasswordHash != "" && sessionKind == KindPassword {
		// Throttled like a login: the current password is a guess too.
		held, rf := g.reserve(rq, KindPassword, g.site.Name+"\x00"+u.Email)
		if rf != nil {
			return msgThrottled, true
		}
		ok, _, err := g.d.Passwords.Verify(ctx, current, u.PasswordHash)
		if err != nil || !ok {
			held.fail(context.WithoutCancel(ctx), g.d.Now())
			return "Your current password was not right.", true
		}
		held.release()
	}
	if utf8.RuneCountInString(next) < minPasswordLen {
		return fmt.Sprintf("Choose a password of at least %d characters.", minPasswordLen), true
	}
	h, err := g.d.Passwords.Hash(ctx, next)
	if err != nil {
		return "That password cannot be used: " + err.Error(), true
	}
	if err := g.d.Store.SetPassword(ctx, u.ID, h); err != nil {
		g.d.Logger.Error("setting a password", zap.Int64("user", u.ID), zap.Error(err))
		return "Your password could not be saved; please try again.", true
	}
	if g.d.Sessions != nil {
		g.d.Sessions.ForgetUser(u.ID)
	}
	return "Your password is set. You can sign in with it from now on.", false
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
