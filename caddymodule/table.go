package caddymodule

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// cell makes s safe to print in a CLI table: clients choose much of what the
// tables show (paths, user agents, addresses, names), and a raw escape
// sequence, carriage return, newline or tab would reach the operator's
// terminal (rewriting the screen or its title) or forge rows and columns.
// C0 and C1 controls, DEL, invalid UTF-8 and the Unicode bidi embeddings,
// overrides and isolates (U+202A–U+202E, U+2066–U+2069; see unsafeRune for
// the few more) are written the way
// strconv.Quote writes them, without the quotes — \t, \n, \r, \x1b, \u202e,
// \xff — and so is a backslash (\\), so that no client text can pass for
// an escape. Other text, including non-ASCII letters, prints as it is.
func cell(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			const hex = "0123456789abcdef"
			b.WriteString(`\x`)
			b.WriteByte(hex[s[i]>>4])
			b.WriteByte(hex[s[i]&15])
		case r == '\\' || unsafeRune(r):
			q := strconv.QuoteRuneToASCII(r) // '\x1b', '\t', '\u202e', '\\'
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size <= 1) || r == '\\' || unsafeRune(r) {
			return true
		}
		i += size
	}
	return false
}

// unsafeRune reports the runes cell escapes besides the backslash: C0, DEL
// and C1 controls, the bidi embeddings, overrides and isolates, and — as
// cheap extra care — the bidi marks and the Unicode line and paragraph
// separators, which some terminals and pagers also act on.
func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, 0x7f <= r && r <= 0x9f:
		return true
	case 0x202a <= r && r <= 0x202e, 0x2066 <= r && r <= 0x2069:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r == 0x2028, r == 0x2029:
		return true
	}
	return false
}
