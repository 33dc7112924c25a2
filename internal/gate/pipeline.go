package gate

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// Credential is one kind of credential the pipeline carries. A new kind is
// a type implementing it and one line that adds it to Deps.Extra (or to the
// registration in New); the guards, identity, upstream call and audit are
// the pipeline's, so every kind gets them.
type Credential interface {
	// Kind names the credential in the audit trail and selects its
	// throttle in Deps.Throttles.
	Kind() string
	// Present reports whether the request carries this kind of credential.
	// It reads the request only; nothing is checked or used yet.
	Present(rq *Request) bool
	// ThrottleKey is the per-credential throttle key ("" for none): what a
	// guesser would vary the least, such as a ticket's uuid.
	ThrottleKey(rq *Request) string
	// Use verifies the credential and, for a limited one, consumes it.
	Use(rq *Request) Outcome
}

// Request is one request on its way through the pipeline.
type Request struct {
	W     http.ResponseWriter
	R     *http.Request
	Env   Env
	Start time.Time
	// Ev is the audit record being built; credentials fill in what they
	// learn (user, credential id, reason).
	Ev store.AuditEvent
	// Found is what the credential's Present parsed, for its Use.
	Found any
	// page, when set, renders this request's refusals (the login form
	// with its message, rather than the generic refusal page).
	page func(w http.ResponseWriter, rf *Refusal) error
	// upstream is how long the upstream took, left out of the gateway's
	// time in metrics.
	upstream time.Duration
}

// Outcome is what a credential's Use decided.
type Outcome struct {
	// Refused, when set, ends the request with a refusal.
	Refused *Refusal
	// Who the request is, for the upstream: UserID 0 sends no user header.
	UserID    int64
	SessionID string
	// Header is set on the upstream request (after the client's copies of
	// every protected name were removed); Vars become placeholders.
	Header http.Header
	Vars   map[string]string
	// Respond, when set, answers the request in the gateway (a confirmation
	// page, a redirect carrying a new session cookie) instead of the
	// upstream; its status is audited.
	Respond func(w http.ResponseWriter) error
	// Finish, when set, runs with the upstream's status and the latency
	// once the upstream has answered (stamp a ticket, fill in the status of
	// an audit record the store wrote with the use).
	Finish func(status int, latency time.Duration)
	// Recorded: the store wrote the audit record together with the use, so
	// the pipeline records no other.
	Recorded bool
	// Consumed, when set, reports from the response status whether the
	// request took a use of a limited credential (a link use, an invite
	// redemption, a ticket stamped used), for metrics. It runs after Finish.
	Consumed func(status int) bool
}

// consumedAlways is Outcome.Consumed of a credential used up by Use itself.
func consumedAlways(int) bool { return true }

// refusalPager is a Credential with a page of its own for refusals.
type refusalPager interface {
	RefusalPage(rq *Request, w http.ResponseWriter, rf *Refusal) error
}

// Refusal is a request the gateway turned away. It is also the error a
// refusal returns to Caddy's error chain when the server has handle_errors.
type Refusal struct {
	Status int
	Reason string
	// Free: the attempt proved knowledge of the credential (a used ticket
	// with its right password, a genuine link already used up), so it does
	// not count against the throttle.
	Free bool
	// RetryAfter is sent as Retry-After when positive.
	RetryAfter time.Duration
	// ClearCookie ends the browser's stale session cookie.
	ClearCookie bool
	// Shown, when set, is the reason the client sees instead of Reason
	// (which only the audit trail keeps), where the real one would tell a
	// guesser something: every refused code is "invalid_code".
	Shown string
}

func (r *Refusal) Error() string {
	return "latchkey refused the request: " + strconv.Itoa(r.Status) + " " + r.Reason
}

// begin runs the guards that hold for every request, before anything reads
// it, and starts its audit record.
func (g *Gate) begin(w http.ResponseWriter, r *http.Request, env Env) *Request {
	start := g.d.Now()
	// Before anything else, so that no path below can forward a forged
	// identity, and no Connection header can remove the one set below.
	g.strip.StripRequest(r)
	return &Request{W: w, R: r, Env: env, Start: start, Ev: store.AuditEvent{
		Time:    start,
		Kind:    KindSession,
		Outcome: store.OutcomeRefused,
		Method:  r.Method,
		Host:    r.Host,
		// As sent (escaped), so that the trail shows an attack's real form
		// (..;/, %2e%2e); a token is in the query, which is not kept.
		Path:      r.URL.EscapedPath(),
		ClientIP:  env.ClientIP,
		UserAgent: r.UserAgent(),
	}}
}

