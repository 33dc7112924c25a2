package ticket

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

func FuzzLooksGenerated(f *testing.F) {
	for _, s := range []string{"AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAB", "_-_-_-_-_-_-_-_-_-_-_w", "I love Paris", "", "AAAAAAAAAAAAAAAAAAAA\n\nA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := LooksGenerated(s)
		b, err := base64.RawURLEncoding.Strict().DecodeString(s)
		// Strict decoding still skips '\r' and '\n', which a 22-byte string
		// then cannot afford: it would decode to fewer than 16 bytes.
		want := err == nil && len(s) == GeneratedLen && len(b) == 16
		if got != want {
			t.Fatalf("LooksGenerated(%q) = %v, strict decoding says %v", s, got, want)
		}
		if got && base64.RawURLEncoding.EncodeToString(b) != s {
			t.Fatalf("%q is not the one spelling of its bytes", s)
		}
	})
}

// FuzzFromRequest: arbitrary queries, Authorization values and bodies never
// panic, and credentials put anywhere among them are gone after Strip.
func FuzzFromRequest(f *testing.F) {
	for _, s := range []struct {
		query, auth, body string
		post              bool
		pos               uint
	}{
		{"a=1&b=2", "Basic dTpw", "x=1", true, 3},
		{"uuid=u&password=p", "Ticket u:p", "uuid=u&password=p", true, 0},
		{"a=1;password=x;b", "ticket :", "password=%zz", false, 5},
		{"%70assword=x&&&=&%", "TICKET", "a;b;uuid", true, 100},
		{"password", "Ticket\t x", "&&&", true, 1},
		{"a=%C3%A9#frag&password=1", "", "", false, 9},
	} {
		f.Add(s.query, s.auth, s.body, s.post, s.pos)
	}
	const marker = "Mq7zMARKER"
	f.Fuzz(func(t *testing.T, query, auth, body string, post bool, pos uint) {
		// Anything at all: no panic, and the body comes back whole.
		r := fuzzRequest(query, []string{auth}, body, post)
		if _, _, err := FromRequest(r, Names{}, 1<<10); err == nil {
			if b, _ := io.ReadAll(r.Body); string(b) != body {
				t.Fatalf("body %q came back as %q", body, b)
			}
		}
		r = fuzzRequest(query, []string{auth}, body, post)
		_ = Strip(r, Names{})

		if strings.Contains(query+auth+body, "MARK") {
			return
		}
		// Credentials inserted anywhere among the rest.
		at := func(s string) int { return int(pos % uint(len(s)+1)) }
		piece := "&password=" + marker + "&uuid=" + marker + "&"
		q := query[:at(query)] + piece + query[at(query):]
		b := body[:at(body)] + piece + body[at(body):]
		auths := []string{auth, "Ticket " + marker + ":" + marker}
		if pos%2 == 0 {
			auths[0], auths[1] = auths[1], auths[0]
		}
		r = fuzzRequest(q, auths, b, post)
		r.Header.Set("Referer", "https://example.com/?"+q)
		c, found, err := FromRequest(r, Names{}, 1<<20)
		if err == nil && (!found || c.From != FromHeader) {
			t.Fatalf("a Ticket header was not found: %+v, %v", c, found)
		}
		if err := Strip(r, Names{}); err != nil {
			t.Fatalf("Strip: %v", err)
		}
		if strings.Contains(r.URL.RawQuery, marker) || strings.Contains(r.RequestURI, marker) {
			t.Fatalf("credentials left in the query: %q / %q", r.URL.RawQuery, r.RequestURI)
		}
		for k, vs := range r.Header {
			for _, v := range vs {
				if strings.Contains(v, marker) {
					t.Fatalf("credentials left in %s: %q", k, v)
				}
			}
		}
		got, _ := io.ReadAll(r.Body)
		if bytes.Contains(got, []byte(marker)) {
			t.Fatalf("credentials left in the body %q", got)
		}
		if cl := r.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(got)) || r.ContentLength != int64(len(got)) && r.ContentLength != -1 {
			t.Fatalf("Content-Length %q, ContentLength %d for %d bytes", cl, r.ContentLength, len(got))
		}
		r.Body = io.NopCloser(bytes.NewReader(got))
		r.Method = http.MethodPost
		if c, found, _ := FromRequest(r, Names{}, 1<<20); found {
			t.Fatalf("credentials found after Strip: %+v", c)
		}
	})
}

func fuzzRequest(query string, auth []string, body string, post bool) *http.Request {
	method := http.MethodPut
	if post {
		method = http.MethodPost
	}
	return &http.Request{
		Method:        method,
		URL:           &url.URL{Path: "/p", RawQuery: query},
		RequestURI:    "/p?" + query,
		Header:        http.Header{"Authorization": auth, "Content-Type": {formType}, "Content-Length": {strconv.Itoa(len(body))}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
	}
}
