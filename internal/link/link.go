// Package link signs and checks latchkey's signed links: JWTs bound to one
// user and one URL, carried in a query parameter (?token=<JWT>). A link in
// request mode lets one request through as its user (one-click unsubscribe);
// a link in login mode starts a session (magic-link login).
//
// Tokens are signed by the first key of a KeyRing and verified by any of its
// keys, each pinned to its own algorithm: the header's kid picks the key and
// only that key's alg is accepted, so "alg: none", algorithm confusion
// (HS256 signed with an Ed25519 public key as the secret), unknown kids and
// kids rotated out of the ring are all refused as bad signatures.
//
// The token format is a public contract (docs/links.md): apps in any
// language mint links with a key of the ring. A token one of the ring's keys
// signed whose claims are not a link's is refused as malformed, so that an
// app's developer can tell a bug in their claims from a wrong key.
package link

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/latchkeyhq/latchkey/internal/pathsafe"
)

// Modes of a link.
const (
	// ModeRequest lets the one request that carries the link through, as the
	// link's user (one-click unsubscribe).
	ModeRequest = "request"
	// ModeLogin starts a session for the link's user.
	ModeLogin = "login"
)

// Refusal reasons, as audited.
const (
	// ReasonBadSignature: no key of the ring signed the token, or it cannot
	// tell: not three base64url parts, oversized, a header without a kid of
	// the ring or with an alg other than that kid's, a critical header,
	// tampered, or signed with another key.
	ReasonBadSignature = "bad_signature"
	// ReasonMalformed: a key of the ring signed the token, but its claims
	// are not a link's (a required claim missing, a claim of the wrong
	// type or out of range, a bad typ header): the signer has a bug.
	ReasonMalformed   = "malformed"
	ReasonExpired     = "expired"
	ReasonNotYetValid = "not_yet_valid"
	ReasonWrongTarget = "wrong_target"
)

// DigestPrefix starts the id of a link whose token has no jti: the link is
// counted, audited and revoked under DigestID(token). No jti may start
// with it, so a digest never names another link.
const DigestPrefix = "sha256:"

// DigestID is the id a link without a jti is known by: DigestPrefix and
// the SHA-256 of its token, base64url without padding. A token has one
// spelling only (strict base64url, canonical signatures), so one link has
// one digest.
func DigestID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return DigestPrefix + base64.RawURLEncoding.EncodeToString(sum[:])
}

// Defaults of the optional claims of a token an app mints.
const (
	DefaultMode    = ModeRequest
	DefaultMaxUses = 1 // as `links create`: a link works once unless it says otherwise
)

// MaxTokenSize is the longest token Verify parses (and Sign produces), in
// bytes.
const MaxTokenSize = 8 << 10

// Claims are a signed link's JWT claims (docs/links.md).
type Claims struct {
	// Subject is the user: an id (positive decimal) or an e-mail address,
	// which the gateway looks up on the link's site. ExpiresAt is required;
	// NotBefore and IssuedAt are optional. ID (jti) is optional in a token
	// an app signs; Verify fills it in with DigestID when it is missing,
	// and Sign requires it.
	jwt.RegisteredClaims
	// Target is the scheme-less host and path the link is for, as TargetOf
	// makes it: "app.example.com/unsubscribe" (host lower-cased, ports 80
	// and 443 dropped, path decoded as in url.URL.Path).
	Target string `json:"tgt"`
	// Query, when set, is the request's exact query, without the token
	// parameter and in CanonicalQuery form, that the link is bound to.
	Query string `json:"q,omitempty"`
	// Methods the link may be used with; empty means GET and HEAD. POST is
	// also allowed for the RFC 8058 one-click POST (see Bind).
	Methods []string `json:"mth,omitempty"`
	// MaxUses is how many times the link may be used; 0 = unlimited within
	// its expiry. Counting is the store's job. A token without it works
	// DefaultMaxUses times.
	MaxUses int `json:"max"`
	// Mode is ModeRequest or ModeLogin; a token without it is DefaultMode.
	Mode string `json:"mode"`
	// Data is forwarded upstream. Verify decodes numbers as json.Number, so
	// large integer ids keep their precision.
	Data map[string]any `json:"data,omitempty"`
}

// UserID is the link's user when the subject is an id: a positive decimal
// int64 in canonical form (no sign, no leading zeros).
func (c *Claims) UserID() (int64, error) {
	return userID(c.Subject)
}

