package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"

	"github.com/latchkeyhq/latchkey/internal/link"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// newLink is the input for minting a link, from the CLI or the admin API.
type newLink struct {
	User      string         `json:"user"` // email or id
	URL       string         `json:"url"`
	TTL       string         `json:"ttl,omitempty"`        // default 7d
	NotBefore string         `json:"not_before,omitempty"` // RFC 3339 or a duration from now
	MaxUses   *int           `json:"max_uses,omitempty"`   // default 1; 0 = unlimited
	Mode      string         `json:"mode,omitempty"`       // request (default) or login
	Methods   []string       `json:"methods,omitempty"`
	Data      map[string]any `json:"data,omitempty"`
	BindQuery bool           `json:"bind_query,omitempty"`
	Param     string         `json:"param,omitempty"` // default "token"
	// Site names the site the link is for; default: the site that serves
	// the URL's host.
	Site string `json:"site,omitempty"`
}

type linkJSON struct {
	JTI         string      `json:"jti"`
	Site        string      `json:"site"`
	UserID      int64       `json:"user_id,omitempty"`
	Target      string      `json:"target"`
	Mode        string      `json:"mode"`
	MaxUses     int         `json:"max_uses"`
	Uses        int         `json:"uses"`
	CreatedAt   time.Time   `json:"created_at"`
	CreatedBy   string      `json:"created_by,omitempty"`
	ExpiresAt   *time.Time  `json:"expires_at,omitempty"`
	FirstUsedAt *time.Time  `json:"first_used_at,omitempty"`
	LastUsedAt  *time.Time  `json:"last_used_at,omitempty"`
	RevokedAt   *time.Time  `json:"revoked_at,omitempty"`
	URL         string      `json:"url,omitempty"` // only when minted
	UsesLog     []auditJSON `json:"uses_log,omitempty"`
}

func toLinkJSON(l *store.Link) linkJSON {
	return linkJSON{
		JTI: l.JTI, Site: l.Site, UserID: l.UserID, Target: l.Target, Mode: l.Mode, MaxUses: l.MaxUses, Uses: l.Uses,
		CreatedAt: l.CreatedAt, CreatedBy: l.CreatedBy, ExpiresAt: optTime(l.ExpiresAt),
		FirstUsedAt: optTime(l.FirstUsedAt), LastUsedAt: optTime(l.LastUsedAt), RevokedAt: optTime(l.RevokedAt),
	}
}

func (o ops) keyRing() (*link.KeyRing, error) {
	if o.ring != nil {
		return o.ring, nil
	}
	return o.app.linkKeyRing(caddy.NewReplacer())
}

