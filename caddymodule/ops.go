package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/latchkeyhq/latchkey/internal/gate"
	"github.com/latchkeyhq/latchkey/internal/invite"
	"github.com/latchkeyhq/latchkey/internal/link"
	"github.com/latchkeyhq/latchkey/internal/mail"
	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/ticket"
)

// ops are the operations the CLI and the admin API share, so that both say
// the same thing about the same input.
type ops struct {
	st  store.Store
	now func() time.Time
	app *App // the config the store came from
	// cache, when the operations run inside Caddy, is told of revocations
	// and deactivations so that they hold at once.
	cache *session.Cache
	// secret keys code hashes; mailer is nil without smtp.
	secret []byte
	mailer gate.Mailer
	ring   *link.KeyRing // the running app's; nil in the CLI, built from the config
	// tickets hashes ticket passwords; nil in the CLI, built from the config.
	tickets *ticket.Hasher
	// sites are the config's latchkey sites.
	sites []siteConf
}

// userJSON is how a user looks in --json output and on the admin API.
type userJSON struct {
	ID             int64      `json:"id"`
	Site           string     `json:"site"`
	Email          string     `json:"email"`
	Name           string     `json:"name,omitempty"`
	Phone          string     `json:"phone,omitempty"`
	Active         bool       `json:"active"`
	Roles          []string   `json:"roles"`
	CreatedAt      time.Time  `json:"created_at"`
	CurrentLoginAt *time.Time `json:"current_login_at,omitempty"`
	CurrentLoginIP string     `json:"current_login_ip,omitempty"`
	LastLoginAt    *time.Time `json:"last_login_at,omitempty"`
	LastLoginIP    string     `json:"last_login_ip,omitempty"`
	LoginCount     int64      `json:"login_count"`
}

func toUserJSON(u *store.User) userJSON {
	roles := []string{}
	for _, r := range u.Roles {
		roles = append(roles, roleString(u, r))
	}
	return userJSON{
		ID: u.ID, Site: u.Site, Email: u.Email, Name: u.Name, Phone: u.Phone,
		Active: u.Active, Roles: roles, CreatedAt: u.CreatedAt,
		CurrentLoginAt: optTime(u.CurrentLoginAt), CurrentLoginIP: u.CurrentLoginIP,
		LastLoginAt: optTime(u.LastLoginAt), LastLoginIP: u.LastLoginIP, LoginCount: u.LoginCount,
	}
}

