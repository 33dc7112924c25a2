package ops

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/internal/link"
	"github.com/latchkeyhq/latchkey/internal/mail"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// NewLink is the input for minting a link, from the CLI or the admin API.
type NewLink struct {
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

// DefaultLinkTTL is how long a minted link works unless told.
const DefaultLinkTTL = 7 * 24 * time.Hour

// MintLink mints a signed link for one user and one URL, with link.Mint
// (the minter the public mint package uses too), and records it.
func (o *Ops) MintLink(ctx context.Context, in NewLink, by string) (LinkJSON, error) {
	u, err := o.ResolveUser(ctx, in.User, "")
	if err != nil {
		return LinkJSON{}, err
	}
	target, err := url.Parse(strings.TrimSpace(in.URL))
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return LinkJSON{}, inputErr("url %q is not an absolute http(s) URL", in.URL)
	}
	st, err := o.siteFor(in.Site, target.Host)
	if err != nil {
		return LinkJSON{}, err
	}
	if u.Site != "" && u.Site != st.Name {
		return LinkJSON{}, inputErr("user %d (%s) belongs to site %q; a link for %s would be on site %q", u.ID, u.Email, u.Site, target.Host, st.Name)
	}
	now := o.now()
	ttl := DefaultLinkTTL
	if in.TTL != "" {
		if ttl, err = ParseDuration(in.TTL); err != nil || ttl <= 0 {
			return LinkJSON{}, inputErr("ttl: bad duration %q (want e.g. 1h, 7d)", in.TTL)
		}
	}
	var nbf time.Time
	if in.NotBefore != "" {
		if t, err := time.Parse(time.RFC3339, in.NotBefore); err == nil {
			nbf = t
		} else if d, err := ParseDuration(in.NotBefore); err == nil && d >= 0 {
			nbf = now.Add(d)
		} else {
			return LinkJSON{}, inputErr("not-before: %q is neither an RFC 3339 time nor a duration", in.NotBefore)
		}
	}
	maxUses := 1
	if in.MaxUses != nil {
		if *in.MaxUses < 0 {
			return LinkJSON{}, inputErr("max-uses: %d is negative (0 means unlimited)", *in.MaxUses)
		}
		maxUses = *in.MaxUses
	}
	mode := in.Mode
	if mode == "" {
		mode = link.ModeRequest
	}
	if mode != link.ModeRequest && mode != link.ModeLogin {
		return LinkJSON{}, inputErr("mode: %q is not request or login", mode)
	}
	var methods []string
	for _, m := range in.Methods {
		m = strings.ToUpper(strings.TrimSpace(m))
		if m == "" || strings.ContainsAny(m, " \t/") {
			return LinkJSON{}, inputErr("method %q is not an HTTP method", m)
		}
		methods = append(methods, m)
	}
	param := in.Param
	if param == "" {
		param = link.DefaultParam
	}
	if !link.ValidParam(param) {
		return LinkJSON{}, inputErr("param: %q is not usable as a query parameter name", param)
	}
	if err := checkHeaderData("data", in.Data); err != nil {
		return LinkJSON{}, err
	}
	ring, err := o.ring()
	if err != nil {
		return LinkJSON{}, err
	}
	minted, err := link.Mint(ring, link.MintOptions{
		UserID: u.ID, URL: target, Now: now, TTL: ttl, NotBefore: nbf, MaxUses: maxUses,
		Mode: mode, Methods: methods, Data: in.Data, BindQuery: in.BindQuery, Param: param,
	})
	if err != nil {
		return LinkJSON{}, fmt.Errorf("signing link: %w", err)
	}
	row := &store.Link{
		JTI: minted.Claims.ID, Site: st.Name, UserID: u.ID, Target: minted.Claims.Target, Mode: mode, MaxUses: maxUses,
		CreatedAt: now, CreatedBy: by, ExpiresAt: now.Add(ttl),
	}
	if err := o.Store.CreateLink(ctx, row); err != nil {
		return LinkJSON{}, fmt.Errorf("recording link: %w", err)
	}
	out := ToLinkJSON(row)
	out.URL = minted.URL
	out.Headers = minted.MailHeaders()
	return out, nil
}

