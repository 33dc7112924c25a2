package ops

import "github.com/latchkeyhq/latchkey/internal/headerjson"

// MaxHeaderData is the most bytes a ticket's or a link's data may take in
// the header the upstream receives (X-Ticket-Data, X-Latchkey-Link-Data),
// after the gateway has escaped it to ASCII. Upstream servers refuse longer
// headers with a 400 the user cannot get past: gunicorn and Apache at 8,190
// bytes a line, uWSGI at 4,096 bytes for every header together. 4 KiB
// leaves room for the others.
const MaxHeaderData = 4096

// checkHeaderData refuses data whose header would be longer than
// MaxHeaderData, saying how long it would be.
func checkHeaderData(what string, data map[string]any) error {
	if data == nil {
		return nil
	}
	v, err := headerjson.Marshal(data)
	if err != nil {
		return inputErr("%s: %v", what, err)
	}
	if n := len(v); n > MaxHeaderData {
		return inputErr("%s: %d bytes once escaped for the upstream's header, more than the %d upstream servers are sure to take; keep an id there and look the rest up in the application", what, n, MaxHeaderData)
	}
	return nil
}
