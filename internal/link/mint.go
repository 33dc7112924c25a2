package link

import (
	"errors"
	"maps"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultParam is the query parameter that carries a link's token unless a
// route names another.
const DefaultParam = "token"

// MintOptions describe one link to mint. Callers check what their own users
// gave them first, with their own messages; Mint refuses again whatever
// would make a token the gateway cannot accept.
type MintOptions struct {
	// UserID is the user the link is for (positive).
	UserID int64
	// URL is the absolute http(s) URL the link opens; Mint does not change
	// it. A token already in its query (under Param) is replaced.
	URL *url.URL
	// Now is when the link is issued; it expires TTL later (JWT times are
	// whole seconds).
	Now time.Time
	TTL time.Duration
	// NotBefore, when set, is when the link starts working.
	NotBefore time.Time
	// MaxUses is how many times the link works; 0 is unlimited.
	MaxUses int
	// Mode is ModeRequest ("" too) or ModeLogin.
	Mode string
	// Methods are upper-case HTTP methods; none means GET and HEAD.
	Methods []string
	// Data is handed upstream; Mint keeps a copy.
	Data map[string]any
	// BindQuery binds the link to the URL's query (without the token).
	BindQuery bool
	// Param carries the token; "" is DefaultParam.
	Param string
}

// Minted is a minted link.
type Minted struct {
	// URL is MintOptions.URL with Param=<token> added after its other
	// parameters (a fragment stays after it).
	URL    string
	Token  string
	Claims *Claims
}

// MailHeaders are the headers a mail carrying a request-mode link puts it
// in, so that mail clients show an unsubscribe button that uses it with
// one click (RFC 2369's List-Unsubscribe, RFC 8058's one-click POST, which
// the gateway accepts for such links); nil for a login link, which
// unsubscribes nobody.
func (m Minted) MailHeaders() map[string]string {
	if m.Claims == nil || m.Claims.Mode != ModeRequest {
		return nil
	}
	return map[string]string{
		"List-Unsubscribe":      "<" + m.URL + ">",
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
	}
}

// ValidParam reports whether p can name the token's query parameter: a
// name that needs no escaping to be found again in a query.
func ValidParam(p string) bool {
	return p != "" && !strings.ContainsAny(p, "&=#?; \t\r\n")
}

// Mint builds a link's claims, signs them with the ring's first key and
// puts the token in the URL. It is the one minter: the public mint package
// and the gateway's own operations (CLI, admin API, sign-in mails) both
// make their links here. Nothing is recorded: the caller stores the link
// if it keeps a row for it.
func Mint(ring *KeyRing, o MintOptions) (Minted, error) {
	param := o.Param
	if param == "" {
		param = DefaultParam
	}
	mode := o.Mode
	if mode == "" {
		mode = ModeRequest
	}
	switch {
	case ring == nil:
		return Minted{}, errors.New("link: no key ring to sign with")
	case o.URL == nil || (o.URL.Scheme != "http" && o.URL.Scheme != "https") || o.URL.Host == "":
		return Minted{}, errors.New("link: the URL must be an absolute http or https URL")
	case o.TTL <= 0:
		return Minted{}, errors.New("link: the TTL must be positive")
	case !ValidParam(param):
		return Minted{}, errors.New("link: parameter name " + strconv.Quote(param) + " is not usable in a query")
	}

	// A token already in the URL would be read instead of the new one.
	_, rest, _ := TokenFromQuery(o.URL.RawQuery, param)
	c := &Claims{
		Target:  TargetOf(o.URL),
		Methods: o.Methods,
		MaxUses: o.MaxUses,
		Mode:    mode,
		Data:    maps.Clone(o.Data),
	}
	if o.BindQuery {
		c.Query = CanonicalQuery(rest)
	}
	c.Subject = strconv.FormatInt(o.UserID, 10)
	c.ID = NewJTI()
	c.IssuedAt = jwt.NewNumericDate(o.Now)
	c.ExpiresAt = jwt.NewNumericDate(o.Now.Add(o.TTL))
	if !o.NotBefore.IsZero() {
		c.NotBefore = jwt.NewNumericDate(o.NotBefore)
	}
	token, err := ring.Sign(c) // checks the claims
	if err != nil {
		return Minted{}, err
	}

	// Through RawQuery, so that a fragment stays after the token.
	out := *o.URL
	q := url.QueryEscape(param) + "=" + token
	if rest != "" {
		q = rest + "&" + q
	}
	out.RawQuery, out.ForceQuery = q, false
	return Minted{URL: out.String(), Token: token, Claims: c}, nil
}
