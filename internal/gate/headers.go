package gate

import (
	"io"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/latchkeyhq/latchkey/internal/headerjson"
)

// ProtectedPrefixes are header name prefixes only the gateway sets: link
// data, ticket headers and anything latchkey adds later.
var ProtectedPrefixes = []string{"X-Latchkey-", "X-Ticket-"}

// RouteOverrides are headers with which frameworks let a client change the
// path or method a request is handled as (IIS, Symfony and Zend read
// X-Original-URL; Rails, Laravel and Express X-HTTP-Method-Override). A
// credential bound to a path or method would mean nothing if a client could
// send them, so no client copy reaches the upstream.
var RouteOverrides = []string{
	"X-Original-URL", "X-Rewrite-URL", "X-Original-URI", "X-Forwarded-URI", "X-Forwarded-Path",
	"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override",
}

// IdentityHeaders are the names a route vouches for: its own, the defaults
// (which an upstream may read whatever the route is configured to send),
// and the route overrides.
func IdentityHeaders(names ...string) []string {
	out := append([]string{DefaultUserHeader, DefaultSessionHeader, RolesHeader, EmailHeader, NameHeader}, RouteOverrides...)
	return append(out, names...)
}

// HeaderStripper removes every client-sent copy of the headers the gateway
// vouches for. Upstreams (and proxies between) may treat X_User_Id, X.User.Id
// or x-user-id as X-User-ID (CGI and PHP fold '-', '_' and '.' onto one
// variable), so names are compared case-insensitively with '_', '.' and '-'
// taken as equal.
type HeaderStripper struct {
	names    []string // normalised: lower case, '-' for '_' and '.'
	prefixes []string // normalised, e.g. "x-latchkey-"
}

// NewHeaderStripper strips the given header names and every header whose
// name starts with one of prefixes.
func NewHeaderStripper(names, prefixes []string) *HeaderStripper {
	s := &HeaderStripper{}
	seen := map[string]bool{}
	for _, n := range names {
		if n = normalise(n); !seen[n] {
			seen[n] = true
			s.names = append(s.names, n)
		}
	}
	for _, p := range prefixes {
		s.prefixes = append(s.prefixes, normalise(p))
	}
	return s
}

// Strip deletes matching headers from h and reports how many it removed.
func (s *HeaderStripper) Strip(h http.Header) int {
	n := 0
	for k := range h {
		if s.match(k) {
			delete(h, k)
			n++
		}
	}
	return n
}

// StripRequest removes what a client may not say about identity from every
// place an upstream could read it: headers, trailers, and the Connection
// header, whose tokens a proxy (Caddy's reverse_proxy included) obeys by
// deleting the named headers — after the gateway has set them.
func (s *HeaderStripper) StripRequest(r *http.Request) {
	s.Strip(r.Header)
	if len(r.Trailer) > 0 {
		s.Strip(r.Trailer)
		for _, v := range r.Header.Values("Trailer") {
			if s.listMatches(v) {
				r.Header.Del("Trailer")
				break
			}
		}
	}
	if len(r.TransferEncoding) > 0 && r.Body != nil && r.Body != http.NoBody {
		// Trailers arrive with the end of a chunked body, after this runs:
		// strip them again as the body ends, before anyone reads them.
		r.Body = &trailerGuard{ReadCloser: r.Body, r: r, s: s}
	}
	if conn := r.Header["Connection"]; len(conn) > 0 {
		kept := conn[:0:0]
		for _, v := range conn {
			for _, tok := range strings.Split(v, ",") {
				tok = textproto.TrimString(tok)
				if tok != "" && !s.match(tok) {
					kept = append(kept, tok)
				}
			}
		}
		if len(kept) == 0 {
			delete(r.Header, "Connection")
		} else {
			r.Header["Connection"] = []string{strings.Join(kept, ", ")}
		}
	}
}

type trailerGuard struct {
	io.ReadCloser
	r *http.Request
	s *HeaderStripper
}

func (t *trailerGuard) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err != nil && t.r.Trailer != nil {
		t.s.Strip(t.r.Trailer)
	}
	return n, err
}

func (s *HeaderStripper) listMatches(v string) bool {
	for _, tok := range strings.Split(v, ",") {
		if s.match(textproto.TrimString(tok)) {
			return true
		}
	}
	return false
}

func (s *HeaderStripper) match(key string) bool {
	for _, want := range s.names {
		if len(key) == len(want) && equalFoldHeader(key, want) {
			return true
		}
	}
	for _, p := range s.prefixes {
		if len(key) >= len(p) && equalFoldHeader(key[:len(p)], p) {
			return true
		}
	}
	return false
}

// equalFoldHeader compares a header name with a normalised one without
// allocating; callers ensure equal lengths.
func equalFoldHeader(key, norm string) bool {
	for i := 0; i < len(key); i++ {
		c := key[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		} else if c == '_' || c == '.' {
			c = '-'
		}
		if c != norm[i] {
			return false
		}
	}
	return true
}

func normalise(name string) string {
	return strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(name))
}

// removeCookie drops every cookie called name from the Cookie headers,
// keeping the others as the client sent them. Names are compared without
// case: some upstream frameworks read cookies that way.
func removeCookie(h http.Header, name string) {
	lines := h["Cookie"]
	if len(lines) == 0 {
		return
	}
	var out []string
	changed := false
	for _, line := range lines {
		parts := strings.Split(line, ";")
		kept := parts[:0]
		for _, p := range parts {
			n, _, _ := strings.Cut(p, "=")
			if strings.EqualFold(textproto.TrimString(n), name) {
				changed = true
				continue
			}
			kept = append(kept, p)
		}
		if len(kept) > 0 {
			out = append(out, strings.TrimLeft(strings.Join(kept, ";"), " "))
		}
	}
	if !changed {
		return
	}
	if len(out) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = out
}

// headerText is text of a user's own (a name) as a header value: control
// characters become spaces and non-ASCII is escaped as in JSON (\u00e9),
// so that no header handling on the way can mangle or split it.
func headerText(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			b[i] = ' '
		}
	}
	return headerjson.Escape(b)
}
