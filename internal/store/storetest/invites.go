package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

func newInvite(site, email, code string, created time.Time) *store.Invite {
	return &store.Invite{
		Site:      site,
		Email:     email,
		Name:      "Name of " + email,
		Phone:     "+1 555 0100",
		CodeHash:  []byte("code-hash-of-" + code),
		CreatedAt: created,
		CreatedBy: "cli",
	}
}

func mustCreateInvite(t *testing.T, s store.Store, site, email, code string, created time.Time) *store.Invite {
	t.Helper()
	inv := newInvite(site, email, code, created)
	if err := s.CreateInvite(t.Context(), inv); err != nil {
		t.Fatalf("CreateInvite(%q, %q): %v", site, email, err)
	}
	return inv
}

func mustInvite(t *testing.T, s store.Store, id int64) *store.Invite {
	t.Helper()
	inv, err := s.Invite(t.Context(), id)
	if err != nil {
		t.Fatalf("Invite(%d): %v", id, err)
	}
	return inv
}

func mustUser(t *testing.T, s store.Store, id int64) *store.User {
	t.Helper()
	u, err := s.User(t.Context(), id)
	if err != nil {
		t.Fatalf("User(%d): %v", id, err)
	}
	return u
}

func diffInvite(got, want *store.Invite) []string {
	var d []string
	check := func(name string, ok bool, g, w any) {
		if !ok {
			d = append(d, fmt.Sprintf("%s = %v, want %v", name, g, w))
		}
	}
	check("ID", got.ID == want.ID, got.ID, want.ID)
	check("Site", got.Site == want.Site, got.Site, want.Site)
	check("Email", got.Email == want.Email, got.Email, want.Email)
	check("Name", got.Name == want.Name, got.Name, want.Name)
	check("Phone", got.Phone == want.Phone, got.Phone, want.Phone)
	check("CodeHash", bytes.Equal(got.CodeHash, want.CodeHash), got.CodeHash, want.CodeHash)
	check("CreatedAt", equalTime(got.CreatedAt, want.CreatedAt), got.CreatedAt, want.CreatedAt)
	check("CreatedBy", got.CreatedBy == want.CreatedBy, got.CreatedBy, want.CreatedBy)
	check("UserID", got.UserID == want.UserID, got.UserID, want.UserID)
	check("FirstUsedAt", equalTime(got.FirstUsedAt, want.FirstUsedAt), got.FirstUsedAt, want.FirstUsedAt)
	check("LastUsedAt", equalTime(got.LastUsedAt, want.LastUsedAt), got.LastUsedAt, want.LastUsedAt)
	check("UseCount", got.UseCount == want.UseCount, got.UseCount, want.UseCount)
	check("RevokedAt", equalTime(got.RevokedAt, want.RevokedAt), got.RevokedAt, want.RevokedAt)
	check("SentAt", equalTime(got.SentAt, want.SentAt), got.SentAt, want.SentAt)
	check("SendError", got.SendError == want.SendError, got.SendError, want.SendError)
	return d
}

func inviteIDs(invs []store.Invite) []int64 {
	var ids []int64
	for _, inv := range invs {
		ids = append(ids, inv.ID)
	}
	return ids
}