// createLink mints a signed link for one user and one URL and records it.
func (o ops) createLink(ctx context.Context, in newLink, by string) (linkJSON, error) {
	u, err := o.resolveUser(ctx, in.User, "")
	if err != nil {
		return linkJSON{}, err
	}
	target, err := url.Parse(strings.TrimSpace(in.URL))
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return linkJSON{}, inputErr("url %q is not an absolute http(s) URL", in.URL)
	}
	st, err := o.siteFor(in.Site, target.Host)
	if err != nil {
		return linkJSON{}, err
	}
	if u.Site != "" && u.Site != st.Name {
		return linkJSON{}, inputErr("user %d (%s) belongs to site %q; a link for %s would be on site %q", u.ID, u.Email, u.Site, target.Host, st.Name)
	}
	now := o.now()
	ttl := 7 * 24 * time.Hour
	if in.TTL != "" {
		if ttl, err = caddy.ParseDuration(in.TTL); err != nil || ttl <= 0 {
			return linkJSON{}, inputErr("ttl: bad duration %q (want e.g. 1h, 7d)", in.TTL)
		}
	}
	var nbf time.Time
	if in.NotBefore != "" {
		if t, err := time.Parse(time.RFC3339, in.NotBefore); err == nil {
			nbf = t
		} else if d, err := caddy.ParseDuration(in.NotBefore); err == nil && d >= 0 {
			nbf = now.Add(d)
		} else {
			return linkJSON{}, inputErr("not-before: %q is neither an RFC 3339 time nor a duration", in.NotBefore)
		}
	}
	maxUses := 1
	if in.MaxUses != nil {
		if *in.MaxUses < 0 {
			return linkJSON{}, inputErr("max-uses: %d is negative (0 means unlimited)", *in.MaxUses)
		}
		maxUses = *in.MaxUses
	}
	mode := in.Mode
	if mode == "" {
		mode = link.ModeRequest
	}
	if mode != link.ModeRequest && mode != link.ModeLogin {
		return linkJSON{}, inputErr("mode: %q is not request or login", mode)
	}
	var methods []string
	for _, m := range in.Methods {
		m = strings.ToUpper(strings.TrimSpace(m))
		if m == "" || strings.ContainsAny(m, " \t/") {
			return linkJSON{}, inputErr("method %q is not an HTTP method", m)
		}
		methods = append(methods, m)
	}
	param := in.Param
	if param == "" {
		param = "token"
	}
	ring, err := o.keyRing()
	if err != nil {
		return linkJSON{}, err
	}
	c := &link.Claims{
		Target: link.TargetOf(target), Methods: methods, MaxUses: maxUses, Mode: mode, Data: in.Data,
	}
	// A token already in the URL would be read instead of the new one.
	_, target.RawQuery, _ = link.TokenFromQuery(target.RawQuery, param)
	if in.BindQuery {
		c.Query = link.CanonicalQuery(target.RawQuery)
	}
	c.Subject = strconv.FormatInt(u.ID, 10)
	c.ID = link.NewJTI()
	c.IssuedAt = jwtTime(now)
	c.ExpiresAt = jwtTime(now.Add(ttl))
	if !nbf.IsZero() {
		c.NotBefore = jwtTime(nbf)
	}
	token, err := ring.Sign(c)
	if err != nil {
		return linkJSON{}, fmt.Errorf("signing link: %w", err)
	}
	row := &store.Link{
		JTI: c.ID, Site: st.Name, UserID: u.ID, Target: c.Target, Mode: mode, MaxUses: maxUses,
		CreatedAt: now, CreatedBy: by, ExpiresAt: now.Add(ttl),
	}
	if err := o.st.CreateLink(ctx, row); err != nil {
		return linkJSON{}, fmt.Errorf("recording link: %w", err)
	}
	out := toLinkJSON(row)
	// Through RawQuery, so that a fragment stays after the token.
	withToken := url.QueryEscape(param) + "=" + token
	if target.RawQuery != "" {
		withToken = target.RawQuery + "&" + withToken
	}
	target.RawQuery = withToken
	out.URL = target.String()
	return out, nil
}

func (o ops) links(ctx context.Context, user string) ([]store.Link, error) {
	f := store.LinkFilter{}
	if user != "" {
		u, err := o.resolveUser(ctx, user, "")
		if err != nil {
			return nil, err
		}
		f.UserID = u.ID
	}
	return o.st.Links(ctx, f)
}

// showLink returns a link with every recorded attempt to use it.
func (o ops) showLink(ctx context.Context, jti string) (linkJSON, error) {
	l, err := o.st.Link(ctx, jti)
	if errors.Is(err, store.ErrNotFound) {
		return linkJSON{}, fmt.Errorf("link %q: %w", jti, store.ErrNotFound)
	}
	if err != nil {
		return linkJSON{}, err
	}
	out := toLinkJSON(l)
	evs, err := o.st.Audit(ctx, store.AuditFilter{Kind: "link", CredentialID: jti, Limit: 1000})
	if err != nil {
		return linkJSON{}, err
	}
	out.UsesLog = toJSON(evs, toAuditJSON)
	return out, nil
}

func (o ops) revokeLinks(ctx context.Context, jti, user string) (string, error) {
	switch {
	case jti != "" && user != "":
		return "", inputErr("give a link id or --user, not both")
	case jti != "":
		if err := o.st.RevokeLink(ctx, jti, o.now()); err != nil {
			return "", fmt.Errorf("revoking link %q: %w", jti, err)
		}
		// Its sessions were revoked with it; drop them from this process's cache.
		if l, err := o.st.Link(ctx, jti); err == nil && l.UserID != 0 {
			o.cache.ForgetUser(l.UserID)
		}
		return "revoked link " + jti, nil
	case user != "":
		u, err := o.resolveUser(ctx, user, "")
		if err != nil {
			return "", err
		}
		if err := o.st.RevokeUserLinks(ctx, u.ID, o.now()); err != nil {
			return "", err
		}
		o.cache.ForgetUser(u.ID)
		return fmt.Sprintf("revoked every link of user %d (%s)", u.ID, u.Email), nil
	}
	return "", inputErr("name a link id or --user")
}

func jwtTime(t time.Time) *jwt.NumericDate { return jwt.NewNumericDate(t) }

func parseData(s string) (map[string]any, error) {
	if s == "" {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, inputErr("data: %q is not a JSON object: %v", s, err)
	}
	return m, nil
}