// run carries a request that presents credential c through the pipeline.
func (g *Gate) run(rq *Request, c Credential, next Next) error {
	kind := c.Kind()
	rq.Ev.Kind = kind
	r := rq.R
	if p, ok := c.(refusalPager); ok {
		rq.page = func(w http.ResponseWriter, rf *Refusal) error { return p.RefusalPage(rq, w, rf) }
	}
	if kind != KindSession {
		// A credential in a URL or form must not leak through Referer or
		// be kept by a cache.
		setCredentialHeaders(rq.W)
		// A cross-site form can never use a credential: no session is
		// started, nothing consumed. Requests without Origin or
		// Sec-Fetch-Site (mail servers posting a one-click unsubscribe,
		// API clients) pass.
		if !safeMethod(r.Method) {
			if err := g.csrf.Check(r); err != nil {
				return g.refuse(rq, &Refusal{Status: http.StatusForbidden, Reason: "cross_origin", Free: true})
			}
		}
	}
	held, refusal := g.reserve(rq, kind, c.ThrottleKey(rq))
	if refusal != nil {
		return g.refuse(rq, refusal)
	}
	out := c.Use(rq)
	if out.Refused != nil {
		if out.Refused.Free {
			held.release()
		} else {
			held.fail(context.WithoutCancel(r.Context()), g.d.Now())
		}
		return g.refuse(rq, out.Refused)
	}
	held.release()

	if out.Respond != nil {
		sw := &statusWriter{ResponseWriter: rq.W}
		err := out.Respond(sw)
		status := sw.code()
		if !out.Recorded {
			rq.Ev.Outcome = store.OutcomeAccepted
			rq.Ev.Status = status
			g.record(rq)
		} else {
			g.observeRecorded(rq, status)
		}
		g.consumed(kind, out.Consumed, status)
		return err
	}

	u, refusal := g.user(rq, out)
	if refusal != nil {
		if out.Finish != nil {
			// A credential used up on the way is finished as refused.
			out.Finish(refusal.Status, g.d.Now().Sub(rq.Start))
		}
		return g.refuse(rq, refusal)
	}
	g.identify(rq, out, u)
	sw := &statusWriter{ResponseWriter: rq.W}
	up := g.d.Now()
	err := next(sw, r)
	status := sw.code()
	if err != nil {
		status = g.d.ErrorStatus(err)
	}
	now := g.d.Now()
	rq.upstream = now.Sub(up)
	latency := now.Sub(rq.Start)
	if out.Finish != nil {
		out.Finish(status, latency)
	}
	if !out.Recorded {
		rq.Ev.Outcome = store.OutcomeAccepted
		rq.Ev.Status = status
		rq.Ev.UserID, rq.Ev.SessionID = out.UserID, out.SessionID
		if kind == KindSession {
			g.recordSession(rq)
		} else {
			g.record(rq)
		}
	} else {
		g.observeRecorded(rq, status)
	}
	g.consumed(kind, out.Consumed, status)
	return err
}

// user reads the request's user, when it has one, from the cache that
// follows the store's changes (so a role taken away holds within a
// second), and applies the route's role requirement.
func (g *Gate) user(rq *Request, out Outcome) (*store.User, *Refusal) {
	var u *store.User
	if out.UserID != 0 {
		var err error
		if u, err = g.linkUser(rq.R.Context(), out.UserID); err != nil && !errors.Is(err, store.ErrNotFound) {
			g.d.Logger.Error("looking up the request's user", zap.Int64("user", out.UserID), zap.Error(err))
			return nil, storeError().Refused
		}
	}
	for _, anyOf := range g.cfg.RequireRoles {
		if u == nil || !slices.ContainsFunc(anyOf, func(role string) bool { return u.HasRole(g.site.Name, role) }) {
			return nil, &Refusal{Status: http.StatusForbidden, Reason: ReasonMissingRole, Free: true}
		}
	}
	return u, nil
}