// Links lists a user's links (everyone's with ""), newest first.
func (o *Ops) Links(ctx context.Context, user string) ([]store.Link, error) {
	f := store.LinkFilter{}
	if user != "" {
		u, err := o.ResolveUser(ctx, user, "")
		if err != nil {
			return nil, err
		}
		f.UserID = u.ID
	}
	return o.Store.Links(ctx, f)
}

// ShowLink returns a link with every recorded attempt to use it.
func (o *Ops) ShowLink(ctx context.Context, jti string) (LinkJSON, error) {
	l, err := o.Store.Link(ctx, jti)
	if errors.Is(err, store.ErrNotFound) {
		return LinkJSON{}, fmt.Errorf("link %q: %w", jti, store.ErrNotFound)
	}
	if err != nil {
		return LinkJSON{}, err
	}
	out := ToLinkJSON(l)
	evs, err := o.Store.Audit(ctx, store.AuditFilter{Kind: "link", CredentialID: jti, Limit: 1000})
	if err != nil {
		return LinkJSON{}, err
	}
	out.UsesLog = ToJSON(evs, ToAuditJSON)
	return out, nil
}

// RevokeLinks revokes one link (jti) or every link of a user, and ends the
// sessions they started; it says what it did.
func (o *Ops) RevokeLinks(ctx context.Context, jti, user string) (Revoked, error) {
	switch {
	case jti != "" && user != "":
		return Revoked{}, inputErr("give a link id or --user, not both")
	case jti != "":
		if err := o.Store.RevokeLink(ctx, jti, o.now()); err != nil {
			return Revoked{}, fmt.Errorf("revoking link %q: %w", jti, err)
		}
		o.Cache.ForgetLink(jti)
		// Its sessions were revoked with it; drop them from this process's cache.
		if l, err := o.Store.Link(ctx, jti); err == nil && l.UserID != 0 {
			o.Cache.ForgetUser(l.UserID)
		}
		return revoked("link", jti, 1, "revoked link %s", jti), nil
	case user != "":
		u, err := o.ResolveUser(ctx, user, "")
		if err != nil {
			return Revoked{}, err
		}
		if err := o.Store.RevokeUserLinks(ctx, u.ID, o.now()); err != nil {
			return Revoked{}, err
		}
		o.Cache.ForgetUser(u.ID)
		// The store does not count them; -1 says "every one".
		return revoked("links", strconv.FormatInt(u.ID, 10), -1, "revoked every link of user %d (%s)", u.ID, u.Email), nil
	}
	return Revoked{}, inputErr("name a link id or --user")
}

// LoginLinkTTL is how long a sign-in link from the login page works: short,
// as the person about to use it asked for it.
const LoginLinkTTL = 15 * time.Minute

// sendLoginLink mints a one-use login link to targetURL on site and queues
// it to u by mail.
func (o *Ops) sendLoginLink(ctx context.Context, u *store.User, targetURL, site, param string) error {
	if o.Mailer == nil {
		return errors.New("sending a sign-in link: no smtp server in the latchkey global option")
	}
	one := 1
	out, err := o.MintLink(ctx, NewLink{
		User: strconv.FormatInt(u.ID, 10), URL: targetURL, TTL: LoginLinkTTL.String(),
		MaxUses: &one, Mode: link.ModeLogin, Param: param, Site: site,
	}, "login-page")
	if err != nil {
		return err
	}
	host := ""
	if pu, err := url.Parse(targetURL); err == nil {
		host = pu.Hostname()
	}
	// Queued, never sent here: the answer must not take longer when the
	// address has an account (and a relay to wait for) than when not.
	return o.Mailer.SendLoginLink(ctx, mail.LoginLink{To: u.Email, Name: u.Name, URL: out.URL, Site: host, ValidFor: LoginLinkTTL}, out.JTI)
}