func testInvites(t *testing.T, s store.Store) {
	ctx := t.Context()
	inv := newInvite("wiki.example.org", "  Ann.Smith@Example.ORG ", "a", at(0))
	if err := s.CreateInvite(ctx, inv); err != nil {
		t.Fatalf("CreateInvite: %v", err)
	}
	if inv.ID == 0 {
		t.Fatal("CreateInvite did not set ID")
	}
	if !inv.CreatedAt.Equal(at(0)) {
		t.Errorf("CreateInvite changed a given CreatedAt to %v", inv.CreatedAt)
	}
	want := *newInvite("wiki.example.org", "ann.smith@example.org", "a", at(0))
	want.ID = inv.ID
	want.Name = inv.Name

	got := mustInvite(t, s, inv.ID)
	if d := diffInvite(got, &want); d != nil {
		t.Errorf("Invite(%d) differs: %v", inv.ID, d)
	}
	got, err := s.InviteByCodeHash(ctx, []byte("code-hash-of-a"))
	if err != nil {
		t.Fatalf("InviteByCodeHash: %v", err)
	}
	if d := diffInvite(got, &want); d != nil {
		t.Errorf("InviteByCodeHash differs: %v", d)
	}
	if _, err := s.Invite(ctx, inv.ID+1000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Invite of unknown id: err = %v, want ErrNotFound", err)
	}
	if _, err := s.InviteByCodeHash(ctx, []byte("no such hash")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("InviteByCodeHash of unknown hash: err = %v, want ErrNotFound", err)
	}

	// CreatedAt is filled in when zero.
	before := time.Now()
	v := newInvite("wiki.example.org", "bob@example.org", "b", time.Time{})
	if err := s.CreateInvite(ctx, v); err != nil {
		t.Fatalf("CreateInvite: %v", err)
	}
	if v.CreatedAt.IsZero() || v.CreatedAt.Before(before.Add(-time.Second)) || v.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("CreatedAt defaulted to %v, want about now", v.CreatedAt)
	}
	if v.ID == inv.ID {
		t.Errorf("two invites got ID %d", v.ID)
	}

	// Listing: newest first, by site, limited.
	c := mustCreateInvite(t, s, "blog.example.org", "carol@example.org", "c", at(time.Minute))
	d := mustCreateInvite(t, s, "wiki.example.org", "dave@example.org", "d", at(2*time.Minute))
	e := mustCreateInvite(t, s, "blog.example.org", "erin@example.org", "e", at(3*time.Minute))
	for _, tc := range []struct {
		f    store.InviteFilter
		want []int64
	}{
		{store.InviteFilter{}, []int64{v.ID, e.ID, d.ID, c.ID, inv.ID}},
		{store.InviteFilter{Site: "wiki.example.org"}, []int64{v.ID, d.ID, inv.ID}},
		{store.InviteFilter{Site: "blog.example.org"}, []int64{e.ID, c.ID}},
		{store.InviteFilter{Site: "example.org"}, nil},
		{store.InviteFilter{Site: "blog.example.org", Limit: 1}, []int64{e.ID}},
		{store.InviteFilter{Limit: 2}, []int64{v.ID, e.ID}},
	} {
		got, err := s.Invites(ctx, tc.f)
		if err != nil {
			t.Fatalf("Invites(%+v): %v", tc.f, err)
		}
		if ids := inviteIDs(got); !slices.Equal(ids, tc.want) {
			t.Errorf("Invites(%+v) = %v, want %v", tc.f, ids, tc.want)
		}
	}
	// Listed invites carry all their fields.
	all, err := s.Invites(ctx, store.InviteFilter{Site: "wiki.example.org"})
	if err != nil || len(all) != 3 {
		t.Fatalf("Invites: %v, %v", all, err)
	}
	if d := diffInvite(&all[2], &want); d != nil {
		t.Errorf("listed invite differs: %v", d)
	}

	if err := s.CreateInvite(ctx, newInvite("wiki.example.org", " ", "blank", at(0))); err == nil {
		t.Error("CreateInvite with a blank e-mail address succeeded")
	}
	if err := s.CreateInvite(ctx, &store.Invite{Site: "wiki.example.org", Email: "x@example.org", CreatedAt: at(0)}); err == nil {
		t.Error("CreateInvite without a code hash succeeded")
	}
}

func testInviteConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := mustCreateInvite(t, s, "wiki.example.org", "a@example.org", "same", at(0))
	// The code hash is unique across sites and addresses.
	dup := newInvite("blog.example.org", "b@example.org", "same", at(time.Minute))
	if err := s.CreateInvite(ctx, dup); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CreateInvite with a taken code hash: err = %v, want ErrConflict", err)
	}
	all, err := s.Invites(ctx, store.InviteFilter{})
	if err != nil {
		t.Fatalf("Invites: %v", err)
	}
	if ids := inviteIDs(all); !slices.Equal(ids, []int64{first.ID}) {
		t.Errorf("after a conflict, Invites = %v, want only %d", ids, first.ID)
	}
	// The same person may be invited twice with different codes.
	mustCreateInvite(t, s, "wiki.example.org", "a@example.org", "other", at(time.Minute))
}