// identify sets the identity the upstream sees: only what the credential
// vouched for, never a client's copy (begin removed those).
func (g *Gate) identify(rq *Request, out Outcome, u *store.User) {
	r := rq.R
	for k, v := range out.Header {
		r.Header[http.CanonicalHeaderKey(k)] = v
	}
	var uid, roles string
	if out.UserID != 0 {
		uid = strconv.FormatInt(out.UserID, 10)
		r.Header[g.userKey] = []string{uid}
	}
	if u != nil {
		if rs := u.RolesOn(g.site.Name); len(rs) > 0 {
			roles = strings.Join(rs, ",")
			r.Header[RolesHeader] = []string{roles}
		}
		if g.cfg.ForwardEmail && u.Email != "" {
			r.Header[EmailHeader] = []string{u.Email}
		}
		if g.cfg.ForwardName && u.Name != "" {
			// Names are the user's own text: non-ASCII is escaped as in
			// link data, so that it survives any header handling.
			r.Header[NameHeader] = []string{headerText(u.Name)}
		}
	}
	if out.SessionID != "" {
		r.Header[g.sessKey] = []string{out.SessionID}
	}
	// The upstream's logs must never hold a working credential.
	removeCookie(r.Header, g.cfg.CookieName)
	if v := rq.Env.Vars; v != nil {
		if uid != "" {
			v.Set(VarUserID, uid)
		}
		if out.SessionID != "" {
			v.Set(VarSessionID, out.SessionID)
		}
		if u != nil {
			v.Set(VarUserRoles, roles)
			v.Set(VarUserEmail, u.Email)
			v.Set(VarUserName, u.Name)
		}
		for k, val := range out.Vars {
			v.Set(k, val)
		}
	}
}

// record finishes the request's audit record and queues it.
func (g *Gate) record(rq *Request) {
	rq.Ev.Latency = g.d.Now().Sub(rq.Start)
	g.observe(rq, rq.Ev.Outcome, rq.Ev.Status, rq.Ev.Latency)
	g.d.Audit.Record(rq.Ev)
}

// ActivityRecorder is a Recorder that audits a session's activity rather
// than each of its requests; *audit.Writer is one, and its Sessions
// setting (activity or every_request) decides. With a Recorder that is not
// one, every accepted session request is recorded.
type ActivityRecorder interface {
	// RecordActivity is given the record of every accepted session
	// request, and keeps what tells the session's activity: its first
	// request from each client (client IP and user agent).
	RecordActivity(e store.AuditEvent)
}

// recordSession finishes the record of an accepted session request and
// hands it to the Recorder as the session's activity. The request is
// observed for metrics either way.
func (g *Gate) recordSession(rq *Request) {
	rq.Ev.Latency = g.d.Now().Sub(rq.Start)
	g.observe(rq, rq.Ev.Outcome, rq.Ev.Status, rq.Ev.Latency)
	if a, ok := g.d.Audit.(ActivityRecorder); ok {
		a.RecordActivity(rq.Ev)
		return
	}
	g.d.Audit.Record(rq.Ev)
}

// observe is where every audited request ends for metrics: from record or
// recordSession (whether or not the session's request makes a record), or
// from run when the store wrote the record with the use. So each kind is
// counted once per audit record, the same way. total is the time since the
// request arrived; the upstream's part is left out.
func (g *Gate) observe(rq *Request, outcome string, status int, total time.Duration) {
	if m := g.d.Metrics; m != nil {
		m.Attempt(rq.Ev.Kind, outcome, rq.Ev.Reason, status, total-rq.upstream)
	}
}

// observeRecorded observes an accepted request whose audit record the
// store wrote with the use.
func (g *Gate) observeRecorded(rq *Request, status int) {
	if g.d.Metrics != nil {
		g.observe(rq, store.OutcomeAccepted, status, g.d.Now().Sub(rq.Start))
	}
}

// consumed counts the use a request took of a limited credential.
func (g *Gate) consumed(kind string, consumed func(int) bool, status int) {
	if m := g.d.Metrics; m != nil && consumed != nil && consumed(status) {
		m.Consumed(kind)
	}
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// statusWriter remembers the status the upstream answered with, for the
// audit record. Unwrap keeps http.ResponseController (flush, deadlines)
// working through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// code is the status written, 200 when nothing was.
func (s *statusWriter) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Hijack is spelled out (not left to Unwrap) so that a protocol switch, such
// as a WebSocket, is audited as 101.
func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err == nil && s.status == 0 {
		s.status = http.StatusSwitchingProtocols
	}
	return c, brw, err
}
