package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// NewTicketFields checks a ticket about to be created, for every engine
// alike, and returns the Data and State to store: "{}" and TicketValid
// when empty. UUID, PasswordHash and PasswordKind are required, Data must be
// one JSON object and State one of the Ticket* states.
func NewTicketFields(t *Ticket) (data []byte, state string, err error) {
	data, state = t.Data, t.State
	if len(data) == 0 {
		data = []byte("{}")
	}
	if state == "" {
		state = TicketValid
	}
	switch {
	case t.UUID == "":
		return nil, "", errors.New("empty uuid")
	case len(t.PasswordHash) == 0:
		return nil, "", errors.New("no password hash")
	case t.PasswordKind == "":
		return nil, "", errors.New("no password kind")
	case !isJSONObject(data):
		return nil, "", errors.New("data is not a JSON object")
	case !knownTicketState(state):
		return nil, "", fmt.Errorf("unknown state %q", state)
	}
	return data, state, nil
}

func knownTicketState(state string) bool {
	switch state {
	case TicketValid, TicketInUse, TicketUsed, TicketRevoked, TicketExpired:
		return true
	}
	return false
}

func isJSONObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{' && json.Valid(b)
}
