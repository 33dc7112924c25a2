package caddymodule

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/latchkeyhq/latchkey/internal/site"
)

// siteConf is a latchkey handler's site and settings, as the CLI reads them
// from a config and the running app registers them.
type siteConf struct {
	Site    *site.Site
	Handler Handler
}

// newSite is the handler's site from its settings.
func (h *Handler) newSite() (*site.Site, error) {
	return site.New(h.SiteName, h.Hosts, h.Origin)
}

// latchkeySites walks the http app of an adapted config for latchkey
// handlers and returns their sites, one entry per handler.
func latchkeySites(cfgJSON []byte) ([]siteConf, error) {
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []json.RawMessage `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if len(cfgJSON) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return nil, fmt.Errorf("reading http servers from config: %w", err)
	}
	var out []siteConf
	names := make([]string, 0, len(cfg.Apps.HTTP.Servers))
	for name := range cfg.Apps.HTTP.Servers {
		names = append(names, name)
	}
	sort.Strings(names)
	var walk func(routes []json.RawMessage) error
	walk = func(routes []json.RawMessage) error {
		for _, raw := range routes {
			var rt struct {
				Handle []json.RawMessage `json:"handle"`
			}
			if err := json.Unmarshal(raw, &rt); err != nil {
				return err
			}
			for _, hraw := range rt.Handle {
				var kind struct {
					Handler string            `json:"handler"`
					Routes  []json.RawMessage `json:"routes"`
				}
				if err := json.Unmarshal(hraw, &kind); err != nil {
					return err
				}
				switch kind.Handler {
				case "subroute":
					if err := walk(kind.Routes); err != nil {
						return err
					}
				case "latchkey":
					var lh Handler
					if err := json.Unmarshal(hraw, &lh); err != nil {
						return err
					}
					s, err := lh.newSite()
					if err != nil {
						return err
					}
					out = append(out, siteConf{Site: s, Handler: lh})
				}
			}
		}
		return nil
	}
	for _, name := range names {
		if err := walk(cfg.Apps.HTTP.Servers[name].Routes); err != nil {
			return nil, fmt.Errorf("reading routes of server %s: %w", name, err)
		}
	}
	return mergeSites(out)
}

// mergeSites makes the handlers that name one site share one *site.Site:
// hosts are pooled, and origins must agree.
func mergeSites(confs []siteConf) ([]siteConf, error) {
	byName := map[string]*site.Site{}
	for i := range confs {
		s := confs[i].Site
		have := byName[s.Name]
		if have == nil {
			byName[s.Name] = s
			continue
		}
		if err := joinSite(have, s); err != nil {
			return nil, err
		}
		confs[i].Site = have
	}
	return confs, nil
}

// joinSite adds s's hosts and origin to have, which has the same name.
func joinSite(have, s *site.Site) error {
	switch {
	case have.Origin == "":
		have.Origin = s.Origin
	case s.Origin != "" && s.Origin != have.Origin:
		return fmt.Errorf("site %q has two origins, %s and %s: give its handlers one origin", s.Name, have.Origin, s.Origin)
	}
	if len(have.Hosts) == 0 || len(s.Hosts) == 0 {
		have.Hosts = nil // a catch-all handler makes the site answer for any host
		return nil
	}
	for _, h := range s.Hosts {
		found := false
		for _, x := range have.Hosts {
			found = found || x == h
		}
		if !found {
			have.Hosts = append(have.Hosts, h)
		}
	}
	return nil
}

// pickSite chooses the site an invite is for: the one named (by site name
// or one of its hosts), or the only one that takes invites.
func pickSite(sites []siteConf, name string) (siteConf, error) {
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
		return siteConf{}, fmt.Errorf("no latchkey site %q in the config (sites: %s)", name, siteNames(sites))
	}
	var withInvites []siteConf
	for _, s := range sites {
		if s.Handler.Invite != nil {
			withInvites = append(withInvites, s)
		}
	}
	switch {
	case len(withInvites) == 1:
		return withInvites[0], nil
	case len(withInvites) == 0:
		return siteConf{}, fmt.Errorf("no latchkey route with invites in the config; name the site with --domain")
	}
	return siteConf{}, fmt.Errorf("several sites take invites (%s); name one with --domain", siteNames(withInvites))
}

func siteNames(sites []siteConf) string {
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
func (o ops) siteFor(name, host string) (*site.Site, error) {
	if len(o.sites) == 0 {
		if name == "" {
			name = site.HostOf(host)
		}
		return site.New(name, nil, "")
	}
	if name != "" {
		s, err := pickSite(o.sites, name)
		return s.Site, err
	}
	h := site.HostOf(host)
	for _, s := range o.sites {
		if len(s.Site.Hosts) > 0 && s.Site.Serves(h) {
			return s.Site, nil
		}
	}
	for _, s := range o.sites {
		if len(s.Site.Hosts) == 0 {
			return s.Site, nil
		}
	}
	return nil, inputErr("no latchkey site serves %q (sites: %s)", host, siteNames(o.sites))
}

// loginURL is where an invitee enters their code, on the site's origin.
func (s siteConf) loginURL() (string, error) {
	prefix := s.Handler.Prefix
	if prefix == "" {
		prefix = "/.latchkey/"
	}
	return s.Site.URL(prefix + "login")
}