func testRevokeInvite(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "wiki.example.org", "a@example.org")
	inv := mustCreateInvite(t, s, "wiki.example.org", "a@example.org", "a", at(0))
	other := mustCreateInvite(t, s, "wiki.example.org", "a@example.org", "b", at(0))
	id := strconv.FormatInt(inv.ID, 10)

	mk := func(sid, kind, cred string) {
		t.Helper()
		sess := newSession(u, sid, at(time.Minute))
		sess.Kind, sess.CredentialID = kind, cred
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatalf("CreateSession(%s): %v", sid, err)
		}
	}
	mk("mine1", "invite", id)
	mk("mine2", "invite", id)
	mk("early", "invite", id)
	mk("other", "invite", strconv.FormatInt(other.ID, 10))
	mk("test", "test", id) // same credential id, another kind
	if err := s.RevokeSession(ctx, "early", at(time.Hour)); err != nil {
		t.Fatalf("RevokeSession: %v", err)
	}

	if err := s.RevokeInvite(ctx, inv.ID, at(2*time.Hour)); err != nil {
		t.Fatalf("RevokeInvite: %v", err)
	}
	if got := mustInvite(t, s, inv.ID); !got.RevokedAt.Equal(at(2 * time.Hour)) {
		t.Errorf("RevokedAt = %v, want %v", got.RevokedAt, at(2*time.Hour))
	}
	if got := mustInvite(t, s, other.ID); !got.RevokedAt.IsZero() {
		t.Errorf("another invite was revoked at %v", got.RevokedAt)
	}
	revoked := func() map[string]time.Time {
		t.Helper()
		ss, err := s.Sessions(ctx, store.SessionFilter{UserID: u.ID})
		if err != nil {
			t.Fatalf("Sessions: %v", err)
		}
		m := map[string]time.Time{}
		for _, sess := range ss {
			m[sess.ID] = sess.RevokedAt
		}
		return m
	}
	wantRevoked := map[string]time.Time{
		"mine1": at(2 * time.Hour),
		"mine2": at(2 * time.Hour),
		"early": at(time.Hour), // keeps its own time
		"other": {},
		"test":  {},
	}
	check := func(when string) {
		t.Helper()
		got := revoked()
		for sid, want := range wantRevoked {
			if g, ok := got[sid]; !ok || !equalTime(g, want) {
				t.Errorf("%s: session %s RevokedAt = %v, want %v", when, sid, g, want)
			}
		}
	}
	check("after RevokeInvite")

	// Revoking again keeps the first time, for the invite and its sessions.
	if err := s.RevokeInvite(ctx, inv.ID, at(3*time.Hour)); err != nil {
		t.Fatalf("second RevokeInvite: %v", err)
	}
	if got := mustInvite(t, s, inv.ID); !got.RevokedAt.Equal(at(2 * time.Hour)) {
		t.Errorf("after a second revocation, RevokedAt = %v, want %v", got.RevokedAt, at(2*time.Hour))
	}
	check("after a second RevokeInvite")

	if err := s.RevokeInvite(ctx, other.ID+1000, at(0)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeInvite of unknown id: err = %v, want ErrNotFound", err)
	}
}

func testSetInviteSent(t *testing.T, s store.Store) {
	ctx := t.Context()
	inv := mustCreateInvite(t, s, "wiki.example.org", "a@example.org", "a", at(0))
	steps := []struct {
		at       time.Time
		sendErr  string
		wantSent time.Time
		wantErr  string
	}{
		{at(time.Minute), "smtp: 421 try later", time.Time{}, "smtp: 421 try later"},
		{at(2 * time.Minute), "", at(2 * time.Minute), ""},
		{at(3 * time.Minute), "smtp: 550 no such user", at(2 * time.Minute), "smtp: 550 no such user"},
		{at(4 * time.Minute), "", at(4 * time.Minute), ""},
	}
	for _, st := range steps {
		if err := s.SetInviteSent(ctx, inv.ID, st.at, st.sendErr); err != nil {
			t.Fatalf("SetInviteSent(%v, %q): %v", st.at, st.sendErr, err)
		}
		got := mustInvite(t, s, inv.ID)
		if !equalTime(got.SentAt, st.wantSent) || got.SendError != st.wantErr {
			t.Errorf("after SetInviteSent(%v, %q): SentAt %v, SendError %q; want %v, %q",
				st.at, st.sendErr, got.SentAt, got.SendError, st.wantSent, st.wantErr)
		}
	}
	for _, sendErr := range []string{"", "failed"} {
		if err := s.SetInviteSent(ctx, inv.ID+1000, at(0), sendErr); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SetInviteSent(%q) of unknown id: err = %v, want ErrNotFound", sendErr, err)
		}
	}
}

// counts is how many users, sessions and audit events a store holds, to
// tell that a refused redemption wrote nothing.
type counts struct{ users, sessions, audit int }

