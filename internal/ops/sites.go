package ops

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/latchkeyhq/latchkey/internal/invite"
	"github.com/latchkeyhq/latchkey/internal/site"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// SiteConf is one latchkey handler's site and the settings of it the
// operations need. Handlers that name one site share one *site.Site.
type SiteConf struct {
	Site *site.Site
	// Prefix is where the gateway's pages live; "" is /.latchkey/.
	Prefix string
	// Invites is set when the handler takes invite codes.
	Invites bool
	// InviteLength is the length of new codes; 0 is invite.DefaultLength.
	InviteLength int
	// InviteRules are the handler's; the zero value is invite.DefaultRules.
	InviteRules invite.Rules
	// Links is set when the handler takes signed links; LinkParam is the
	// query parameter that carries them ("" is link.DefaultParam).
	Links     bool
	LinkParam string
	// TicketPairs are the place and purpose pairs the handler takes
	// tickets for.
	TicketPairs []TicketPair
}

// TicketPair is a place and a purpose a route takes tickets for.
type TicketPair struct{ Place, Purpose string }

// LoginURL is where an invitee enters their code, on the site's origin.
func (s SiteConf) LoginURL() (string, error) {
	prefix := s.Prefix
	if prefix == "" {
		prefix = "/.latchkey/"
	}
	return s.Site.URL(prefix + "login")
}

func (s SiteConf) inviteLength() int {
	if s.InviteLength == 0 {
		return invite.DefaultLength
	}
	return s.InviteLength
}

func (s SiteConf) inviteRules() invite.Rules {
	if s.InviteRules == (invite.Rules{}) {
		return invite.DefaultRules()
	}
	return s.InviteRules
}

// MergeSites makes the handlers that name one site share one *site.Site:
// hosts are pooled, and origins must agree.
func MergeSites(confs []SiteConf) ([]SiteConf, error) {
	byName := map[string]*site.Site{}
	for i := range confs {
		s := confs[i].Site
		have := byName[s.Name]
		if have == nil {
			byName[s.Name] = s
			continue
		}
		if err := have.Join(s); err != nil {
			return nil, err
		}
		confs[i].Site = have
	}
	return confs, nil
}

// PickSite chooses the site an invite is for: the one named (by site name
// or one of its hosts), or the only one that takes invites.
func (o *Ops) PickSite(name string) (SiteConf, error) {
	s, err := pickSite(o.Sites, name)
	if err != nil {
		return SiteConf{}, InputError{err}
	}
	return s, nil
}

func pickSite(sites []SiteConf, name string) (SiteConf, error) {
	if name != "" {
		want := site.HostOf(name)
		for _, s := range sites {
			if s.Site.Name == want {
				return s, nil
			}
		}
		for _, s := range sites {
			if len(s.Site.Hosts) > 0 && s.Site.Serves(want) {
				return s, nil
			}
		}
		for _, s := range sites {
			if len(s.Site.Hosts) == 0 { // a catch-all site serves every host
				return s, nil
			}
		}
		return SiteConf{}, fmt.Errorf("no latchkey site %q in the config (sites: %s)", name, siteNames(sites))
	}
	var withInvites []SiteConf
	for _, s := range sites {
		if s.Invites {
			withInvites = append(withInvites, s)
		}
	}
	switch {
	case len(withInvites) == 1:
		return withInvites[0], nil
	case len(withInvites) == 0:
		return SiteConf{}, fmt.Errorf("no latchkey route with invites in the config; name the site with --domain")
	}
	return SiteConf{}, fmt.Errorf("several sites take invites (%s); name one with --domain", siteNames(withInvites))
}

func siteNames(sites []SiteConf) string {
	var names []string
	seen := map[string]bool{}
	for _, s := range sites {
		if !seen[s.Site.Name] {
			seen[s.Site.Name] = true
			names = append(names, s.Site.Name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// siteFor is the site a link or ticket URL is for: the one named, else the
// one that serves host. With no config at all, the host names the site.
func (o *Ops) siteFor(name, host string) (*site.Site, error) {
	if len(o.Sites) == 0 {
		if name == "" {
			name = site.HostOf(host)
		}
		return site.New(name, nil, "")
	}
	h := site.HostOf(host)
	if name != "" {
		s, err := pickSite(o.Sites, name)
		if err != nil {
			return nil, InputError{err}
		}
		// A link names its host: one the site does not serve would be
		// refused there, or accepted by another site's gateway.
		if len(s.Site.Hosts) > 0 && !s.Site.Serves(h) {
			return nil, inputErr("site %q does not serve %q (its hosts: %s)", s.Site.Name, host, strings.Join(s.Site.Hosts, ", "))
		}
		return s.Site, nil
	}
	for _, s := range o.Sites {
		if len(s.Site.Hosts) > 0 && s.Site.Serves(h) {
			return s.Site, nil
		}
	}
	for _, s := range o.Sites {
		if len(s.Site.Hosts) == 0 {
			return s.Site, nil
		}
	}
	return nil, inputErr("no latchkey site serves %q (sites: %s)", host, siteNames(o.Sites))
}

// LinkParamFor is the token parameter of the route that serves rawURL's
// host by name, or "" (the default) when none names another.
func (o *Ops) LinkParamFor(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	param := ""
	for _, s := range o.Sites {
		if s.Links && s.LinkParam != "" && len(s.Site.Hosts) > 0 && s.Site.Serves(u.Host) {
			param = s.LinkParam
		}
	}
	return param
}

// SiteOps are the operations one site's own pages use: the staff invite
// page (gate.Inviter) and the sign-in link form (gate.LoginLinker). They
// act on that site only.
type SiteOps struct {
	Ops  *Ops
	Site SiteConf
}

// CreateInvite creates an invite to the site, as Ops.CreateInvite does.
func (s SiteOps) CreateInvite(ctx context.Context, in NewInvite, by string) (InviteJSON, error) {
	return s.Ops.CreateInvite(ctx, s.Site, in, by)
}

// CanMail reports whether there is a mail server to send through.
func (s SiteOps) CanMail() bool { return s.Ops.CanMail() }

// SendLoginLink mints a one-use sign-in link to targetURL, which is on the
// site's origin, and queues it to u by mail.
func (s SiteOps) SendLoginLink(ctx context.Context, u *store.User, targetURL string) error {
	param := ""
	if s.Site.Links {
		param = s.Site.LinkParam
	}
	return s.Ops.sendLoginLink(ctx, u, targetURL, s.Site.Site.Name, param)
}
