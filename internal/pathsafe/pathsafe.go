// Package pathsafe decides whether a request path means the same place to
// every server that may read it, and whether a redirect target stays on the
// site.
//
// The gateway makes decisions on a path (a signed link bound to
// /unsubscribe/ lets requests under it through) that an upstream then reads
// with its own rules: Tomcat and Spring drop ";params" before resolving
// "..", so /unsubscribe/..;/admin is /admin to them; some servers decode
// %2e, %2f or %5c before resolving, others after, some twice; Windows
// servers read "\" as "/"; nginx merges "//"; some frameworks fold
// Unicode look-alikes (NFKC, Windows "best fit") into ".", "/" or "\". Clean
// does not try to guess which reading an upstream uses: it refuses every
// path on which two readings could disagree, and returns the one decoded
// path all of them agree on for the rest.
//
// Clean's rules, on the path as sent on the wire (r.URL.EscapedPath()):
//
//   - The path starts with '/'. Raw bytes are limited to RFC 3986 pchars
//     ('/', unreserved, sub-delims, ':', '@', and '[', ']' which Go passes
//     through) and '%' escapes; ';' is refused raw or encoded (path
//     parameters), as are '?' and '#' raw.
//   - Every '%' is followed by two hex digits and is decoded exactly once.
//     An escape that decodes to '%' (%25) is refused outright, so no
//     double encoding (%252e, %252f, %255c, %253b) can survive into an
//     upstream that decodes twice; legitimate paths with a literal '%' are
//     refused too, a deliberate trade. Escapes that decode to '.', '/' or
//     '\' are refused wherever they appear: no legitimate client encodes
//     them, and each is read differently by some server.
//   - After decoding: no control character (C0, DEL, C1), no Unicode format
//     character (zero-width, bidi, soft hyphen, BOM), valid UTF-8 only (so
//     overlong encodings such as %c0%ae are refused), and none of the
//     Unicode characters that NFKC or Windows best-fit mapping turn into
//     '.', '/', '\', ';', '%', '?' or '#' (fullwidth solidus U+FF0F,
//     division slash U+2215, two dot leader U+2025, yen sign U+00A5, …).
//   - No empty segment ("//"; a trailing '/' is fine) and no segment made of
//     dots and spaces only (".", "..", "...", ".. ", " ") in any encoding.
//
// SafeNext is the one check every redirect after sign-in goes through.
package pathsafe

