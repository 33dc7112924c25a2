package mail

import (
	netmail "net/mail"
	"strings"
)

// NormalizeAddress accepts exactly one bare e-mail address ("a@b.c", not
// "Name <a@b.c>" or a list), with surrounding space forgiven, and returns it
// lower-cased: the form users, invites and sign-in requests are kept under.
func NormalizeAddress(s string) (string, bool) {
	addr, err := netmail.ParseAddress(strings.TrimSpace(s))
	if err != nil || addr.Name != "" {
		return "", false
	}
	return strings.ToLower(addr.Address), true
}
