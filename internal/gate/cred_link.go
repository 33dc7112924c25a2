package gate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/latchkeyhq/latchkey/internal/headerjson"
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
	ReasonWrongSite    = "wrong_site"
	// LinkDataHeader carries a link's data to the upstream, as JSON.
	LinkDataHeader = "X-Latchkey-Link-Data"
	// confirmField marks the POST from the confirmation page.
	confirmField = "latchkey_confirm"
)

// LinkConfig is how a route takes signed links.
type LinkConfig struct {
	Param        string   // query parameter, default "token"
	PathPrefixes []string // a link for a path under one of these works on the whole prefix
	// Confirm makes a login-mode link, and a request-mode link with limited
	// uses, show a confirmation page on GET and HEAD and be used only by the
	// POST from that page (or an RFC 8058 one-click POST), so that mail
	// scanners that prefetch links cannot use them up.
	Confirm bool
}

var linkStatus = map[string]int{
	link.ReasonBadSignature: http.StatusUnauthorized,
	link.ReasonMalformed:    http.StatusBadRequest,
	link.ReasonExpired:      http.StatusGone,
	link.ReasonNotYetValid:  http.StatusForbidden,
	link.ReasonWrongTarget:  http.StatusForbidden,
	ReasonUsedUp:            http.StatusGone,
	ReasonRevoked:           http.StatusGone,
	ReasonUnknownUser:       http.StatusForbidden,
	ReasonInactiveUser:      http.StatusForbidden,
	ReasonWrongSite:         http.StatusForbidden,
}

// linkRefusal: a genuine link that can no longer be used does not count
// against the throttle; a forged or misdirected one does.
func linkRefusal(reason string) Outcome {
	free := reason == link.ReasonExpired || reason == ReasonUsedUp || reason == ReasonRevoked || reason == link.ReasonNotYetValid
	return Outcome{Refused: &Refusal{Status: linkStatus[reason], Reason: reason, Free: free}}
}

type confirmPage struct {
	Chrome
	Title, Message, Action, Button string
}

type foundLink struct{ token, rest string }

// linkCredential is a signed link (?token=<JWT>).
type linkCredential struct{ g *Gate }

func (c *linkCredential) Kind() string                   { return KindLink }
func (c *linkCredential) ThrottleKey(rq *Request) string { return "" }

func (c *linkCredential) Present(rq *Request) bool {
	token, rest, found := link.TokenFromQuery(rq.R.URL.RawQuery, c.g.cfg.Link.Param)
	if found {
		rq.Found = &foundLink{token: token, rest: rest}
	}
	return found
}

