package caddymodule

import (
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/latchkeyhq/latchkey/internal/invite"
)

// site is a place in a Caddy config where a latchkey handler runs, as far as
// the CLI can tell without starting Caddy: it needs the host (an invite's
// site), the base URL (for login links in mails) and the handler's settings.
type site struct {
	Host    string // host matcher, "" when the route matches every host
	BaseURL string // scheme://host[:port]
	Handler Handler
}

// latchkeySites walks the http app of an adapted config for latchkey
// handlers, carrying host matchers down through subroutes.
func latchkeySites(cfgJSON []byte) ([]site, error) {
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen      []string          `json:"listen"`
					Routes      []json.RawMessage `json:"routes"`
					TLSPolicies json.RawMessage   `json:"tls_connection_policies"`
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
	var out []site
	names := make([]string, 0, len(cfg.Apps.HTTP.Servers))
	for name := range cfg.Apps.HTTP.Servers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		srv := cfg.Apps.HTTP.Servers[name]
		port := ""
		if len(srv.Listen) > 0 {
			if _, p, err := net.SplitHostPort(srv.Listen[0]); err == nil {
				port = p
			}
		}
		scheme := "http"
		if port == "443" || len(srv.TLSPolicies) > 0 {
			scheme = "https"
		}
		var walk func(routes []json.RawMessage, hosts []string) error
		walk = func(routes []json.RawMessage, hosts []string) error {
			for _, raw := range routes {
				var rt struct {
					Match []struct {
						Host []string `json:"host"`
					} `json:"match"`
					Handle []json.RawMessage `json:"handle"`
				}
				if err := json.Unmarshal(raw, &rt); err != nil {
					return err
				}
				h := hosts
				for _, m := range rt.Match {
					if len(m.Host) > 0 {
						h = m.Host
					}
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
						if err := walk(kind.Routes, h); err != nil {
							return err
						}
					case "latchkey":
						var lh Handler
						if err := json.Unmarshal(hraw, &lh); err != nil {
							return err
						}
						if len(h) == 0 {
							out = append(out, site{BaseURL: baseURL(scheme, "localhost", port), Handler: lh})
						}
						for _, host := range h {
							out = append(out, site{Host: host, BaseURL: baseURL(scheme, host, port), Handler: lh})
						}
					}
				}
			}
			return nil
		}
		if err := walk(srv.Routes, nil); err != nil {
			return nil, fmt.Errorf("reading routes of server %s: %w", name, err)
		}
	}
	return out, nil
}

func baseURL(scheme, host, port string) string {
	if port == "" || scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		return scheme + "://" + host
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// pickSite chooses the site an invite is for: the one named by domain, or
// the only one there is.
func pickSite(sites []site, domain string) (site, error) {
	if domain != "" {
		want := invite.SiteOf(domain)
		for _, s := range sites {
			if invite.SiteOf(s.Host) == want {
				return s, nil
			}
		}
		for _, s := range sites {
			if s.Host == "" {
				s.Host = want
				s.BaseURL = strings.Replace(s.BaseURL, "localhost", want, 1)
				return s, nil
			}
		}
		// Not in this config: still usable, with default settings.
		return site{Host: want, BaseURL: "https://" + want}, nil
	}
	var withInvites []site
	for _, s := range sites {
		if s.Handler.Invite != nil {
			withInvites = append(withInvites, s)
		}
	}
	switch {
	case len(withInvites) == 1:
		if withInvites[0].Host == "" {
			withInvites[0].Host = "localhost"
		}
		return withInvites[0], nil
	case len(withInvites) == 0:
		return site{}, fmt.Errorf("no latchkey route with invites in the config; name the site with --domain")
	}
	hosts := make([]string, len(withInvites))
	for i, s := range withInvites {
		hosts[i] = s.Host
	}
	return site{}, fmt.Errorf("several sites take invites (%s); name one with --domain", strings.Join(hosts, ", "))
}

// loginURL is where an invitee enters their code.
func (s site) loginURL() string {
	prefix := s.Handler.Prefix
	if prefix == "" {
		prefix = "/.latchkey/"
	}
	return strings.TrimSuffix(s.BaseURL, "/") + prefix + "login"
}
