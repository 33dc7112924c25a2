package gate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/latchkeyhq/latchkey/internal/link"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/web"
)

// Link reasons beyond those of package link.
const (
	ReasonUsedUp       = "used_up"
	ReasonRevoked      = "revoked"
	ReasonUnknownUser  = "unknown_user"
	ReasonInactiveUser = "inactive_user"
	linkKind           = "link"
	// LinkDataHeader carries a link's data to the upstream, as JSON.
	LinkDataHeader = "X-Latchkey-Link-Data"
	// confirmField marks the POST from the confirmation page.
	confirmField = "latchkey_confirm"
)

// LinkConfig is how a route takes signed links.
type LinkConfig struct {
	Param        string   // query parameter, default "token"
	PathPrefixes []string // a link for a path under one of these works on the whole prefix
	// Confirm makes a login-mode link show a confirmation page on GET and be
	// used only by the POST from that page, so that mail scanners that
	// prefetch links cannot use them up.
	Confirm bool
}

var linkStatus = map[string]int{
	link.ReasonBadSignature: http.StatusUnauthorized,
	link.ReasonExpired:      http.StatusGone,
	link.ReasonNotYetValid:  http.StatusForbidden,
	link.ReasonWrongTarget:  http.StatusForbidden,
	ReasonUsedUp:            http.StatusGone,
	ReasonRevoked:           http.StatusGone,
	ReasonUnknownUser:       http.StatusForbidden,
	ReasonInactiveUser:      http.StatusForbidden,
}

type confirmPage struct {
	Title, Message, Action, Button string
}

