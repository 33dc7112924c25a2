package ops

import "fmt"

// Revoked is the answer of every revocation, in the CLI's --json and the
// admin API alike, so that a script reads one shape whatever it ended.
type Revoked struct {
	// What was ended: session, sessions, invite, link, links, ticket, role.
	What string `json:"what"`
	// ID is the one ended, or the user whose every one was ended.
	ID string `json:"id"`
	// Count is how many were ended; -1 when the store does not say.
	Count int `json:"count"`
	// Message says it in words, as the CLI prints it.
	Message string `json:"message"`
}

func revoked(what, id string, count int, format string, args ...any) Revoked {
	return Revoked{What: what, ID: id, Count: count, Message: fmt.Sprintf(format, args...)}
}
