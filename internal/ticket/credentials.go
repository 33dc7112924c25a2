package ticket

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Names are the query and form parameter names that carry a ticket. Empty
// fields take the defaults, "uuid" and "password".
type Names struct{ UUID, Password string }

// DefaultNames are the parameter names used when none are configured.
var DefaultNames = Names{UUID: "uuid", Password: "password"}

func (n Names) orDefaults() Names {
	if n.UUID == "" {
		n.UUID = DefaultNames.UUID
	}
	if n.Password == "" {
		n.Password = DefaultNames.Password
	}
	return n
}

// Where credentials were found (Credentials.From).
const (
	FromHeader = "header"
	FromQuery  = "query"
	FromForm   = "form"
)

// AuthScheme is the Authorization scheme of a ticket:
// "Authorization: Ticket <uuid>:<password>".
const AuthScheme = "Ticket"

// DefaultMaxForm bounds a form body when no other bound is given (as
// net/http's ParseForm does).
const DefaultMaxForm = 10 << 20

// Credentials are a ticket's uuid and password as a request carried them.
type Credentials struct {
	UUID     string // lower-cased when it is a valid UUID, as tickets are stored
	Password string
	From     string // FromHeader, FromQuery or FromForm
}

// FromRequest finds a ticket's credentials in r. It looks, in this order,
// at an "Authorization: Ticket <uuid>:<password>" header (the scheme in any
// case; the password is everything after the first ':'), at the query (the
// first value of each parameter), and, for a POST with Content-Type
// application/x-www-form-urlencoded, at the body, of which it reads at most
// maxForm bytes (DefaultMaxForm if maxForm <= 0) and which it gives back to
// r for the upstream. It stops at the first place that has either part: a
// half credential is found with the other part empty. Parameters are parsed
// as net/http does (a piece with a ';' is ignored); a credential parameter
// with a bad %-escape, or a form body over maxForm, is an error.
func FromRequest(r *http.Request, n Names, maxForm int64) (c Credentials, found bool, err error) {
	n = n.orDefaults()
	defer func() {
		if ValidUUID(c.UUID) {
			c.UUID = strings.ToLower(c.UUID)
		}
	}()
	for _, v := range r.Header.Values("Authorization") {
		if creds, ok := ticketAuth(v); ok {
			c.UUID, c.Password, _ = strings.Cut(creds, ":")
			c.From = FromHeader
			return c, true, nil
		}
	}
	if c, found, err = lookup(r.URL.RawQuery, n); found {
		c.From = FromQuery
		if err != nil {
			err = fmt.Errorf("query: %w", err)
		}
		return c, found, err
	}
	if r.Method != http.MethodPost || !isForm(r.Header) || !hasBody(r) {
		return Credentials{}, false, nil
	}
	if maxForm <= 0 {
		maxForm = DefaultMaxForm
	}
	body, err := readBody(r, maxForm)
	if err != nil {
		return Credentials{}, false, err
	}
	if c, found, err = lookup(string(body), n); found {
		c.From = FromForm
		if err != nil {
			err = fmt.Errorf("form: %w", err)
		}
	}
	return c, found, err
}

// Strip removes a ticket's credentials from everywhere in r before it is
// proxied: every Authorization value with the Ticket scheme (others are
// kept), the credential parameters from the query (r.URL.RawQuery and
// r.RequestURI, the other parameters kept in their order and spelling) and
// from the Referer, and from a urlencoded body of any method (re-encoded
// the same way, with Content-Length and r.ContentLength fixed), and from
// r.Form, r.PostForm and r.MultipartForm if they were parsed. Parameters
// are matched after %-decoding, and pieces joined by ';' are taken apart
// too, for upstreams that still split on it. A body that FromRequest did
// not read is read up to DefaultMaxForm; a larger one, or one that cannot be
// read, is an error (the body is then given back unchanged, and the request
// must not be proxied). Multipart bodies are left as they are.
func Strip(r *http.Request, n Names) error {
	n = n.orDefaults()
	for k, vs := range r.Header {
		if !strings.EqualFold(k, "Authorization") && !strings.EqualFold(k, "Referer") {
			continue
		}
		kept := make([]string, 0, len(vs))
		for _, v := range vs {
			if strings.EqualFold(k, "Authorization") {
				if _, ok := ticketAuth(v); ok {
					continue
				}
			} else {
				v = stripURL(v, n)
			}
			kept = append(kept, v)
		}
		if len(kept) == 0 {
			delete(r.Header, k)
		} else {
			r.Header[k] = kept
		}
	}

	if q, removed := without(r.URL.RawQuery, n); removed {
		r.URL.RawQuery = q
		if q == "" {
			r.URL.ForceQuery = false
		}
	}
	if r.RequestURI != "" {
		r.RequestURI = stripURL(r.RequestURI, n)
	}
	for _, v := range []url.Values{r.Form, r.PostForm} {
		delete(v, n.UUID)
		delete(v, n.Password)
	}
	if r.MultipartForm != nil {
		delete(r.MultipartForm.Value, n.UUID)
		delete(r.MultipartForm.Value, n.Password)
	}

	if !isForm(r.Header) || !hasBody(r) {
		return nil
	}
	var body []byte
	if fb, ok := r.Body.(*formBody); ok {
		body, _ = io.ReadAll(fb) // in memory: cannot fail
	} else {
		var err error
		if body, err = readBody(r, DefaultMaxForm); err != nil {
			return err
		}
	}
	rest, removed := without(string(body), n)
	if !removed {
		setBody(r, body)
		return nil
	}
	setBody(r, []byte(rest))
	r.ContentLength = int64(len(rest))
	r.TransferEncoding = nil
	for k := range r.Header {
		if strings.EqualFold(k, "Content-Length") || strings.EqualFold(k, "Transfer-Encoding") {
			delete(r.Header, k)
		}
	}
	r.Header.Set("Content-Length", strconv.Itoa(len(rest)))
	return nil
}