func (c *linkCredential) Use(rq *Request) Outcome {
	g, r, ev := c.g, rq.R, &rq.Ev
	fl := rq.Found.(*foundLink)
	claims, reason, err := g.d.Links.Verify(fl.token, g.d.Now())
	if err != nil && reason == "" {
		reason = link.ReasonBadSignature
	}
	if reason != "" {
		return linkRefusal(reason)
	}
	ev.CredentialID = claims.ID
	// 0 when the subject is an address: found once the link is known to
	// be for this request and this site.
	uid, _ := claims.UserID()
	ev.UserID = uid

	// A POST may be the RFC 8058 one-click unsubscribe or the confirmation
	// page's button: read the (small) form, and give the body back to the
	// upstream untouched.
	var oneClick, confirmed bool
	if r.Method == http.MethodPost {
		form, ok := readSmallForm(r)
		if !ok {
			return refused(http.StatusRequestEntityTooLarge, "bad_request")
		}
		oneClick = form.Get("List-Unsubscribe") == "One-Click"
		confirmed = form.Get(confirmField) == "1"
	}
	if !link.Bind(claims, r.Host, r.URL.EscapedPath(), fl.rest, r.Method, oneClick || confirmed, g.cfg.Link.PathPrefixes) {
		return linkRefusal(link.ReasonWrongTarget)
	}
	// The request's Host is the client's word: the link's own host must be
	// one of this site's, or a catch-all site would take links made for any
	// other site reachable on its port.
	if th, _, _ := strings.Cut(claims.Target, "/"); !g.site.Owns(th) {
		return linkRefusal(ReasonWrongSite)
	}
	u, err := g.linkSubject(r.Context(), claims, uid)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return linkRefusal(ReasonUnknownUser)
	case err != nil:
		g.d.Logger.Error("looking up link user", zap.Int64("user", uid), zap.Error(err))
		return storeError()
	}
	uid, ev.UserID = u.ID, u.ID
	switch {
	case u.Site != "" && u.Site != g.site.Name:
		return linkRefusal(ReasonWrongSite)
	case !u.Active:
		return linkRefusal(ReasonInactiveUser)
	// A link without iat cannot show it was issued after the user's links
	// were revoked: it counts as issued before.
	case !u.LinksRevokedBefore.IsZero() && (claims.IssuedAt == nil || claims.IssuedAt.Before(u.LinksRevokedBefore)):
		return linkRefusal(ReasonRevoked)
	}

	// spent says why a link that verified can no longer be used, and takes
	// a used magic link opened again by the user it signed in (from the
	// mail, or the back button) where it led, not to an error.
	spent := func(reason string) Outcome {
		if reason == ReasonUsedUp && claims.Mode == link.ModeLogin {
			if su := g.currentSession(r); su != nil && su.UserID == uid {
				ev.Reason = "reopened"
				return Outcome{UserID: uid, SessionID: su.ID, Respond: func(w http.ResponseWriter) error {
					http.Redirect(w, r, cleanURL(r.URL.EscapedPath(), fl.rest), http.StatusSeeOther)
					return nil
				}}
			}
		}
		return linkRefusal(reason)
	}

	limited := claims.Mode == link.ModeLogin || claims.MaxUses > 0
	if g.cfg.Link.Confirm && limited && !confirmed && !oneClick {
		// A link already spent says so at once rather than offering a button
		// that cannot work.
		if l, err := g.d.Store.Link(r.Context(), claims.ID); err == nil {
			switch {
			case !l.RevokedAt.IsZero():
				return spent(ReasonRevoked)
			case l.Site != "" && l.Site != g.site.Name:
				return spent(ReasonWrongSite)
			case l.MaxUses > 0 && l.Uses >= l.MaxUses:
				return spent(ReasonUsedUp)
			}
		}
		// A GET, HEAD or prefetch only shows the button; nothing is used.
		page := confirmPage{Chrome: g.chrome(r), Title: "Continue", Message: "Continue to " + cleanURL(r.URL.EscapedPath(), fl.rest) + ".", Action: r.URL.RequestURI(), Button: "Continue"}
		if claims.Mode == link.ModeLogin {
			page = confirmPage{Chrome: g.chrome(r), Title: "Sign in", Message: "Continue to sign in as " + u.Email + ".", Action: r.URL.RequestURI(), Button: "Sign in"}
		}
		ev.Reason = "confirmation_shown"
		return Outcome{UserID: uid, Respond: func(w http.ResponseWriter) error {
			return g.d.Pages.Render(w, http.StatusOK, web.PageConfirm, page)
		}}
	}

	// A request-mode link with unlimited uses limits nothing: its row (if it
	// has one, not revoked, of this site) is only read, and the use is
	// counted with its audit record by the batching writer, like a session
	// request. Links with limited uses are decided in one transaction.
	if claims.Mode == link.ModeRequest && claims.MaxUses == 0 {
		l, err := g.linkRow(r.Context(), claims.ID)
		switch {
		case err == nil && l.MaxUses == 0 && l.RevokedAt.IsZero() && l.Site == g.site.Name:
			ev.Outcome, ev.Reason, ev.CountsLinkUse = store.OutcomeAccepted, link.ModeRequest, true
			out := g.requestMode(rq, claims, fl, oneClick, confirmed, uid)
			out.Recorded, out.Finish = false, nil
			return out
		case err != nil && !errors.Is(err, store.ErrNotFound):
			g.d.Logger.Error("looking up link", zap.String("jti", claims.ID), zap.Error(err))
			return storeError()
		}
		// No row yet (minted offline), or one that limits it: the
		// transaction below creates or decides it.
	}

	use := &store.LinkUse{
		JTI: claims.ID, Site: g.site.Name, UserID: uid, Target: claims.Target, Mode: claims.Mode, MaxUses: claims.MaxUses,
		At: g.d.Now(), Audit: ev,
	}
	if claims.ExpiresAt != nil {
		use.ExpiresAt = claims.ExpiresAt.Time
	}
	var cookieToken string
	if claims.Mode == link.ModeLogin {
		tok, sess, err := g.d.Sessions.Prepare(KindLink, claims.ID, rq.Env.ClientIP, r.UserAgent())
		if err != nil {
			g.d.Logger.Error("preparing session", zap.Error(err))
			return storeError()
		}
		sess.UserID = uid
		use.Session, cookieToken = sess, tok
		ev.SessionID = sess.ID
		ev.Status = http.StatusSeeOther
	}
	ev.Outcome, ev.Reason = store.OutcomeAccepted, claims.Mode
	g.d.Audit.Describe(ev)
	if _, err := g.d.Store.UseLink(r.Context(), use); err != nil {
		ev.SessionID, ev.Status, ev.ID = "", 0, 0
		if !errors.Is(err, store.ErrConflict) {
			g.d.Logger.Error("using link", zap.String("jti", claims.ID), zap.Error(err))
			return storeError()
		}
		reason := ReasonUsedUp
		if l, err := g.d.Store.Link(r.Context(), claims.ID); err == nil {
			switch {
			case !l.RevokedAt.IsZero():
				reason = ReasonRevoked
			case l.Site != g.site.Name:
				reason = ReasonWrongSite
			}
		}
		return spent(reason)
	}

	if claims.Mode == link.ModeLogin {
		return Outcome{UserID: uid, SessionID: use.Session.ID, Recorded: true, Consumed: consumedAlways, Respond: func(w http.ResponseWriter) error {
			g.setCookie(w, rq, cookieToken, use.Session)
			http.Redirect(w, r, cleanURL(r.URL.EscapedPath(), fl.rest), http.StatusSeeOther)
			return nil
		}}
	}

	return g.requestMode(rq, claims, fl, oneClick, confirmed, uid)
}

