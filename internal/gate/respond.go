package gate

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/internal/pathsafe"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/throttle"
	"github.com/latchkeyhq/latchkey/internal/web"
)

// wantsJSON decides between a page and JSON. Browsers send text/html in
// Accept; API clients that ask for JSON get JSON; anything else (curl's */*)
// gets the page, which is readable in a terminal too.
func wantsJSON(r *http.Request) bool {
	a := r.Header.Get("Accept")
	if a == "" {
		return false
	}
	return strings.Contains(a, "json") && !strings.Contains(a, "text/html")
}

// wantsPage reports whether the client is a browser that can follow a
// redirect to a login page.
func wantsPage(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// setCredentialHeaders goes on every response that carries or consumes a
// credential, refusals included.
func setCredentialHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
}

type refusalBody struct {
	Error  string `json:"error"`
	Reason string `json:"reason,omitempty"`
	Login  string `json:"login,omitempty"`
}

type refusalPage struct {
	Chrome
	Title   string
	Message string
	// Ask says whom to ask, when the route has no login page to offer.
	Ask      string
	LoginURL string
	// Reason is the code support can look up in the audit.
	Reason string
	Status int
}

// refusalKey names one rendered refusal page of a route.
type refusalKey struct {
	kind, reason string
	status       int
}

// refuse is the one place a refusal becomes a status, a page or JSON (or an
// error for Caddy's handle_errors), and an audit record. Refusals are never
// cached: a later request with a credential must not be answered from a
// cache.
func (g *Gate) refuse(rq *Request, rf *Refusal) error {
	w, r := rq.W, rq.R
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if rf.RetryAfter > 0 {
		h.Set("Retry-After", retryAfter(rf.RetryAfter))
	}
	if rf.ClearCookie {
		g.clearCookie(w, rq)
	}
	rq.Ev.Outcome, rq.Ev.Reason, rq.Ev.Status = store.OutcomeRefused, rf.Reason, rf.Status
	shown := rf.Reason
	if rf.Shown != "" {
		shown = rf.Shown
	}
	if rq.Env.Vars != nil {
		rq.Env.Vars.Set(VarReason, shown)
	}
	redirect := rf.Status == http.StatusUnauthorized && g.cfg.LoginURL != "" && wantsPage(r) && safeMethod(r.Method) && r.Method != http.MethodOptions
	if redirect {
		rq.Ev.Status = http.StatusFound
	}
	g.record(rq)
	switch {
	case redirect:
		http.Redirect(w, r, loginRedirect(g.cfg.LoginURL, r), http.StatusFound)
		return nil
	case rq.Env.ErrorRoutes:
		return rf
	case rq.page != nil && !wantsJSON(r):
		return rq.page(w, rf)
	}
	return g.writeRefusal(w, r, rq.Ev.Kind, rf.Status, shown)
}

// writeRefusal writes a refusal of a credential of kind as JSON or as a
// page in plain words.
func (g *Gate) writeRefusal(w http.ResponseWriter, r *http.Request, kind string, status int, reason string) error {
	h := w.Header()
	if wantsJSON(r) {
		body, _ := json.Marshal(refusalBody{Error: strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_")), Reason: reason, Login: g.cfg.LoginURL})
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(status)
		_, err := w.Write(body)
		return err
	}
	// A refusal page depends only on the route, the kind, the reason and
	// the status, all from fixed sets: rendered once, it costs what a
	// static page costs.
	key := refusalKey{kind, reason, status}
	if body, ok := g.refusalPages.Load(key); ok {
		return web.Write(w, status, body.([]byte))
	}
	words := wording(kind, reason, status)
	page := refusalPage{
		Chrome: Chrome{SiteName: g.defaultTitle},
		Title:  words.Title, Message: words.Message, Reason: reason, Status: status,
	}
	// The way in the route has (its sign-in page, which can also mail a
	// new sign-in link), and whom to ask for what signing in does not give
	// back: a new link, ticket or code, or access. A refusal that waiting
	// or retrying mends (throttled, unavailable, in use) offers neither.
	if g.cfg.LoginURL != "" && (status == http.StatusUnauthorized || words.Ask != "") {
		page.LoginURL = g.cfg.LoginURL
	}
	if status != http.StatusUnauthorized || page.LoginURL == "" {
		page.Ask = askWhom(words.Ask, g.cfg.Contact)
	}
	body, err := g.d.Pages.Bytes(web.PageRefused, page)
	if err != nil {
		return err
	}
	g.refusalPages.Store(key, body)
	return web.Write(w, status, body)
}

// held is the throttle reservations of one attempt.
type held []throttle.Reservation

func (h held) release() {
	for _, r := range h {
		r.Release()
	}
}

// fail records the attempt as a failure for every gateway on the store;
// in memory it is counted already.
func (h held) fail(ctx context.Context, now time.Time) {
	for _, r := range h {
		r.Fail(ctx, now)
	}
}

// reserve counts an attempt at a credential of kind against its throttles,
// per client IP and per credential key, before anything checks it. The
// attempt is given back when the credential turns out right.
func (g *Gate) reserve(rq *Request, kind, key string) (held, *Refusal) {
	t, ok := g.d.Throttles[kind]
	if !ok {
		return nil, nil
	}
	return reserveAll(rq.R.Context(), g.d.Now(), []limit{{t.PerIP, rq.Env.ClientIP}, {t.PerCredential, key}})
}

type limit struct {
	l   *throttle.Limiter
	key string
}

// reserveAll reserves one attempt on each limiter, or none.
func reserveAll(ctx context.Context, now time.Time, limits []limit) (held, *Refusal) {
	var h held
	for _, l := range limits {
		if l.l == nil || l.key == "" {
			continue
		}
		res, ok, wait := l.l.ReserveShared(ctx, l.key, now)
		if !ok {
			h.release()
			return nil, &Refusal{Status: http.StatusTooManyRequests, Reason: "throttled", RetryAfter: wait, Free: true}
		}
		h = append(h, res)
	}
	return h, nil
}

// retryAfter is a Retry-After value that never says 0 while still limited.
func retryAfter(wait time.Duration) string {
	return strconv.Itoa(int(wait.Seconds()) + 1)
}

// SafeNext returns next if it is a same-site relative path, else "": the
// one check every redirect after sign-in or sign-out goes through.
func SafeNext(next string) string { return pathsafe.SafeNext(next) }

// loginRedirect is loginURL with next set to the request's path and query.
func loginRedirect(loginURL string, r *http.Request) string {
	next := SafeNext(r.URL.RequestURI())
	if next == "" {
		return loginURL
	}
	sep := "?"
	if strings.Contains(loginURL, "?") {
		sep = "&"
	}
	return loginURL + sep + "next=" + url.QueryEscape(next)
}
