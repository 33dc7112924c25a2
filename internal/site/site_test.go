package site

import (
	"errors"
	"strings"
	"testing"
)

func TestParseOrigin(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"https://App.Example.com", "https://app.example.com"},
		{"https://app.example.com:443/", "https://app.example.com"},
		{"http://localhost:8080", "http://localhost:8080"},
		{"http://[::1]:8080", "http://[::1]:8080"},
		{"https://[2001:db8::1]", "https://[2001:db8::1]"},
		{"ftp://x", ""},
		{"https://", ""},
		{"https://user@x.example", ""},
		{"https://x.example/app", ""},
		{"https://x.example?q", ""},
		{"https://x.example#f", ""},
		{"https://*.example.com", ""},
		{"x.example", ""},
		{"//x.example", ""},
	} {
		got, err := ParseOrigin(c.in)
		if got != c.want || (err == nil) != (c.want != "") {
			t.Errorf("ParseOrigin(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestSite(t *testing.T) {
	s, err := New("", []string{"App.Example.com:443", "www.example.com."}, "https://app.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "app.example.com" || !s.Serves("WWW.example.com:8443") || s.Serves("evil.example") || !s.Secure() {
		t.Errorf("site %+v", s)
	}
	if u, err := s.URL("/.latchkey/login?next=%2F"); err != nil || u != "https://app.example.com/.latchkey/login?next=%2F" {
		t.Errorf("URL = %q, %v", u, err)
	}
	catchAll, _ := New("", nil, "")
	if catchAll.Name != DefaultName || !catchAll.Serves("anything.example") {
		t.Errorf("catch-all %+v", catchAll)
	}
	if _, err := catchAll.URL("/x"); !errors.Is(err, ErrNoOrigin) {
		t.Errorf("URL without origin: %v", err)
	}
	wild, _ := New("", []string{"*.example.com"}, "")
	if !wild.Serves("a.example.com") || wild.Serves("a.b.example.com") || wild.Serves("example.com") {
		t.Errorf("wildcard site serves the wrong hosts")
	}
	if _, err := New("bad name!", nil, ""); err == nil {
		t.Error("a site name with spaces was accepted")
	}
}

// FuzzParseOrigin: an accepted origin is canonical (parsing it again gives
// it back) and is nothing but scheme://host[:port].
func FuzzParseOrigin(f *testing.F) {
	for _, s := range []string{"https://a.example", "http://[::1]:80/", "https://a.example:443", "http://a@b", "https://a.example/..", "https://a.example\\@evil"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		o, err := ParseOrigin(in)
		if err != nil {
			return
		}
		again, err := ParseOrigin(o)
		if err != nil || again != o {
			t.Fatalf("ParseOrigin(%q) = %q, which parses to %q, %v", in, o, again, err)
		}
		rest := o[strings.Index(o, "://")+3:]
		if strings.ContainsAny(rest, "/?#@\\ ") {
			t.Fatalf("origin %q has more than a host and port", o)
		}
	})
}

func TestJoin(t *testing.T) {
	mk := func(hosts []string, origin string) *Site {
		s, err := New("app", hosts, origin)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := mk([]string{"a.example.com"}, "")
	if err := s.Join(mk([]string{"b.example.com", "a.example.com"}, "https://a.example.com")); err != nil {
		t.Fatal(err)
	}
	if s.Origin != "https://a.example.com" || strings.Join(s.Hosts, ",") != "a.example.com,b.example.com" {
		t.Errorf("joined site %+v", s)
	}
	if err := s.Join(mk(nil, "https://a.example.com")); err != nil || s.Hosts != nil {
		t.Errorf("joining a catch-all: %v, hosts %v", err, s.Hosts)
	}
	if err := s.Join(mk(nil, "https://b.example.com")); err == nil || !strings.Contains(err.Error(), "two origins") {
		t.Errorf("joining another origin: %v", err)
	}
}
