package gate

import (
	"net/http"
	"strings"
)

// HeaderStripper removes every client-sent copy of the headers the gateway
// vouches for. Upstreams (and proxies between) may treat X_User_Id or
// x-user-id as X-User-ID, so names are compared case-insensitively with '_'
// and '-' taken as equal.
type HeaderStripper struct {
	names    []string // normalised: lower case, '-' for '_'
	prefixes []string // normalised, e.g. "x-latchkey-"
}

// NewHeaderStripper strips the given header names and every header whose
// name starts with one of prefixes.
func NewHeaderStripper(names, prefixes []string) *HeaderStripper {
	s := &HeaderStripper{}
	for _, n := range names {
		s.names = append(s.names, normalise(n))
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
		} else if c == '_' {
			c = '-'
		}
		if c != norm[i] {
			return false
		}
	}
	return true
}

func normalise(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}