func countRows(t *testing.T, s store.Store) counts {
	t.Helper()
	ctx := t.Context()
	users, err := s.Users(ctx)
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	sessions, err := s.Sessions(ctx, store.SessionFilter{})
	if err != nil {
		t.Fatalf("Sessions: %v", err)
	}
	audit, err := s.Audit(ctx, store.AuditFilter{Limit: 1 << 20})
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	return counts{len(users), len(sessions), len(audit)}
}

// redemption is a use of inv at when, with a session and an audit record
// named after id.
func redemption(inv *store.Invite, first bool, when time.Time, id string) *store.Redemption {
	r := &store.Redemption{
		InviteID: inv.ID,
		At:       when,
		IP:       "192.0.2." + id,
		First:    first,
		Session: &store.Session{
			ID:           "sess-" + id,
			TokenHash:    []byte("hash-of-sess-" + id),
			CreatedAt:    when,
			ExpiresAt:    when.Add(24 * time.Hour),
			IP:           "192.0.2." + id,
			UserAgent:    "Firefox",
			Kind:         "invite",
			CredentialID: strconv.FormatInt(inv.ID, 10),
		},
		Audit: &store.AuditEvent{
			Time:         when,
			Kind:         "invite",
			CredentialID: strconv.FormatInt(inv.ID, 10),
			Outcome:      store.OutcomeAccepted,
			Reason:       "use " + id,
			Host:         inv.Site,
			Path:         "/invite/" + id,
		},
	}
	if first {
		r.NewUser = &store.User{Site: inv.Site, Email: inv.Email, Name: inv.Name, Phone: inv.Phone, Active: true, Roles: rolesOn(inv.Site, "viewer"), CreatedAt: when}
	}
	return r
}

// checkRedeemed checks that r's session and audit record were written for
// user uid and written back into r.
func checkRedeemed(t *testing.T, s store.Store, r *store.Redemption, uid int64) {
	t.Helper()
	ctx := t.Context()
	if r.Session.UserID != uid {
		t.Errorf("Session.UserID written back as %d, want %d", r.Session.UserID, uid)
	}
	if r.Audit.UserID != uid || r.Audit.SessionID != r.Session.ID {
		t.Errorf("Audit written back with UserID %d, SessionID %q; want %d, %q", r.Audit.UserID, r.Audit.SessionID, uid, r.Session.ID)
	}
	sess, err := s.SessionByTokenHash(ctx, r.Session.TokenHash)
	if err != nil {
		t.Fatalf("SessionByTokenHash: %v", err)
	}
	if d := diffSession(&sess.Session, r.Session); d != nil {
		t.Errorf("stored session differs: %v", d)
	}
	events, err := s.Audit(ctx, store.AuditFilter{UserID: uid, Limit: 1 << 20})
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	i := slices.IndexFunc(events, func(e store.AuditEvent) bool { return e.Reason == r.Audit.Reason })
	if i < 0 {
		t.Fatalf("no audit event %q for user %d in %+v", r.Audit.Reason, uid, events)
	}
	if e := events[i]; e.SessionID != r.Session.ID || !e.Time.Equal(r.Audit.Time) || e.Kind != "invite" || e.Path != r.Audit.Path {
		t.Errorf("stored audit event = %+v, want session %q at %v", e, r.Session.ID, r.Audit.Time)
	}
}

func testRedeemFirst(t *testing.T, s store.Store) {
	ctx := t.Context()
	inv := mustCreateInvite(t, s, "wiki.example.org", "Ann@Example.org", "a", at(0))
	// A user with the same address on another site is someone else.
	elsewhere := mustCreateUser(t, s, "blog.example.org", "ann@example.org")

	when := at(time.Minute)
	r := redemption(inv, true, when, "1")
	r.CreatedAfter = at(-time.Hour)
	r.NewUser.Name = "Ann From The Form"
	r.NewUser.Email = "ignored@example.org" // site and address come from the invite
	u, err := s.RedeemInvite(ctx, r)
	if err != nil {
		t.Fatalf("RedeemInvite: %v", err)
	}
	if u.ID == 0 || u.ID == elsewhere.ID {
		t.Fatalf("RedeemInvite returned user %d, want a new user", u.ID)
	}
	want := &store.User{
		ID:             u.ID,
		Site:           "wiki.example.org",
		Email:          "ann@example.org",
		Name:           "Ann From The Form",
		Phone:          inv.Phone,
		Active:         true,
		Roles:          rolesOn(inv.Site, "viewer"),
		CreatedAt:      when,
		CurrentLoginAt: when,
		CurrentLoginIP: "192.0.2.1",
		LoginCount:     1,
	}
	if d := diffUser(u, want); d != nil {
		t.Errorf("returned user differs: %v", d)
	}
	if d := diffUser(mustUser(t, s, u.ID), want); d != nil {
		t.Errorf("stored user differs: %v", d)
	}
	if c := countRows(t, s); c != (counts{2, 1, 1}) {
		t.Errorf("after first use: %+v, want 2 users, 1 session, 1 audit event", c)
	}

	wantInv := *inv
	wantInv.UserID, wantInv.FirstUsedAt, wantInv.LastUsedAt, wantInv.UseCount = u.ID, when, when, 1
	if d := diffInvite(mustInvite(t, s, inv.ID), &wantInv); d != nil {
		t.Errorf("invite after first use differs: %v", d)
	}
	checkRedeemed(t, s, r, u.ID)
}

func testRedeemLinksUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	existing := mustCreateUser(t, s, "wiki.example.org", "ann@example.org", "admin")
	if err := s.RecordLogin(ctx, existing.ID, at(-time.Hour), "198.51.100.1"); err != nil {
		t.Fatalf("RecordLogin: %v", err)
	}
	inv := mustCreateInvite(t, s, "wiki.example.org", " ANN@example.org", "a", at(0))
	before := countRows(t, s)

	r := redemption(inv, true, at(time.Minute), "1")
	u, err := s.RedeemInvite(ctx, r)
	if err != nil {
		t.Fatalf("RedeemInvite: %v", err)
	}
	if u.ID != existing.ID {
		t.Fatalf("RedeemInvite returned user %d, want the existing user %d", u.ID, existing.ID)
	}
	want := *existing
	want.LastLoginAt, want.LastLoginIP = at(-time.Hour), "198.51.100.1"
	want.CurrentLoginAt, want.CurrentLoginIP, want.LoginCount = at(time.Minute), "192.0.2.1", 2
	// The existing user keeps its roles and details; NewUser is not applied.
	if d := diffUser(u, &want); d != nil {
		t.Errorf("returned user differs: %v", d)
	}
	if d := diffUser(mustUser(t, s, u.ID), &want); d != nil {
		t.Errorf("stored user differs: %v", d)
	}
	if c := countRows(t, s); c != (counts{before.users, before.sessions + 1, before.audit + 1}) {
		t.Errorf("after linking: %+v, want %+v plus a session and an audit event", c, before)
	}
	if got := mustInvite(t, s, inv.ID); got.UserID != existing.ID || got.UseCount != 1 {
		t.Errorf("invite UserID %d, UseCount %d; want %d, 1", got.UserID, got.UseCount, existing.ID)
	}
	checkRedeemed(t, s, r, existing.ID)
}

// refused runs r, which must fail with ErrConflict and write nothing.
func refused(t *testing.T, s store.Store, what string, r *store.Redemption) {
	t.Helper()
	before := countRows(t, s)
	invBefore, err := s.Invite(t.Context(), r.InviteID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Invite: %v", err)
	}
	sess, audit := *r.Session, *r.Audit
	u, err := s.RedeemInvite(t.Context(), r)
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("%s: RedeemInvite = %+v, %v; want ErrConflict", what, u, err)
	}
	if c := countRows(t, s); c != before {
		t.Errorf("%s: rows went from %+v to %+v", what, before, c)
	}
	if invBefore != nil {
		if d := diffInvite(mustInvite(t, s, r.InviteID), invBefore); d != nil {
			t.Errorf("%s: invite changed: %v", what, d)
		}
	}
	if d := diffSession(r.Session, &sess); d != nil || *r.Audit != audit {
		t.Errorf("%s: refused RedeemInvite changed r.Session (%v) or r.Audit (%+v)", what, d, *r.Audit)
	}
}

