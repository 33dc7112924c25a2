package pathsafe

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

var fuzzBase = &url.URL{Scheme: "https", Host: "site.example", Path: "/"}

// onSite reports whether s, parsed by net/url and resolved against
// https://site.example/, is still on https://site.example.
func onSite(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	r := fuzzBase.ResolveReference(u)
	return r.Scheme == "https" && r.Host == "site.example" && r.User == nil && r.Opaque == ""
}

// asBrowser is what a WHATWG URL parser does to s before parsing it:
// leading and trailing C0 controls and spaces stripped, tabs and newlines
// removed, '\' read as '/' (special schemes).
func asBrowser(s string) string {
	s = strings.TrimFunc(s, func(r rune) bool { return r <= ' ' })
	s = strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(s)
	return strings.ReplaceAll(s, "\\", "/")
}

// segments of a path as one kind of server reads it: after decoding n
// times (errors leave it as it is), '\' as '/', ";params" dropped from
// each segment (Tomcat), and Unicode fullwidth forms folded (NFKC).
func serverSegments(p string, decode int) []string {
	for range decode {
		if d, err := url.PathUnescape(p); err == nil {
			p = d
		}
	}
	p = strings.NewReplacer("\\", "/", "\uff0f", "/", "\uff3c", "\\", "\uff0e", ".", "\u2215", "/").Replace(p)
	segs := strings.Split(p, "/")
	for i, s := range segs {
		s, _, _ = strings.Cut(s, ";")
		segs[i] = s
	}
	return segs
}

func FuzzClean(f *testing.F) {
	for _, tt := range cleanAccepted {
		f.Add(tt.raw)
	}
	for _, raw := range cleanRefused {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out, ok := Clean(raw)
		if !ok {
			if out != "" {
				t.Fatalf("Clean(%q) refused but returned %q", raw, out)
			}
			return
		}
		if out == "" || out[0] != '/' || strings.Contains(out, "//") || strings.ContainsAny(out, ";\\%") {
			t.Fatalf("Clean(%q) = %q: not a plain path", raw, out)
		}
		if !utf8.ValidString(out) {
			t.Fatalf("Clean(%q) = %q: not UTF-8", raw, out)
		}
		for _, r := range out {
			if r < ' ' || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
				t.Fatalf("Clean(%q) = %q: control character", raw, out)
			}
		}
		for seg := range strings.SplitSeq(out, "/") {
			if seg == "." || seg == ".." || strings.Trim(seg, ". ") == "" && seg != "" {
				t.Fatalf("Clean(%q) = %q: dot segment %q", raw, out, seg)
			}
		}
		// net/url reads the same path, on the same host.
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("Clean(%q) accepted what net/url refuses: %v", raw, err)
		}
		r := fuzzBase.ResolveReference(u)
		if r.Host != "site.example" || r.Path != out || u.Path != out {
			t.Fatalf("Clean(%q) = %q, but net/url reads %q (resolved %q on %q)", raw, out, u.Path, r.Path, r.Host)
		}
		// Every reading — undecoded, decoded once or twice, with '\' as
		// '/', path parameters dropped, fullwidth forms folded — has the
		// same segments, none of them a dot segment.
		n := strings.Count(out, "/") + 1
		for decode := range 3 {
			segs := serverSegments(raw, decode)
			if len(segs) != n {
				t.Fatalf("Clean(%q) = %q, but a server decoding %d times sees segments %q", raw, out, decode, segs)
			}
			for i, s := range segs {
				if (s == "") != (i == 0 || (i == n-1 && strings.HasSuffix(out, "/"))) || s == "." || s == ".." {
					t.Fatalf("Clean(%q) = %q, but a server decoding %d times sees segments %q", raw, out, decode, segs)
				}
			}
		}
		// The path escaped again cleans to itself.
		again, ok := Clean((&url.URL{Path: out}).EscapedPath())
		if !ok || again != out {
			t.Fatalf("Clean(%q) = %q, but escaped again it cleans to %q, %v", raw, out, again, ok)
		}
	})
}

func FuzzSafeNext(f *testing.F) {
	for _, s := range nextAccepted {
		f.Add(s)
	}
	for _, s := range nextRefused {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := SafeNext(next)
		if got == "" {
			return
		}
		if got != next {
			t.Fatalf("SafeNext(%q) = %q: changed it", next, got)
		}
		if len(next) > MaxNext || next[0] != '/' || len(next) > 1 && (next[1] == '/' || next[1] == '\\') {
			t.Fatalf("SafeNext(%q) kept it", next)
		}
		if legacySafeNext(next) != next {
			t.Fatalf("SafeNext(%q) kept what the previous check refuses", next)
		}
		if !onSite(next) {
			t.Fatalf("SafeNext(%q) kept an off-site URL (net/url)", next)
		}
		if b := asBrowser(next); !onSite(b) || strings.HasPrefix(b, "//") {
			t.Fatalf("SafeNext(%q) kept an off-site URL (as a browser reads it: %q)", next, b)
		}
		// A framework that decodes the whole thing once more still stays.
		for _, d := range []func(string) (string, error){url.PathUnescape, url.QueryUnescape} {
			dec, err := d(next)
			if err != nil {
				continue
			}
			if b := asBrowser(dec); !strings.HasPrefix(b, "/") || strings.HasPrefix(b, "//") {
				t.Fatalf("SafeNext(%q) kept what decodes to %q, off-site to a browser", next, dec)
			}
			if _, err := url.Parse(dec); err == nil && !onSite(dec) {
				t.Fatalf("SafeNext(%q) kept what decodes to %q, off-site to net/url", next, dec)
			}
		}
		path := next
		if i := strings.IndexAny(next, "?#"); i >= 0 {
			path = next[:i]
		}
		if out, ok := Clean(path); !ok || strings.Contains(out, "//") {
			t.Fatalf("SafeNext(%q) kept an unclean path", next)
		}
	})
}
