// Package headerjson is how JSON travels in a request header to the
// upstream (X-Ticket-Data, X-Latchkey-Link-Data, X-User-Name): every
// non-ASCII character written as a \u escape, so that the value survives any
// header handling and any JSON parser reads back the same text. The gateway
// encodes with it, and the operations measure with it what the upstream
// will receive.
package headerjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// Marshal encodes v as JSON, escaped as Escape does.
func Marshal(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return Escape(b), nil
}

// Escape rewrites every non-ASCII character of b as a \u escape (a
// surrogate pair beyond the Basic Multilingual Plane).
func Escape(b []byte) string {
	var out bytes.Buffer
	out.Grow(len(b))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch {
		case r < utf8.RuneSelf:
			out.WriteByte(b[0])
		case r > 0xFFFF:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&out, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&out, `\u%04x`, r)
		}
		b = b[size:]
	}
	return out.String()
}