func testRedeemTwice(t *testing.T, s store.Store) {
	ctx := t.Context()
	inv := mustCreateInvite(t, s, "wiki.example.org", "a@example.org", "a", at(0))
	u, err := s.RedeemInvite(ctx, redemption(inv, true, at(time.Minute), "1"))
	if err != nil {
		t.Fatalf("first RedeemInvite: %v", err)
	}
	refused(t, s, "second first use", redemption(inv, true, at(2*time.Minute), "2"))
	if got := mustUser(t, s, u.ID); got.LoginCount != 1 {
		t.Errorf("LoginCount = %d after a refused use, want 1", got.LoginCount)
	}
	// A later use of an unused invite is refused too.
	fresh := mustCreateInvite(t, s, "wiki.example.org", "b@example.org", "b", at(0))
	refused(t, s, "later use of an unused invite", redemption(fresh, false, at(time.Minute), "3"))
	// So is any use of a missing invite.
	missing := &store.Invite{ID: fresh.ID + 1000, Site: "wiki.example.org", Email: "c@example.org"}
	refused(t, s, "first use of a missing invite", redemption(missing, true, at(time.Minute), "4"))
	refused(t, s, "later use of a missing invite", redemption(missing, false, at(time.Minute), "5"))
}

func testRedeemLater(t *testing.T, s store.Store) {
	ctx := t.Context()
	inv := mustCreateInvite(t, s, "wiki.example.org", "a@example.org", "a", at(0))
	t1, t2, t3 := at(time.Minute), at(time.Hour), at(2*time.Hour)
	u, err := s.RedeemInvite(ctx, redemption(inv, true, t1, "1"))
	if err != nil {
		t.Fatalf("first RedeemInvite: %v", err)
	}

	r := redemption(inv, false, t2, "2")
	r.FirstUsedAfter = t2.Add(-24 * time.Hour)
	got, err := s.RedeemInvite(ctx, r)
	if err != nil {
		t.Fatalf("later RedeemInvite: %v", err)
	}
	want := *u
	want.LastLoginAt, want.LastLoginIP = t1, "192.0.2.1"
	want.CurrentLoginAt, want.CurrentLoginIP, want.LoginCount = t2, "192.0.2.2", 2
	if d := diffUser(got, &want); d != nil {
		t.Errorf("returned user differs: %v", d)
	}
	if d := diffUser(mustUser(t, s, u.ID), &want); d != nil {
		t.Errorf("stored user differs: %v", d)
	}
	gi := mustInvite(t, s, inv.ID)
	if gi.UseCount != 2 || !gi.FirstUsedAt.Equal(t1) || !gi.LastUsedAt.Equal(t2) || gi.UserID != u.ID {
		t.Errorf("invite after a later use: UseCount %d, FirstUsedAt %v, LastUsedAt %v, UserID %d; want 2, %v, %v, %d",
			gi.UseCount, gi.FirstUsedAt, gi.LastUsedAt, gi.UserID, t1, t2, u.ID)
	}
	checkRedeemed(t, s, r, u.ID)
	if c := countRows(t, s); c != (counts{1, 2, 2}) {
		t.Errorf("after two uses: %+v, want 1 user, 2 sessions, 2 audit events", c)
	}

	// Without a session or an audit record, and with no expiry.
	got, err = s.RedeemInvite(ctx, &store.Redemption{InviteID: inv.ID, At: t3, IP: "192.0.2.3"})
	if err != nil {
		t.Fatalf("RedeemInvite without session or audit: %v", err)
	}
	if got.ID != u.ID || got.LoginCount != 3 || !got.LastLoginAt.Equal(t2) || !got.CurrentLoginAt.Equal(t3) {
		t.Errorf("after a third use, user = %+v", got)
	}
	if gi := mustInvite(t, s, inv.ID); gi.UseCount != 3 || !gi.LastUsedAt.Equal(t3) {
		t.Errorf("after a third use, UseCount %d, LastUsedAt %v; want 3, %v", gi.UseCount, gi.LastUsedAt, t3)
	}
	if c := countRows(t, s); c != (counts{1, 2, 2}) {
		t.Errorf("after a use without session or audit: %+v, want 1 user, 2 sessions, 2 audit events", c)
	}
}

func testRedeemExpired(t *testing.T, s store.Store) {
	ctx := t.Context()
	inv := mustCreateInvite(t, s, "wiki.example.org", "a@example.org", "a", at(0))
	t1 := at(time.Minute)
	if _, err := s.RedeemInvite(ctx, redemption(inv, true, t1, "1")); err != nil {
		t.Fatalf("first RedeemInvite: %v", err)
	}
	// The bound is exclusive: first used exactly at FirstUsedAfter is expired.
	r := redemption(inv, false, at(time.Hour), "2")
	r.FirstUsedAfter = t1
	refused(t, s, "use at the expiry", r)
	r = redemption(inv, false, at(time.Hour), "3")
	r.FirstUsedAfter = t1.Add(time.Second)
	refused(t, s, "use after the expiry", r)
	r = redemption(inv, false, at(time.Hour), "4")
	r.FirstUsedAfter = t1.Add(-time.Microsecond)
	if _, err := s.RedeemInvite(ctx, r); err != nil {
		t.Errorf("use just before the expiry: %v", err)
	}
}

