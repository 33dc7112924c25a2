package gate

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzRemoveCookie: whatever Cookie header a client sends, the gateway's
// cookie never survives, in any case, and every other pair keeps its order.
func FuzzRemoveCookie(f *testing.F) {
	for _, s := range []string{"a=1; latchkey_session=x; b=2", "LATCHKEY_SESSION=x", "latchkey_session", "; ;=;latchkey_session =x", "a=1"} {
		f.Add(s, "")
	}
	f.Add("a=1", "latchkey_session=y; c=3")
	f.Fuzz(func(t *testing.T, line1, line2 string) {
		h := http.Header{"Cookie": {line1}}
		if line2 != "" {
			h["Cookie"] = append(h["Cookie"], line2)
		}
		var others []string
		for _, line := range h["Cookie"] {
			for _, p := range strings.Split(line, ";") {
				n, _, _ := strings.Cut(p, "=")
				if !strings.EqualFold(strings.TrimSpace(n), DefaultCookieName) && strings.TrimSpace(p) != "" {
					others = append(others, strings.TrimSpace(p))
				}
			}
		}
		removeCookie(h, DefaultCookieName)
		var got []string
		for _, line := range h["Cookie"] {
			for _, p := range strings.Split(line, ";") {
				n, _, _ := strings.Cut(p, "=")
				if strings.EqualFold(strings.TrimSpace(n), DefaultCookieName) {
					t.Fatalf("cookie survived: %q", h["Cookie"])
				}
				if strings.TrimSpace(p) != "" {
					got = append(got, strings.TrimSpace(p))
				}
			}
		}
		if strings.Join(got, "|") != strings.Join(others, "|") {
			t.Fatalf("other cookies changed: %q, want %q", got, others)
		}
	})
}

// FuzzStripRequest: no header, trailer or Connection token that names a
// protected header survives, whatever the client sent.
func FuzzStripRequest(f *testing.F) {
	f.Add("X-User-ID", "1", "x_user_id, keep-alive", "X-Session-Id")
	f.Add("X-Latchkey-Link-Data", "{}", "X-LATCHKEY-x,close", "")
	f.Fuzz(func(t *testing.T, name, value, connection, trailer string) {
		s := NewHeaderStripper(IdentityHeaders("X-Remote-User"), ProtectedPrefixes)
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header[name] = []string{value}
		r.Header["Connection"] = []string{connection}
		r.Trailer = http.Header{trailer: {"1"}}
		s.StripRequest(r)
		for k := range r.Header {
			if s.match(k) {
				t.Fatalf("header %q survived", k)
			}
		}
		for k := range r.Trailer {
			if s.match(k) {
				t.Fatalf("trailer %q survived", k)
			}
		}
		for _, v := range r.Header["Connection"] {
			for _, tok := range strings.Split(v, ",") {
				if s.match(strings.TrimSpace(tok)) {
					t.Fatalf("Connection token %q survived in %q", tok, v)
				}
			}
		}
	})
}

// FuzzReadSmallForm: any POST body, urlencoded or multipart, is read
// without panicking and handed back to the upstream byte for byte.
func FuzzReadSmallForm(f *testing.F) {
	f.Add("multipart/form-data; boundary=X", "--X\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--X--\r\n")
	f.Add("application/x-www-form-urlencoded", "List-Unsubscribe=One-Click")
	f.Add("multipart/form-data", "--")
	f.Fuzz(func(t *testing.T, contentType, body string) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		_, ok := readSmallForm(r)
		if !ok {
			if len(body) <= maxFormBytes {
				t.Fatalf("a body of %d bytes refused", len(body))
			}
			return
		}
		got, err := io.ReadAll(r.Body)
		if err != nil || !bytes.Equal(got, []byte(body)) {
			t.Fatalf("body handed on changed: %q, %v", got, err)
		}
	})
}