// linkSubject is the link's user: by id (uid, from the subject), or by
// address as the login page finds an account on this site (the site's own
// user, else one known on every site), so an address of another site's
// user is nobody here.
func (g *Gate) linkSubject(ctx context.Context, claims *link.Claims, uid int64) (*store.User, error) {
	if uid != 0 {
		return g.linkUser(ctx, uid)
	}
	email := claims.Email()
	if email == "" {
		// Verify lets no other subject through; refused all the same.
		return nil, store.ErrNotFound
	}
	return g.accountOf(ctx, email)
}

// linkUser and linkRow read what a link is decided on from the session
// cache, which follows the store's changes (deactivations, revocations) as
// it does for sessions; without sessions, from the store.
func (g *Gate) linkUser(ctx context.Context, id int64) (*store.User, error) {
	if g.d.Sessions != nil {
		return g.d.Sessions.User(ctx, id)
	}
	return g.d.Store.User(ctx, id)
}

func (g *Gate) linkRow(ctx context.Context, jti string) (*store.Link, error) {
	if g.d.Sessions != nil {
		return g.d.Sessions.Link(ctx, jti)
	}
	return g.d.Store.Link(ctx, jti)
}

// requestMode lets this request only through, without the token, as the
// link's user; Finish fills in its audit record's status.
func (g *Gate) requestMode(rq *Request, claims *link.Claims, fl *foundLink, oneClick, confirmed bool, uid int64) Outcome {
	r, ev := rq.R, &rq.Ev
	// Request mode: this request only, without the token, as the user.
	r.URL.RawQuery = fl.rest
	if oneClick {
		// The upstream gets exactly RFC 8058's body: nothing else a client
		// put in it (a framework's _method=DELETE) rides on the link.
		const body = "List-Unsubscribe=One-Click"
		r.Body, r.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
		r.TransferEncoding = nil
	}
	if confirmed {
		// The button stood for the link's own GET.
		r.Method, r.Body, r.ContentLength = http.MethodGet, http.NoBody, 0
		r.Header.Del("Content-Type")
		r.Header.Del("Content-Length")
	}
	r.RequestURI = r.URL.RequestURI()
	r.Form, r.PostForm, r.MultipartForm = nil, nil, nil
	out := Outcome{UserID: uid, Recorded: true, Consumed: consumedAlways, Vars: map[string]string{VarLinkJTI: claims.ID}}
	if len(claims.Data) > 0 {
		if js, err := headerjson.Marshal(claims.Data); err == nil {
			out.Header = http.Header{LinkDataHeader: {js}}
		}
		for k, v := range claims.Data {
			out.Vars[VarLinkData+k] = fmt.Sprint(v)
		}
	}
	auditID := ev.ID
	out.Finish = func(status int, latency time.Duration) {
		// Through the batching writer: the use and its record are durable
		// already; the status costs no transaction of its own.
		g.d.Audit.SetStatus(auditID, status, latency)
	}
	return out
}

// readSmallForm reads a POST body of at most maxFormBytes as a form,
// urlencoded or multipart (RFC 8058 prefers multipart/form-data), and puts
// the body back for the upstream. ok is false only for a body too large.
func readSmallForm(r *http.Request) (url.Values, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFormBytes+1))
	if err != nil || len(body) > maxFormBytes {
		return nil, false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "multipart/form-data":
		if params["boundary"] == "" {
			return url.Values{}, true
		}
		mf, err := multipart.NewReader(bytes.NewReader(body), params["boundary"]).ReadForm(maxFormBytes)
		if err != nil {
			return url.Values{}, true
		}
		defer mf.RemoveAll()
		return url.Values(mf.Value), true
	default:
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return url.Values{}, true
		}
		return form, true
	}
}

// cleanURL is the request's path and query without the token.
func cleanURL(path, rest string) string {
	if rest == "" {
		return path
	}
	return path + "?" + rest
}