// serveLink handles a request that carries a signed link.
func (g *Gate) serveLink(w http.ResponseWriter, r *http.Request, env Env, next Next, start time.Time, token, rest string) error {
	h := w.Header()
	// The token must not leak through Referer or a cache.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	ev := g.event(r, env, start)
	ev.Kind = linkKind
	claims, reason, err := g.d.Links.Verify(token, g.d.Now())
	if err != nil && reason == "" {
		reason = link.ReasonBadSignature
	}
	if reason != "" {
		ev.Reason = reason
		return g.refuse(w, r, ev, linkStatus[reason], start)
	}
	ev.CredentialID = claims.ID
	uid, err := claims.UserID()
	if err != nil {
		ev.Reason = ReasonUnknownUser
		return g.refuse(w, r, ev, linkStatus[ev.Reason], start)
	}
	ev.UserID = uid

	// A POST may be the RFC 8058 one-click unsubscribe or the confirmation
	// page's button: read the (small) form, and give the body back to the
	// upstream untouched.
	var oneClick, confirmed bool
	if r.Method == http.MethodPost {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxFormBytes+1))
		if err != nil || len(body) > maxFormBytes {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return nil
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if form, err := url.ParseQuery(string(body)); err == nil {
			oneClick = form.Get("List-Unsubscribe") == "One-Click"
			confirmed = claims.Mode == link.ModeLogin && form.Get(confirmField) == "1"
		}
	}
	if !link.Bind(claims, r.Host, r.URL.EscapedPath(), rest, r.Method, oneClick || confirmed, g.cfg.Link.PathPrefixes) {
		ev.Reason = link.ReasonWrongTarget
		return g.refuse(w, r, ev, linkStatus[ev.Reason], start)
	}
	u, err := g.d.Store.User(r.Context(), uid)
	switch {
	case errors.Is(err, store.ErrNotFound):
		ev.Reason = ReasonUnknownUser
	case err != nil:
		g.d.Logger.Error("looking up link user", zap.Int64("user", uid), zap.Error(err))
		ev.Reason = "store_error"
		return g.refuse(w, r, ev, http.StatusServiceUnavailable, start)
	case !u.Active:
		ev.Reason = ReasonInactiveUser
	case claims.IssuedAt != nil && !u.LinksRevokedBefore.IsZero() && claims.IssuedAt.Before(u.LinksRevokedBefore):
		ev.Reason = ReasonRevoked
	}
	if ev.Reason != "" {
		return g.refuse(w, r, ev, linkStatus[ev.Reason], start)
	}

	if claims.Mode == link.ModeLogin && g.cfg.Link.Confirm && !confirmed {
		// A GET (or a prefetch) only shows the button; nothing is used.
		return g.d.Pages.Render(w, http.StatusOK, web.PageConfirm, confirmPage{
			Title:   "Sign in",
			Message: "Continue to sign in as " + u.Email + ".",
			Action:  r.URL.RequestURI(),
			Button:  "Sign in",
		})
	}

	use := &store.LinkUse{
		JTI: claims.ID, UserID: uid, Target: claims.Target, Mode: claims.Mode, MaxUses: claims.MaxUses,
		At: g.d.Now(), Audit: &ev,
	}
	if claims.ExpiresAt != nil {
		use.ExpiresAt = claims.ExpiresAt.Time
	}
	var cookieToken string
	if claims.Mode == link.ModeLogin {
		tok, sess, err := g.d.Sessions.Prepare(linkKind, claims.ID, env.ClientIP, r.UserAgent())
		if err != nil {
			return err
		}
		sess.UserID = uid
		use.Session, cookieToken = sess, tok
		ev.SessionID = sess.ID
		ev.Status = http.StatusSeeOther
	}
	ev.Outcome, ev.Reason = store.OutcomeAccepted, claims.Mode
	g.d.Audit.Describe(&ev)
	if _, err := g.d.Store.UseLink(r.Context(), use); err != nil {
		ev.Outcome, ev.SessionID, ev.Status = store.OutcomeRefused, "", 0
		if !errors.Is(err, store.ErrConflict) {
			g.d.Logger.Error("using link", zap.String("jti", claims.ID), zap.Error(err))
			ev.Reason = "store_error"
			return g.refuse(w, r, ev, http.StatusServiceUnavailable, start)
		}
		ev.Reason = ReasonUsedUp
		if l, err := g.d.Store.Link(r.Context(), claims.ID); err == nil && !l.RevokedAt.IsZero() {
			ev.Reason = ReasonRevoked
		}
		// A used magic link opened again by the user it signed in (from the
		// mail, or the back button) takes them where it led, not to an error.
		if ev.Reason == ReasonUsedUp && claims.Mode == link.ModeLogin {
			if su, reason, err := g.d.Sessions.Check(r.Context(), g.cookie(r)); err == nil && reason == "" && su.UserID == uid {
				ev.Status = http.StatusSeeOther
				ev.Latency = g.d.Now().Sub(start)
				g.d.Audit.Record(ev)
				http.Redirect(w, r, cleanURL(r.URL.Path, rest), http.StatusSeeOther)
				return nil
			}
		}
		return g.refuse(w, r, ev, linkStatus[ev.Reason], start)
	}

	if claims.Mode == link.ModeLogin {
		g.SetCookie(w, r, cookieToken, use.Session)
		http.Redirect(w, r, cleanURL(r.URL.Path, rest), http.StatusSeeOther)
		return nil
	}

	// Request mode: this request only, without the token, as the user.
	r.URL.RawQuery = rest
	r.RequestURI = r.URL.RequestURI()
	r.Form, r.PostForm = nil, nil
	uidStr := strconv.FormatInt(uid, 10)
	r.Header[g.userKey] = []string{uidStr}
	if env.Vars != nil {
		env.Vars.Set(VarUserID, uidStr)
		env.Vars.Set(VarLinkJTI, claims.ID)
	}
	if len(claims.Data) > 0 {
		js, err := asciiJSON(claims.Data)
		if err == nil {
			r.Header.Set(LinkDataHeader, js)
		}
		if env.Vars != nil {
			for k, v := range claims.Data {
				env.Vars.Set(VarLinkData+k, fmt.Sprint(v))
			}
		}
	}
	sw := &statusWriter{ResponseWriter: w}
	err = next(sw, r)
	status := sw.status
	if err != nil {
		status = g.d.ErrorStatus(err)
	} else if status == 0 {
		status = http.StatusOK
	}
	if ev.ID != 0 {
		if serr := g.d.Store.SetAuditStatus(context.WithoutCancel(r.Context()), ev.ID, status, g.d.Now().Sub(start)); serr != nil {
			g.d.Logger.Warn("recording link response status", zap.String("jti", claims.ID), zap.Error(serr))
		}
	}
	return err
}

// cleanURL is the request's path and query without the token.
func cleanURL(path, rest string) string {
	if rest == "" {
		return path
	}
	return path + "?" + rest
}

// asciiJSON encodes v as JSON with every non-ASCII character escaped, so that
// it survives any header handling on the way upstream.
func asciiJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return escapeNonASCII(b), nil
}

// escapeNonASCII rewrites every non-ASCII character of JSON text as a \u
// escape, which any JSON parser reads back as the same text.
func escapeNonASCII(b []byte) string {
	var out bytes.Buffer
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch {
		case r < utf8.RuneSelf:
			out.WriteByte(b[0])
		case r > 0xFFFF:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&out, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&out, `\u%04x`, r)
		}
		b = b[size:]
	}
	return out.String()
}