type sessionJSON struct {
	ID           string     `json:"id"`
	UserID       int64      `json:"user_id"`
	CreatedAt    time.Time  `json:"created_at"`
	LastSeenAt   time.Time  `json:"last_seen_at"`
	ExpiresAt    time.Time  `json:"expires_at"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
	IP           string     `json:"ip,omitempty"`
	UserAgent    string     `json:"user_agent,omitempty"`
	Kind         string     `json:"kind,omitempty"`
	CredentialID string     `json:"credential_id,omitempty"`
}

func toSessionJSON(s *store.Session) sessionJSON {
	return sessionJSON{
		ID: s.ID, UserID: s.UserID, CreatedAt: s.CreatedAt, LastSeenAt: s.LastSeenAt,
		ExpiresAt: s.ExpiresAt, RevokedAt: optTime(s.RevokedAt), IP: s.IP, UserAgent: s.UserAgent,
		Kind: s.Kind, CredentialID: s.CredentialID,
	}
}

type auditJSON struct {
	ID           int64     `json:"id"`
	Time         time.Time `json:"time"`
	Kind         string    `json:"kind"`
	CredentialID string    `json:"credential_id,omitempty"`
	UserID       int64     `json:"user_id,omitempty"`
	SessionID    string    `json:"session_id,omitempty"`
	Outcome      string    `json:"outcome"`
	Reason       string    `json:"reason,omitempty"`
	Method       string    `json:"method"`
	Host         string    `json:"host"`
	Path         string    `json:"path"`
	Status       int       `json:"status"`
	ClientIP     string    `json:"client_ip"`
	UserAgent    string    `json:"user_agent"`
	Browser      string    `json:"browser,omitempty"`
	Version      string    `json:"browser_version,omitempty"`
	OS           string    `json:"os,omitempty"`
	Device       string    `json:"device,omitempty"`
	Bot          bool      `json:"bot"`
	LatencyUS    int64     `json:"latency_us"`
}

func toAuditJSON(e *store.AuditEvent) auditJSON {
	return auditJSON{
		ID: e.ID, Time: e.Time, Kind: e.Kind, CredentialID: e.CredentialID, UserID: e.UserID,
		SessionID: e.SessionID, Outcome: e.Outcome, Reason: e.Reason, Method: e.Method,
		Host: e.Host, Path: e.Path, Status: e.Status, ClientIP: e.ClientIP, UserAgent: e.UserAgent,
		Browser: e.UABrowser, Version: e.UAVersion, OS: e.UAOS, Device: e.UADevice, Bot: e.UABot,
		LatencyUS: e.Latency.Microseconds(),
	}
}

// toJSON converts store rows to their JSON form.
func toJSON[T, J any](rows []T, conv func(*T) J) []J {
	out := make([]J, len(rows))
	for i := range rows {
		out[i] = conv(&rows[i])
	}
	return out
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// inputError is an error about what the caller asked for, not about the
// server (the admin API answers it with 400).
type inputError struct{ error }

func inputErr(format string, args ...any) error {
	return inputError{fmt.Errorf(format, args...)}
}

// newUser is the input for adding a user.
type newUser struct {
	Email string   `json:"email"`
	Name  string   `json:"name,omitempty"`
	Phone string   `json:"phone,omitempty"`
	Site  string   `json:"site,omitempty"`
	Roles []string `json:"roles,omitempty"`
}

func (o ops) addUser(ctx context.Context, in newUser) (*store.User, error) {
	email, ok := mail.NormalizeAddress(in.Email)
	if !ok {
		return nil, inputErr("adding user: %q is not an email address", in.Email)
	}
	u := &store.User{
		Site:   strings.ToLower(strings.TrimSpace(in.Site)),
		Email:  email,
		Name:   strings.TrimSpace(in.Name),
		Phone:  strings.TrimSpace(in.Phone),
		Active: true,
	}
	for _, r := range in.Roles {
		role, err := parseRole(u.Site, r)
		if err != nil {
			return nil, fmt.Errorf("adding user %s: %w", email, err)
		}
		u.Roles = append(u.Roles, role)
	}
	if err := o.st.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("adding user %s on site %q: %w", u.Email, u.Site, store.ErrConflict)
		}
		return nil, err
	}
	return u, nil
}

// roleString is a role as the CLI shows and takes it: "staff" on the user's
// own site, "staff@site" elsewhere.
func roleString(u *store.User, r store.Role) string {
	if u.Site != "" && r.Site == u.Site {
		return r.Name
	}
	return r.String()
}

// parseRole reads "name" (on the user's site) or "name@site".
func parseRole(userSite, in string) (store.Role, error) {
	name, st, hasSite := strings.Cut(strings.TrimSpace(in), "@")
	if !hasSite {
		st = userSite
	}
	st = strings.ToLower(st)
	switch {
	case !validRole(name):
		return store.Role{}, inputErr("role %q must be lower-case letters, digits, '-' or '_'", name)
	case st == "":
		return store.Role{}, inputErr("role %q: a user known on every site holds roles per site; write %s@<site>", in, name)
	}
	return store.Role{Site: st, Name: name}, nil
}

func validRole(r string) bool {
	if r == "" || len(r) > 64 {
		return false
	}
	for _, c := range r {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// resolveUser finds a user by numeric id or by email. An email that exists on
// several sites needs the site to pick one.
func (o ops) resolveUser(ctx context.Context, ref, site string) (*store.User, error) {
	ref = strings.TrimSpace(ref)
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		u, err := o.st.User(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("user %d: %w", id, store.ErrNotFound)
		}
		return u, err
	}
	email := strings.ToLower(ref)
	if site != "" {
		u, err := o.st.UserByEmail(ctx, strings.ToLower(site), email)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("user %q on site %q: %w", ref, site, store.ErrNotFound)
		}
		return u, err
	}
	all, err := o.st.Users(ctx)
	if err != nil {
		return nil, err
	}
	var found []store.User
	for _, u := range all {
		if u.Email == email {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("user %q: %w", ref, store.ErrNotFound)
	case 1:
		return &found[0], nil
	}
	sites := make([]string, len(found))
	for i, u := range found {
		sites[i] = strconv.Quote(u.Site)
	}
	return nil, inputErr("user %q exists on several sites (%s); name one with --site or use the id", ref, strings.Join(sites, ", "))
}

func (o ops) setActive(ctx context.Context, ref, site string, active bool) (*store.User, error) {
	u, err := o.resolveUser(ctx, ref, site)
	if err != nil {
		return nil, err
	}
	if err := o.st.SetUserActive(ctx, u.ID, active); err != nil {
		return nil, err
	}
	o.cache.ForgetUser(u.ID)
	u.Active = active
	return u, nil
}

// auditQuery is the audit filter as the CLI and admin API take it.
type auditQuery struct {
	Since   string
	User    string
	Kind    string
	Outcome string
	Limit   int
}

func (o ops) audit(ctx context.Context, q auditQuery) ([]store.AuditEvent, error) {
	f := store.AuditFilter{Kind: q.Kind, Outcome: q.Outcome, Limit: q.Limit}
	if q.Since != "" {
		d, err := caddy.ParseDuration(q.Since)
		if err != nil || d <= 0 {
			return nil, inputErr("since: bad duration %q (want e.g. 15m, 1h, 7d)", q.Since)
		}
		f.Since = o.now().Add(-d)
	}
	if q.Outcome != "" && q.Outcome != store.OutcomeAccepted && q.Outcome != store.OutcomeRefused {
		return nil, inputErr("outcome: %q is not accepted or refused", q.Outcome)
	}
	if q.Limit < 0 {
		return nil, inputErr("limit: %d is negative", q.Limit)
	}
	if q.User != "" {
		u, err := o.resolveUser(ctx, q.User, "")
		if err != nil {
			return nil, err
		}
		f.UserID = u.ID
	}
	return o.st.Audit(ctx, f)
}

func (o ops) sessions(ctx context.Context, user string, all bool) ([]store.Session, error) {
	f := store.SessionFilter{ActiveOnly: !all, Now: o.now()}
	if user != "" {
		u, err := o.resolveUser(ctx, user, "")
		if err != nil {
			return nil, err
		}
		f.UserID = u.ID
	}
	return o.st.Sessions(ctx, f)
}

func (o ops) revokeSession(ctx context.Context, id string) error {
	err := o.st.RevokeSession(ctx, id, o.now())
	o.cache.ForgetSession(id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("session %q: %w", id, store.ErrNotFound)
	}
	return err
}

// inviteJSON is how an invite looks in --json output and on the admin API.
// The code appears only in the answer to its creation.
type inviteJSON struct {
	ID          int64      `json:"id"`
	Site        string     `json:"site"`
	Email       string     `json:"email"`
	Name        string     `json:"name,omitempty"`
	Phone       string     `json:"phone,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	CreatedBy   string     `json:"created_by,omitempty"`
	UserID      int64      `json:"user_id,omitempty"`
	FirstUsedAt *time.Time `json:"first_used_at,omitempty"`
	LastUsedAt  *time.Time `json:"last_used_at,omitempty"`
	UseCount    int64      `json:"use_count"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	SentAt      *time.Time `json:"sent_at,omitempty"`
	SendError   string     `json:"send_error,omitempty"`
	Code        string     `json:"code,omitempty"`
	LoginURL    string     `json:"login_url,omitempty"`
	Sent        *bool      `json:"sent,omitempty"`
}

func toInviteJSON(inv *store.Invite) inviteJSON {
	return inviteJSON{
		ID: inv.ID, Site: inv.Site, Email: inv.Email, Name: inv.Name, Phone: inv.Phone,
		CreatedAt: inv.CreatedAt, CreatedBy: inv.CreatedBy, UserID: inv.UserID,
		FirstUsedAt: optTime(inv.FirstUsedAt), LastUsedAt: optTime(inv.LastUsedAt), UseCount: inv.UseCount,
		RevokedAt: optTime(inv.RevokedAt), SentAt: optTime(inv.SentAt), SendError: inv.SendError,
	}
}

// newInvite is the input for creating an invite.
type newInvite struct {
	Email    string `json:"email"`
	Name     string `json:"name,omitempty"`
	Phone    string `json:"phone,omitempty"`
	Domain   string `json:"domain,omitempty"`
	LoginURL string `json:"login_url,omitempty"`
	Send     bool   `json:"send,omitempty"`
}

// createInvite makes an invite for s, and sends it when asked. A failed send
// keeps the invite and is reported in the result, not as an error, so that
// the code can still be handed over.
func (o ops) createInvite(ctx context.Context, in newInvite, s siteConf, by string) (inviteJSON, error) {
	email, ok := mail.NormalizeAddress(in.Email)
	if !ok {
		return inviteJSON{}, inputErr("creating invite: %q is not an email address", in.Email)
	}
	if in.Send && o.mailer == nil {
		return inviteJSON{}, inputErr("cannot send: no smtp server in the latchkey global option (use --no-send to print the code)")
	}
	loginURL := in.LoginURL
	if loginURL == "" {
		// From the site's configured origin, never from a request.
		loginURL, _ = s.loginURL()
	}
	if in.Send && loginURL == "" {
		return inviteJSON{}, inputErr("cannot send: site %q has no origin to make its login URL from (set origin in its latchkey handler, or use --no-send)", s.Site.Name)
	}
	svc := invite.NewService(o.st, o.secret, invite.DefaultRules(), o.now)
	inv := &store.Invite{
		Site: s.Site.Name, Email: email, Name: strings.TrimSpace(in.Name),
		Phone: strings.TrimSpace(in.Phone), CreatedBy: by,
	}
	code, err := svc.Create(ctx, inv, s.Handler.Invite.length())
	if err != nil {
		return inviteJSON{}, err
	}
	out := toInviteJSON(inv)
	out.Code = code
	out.LoginURL = loginURL
	if in.Send {
		sent := true
		if err := o.mailer.SendInvite(ctx, inv, code, out.LoginURL, s.Handler.Invite.rulesOrDefault().UsageWindow); err != nil {
			sent = false
			out.SendError = err.Error()
		}
		out.Sent = &sent
		if sent {
			out.SentAt = optTime(o.now())
		}
	}
	return out, nil
}

// sendInvite mails an existing invite again, with a new code (only a hash of
// the old one is kept).
func (o ops) sendInvite(ctx context.Context, ref string) (inviteJSON, error) {
	id, err := strconv.ParseInt(strings.TrimSpace(ref), 10, 64)
	if err != nil {
		return inviteJSON{}, inputErr("invite id %q is not a number", ref)
	}
	if o.mailer == nil {
		return inviteJSON{}, inputErr("cannot send: no smtp server in the latchkey global option")
	}
	inv, err := o.st.Invite(ctx, id)
	if err != nil {
		return inviteJSON{}, fmt.Errorf("invite %d: %w", id, err)
	}
	if !inv.RevokedAt.IsZero() {
		return inviteJSON{}, inputErr("invite %d is revoked", id)
	}
	s, err := pickSite(o.sites, inv.Site)
	if err != nil {
		return inviteJSON{}, err
	}
	loginURL, err := s.loginURL()
	if err != nil {
		return inviteJSON{}, inputErr("cannot send invite %d: %v", id, err)
	}
	svc := invite.NewService(o.st, o.secret, s.Handler.Invite.rulesOrDefault(), o.now)
	code, err := svc.NewCode(ctx, inv, s.Handler.Invite.length())
	if err != nil {
		return inviteJSON{}, err
	}
	out := toInviteJSON(inv)
	out.LoginURL = loginURL
	sent := true
	if err := o.mailer.SendInvite(ctx, inv, code, out.LoginURL, svc.Rules().UsageWindow); err != nil {
		sent = false
		out.SendError = err.Error()
		// The mail did not go: the new code is the only way in, so show it.
		out.Code = code
	} else {
		out.SentAt, out.SendError = optTime(inv.SentAt), ""
	}
	out.Sent = &sent
	return out, nil
}

func (o ops) invites(ctx context.Context, domain string) ([]store.Invite, error) {
	return o.st.Invites(ctx, store.InviteFilter{Site: invite.SiteOf(domain)})
}

func (o ops) revokeInvite(ctx context.Context, ref string) (*store.Invite, error) {
	id, err := strconv.ParseInt(strings.TrimSpace(ref), 10, 64)
	if err != nil {
		return nil, inputErr("invite id %q is not a number", ref)
	}
	if err := o.st.RevokeInvite(ctx, id, o.now()); err != nil {
		return nil, fmt.Errorf("revoking invite %d: %w", id, err)
	}
	// Its sessions were revoked with it; drop them from this process's cache.
	if inv, err := o.st.Invite(ctx, id); err == nil {
		if inv.UserID != 0 {
			o.cache.ForgetUser(inv.UserID)
		}
		return inv, nil
	}
	return o.st.Invite(ctx, id)
}
