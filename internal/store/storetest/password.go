package storetest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// testPasswords: a user's password hash is stored as given, read back by
// every way of reading a user, replaced by SetPassword (each replacement a
// change of the user, so gateways drop their cached row), and "" when the
// user has none. The store does not parse hashes; internal/password does.
func testPasswords(t *testing.T, s store.Store) {
	ctx := t.Context()
	const legacy = "pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c="
	const ours = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
	read := func(what string, id int64, site, email, want string) {
		t.Helper()
		u, err := s.User(ctx, id)
		if err != nil {
			t.Fatalf("%s: User: %v", what, err)
		}
		if u.PasswordHash != want {
			t.Errorf("%s: User has hash %q, want %q", what, u.PasswordHash, want)
		}
		u, err = s.UserByEmail(ctx, site, email)
		if err != nil {
			t.Fatalf("%s: UserByEmail: %v", what, err)
		}
		if u.PasswordHash != want {
			t.Errorf("%s: UserByEmail has hash %q, want %q", what, u.PasswordHash, want)
		}
		us, err := s.Users(ctx)
		if err != nil {
			t.Fatalf("%s: Users: %v", what, err)
		}
		found := false
		for _, x := range us {
			if x.ID == id {
				found = true
				if x.PasswordHash != want {
					t.Errorf("%s: Users has hash %q, want %q", what, x.PasswordHash, want)
				}
			}
		}
		if !found {
			t.Errorf("%s: Users does not list user %d", what, id)
		}
	}

	with := &store.User{Site: "pw.example.org", Email: "Legacy@Example.org", Active: true, PasswordHash: legacy}
	if err := s.CreateUser(ctx, with); err != nil {
		t.Fatalf("CreateUser with a hash: %v", err)
	}
	read("created with a hash", with.ID, "pw.example.org", "legacy@example.org", legacy)
	without := mustCreateUser(t, s, "pw.example.org", "none@example.org")
	read("created without a hash", without.ID, "pw.example.org", "none@example.org", "")

	seq, err := s.LatestChange(ctx)
	if err != nil {
		t.Fatalf("LatestChange: %v", err)
	}
	steps := []struct {
		what    string
		hash    string
		changed bool
	}{
		{"replaced", ours, true},
		{"set to what it was", ours, false},
		{"cleared", "", true},
		{"cleared again", "", false},
		{"set again", legacy, true},
	}
	for _, st := range steps {
		if err := s.SetPassword(ctx, with.ID, st.hash); err != nil {
			t.Fatalf("%s: SetPassword: %v", st.what, err)
		}
		read(st.what, with.ID, "pw.example.org", "legacy@example.org", st.hash)
		got, err := s.ChangesSince(ctx, seq, 100)
		if err != nil {
			t.Fatalf("%s: ChangesSince: %v", st.what, err)
		}
		switch {
		case st.changed && (len(got) != 1 || got[0].Kind != store.ChangeUser || got[0].Subject != fmt.Sprint(with.ID)):
			t.Errorf("%s: changes %+v, want one of user %d", st.what, got, with.ID)
		case !st.changed && len(got) != 0:
			t.Errorf("%s: changes %+v, want none", st.what, got)
		}
		if len(got) > 0 {
			seq = got[len(got)-1].Seq
		}
	}
	read("the other user, after", without.ID, "pw.example.org", "none@example.org", "")

	if err := s.SetPassword(ctx, without.ID+with.ID+1000, ours); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetPassword of a missing user: %v, want ErrNotFound", err)
	}
}
