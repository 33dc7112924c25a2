package gate

import (
	"net/http"
	"strings"

	"github.com/latchkeyhq/latchkey/internal/site"
)

// Wording is what a refusal page says to a person: a title that names what
// happened in everyday words, one sentence on why or what it means, and
// whom to ask when there is no way in from here. The reason code stays in
// the audit and the JSON answer; the page only shows it as a reference.
type Wording struct {
	Title, Message string
	// Ask is what to ask for when the page offers no way in: "a new link".
	Ask string
}

// noun is how a credential kind is called on a page.
var noun = map[string]string{
	KindLink:    "link",
	KindTicket:  "ticket",
	KindInvite:  "invite code",
	KindSession: "session",
}

// wording is the plain words for a refusal of kind with reason and status.
func wording(kind, reason string, status int) Wording {
	n := noun[kind]
	a := "a new " + n
	switch {
	case n != "" && kind != KindSession:
		switch reason {
		case "used_up", "used":
			return Wording{"This " + n + " has already been used", "It worked the number of times it was made for, and cannot be used again.", a}
		case "expired", "window_expired":
			return Wording{"This " + n + " has expired", "It was valid for a limited time, which has passed.", a}
		case "not_yet_valid":
			return Wording{"This " + n + " is not valid yet", "It starts working later. Try again then.", ""}
		case "revoked":
			return Wording{"This " + n + " has been withdrawn", "It was cancelled and no longer works.", a}
		case "bad_signature", "malformed", "unknown":
			return Wording{"This " + n + " is not valid", "It may have been cut short or changed when it was copied. Open it again from the original message, or copy all of it.", a}
		case "wrong_target":
			return Wording{"This " + n + " is for another page", "It only opens the page it was made for.", ""}
		case "wrong_site":
			return Wording{"This " + n + " is for another site", "It only works on the site it was made for.", ""}
		case "wrong_place":
			return Wording{"This ticket is not for this place", "It was made for another place or purpose.", ""}
		case "bad_password", "wrong_password":
			return Wording{"The ticket's password is not right", "Check that the whole link was copied.", ""}
		case "in_use":
			return Wording{"This ticket is being used right now", "Another request is using it. Wait a moment and try again.", ""}
		case "unknown_user", "inactive_user":
			return Wording{"This " + n + "'s account is not available", "The account it was made for does not exist or has been disabled.", "access"}
		}
	}
	switch reason {
	case "expired", "idle":
		return Wording{"Your session has ended", "Sessions end after a while, or when unused for a while. Please sign in again.", ""}
	case "possible_theft", "session_moved", "new_client":
		return Wording{"Please sign in again", "Your session was ended for your safety: it was used from another browser or network.", ""}
	case "revoked":
		return Wording{"You have been signed out", "Your session was ended, here or from another device. Please sign in again.", ""}
	case "missing_role", "not_staff":
		return Wording{"You do not have access to this page", "Your account does not have the access this page needs.", "access"}
	case "inactive_user":
		return Wording{"Your account is disabled", "It cannot be used to sign in at the moment.", "access"}
	case "throttled":
		return Wording{"Too many attempts", "Please wait a minute, then try again.", ""}
	case "cross_origin":
		return Wording{"This form came from another site", "For your safety it was not accepted. Go back to the page and send it again from there.", ""}
	case "store_error":
		return Wording{"Signing in is unavailable right now", "Please try again in a moment.", ""}
	case "bad_request":
		return Wording{"This request could not be read", "Go back and try again.", ""}
	}
	switch status {
	case http.StatusUnauthorized:
		return Wording{"Please sign in", "You need to sign in to see this page.", "access"}
	case http.StatusForbidden:
		return Wording{"You do not have access to this page", "What you used does not open this page.", "access"}
	case http.StatusGone:
		return Wording{"This no longer works", "What you used has been used up, has expired or was withdrawn.", "a new link"}
	case http.StatusTooManyRequests:
		return Wording{"Too many attempts", "Please wait a minute, then try again.", ""}
	case http.StatusConflict:
		return Wording{"This is being used right now", "Wait a moment and try again.", ""}
	case http.StatusServiceUnavailable:
		return Wording{"Signing in is unavailable right now", "Please try again in a moment.", ""}
	}
	return Wording{"This request was not accepted", "Go back and try again.", "access"}
}

// askWhom is the sentence that says whom to ask for what, or "".
func askWhom(ask, contact string) string {
	if ask == "" {
		return ""
	}
	if contact == "" {
		if ask == "access" {
			contact = "the person who runs this site"
		} else {
			contact = "whoever sent it to you"
		}
	}
	if ask == "access" {
		return "If you should have access, ask " + contact + "."
	}
	return "Ask " + contact + " for " + ask + "."
}

// siteTitle is the name pages show for the site: the configured one, else
// the site's host (from its origin or its name), else the request's host.
func (g *Gate) siteTitle(r *http.Request) string {
	if g.defaultTitle != "" || r == nil {
		return g.defaultTitle
	}
	return site.HostOf(r.Host)
}

// defaultSiteTitle is the site's host, when the config knows one.
func defaultSiteTitle(origin, name string, hosts []string) string {
	if _, host, ok := strings.Cut(origin, "://"); ok {
		return site.HostOf(host)
	}
	if len(hosts) > 0 {
		return hosts[0]
	}
	if name != "" && name != "default" {
		return name
	}
	return ""
}

// chrome is what every page of the route shows around its content.
func (g *Gate) chrome(r *http.Request) Chrome { return Chrome{SiteName: g.siteTitle(r)} }
