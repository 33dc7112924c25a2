// Package site holds latchkey's trust boundary: a site is the set of host
// names one latchkey configuration protects together, with one canonical
// origin. Users, roles, sessions, invites and links belong to a site, and
// every absolute URL the gateway makes comes from the site's origin, never
// from a request header.
package site

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// DefaultName names a site whose config gives it neither a name nor a host
// (a catch-all site block such as ":80").
const DefaultName = "default"

// ErrNoOrigin is returned when a URL is asked of a site that has no origin.
var ErrNoOrigin = errors.New("the site has no origin")

// Site is one trust boundary.
type Site struct {
	// Name is what rows of the store record. Handlers that give the same
	// name are one site.
	Name string
	// Hosts are lower-case host names without port; empty means any host (a
	// catch-all site block).
	Hosts []string
	// Origin is scheme://host[:port] with no path, or "" when the config
	// names none and none can be inferred.
	Origin string
}

// New checks and normalises a site's settings. name defaults to the first
// host, or DefaultName without one.
func New(name string, hosts []string, origin string) (*Site, error) {
	s := &Site{Name: strings.ToLower(strings.TrimSpace(name))}
	for _, h := range hosts {
		n := HostOf(h)
		if n == "" {
			return nil, fmt.Errorf("site %q: host %q is empty", name, h)
		}
		s.Hosts = append(s.Hosts, n)
	}
	if s.Name == "" {
		s.Name = DefaultName
		if len(s.Hosts) > 0 {
			s.Name = s.Hosts[0]
		}
	}
	if !validName(s.Name) {
		return nil, fmt.Errorf("site name %q: use letters, digits, '.', '-', '_' and '*' only", s.Name)
	}
	if origin != "" {
		o, err := ParseOrigin(origin)
		if err != nil {
			return nil, fmt.Errorf("site %s: %w", s.Name, err)
		}
		s.Origin = o
	}
	return s, nil
}

func validName(n string) bool {
	if n == "" || len(n) > 253 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' || c == '*') {
			return false
		}
	}
	return true
}

// ParseOrigin accepts http(s)://host[:port] with nothing after it but an
// optional "/", and returns it in canonical form (lower-case, no default
// port, no trailing slash).
func ParseOrigin(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("origin %q: %w", raw, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("origin %q: want http:// or https://", raw)
	case u.Host == "" || u.User != nil || u.Opaque != "":
		return "", fmt.Errorf("origin %q: want scheme://host[:port]", raw)
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "", u.ForceQuery:
		return "", fmt.Errorf("origin %q: an origin has no path, query or fragment", raw)
	case strings.ContainsAny(u.Host, "*"):
		return "", fmt.Errorf("origin %q: a wildcard is not an origin", raw)
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" {
		return "", fmt.Errorf("origin %q: no host", raw)
	}
	if port == "" || u.Scheme == "http" && port == "80" || u.Scheme == "https" && port == "443" {
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		return u.Scheme + "://" + host, nil
	}
	return u.Scheme + "://" + net.JoinHostPort(host, port), nil
}

// HostOf is a Host header or host name without port, brackets or trailing
// dot, in lower case.
func HostOf(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
}

// Serves reports whether the site answers for host (a request's Host).
func (s *Site) Serves(host string) bool {
	if len(s.Hosts) == 0 {
		return true
	}
	h := HostOf(host)
	for _, want := range s.Hosts {
		if want == h || strings.HasPrefix(want, "*.") && strings.HasSuffix(h, want[1:]) && !strings.Contains(h[:len(h)-len(want)+1], ".") {
			return true
		}
	}
	return false
}

// Owns reports whether host belongs to the site: one of its hosts, or, for
// a catch-all site, its origin's host. A catch-all site without an origin
// owns every host (it cannot tell them apart).
func (s *Site) Owns(host string) bool {
	switch {
	case len(s.Hosts) > 0:
		return s.Serves(host)
	case s.Origin == "":
		return true
	}
	return HostOf(host) == HostOf(s.OriginHost())
}

// URL is the absolute URL of pathAndQuery (which must start with '/') on
// the site's origin.
func (s *Site) URL(pathAndQuery string) (string, error) {
	if s.Origin == "" {
		return "", fmt.Errorf("making a URL for %s on site %s: %w (set origin in its latchkey handler)", pathAndQuery, s.Name, ErrNoOrigin)
	}
	if !strings.HasPrefix(pathAndQuery, "/") {
		pathAndQuery = "/" + pathAndQuery
	}
	return s.Origin + pathAndQuery, nil
}

// OriginHost is the origin's host (and port), "" without an origin.
func (s *Site) OriginHost() string {
	if i := strings.Index(s.Origin, "://"); i >= 0 {
		return s.Origin[i+3:]
	}
	return ""
}

// Secure reports whether the origin is HTTPS.
func (s *Site) Secure() bool { return strings.HasPrefix(s.Origin, "https://") }

// Join adds the hosts and origin of other, a site of the same name from
// another handler, to s: handlers that name one site are one site. Their
// origins must agree; a catch-all handler (no hosts) makes the site answer
// for any host.
func (s *Site) Join(other *Site) error {
	switch {
	case s.Origin == "":
		s.Origin = other.Origin
	case other.Origin != "" && other.Origin != s.Origin:
		return fmt.Errorf("site %q has two origins, %s and %s: give its handlers one origin", other.Name, s.Origin, other.Origin)
	}
	if len(s.Hosts) == 0 || len(other.Hosts) == 0 {
		s.Hosts = nil
		return nil
	}
	for _, h := range other.Hosts {
		found := false
		for _, x := range s.Hosts {
			found = found || x == h
		}
		if !found {
			s.Hosts = append(s.Hosts, h)
		}
	}
	return nil
}