// ticketAuth returns the credentials of an Authorization value with the
// Ticket scheme.
func ticketAuth(v string) (string, bool) {
	v = strings.TrimLeft(v, " \t")
	if len(v) < len(AuthScheme) || !strings.EqualFold(v[:len(AuthScheme)], AuthScheme) {
		return "", false
	}
	rest := v[len(AuthScheme):]
	if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
		return "", false // another scheme, e.g. "Tickets"
	}
	return strings.Trim(rest, " \t"), true
}

// stripURL removes the credential parameters from the query of a URL or
// request target, leaving the rest as it is. Everything after the first
// '?' counts as the query, a '#' included: a request target has no
// fragment, and neither should a Referer.
func stripURL(u string, n Names) string {
	base, query, ok := strings.Cut(u, "?")
	if !ok {
		return u
	}
	q, removed := without(query, n)
	if !removed {
		return u
	}
	if q != "" {
		base += "?" + q
	}
	return base
}

// lookup finds the first value of each credential parameter in an
// urlencoded string, parsing it as url.ParseQuery does.
func lookup(s string, n Names) (c Credentials, found bool, err error) {
	if s == "" || !mayHold(s, n) {
		return c, false, nil
	}
	var hasUUID, hasPassword bool
	for piece := range strings.SplitSeq(s, "&") {
		if piece == "" || strings.Contains(piece, ";") {
			continue
		}
		key, value, _ := strings.Cut(piece, "=")
		key, kerr := url.QueryUnescape(key)
		if kerr != nil {
			continue
		}
		var dst *string
		switch {
		case key == n.UUID && !hasUUID:
			hasUUID, dst = true, &c.UUID
		case key == n.Password && !hasPassword:
			hasPassword, dst = true, &c.Password
		default:
			continue
		}
		v, verr := url.QueryUnescape(value)
		if verr != nil && err == nil {
			err = fmt.Errorf("parameter %q: bad %%-escape", key)
		}
		*dst = v
	}
	found = hasUUID || hasPassword
	if err != nil {
		c.UUID, c.Password = "", ""
	}
	return c, found, err
}

// without returns s with every credential parameter removed, the others
// kept in their order and spelling, and whether it removed any.
func without(s string, n Names) (string, bool) {
	if s == "" || !mayHold(s, n) {
		return s, false
	}
	var b strings.Builder
	removed, first := false, true
	for piece := range strings.SplitSeq(s, "&") {
		if strings.Contains(piece, ";") {
			var kept []string
			for sub := range strings.SplitSeq(piece, ";") {
				if isCredential(sub, n) {
					removed = true
				} else {
					kept = append(kept, sub)
				}
			}
			if len(kept) == 0 {
				continue
			}
			piece = strings.Join(kept, ";")
		} else if isCredential(piece, n) {
			removed = true
			continue
		}
		if !first {
			b.WriteByte('&')
		}
		first = false
		b.WriteString(piece)
	}
	if !removed {
		return s, false
	}
	return b.String(), true
}

// mayHold is false when no parameter of s can be named n.UUID or
// n.Password, even %-encoded.
func mayHold(s string, n Names) bool {
	return strings.ContainsAny(s, "%+") || strings.Contains(s, n.UUID) || strings.Contains(s, n.Password)
}

func isCredential(piece string, n Names) bool {
	key, _, _ := strings.Cut(piece, "=")
	if k, err := url.QueryUnescape(key); err == nil {
		key = k
	}
	return key == n.UUID || key == n.Password
}

func isForm(h http.Header) bool {
	for _, ct := range h.Values("Content-Type") {
		mt, _, _ := strings.Cut(ct, ";")
		if strings.EqualFold(strings.TrimSpace(mt), "application/x-www-form-urlencoded") {
			return true
		}
	}
	return false
}

func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody
}

// formBody is a body read into memory and given back.
type formBody struct{ *bytes.Reader }

func (formBody) Close() error { return nil }

// setBody gives r a body read into memory (ContentLength is the caller's).
func setBody(r *http.Request, b []byte) {
	if len(b) == 0 {
		r.Body = http.NoBody
		r.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
		return
	}
	r.Body = &formBody{bytes.NewReader(b)}
	r.GetBody = func() (io.ReadCloser, error) { return &formBody{bytes.NewReader(b)}, nil }
}

// readBody reads r's body, at most max bytes, and gives it back. A larger
// body, or a failed read, is an error, and what was read is put back in
// front of the rest.
func readBody(r *http.Request, max int64) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err == nil && int64(len(body)) <= max {
		setBody(r, body)
		return body, nil
	}
	orig := r.Body
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), orig), orig}
	if err != nil {
		return nil, fmt.Errorf("reading form body: %w", err)
	}
	return nil, fmt.Errorf("form body is over %d bytes", max)
}