import (
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNext is the longest redirect target SafeNext accepts, in bytes.
const MaxNext = 2048

// Clean takes a request's path as sent on the wire (r.URL.EscapedPath(),
// %-escapes and all) and returns it decoded, or ok=false when some server
// could read it as a different path (see the package documentation). A
// path Clean accepts has no "." or ".." segment, no empty segment, no ';',
// '\', '%' or control character, and starts with '/'.
func Clean(rawPath string) (string, bool) {
	if rawPath == "" || rawPath[0] != '/' {
		return "", false
	}
	var b []byte // the decoded path, once there is an escape
	for i := 0; i < len(rawPath); i++ {
		c := rawPath[i]
		if c == '%' {
			if i+2 >= len(rawPath) {
				return "", false
			}
			h, l := unhex(rawPath[i+1]), unhex(rawPath[i+2])
			if h < 0 || l < 0 {
				return "", false
			}
			d := byte(h<<4 | l)
			switch {
			case d == '%', d == '.', d == '/', d == '\\', d == ';':
				return "", false
			case d < 0x20, d == 0x7f:
				return "", false
			}
			if b == nil {
				b = make([]byte, 0, len(rawPath))
				b = append(b, rawPath[:i]...)
			}
			b = append(b, d)
			i += 2
			continue
		}
		if !rawOK(c) {
			return "", false
		}
		if b != nil {
			b = append(b, c)
		}
	}
	p := rawPath
	if b != nil {
		p = string(b)
		if !decodedOK(p) {
			return "", false
		}
	}
	if !segmentsOK(p) {
		return "", false
	}
	return p, true
}

// SafeNext returns next if it is a same-site relative URL to redirect to
// after sign-in, else "". next must be a path starting with a single '/'
// that Clean accepts (so no "//", "/\", encoded slash or backslash, dot
// segment or path parameter, even once decoded), optionally followed by a
// query and a fragment; printable ASCII only (no space, tab, newline or
// other control character, which browsers strip or act on), no '\'
// anywhere, valid %-escapes, at most MaxNext bytes.
func SafeNext(next string) string {
	if next == "" || len(next) > MaxNext || next[0] != '/' {
		return ""
	}
	// "//host" and "/\host" are read as another host by browsers.
	if len(next) > 1 && (next[1] == '/' || next[1] == '\\') {
		return ""
	}
	for i := 0; i < len(next); i++ {
		c := next[i]
		if c <= ' ' || c >= 0x7f || c == '\\' {
			return ""
		}
		if c == '%' && (i+2 >= len(next) || unhex(next[i+1]) < 0 || unhex(next[i+2]) < 0) {
			return ""
		}
	}
	path := next
	if i := strings.IndexAny(next, "?#"); i >= 0 {
		path = next[:i]
	}
	clean, ok := Clean(path)
	if !ok || strings.HasPrefix(clean, "//") {
		return ""
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return ""
	}
	if r := siteBase.ResolveReference(u); r.Scheme != siteBase.Scheme || r.Host != siteBase.Host || r.User != nil {
		return ""
	}
	return next
}

var siteBase = &url.URL{Scheme: "https", Host: "site.invalid", Path: "/"}

// rawOK reports whether c may appear unescaped in a path Clean accepts.
func rawOK(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '/', '-', '.', '_', '~', // unreserved (and the separator)
		'!', '$', '&', '\'', '(', ')', '*', '+', ',', '=', // sub-delims but ';'
		':', '@', '[', ']':
		return true
	}
	return false
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// decodedOK checks a decoded path's characters beyond ASCII.
func decodedOK(p string) bool {
	if !utf8.ValidString(p) {
		return false
	}
	for _, r := range p {
		if r < utf8.RuneSelf {
			continue // ASCII was checked byte by byte
		}
		if r <= 0x9f || unicode.Is(unicode.Cf, r) || confusable(r) {
			return false
		}
	}
	return true
}

// confusable reports whether r is one of the characters NFKC normalisation
// or Windows "best fit" code page conversion turn into ASCII that means
// something in a path: '.', '/', '\', ';', '%', '?', '#'. The NFKC
// part is every rune whose NFKC form contains one of those (Unicode 15);
// the best-fit part covers the slashes, backslashes and dots of the
// Windows ANSI and CJK code pages.
func confusable(r rune) bool {
	switch r {
	// NFKC
	case 0x037E, // GREEK QUESTION MARK -> ;
		0x2024, 0x2025, 0x2026, // ONE/TWO DOT LEADER, ELLIPSIS -> . .. ...
		0x2047, 0x2048, 0x2049, // ?? ?! !?
		0x2100, 0x2101, 0x2105, 0x2106, // a/c a/s c/o c/u
		0x33C2, 0x33C7, 0x33D8, // a.m. Co. p.m.
		0xFE14, 0xFE16, 0xFE19, 0xFE30, // vertical forms ; ? ... ..
		0xFE52, 0xFE54, 0xFE56, 0xFE5F, 0xFE68, 0xFE6A, // small forms . ; ? # \ %
		0xFF03, 0xFF05, 0xFF0E, 0xFF0F, 0xFF1B, 0xFF1F, 0xFF3C, // fullwidth # % . / ; ? \
		0x1F100: // DIGIT ZERO FULL STOP -> 0.
		return true
	// Windows best fit and CJK code pages
	case 0x00A5, // YEN SIGN: '\' in Shift-JIS (cp932)
		0x20A9,                 // WON SIGN: '\' in cp949
		0x2044, 0x2215, 0x29F8, // FRACTION SLASH, DIVISION SLASH, BIG SOLIDUS -> /
		0x2216, 0x29F5, 0x29F9: // SET MINUS, REVERSE SOLIDUS OPERATOR, BIG REVERSE SOLIDUS -> \
		return true
	}
	// ⒈ … ⒛: DIGIT ONE FULL STOP … NUMBER TWENTY FULL STOP.
	return 0x2488 <= r && r <= 0x249B
}

// segmentsOK checks a decoded path's segments: no empty one but the last,
// none made only of dots and spaces.
func segmentsOK(p string) bool {
	rest := p[1:]
	for {
		seg, after, more := strings.Cut(rest, "/")
		if seg == "" && more {
			return false // "//"
		}
		if dotty(seg) {
			return false
		}
		if !more {
			return true
		}
		rest = after
	}
}

// dotty reports whether seg is non-empty and only dots and spaces, which
// some server reads as "." or "..", or as an empty segment: Windows drops
// trailing dots and spaces from a name.
func dotty(seg string) bool {
	if seg == "" {
		return false
	}
	for i := 0; i < len(seg); i++ {
		if seg[i] != '.' && seg[i] != ' ' {
			return false
		}
	}
	return true
}
