package gate

import (
	"context"
	"errors"
	"net/http"

	"go.uber.org/zap"

	"github.com/latchkeyhq/latchkey/internal/mail"
	"github.com/latchkeyhq/latchkey/internal/password"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// KindPassword is a sign-in with an email address and a password.
const KindPassword = "password"

const msgBadPassword = "That email address and password did not match. Try again, or get a sign-in link by email."

// passwordCredential is the login page's email and password form. A user
// has a password if they set one on the sessions page or were imported
// with a legacy app's hash, which the first good login replaces with
// argon2id. An unknown address, an inactive user or one without a
// password costs the same hashing as a wrong password, and gets the same
// answer.
type passwordCredential struct{ g *Gate }

func (c *passwordCredential) Kind() string { return KindPassword }

// ThrottleKey is the account tried, so that guesses at one account are
// limited however many addresses they come from.
func (c *passwordCredential) ThrottleKey(rq *Request) string {
	email, _ := mail.NormalizeAddress(rq.R.PostForm.Get("email"))
	return c.g.site.Name + "\x00" + email
}

func (c *passwordCredential) Present(rq *Request) bool {
	r := rq.R
	if r.Method != http.MethodPost || r.URL.Path != c.g.login {
		return false
	}
	form, ok := c.g.parseForm(rq)
	return ok && form.Has("password") && form.Get("code") == ""
}

func (c *passwordCredential) Use(rq *Request) Outcome {
	g, r, ev := c.g, rq.R, &rq.Ev
	ctx := r.Context()
	pw := r.PostForm.Get("password")
	email, _ := mail.NormalizeAddress(r.PostForm.Get("email"))
	refused := func(reason string) Outcome {
		return Outcome{Refused: &Refusal{Status: http.StatusUnauthorized, Reason: reason, Shown: "invalid_login"}}
	}
	var u *store.User
	if email != "" {
		var err error
		u, err = g.accountOf(ctx, email)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			g.d.Logger.Error("looking up the account of a password login", zap.Error(err))
			return storeError()
		}
	}
	if u == nil || !u.Active || u.PasswordHash == "" {
		// The same work as a wrong password, so that the answer's time does
		// not say whether the account exists.
		if err := g.d.Passwords.VerifyUnknown(ctx, pw); err != nil && ctx.Err() != nil {
			return storeError()
		}
		switch {
		case u == nil:
			return refused("unknown_account")
		case !u.Active:
			ev.UserID = u.ID
			return refused(ReasonInactiveUser)
		default:
			ev.UserID = u.ID
			return refused("no_password")
		}
	}
	ev.UserID = u.ID
	ok, upgrade, err := g.d.Passwords.Verify(ctx, pw, u.PasswordHash)
	switch {
	case err != nil && ctx.Err() != nil:
		return storeError()
	case err != nil && !errors.Is(err, password.ErrEmptyPassword) && !errors.Is(err, password.ErrPasswordTooLong):
		g.d.Logger.Error("checking a stored password hash", zap.Int64("user", u.ID), zap.Error(err))
		return refused("bad_password")
	case !ok:
		return refused("bad_password")
	}
	if upgrade {
		// The password is known good: keep it as argon2id from now on.
		if h, err := g.d.Passwords.Hash(ctx, pw); err == nil {
			if err := g.d.Store.SetPassword(context.WithoutCancel(ctx), u.ID, h); err != nil {
				g.d.Logger.Warn("upgrading a password hash", zap.Int64("user", u.ID), zap.Error(err))
			} else {
				ev.Reason = "password_upgraded"
			}
		}
	}
	token, sess, err := g.d.Sessions.Start(ctx, u.ID, KindPassword, "", rq.Env.ClientIP, r.UserAgent())
	if err != nil {
		g.d.Logger.Error("starting a session after a password login", zap.Error(err))
		return storeError()
	}
	if err := g.d.Store.RecordLogin(ctx, u.ID, g.d.Now(), rq.Env.ClientIP); err != nil {
		g.d.Logger.Warn("recording a login", zap.Int64("user", u.ID), zap.Error(err))
	}
	target := SafeNext(r.PostForm.Get("next"))
	if target == "" {
		target = "/"
	}
	ev.SessionID = sess.ID
	return Outcome{UserID: u.ID, SessionID: sess.ID, Respond: func(w http.ResponseWriter) error {
		g.setCookie(w, rq, token, sess)
		http.Redirect(w, r, target, http.StatusSeeOther)
		return nil
	}}
}

func (c *passwordCredential) RefusalPage(rq *Request, w http.ResponseWriter, rf *Refusal) error {
	return c.g.loginRefusalPage(rq, w, rf, msgBadPassword)
}
