package ticket

import (
	"testing"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// A generated password made before a rotation still opens its ticket
// after it, one made after is hashed under the new secret only, and the
// work of a check is one HMAC per secret whether the ticket exists, was
// made under the old secret or the new one, or not at all.
func TestPreviousSecrets(t *testing.T) {
	newSecret := []byte("the-new-secret-0123456789abcdef-1")
	old, err := NewHasher(testSecret, testParams)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := NewHasher(newSecret, testParams, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	retired, err := NewHasher(newSecret, testParams)
	if err != nil {
		t.Fatal(err)
	}
	ticketOf := func(h *Hasher) (*store.Ticket, string) {
		pw, err := GeneratePassword()
		if err != nil {
			t.Fatal(err)
		}
		hash, err := h.HashGenerated(pw)
		if err != nil {
			t.Fatal(err)
		}
		return &store.Ticket{PasswordHash: hash, PasswordKind: KindKeyed}, pw
	}
	oldT, oldPW := ticketOf(old)
	newT, newPW := ticketOf(rotated)

	for _, c := range []struct {
		name string
		h    *Hasher
		t    *store.Ticket
		pw   string
		want bool
	}{
		{"old ticket after the rotation", rotated, oldT, oldPW, true},
		{"new ticket", rotated, newT, newPW, true},
		{"new ticket under the old secret alone", old, newT, newPW, false},
		{"old ticket after retiring", retired, oldT, oldPW, false},
		{"new ticket after retiring", retired, newT, newPW, true},
		{"wrong password", rotated, oldT, newPW, false},
		{"unknown ticket", rotated, nil, oldPW, false},
	} {
		rotated.hmacCalls.Store(0)
		if got := c.h.Check(c.t, c.pw); got != c.want {
			t.Errorf("%s: Check = %v, want %v", c.name, got, c.want)
		}
		if c.h == rotated {
			if n := rotated.hmacCalls.Load(); n != 2 {
				t.Errorf("%s: %d HMACs, want one per secret (2) whatever the outcome", c.name, n)
			}
		}
	}
}
