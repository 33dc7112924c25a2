package gate

import (
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/latchkeyhq/latchkey/internal/invite"
	"github.com/latchkeyhq/latchkey/internal/web"
)

// StaffRole may use the invite page.
const StaffRole = "staff"

// Messages shown on the login form. One message for every refusal, so that
// the page does not tell a guesser which codes exist.
const (
	msgBadCode   = "That code did not work. Check it and try again, or ask for a new invite."
	msgThrottled = "Too many attempts. Please wait a moment and try again."
)

// inviteCredential is an invite code typed into the login page.
type inviteCredential struct{ g *Gate }

func (c *inviteCredential) Kind() string                   { return KindInvite }
func (c *inviteCredential) ThrottleKey(rq *Request) string { return "" }

func (c *inviteCredential) Present(rq *Request) bool {
	r := rq.R
	if r.Method != http.MethodPost || r.URL.Path != c.g.login {
		return false
	}
	form, ok := c.g.parseForm(rq)
	return ok && form.Get("code") != ""
}

func (c *inviteCredential) Use(rq *Request) Outcome {
	g, r, ev := c.g, rq.R, &rq.Ev
	token, sess, err := g.d.Sessions.Prepare(KindInvite, "", rq.Env.ClientIP, r.UserAgent())
	if err != nil {
		g.d.Logger.Error("preparing session", zap.Error(err))
		return storeError()
	}
	ev.Status = http.StatusSeeOther
	ev.SessionID = sess.ID
	g.d.Audit.Describe(ev)
	res, err := g.d.Invites.Redeem(r.Context(), invite.Attempt{
		Code: r.PostForm.Get("code"), Site: g.site.Name, IP: rq.Env.ClientIP, Session: sess, Audit: ev,
	})
	if err != nil {
		g.d.Logger.Error("redeeming invite code", zap.Error(err))
		ev.SessionID = ""
		return storeError()
	}
	if res.Reason != "" {
		ev.SessionID = ""
		if res.Invite != nil {
			ev.CredentialID = strconv.FormatInt(res.Invite.ID, 10)
		}
		if res.User != nil {
			ev.UserID = res.User.ID
		}
		// One answer for every refusal, in JSON too: which codes exist, on
		// which site, is not for a guesser to learn.
		return Outcome{Refused: &Refusal{Status: http.StatusUnauthorized, Reason: res.Reason, Shown: "invalid_code"}}
	}
	// Accepted: the store wrote the use, session and audit record together.
	sess.CredentialID = strconv.FormatInt(res.Invite.ID, 10)
	target := SafeNext(r.PostForm.Get("next"))
	if target == "" {
		target = "/"
	}
	return Outcome{UserID: res.User.ID, SessionID: sess.ID, Recorded: true, Consumed: consumedAlways, Respond: func(w http.ResponseWriter) error {
		g.setCookie(w, rq, token, sess)
		http.Redirect(w, r, target, http.StatusSeeOther)
		return nil
	}}
}

// RefusalPage shows the login form again with one message for every
// refusal of a code.
func (c *inviteCredential) RefusalPage(rq *Request, w http.ResponseWriter, rf *Refusal) error {
	return c.g.loginRefusalPage(rq, w, rf, msgBadCode)
}

// loginRefusalPage shows the login page again after a refused sign-in, with
// badMsg for a wrong credential and the throttle's message for 429; other
// refusals get the plain refusal page.
func (g *Gate) loginRefusalPage(rq *Request, w http.ResponseWriter, rf *Refusal, badMsg string) error {
	page := g.loginPage(rq.R)
	page.Next = SafeNext(rq.R.PostForm.Get("next"))
	switch rf.Status {
	case http.StatusTooManyRequests:
		page.Message = msgThrottled
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusGone:
		page.Message = badMsg
	default:
		return g.writeRefusal(w, rq.R, KindInvite, rf.Status, rf.Reason)
	}
	return g.d.Pages.Render(w, rf.Status, web.PageLogin, page)
}
