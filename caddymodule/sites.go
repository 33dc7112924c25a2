package caddymodule

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/latchkeyhq/latchkey/internal/ops"
	"github.com/latchkeyhq/latchkey/internal/site"
)

// newSite is the handler's site from its settings.
func (h *Handler) newSite() (*site.Site, error) {
	return site.New(h.SiteName, h.Hosts, h.Origin)
}

// siteConf is what the operations need to know of the handler's site s.
func (h *Handler) siteConf(s *site.Site) ops.SiteConf {
	c := ops.SiteConf{
		Site:         s,
		Prefix:       h.Prefix,
		Invites:      h.Invite != nil,
		InviteLength: h.Invite.length(),
		InviteRules:  h.Invite.rulesOrDefault(),
		Links:        h.Link != nil,
	}
	if h.Link != nil {
		c.LinkParam = h.Link.Param
	}
	if h.Tickets != nil {
		for _, p := range h.Tickets.Accept {
			c.TicketPairs = append(c.TicketPairs, ops.TicketPair{Place: p.Place, Purpose: p.Purpose})
		}
	}
	return c
}

// latchkeySites walks the http app of an adapted config for latchkey
// handlers and returns their sites, one entry per handler, handlers that
// name one site sharing it.
func latchkeySites(cfgJSON []byte) ([]ops.SiteConf, error) {
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
	var out []ops.SiteConf
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
					out = append(out, lh.siteConf(s))
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
	return ops.MergeSites(out)
}