func userID(sub string) (int64, error) {
	id, err := strconv.ParseInt(sub, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != sub {
		return 0, errors.New("link: subject is not a user id")
	}
	return id, nil
}

// Email is the link's user when the subject is an e-mail address,
// lower-cased as the store keeps addresses; "" when it is not one.
func (c *Claims) Email() string {
	if !isEmail(c.Subject) {
		return ""
	}
	return strings.ToLower(c.Subject)
}

// isEmail reports whether sub is exactly one bare address ("a@b.c", no
// name, no angle brackets, no surrounding space).
func isEmail(sub string) bool {
	if sub == "" || len(sub) > 254 || !strings.Contains(sub, "@") {
		return false
	}
	a, err := netmail.ParseAddress(sub)
	return err == nil && a.Name == "" && a.Address == sub
}

// check reports what makes c unfit to be signed or accepted: what a token
// must say, whoever signed it.
func (c *Claims) check() error {
	switch {
	case c.ExpiresAt == nil:
		return errors.New("exp is required")
	case c.Mode != ModeRequest && c.Mode != ModeLogin:
		return fmt.Errorf("mode must be %q or %q", ModeRequest, ModeLogin)
	case c.MaxUses < 0:
		return errors.New("max uses must not be negative (0 means unlimited)")
	case strings.HasPrefix(c.ID, DigestPrefix):
		return fmt.Errorf("jti must not start with %q (kept for links without a jti)", DigestPrefix)
	}
	if _, err := c.UserID(); err != nil && !isEmail(c.Subject) {
		return errors.New("sub is neither a user id (positive decimal) nor an e-mail address")
	}
	if err := checkTarget(c.Target); err != nil {
		return err
	}
	for _, m := range c.Methods {
		if !isMethod(m) {
			return errors.New("methods must be upper-case HTTP methods")
		}
	}
	return nil
}

func checkTarget(t string) error {
	i := strings.IndexByte(t, '/')
	switch {
	case t == "":
		return errors.New("target (tgt) is required")
	case strings.Contains(t, "://"):
		return errors.New("target (tgt) must not have a scheme (use TargetOf)")
	case i <= 0:
		return errors.New("target (tgt) must be host and path, as TargetOf makes it")
	case normalizeHost(t[:i]) != t[:i]:
		return errors.New("target (tgt) host must be lower-case without a trailing dot or a default port (use TargetOf)")
	}
	return nil
}

func isMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// NewJTI returns a new link id: 128 random bits, base64url without padding.
//
// A JTI never starts with '-': people pass it to `caddy latchkey links show`
// and `revoke`, whose flag parser would read it as flags. Drawing again
// when it would costs under 0.03 of the 128 bits.
func NewJTI() string {
	for {
		var b [16]byte
		rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
		if jti := base64.RawURLEncoding.EncodeToString(b[:]); jti[0] != '-' {
			return jti
		}
	}
}

// TargetOf is the Target of a link to u: its host, lower-cased, without a
// trailing dot and without port 80 or 443, then its (decoded) path, "/" when
// empty. A link to a path pathsafe.Clean would refuse once escaped (dot
// segments, ';', a literal '%', "//", …) never binds to any request.
func TargetOf(u *url.URL) string {
	p := u.Path
	if p == "" {
		p = "/"
	}
	return normalizeHost(u.Host) + p
}

// normalizeHost lower-cases a host[:port], drops a trailing dot and the
// ports 80 and 443 (whatever the scheme: Bind does not know it).
func normalizeHost(hostport string) string {
	u := url.URL{Host: hostport}
	host, port := strings.ToLower(u.Hostname()), u.Port() // "host:" has port ""
	host = strings.TrimSuffix(host, ".")
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port == "" || port == "80" || port == "443" {
		return host
	}
	return host + ":" + port
}

// TokenFromQuery takes the link parameter out of a raw query. It removes
// every parameter whose name, decoded, is param, and keeps the others in
// their order and encoding exactly; token is the first one's value
// (decoded), found whether there was one. Parameters are separated by '&'
// only, as in net/url.
func TokenFromQuery(rawQuery, param string) (token, rest string, found bool) {
	if rawQuery == "" {
		return "", "", false
	}
	// Fast path: the name cannot be there, even encoded.
	if param != "" && !strings.Contains(rawQuery, param) && !strings.ContainsAny(rawQuery, "%+") {
		return "", rawQuery, false
	}
	var b strings.Builder
	first := true
	for piece := range strings.SplitSeq(rawQuery, "&") {
		key, value, _ := strings.Cut(piece, "=")
		if k, err := url.QueryUnescape(key); err == nil {
			key = k
		}
		if key == param {
			if !found {
				found = true
				token = value
				if v, err := url.QueryUnescape(value); err == nil {
					token = v
				}
			}
			continue
		}
		if !first {
			b.WriteByte('&')
		}
		first = false
		b.WriteString(piece)
	}
	if !found {
		return "", rawQuery, false
	}
	return token, b.String(), true
}

// CanonicalQuery is the form of a query a link's Query claim is compared
// in: parsed with url.ParseQuery and re-encoded (keys sorted, values in their
// order). A query that does not parse is kept as it is, so it only matches
// itself.
func CanonicalQuery(rawQuery string) string {
	v, err := url.ParseQuery(rawQuery)
	if err != nil {
		return rawQuery
	}
	return v.Encode()
}

// Bind reports whether a verified link may be used for this request.
//
//   - host is the request's Host: compared case-insensitively, without a
//     trailing dot, ports 80 and 443 counting as no port; a target with
//     another port needs exactly that port, and a target without a port
//     needs the request to have none (or 80, 443).
//   - path is the request's raw, escaped path as sent on the wire
//     (r.URL.EscapedPath(), not r.URL.Path). A path pathsafe.Clean refuses
//     never matches: dot segments in any encoding, path parameters (";",
//     so /unsubscribe/..;/admin, which Tomcat and Spring read as /admin),
//     encoded '/' or '\', a backslash, "//", control characters, "%25",
//     and so on. Otherwise its decoded form must equal the target's path,
//     or, when the target's path is under one of pathPrefixes (the
//     route's), be under that same prefix. A prefix ending in "/" matches
//     by string prefix; one without matches itself and what is below it. A
//     target whose path Clean would refuse (had it been requested) never
//     matches by prefix.
//   - queryWithoutToken is the request's raw query with the token removed
//     (TokenFromQuery's rest): when the link has a Query it must equal it, in
//     CanonicalQuery form.
//   - method must be one of the link's Methods (GET and HEAD when it has
//     none); POST is also allowed when oneClickPost, i.e. the body is the
//     RFC 8058 "List-Unsubscribe=One-Click" (or the gateway's own
//     confirmation form).
func Bind(c *Claims, host, path, queryWithoutToken, method string, oneClickPost bool, pathPrefixes []string) bool {
	if c == nil {
		return false
	}
	i := strings.IndexByte(c.Target, '/')
	if i <= 0 {
		return false
	}
	if normalizeHost(host) != normalizeHost(c.Target[:i]) {
		return false
	}
	clean, ok := pathsafe.Clean(path)
	if !ok {
		return false
	}
	if tp := c.Target[i:]; clean != tp && !underPrefix(tp, clean, pathPrefixes) {
		return false
	}
	if c.Query != "" && CanonicalQuery(queryWithoutToken) != CanonicalQuery(c.Query) {
		return false
	}
	return methodAllowed(c.Methods, method, oneClickPost)
}

func methodAllowed(methods []string, method string, oneClickPost bool) bool {
	if method == "POST" && oneClickPost {
		return true
	}
	if len(methods) == 0 {
		return method == "GET" || method == "HEAD"
	}
	for _, m := range methods {
		if m == method {
			return true
		}
	}
	return false
}

// underPrefix reports whether the request's path (as pathsafe.Clean
// returns it) and the target's path are both under one of prefixes.
func underPrefix(targetPath, path string, prefixes []string) bool {
	if len(prefixes) == 0 || !plainPath(path) || !plainPath(targetPath) {
		return false
	}
	for _, p := range prefixes {
		if p != "" && p[0] == '/' && within(targetPath, p) && within(path, p) {
			return true
		}
	}
	return false
}

// within reports whether the decoded path is prefix or under it.
func within(path, prefix string) bool {
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(path, prefix)
	}
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// plainPath reports whether a decoded path cannot mean a different place to
// the upstream than its string prefix suggests: it is its own
// pathsafe.Clean form once escaped (no "." or ".." segment, no "//", no
// ';', '\', '%' or control character, …).
func plainPath(path string) bool {
	if path == "" || path[0] != '/' {
		return false
	}
	clean, ok := pathsafe.Clean((&url.URL{Path: path}).EscapedPath())
	return ok && clean == path
}