func testRedeemRevoked(t *testing.T, s store.Store) {
	ctx := t.Context()
	unused := mustCreateInvite(t, s, "wiki.example.org", "a@example.org", "a", at(0))
	used := mustCreateInvite(t, s, "wiki.example.org", "b@example.org", "b", at(0))
	if _, err := s.RedeemInvite(ctx, redemption(used, true, at(time.Minute), "1")); err != nil {
		t.Fatalf("RedeemInvite: %v", err)
	}
	for _, inv := range []*store.Invite{unused, used} {
		if err := s.RevokeInvite(ctx, inv.ID, at(2*time.Minute)); err != nil {
			t.Fatalf("RevokeInvite: %v", err)
		}
	}
	refused(t, s, "first use of a revoked invite", redemption(unused, true, at(time.Hour), "2"))
	refused(t, s, "later use of a revoked invite", redemption(used, false, at(time.Hour), "3"))
	// The revocation ended the session the first use started.
	sess, err := s.SessionByTokenHash(ctx, []byte("hash-of-sess-1"))
	if err != nil {
		t.Fatalf("SessionByTokenHash: %v", err)
	}
	if !sess.RevokedAt.Equal(at(2 * time.Minute)) {
		t.Errorf("session of a revoked invite has RevokedAt %v, want %v", sess.RevokedAt, at(2*time.Minute))
	}
}

func testRedeemWindow(t *testing.T, s store.Store) {
	ctx := t.Context()
	inv := mustCreateInvite(t, s, "wiki.example.org", "a@example.org", "a", at(0))
	// The bound is exclusive: created exactly at CreatedAfter is too old.
	r := redemption(inv, true, at(time.Hour), "1")
	r.CreatedAfter = at(0)
	refused(t, s, "first use at the end of the window", r)
	r = redemption(inv, true, at(time.Hour), "2")
	r.CreatedAfter = at(time.Minute)
	refused(t, s, "first use after the window", r)
	r = redemption(inv, true, at(time.Hour), "3")
	r.CreatedAfter = at(-time.Microsecond)
	if _, err := s.RedeemInvite(ctx, r); err != nil {
		t.Errorf("first use just inside the window: %v", err)
	}
}

func testRedeemConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	inv := mustCreateInvite(t, s, "wiki.example.org", "a@example.org", "a", at(0))
	const n = 20
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		winners   []int64
		conflicts int
	)
	for i := range n {
		wg.Go(func() {
			// A zero CreatedAfter sets no window.
			u, err := s.RedeemInvite(ctx, redemption(inv, true, at(time.Minute+time.Duration(i)*time.Second), strconv.Itoa(i)))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners = append(winners, u.ID)
			case errors.Is(err, store.ErrConflict):
				conflicts++
			default:
				t.Errorf("RedeemInvite %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 || conflicts != n-1 {
		t.Fatalf("%d uses won (users %v) and %d conflicted, want 1 and %d", len(winners), winners, conflicts, n-1)
	}
	if c := countRows(t, s); c != (counts{1, 1, 1}) {
		t.Errorf("after concurrent first uses: %+v, want 1 user, 1 session, 1 audit event", c)
	}
	gi := mustInvite(t, s, inv.ID)
	if gi.UseCount != 1 || gi.UserID != winners[0] {
		t.Errorf("invite UseCount %d, UserID %d; want 1, %d", gi.UseCount, gi.UserID, winners[0])
	}
	if u := mustUser(t, s, winners[0]); u.LoginCount != 1 {
		t.Errorf("LoginCount = %d, want 1", u.LoginCount)
	}
}

func testRedeemRollback(t *testing.T, s store.Store) {
	ctx := t.Context()
	other := mustCreateUser(t, s, "", "other@example.org")
	taken := newSession(other, "taken", at(0))
	if err := s.CreateSession(ctx, taken); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	inv := mustCreateInvite(t, s, "wiki.example.org", "a@example.org", "a", at(0))

	// check runs r, which fails in the session insert and so must leave
	// nothing behind. The failure is not ErrConflict: that means the
	// invite refused the use.
	check := func(what string, r *store.Redemption) {
		t.Helper()
		before := countRows(t, s)
		invBefore := mustInvite(t, s, inv.ID)
		u, err := s.RedeemInvite(ctx, r)
		if err == nil {
			t.Fatalf("%s: RedeemInvite = %+v, want an error", what, u)
		}
		if errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: RedeemInvite err = %v, which is ErrConflict", what, err)
		}
		if c := countRows(t, s); c != before {
			t.Errorf("%s: rows went from %+v to %+v", what, before, c)
		}
		if d := diffInvite(mustInvite(t, s, inv.ID), invBefore); d != nil {
			t.Errorf("%s: invite changed: %v", what, d)
		}
	}

	r := redemption(inv, true, at(time.Minute), "1")
	r.Session.ID = "taken"
	check("first use with a taken session ID", r)
	r = redemption(inv, true, at(time.Minute), "2")
	r.Session.TokenHash = taken.TokenHash
	check("first use with a taken token hash", r)
	if _, err := s.UserByEmail(ctx, "wiki.example.org", "a@example.org"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a rolled-back first use left its user behind: %v", err)
	}

	u, err := s.RedeemInvite(ctx, redemption(inv, true, at(time.Minute), "3"))
	if err != nil {
		t.Fatalf("RedeemInvite: %v", err)
	}
	r = redemption(inv, false, at(time.Hour), "4")
	r.Session.ID = "taken"
	check("later use with a taken session ID", r)
	if got := mustUser(t, s, u.ID); got.LoginCount != 1 || !got.CurrentLoginAt.Equal(at(time.Minute)) {
		t.Errorf("a rolled-back later use recorded a login: %+v", got)
	}
}

func testReplaceInviteCode(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Now()
	inv := mustCreateInvite(t, s, "a.example", "x@example.com", "OLDCODE", now)
	other := mustCreateInvite(t, s, "a.example", "y@example.com", "OTHER", now)
	if err := s.ReplaceInviteCode(ctx, inv.ID, []byte("NEWCODE")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.InviteByCodeHash(ctx, []byte("code-hash-of-OLDCODE")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old code still finds the invite: %v", err)
	}
	if got, err := s.InviteByCodeHash(ctx, []byte("NEWCODE")); err != nil || got.ID != inv.ID {
		t.Errorf("new code: %+v %v", got, err)
	}
	if err := s.ReplaceInviteCode(ctx, inv.ID, []byte("code-hash-of-OTHER")); !errors.Is(err, store.ErrConflict) {
		t.Errorf("taking another invite's code: %v, want ErrConflict", err)
	}
	if err := s.RevokeInvite(ctx, other.ID, now); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceInviteCode(ctx, other.ID, []byte("THIRD")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("new code for a revoked invite: %v, want ErrNotFound", err)
	}
	if err := s.ReplaceInviteCode(ctx, 999999, []byte("FOURTH")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("new code for a missing invite: %v, want ErrNotFound", err)
	}
}

// testRedeemNewUserOnly: a redemption that must register a new user (an
// invite made by staff) never links an existing account, and writes
// nothing when it finds one.
func testRedeemNewUserOnly(t *testing.T, s store.Store) {
	ctx := t.Context()
	inv := mustCreateInvite(t, s, "wiki.example.org", "later@example.org", "nu", at(0))
	// The account appears after the invite was made.
	mustCreateUser(t, s, "wiki.example.org", "later@example.org")
	before := countRows(t, s)
	r := redemption(inv, true, at(time.Minute), "7")
	r.NewUserOnly = true
	if _, err := s.RedeemInvite(ctx, r); !errors.Is(err, store.ErrUserExists) {
		t.Fatalf("RedeemInvite = %v, want ErrUserExists", err)
	}
	if c := countRows(t, s); c != before {
		t.Errorf("refused redemption wrote rows: %+v, want %+v", c, before)
	}
	if got := mustInvite(t, s, inv.ID); got.UseCount != 0 || !got.FirstUsedAt.IsZero() || got.UserID != 0 {
		t.Errorf("refused redemption used the invite: %+v", got)
	}
	// Without an account it registers one, as any invite does.
	fresh := mustCreateInvite(t, s, "wiki.example.org", "new@example.org", "nv", at(0))
	r = redemption(fresh, true, at(time.Minute), "8")
	r.NewUserOnly = true
	if u, err := s.RedeemInvite(ctx, r); err != nil || u.Email != "new@example.org" {
		t.Fatalf("RedeemInvite of a new address = %+v, %v", u, err)
	}
}
