// Package storetest is the conformance suite for store.Store. Every
// implementation runs it from its own tests, so that the gateway can rely on
// the behaviour written here and not on one backend's quirks.
//
// Times in the suite are truncated to the microsecond, the finest that every
// backend we plan for can keep; finer round-trips are a backend's own test.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// Run runs the suite. open must return a new, empty store each time it is
// called; Run closes it when the subtest ends. Subtests run in parallel.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		f    func(t *testing.T, s store.Store)
	}{
		{"Users", testUsers},
		{"UserConflict", testUserConflict},
		{"Roles", testRoles},
		{"RoleDefs", testRoleDefs},
		{"GrantRevokeRole", testGrantRevokeRole},
		{"SetUserActive", testSetUserActive},
		{"RecordLogin", testRecordLogin},
		{"Passwords", testPasswords},
		{"Sessions", testSessions},
		{"SessionConflict", testSessionConflict},
		{"TouchSession", testTouchSession},
		{"RevokeSession", testRevokeSession},
		{"SessionFilter", testSessionFilter},
		{"Sites", testSites},
		{"Changes", testChanges},
		{"AuditStatusUpdate", testAuditStatusUpdate},
		{"AuditCountsLinkUse", testAuditCountsLinkUse},
		{"Throttles", testThrottles},
		{"Audit", testAudit},
		{"AuditFilter", testAuditFilter},
		{"AuditQuery", testAuditQuery},
		{"AuditDefaultLimit", testAuditDefaultLimit},
		{"Secret", testSecret},
		{"DeleteSecret", testDeleteSecret},
		{"SchemaVersion", testSchemaVersion},
		{"ConcurrentWriters", testConcurrentWriters},
		{"Invites", testInvites},
		{"InviteConflict", testInviteConflict},
		{"RevokeInvite", testRevokeInvite},
		{"SetInviteSent", testSetInviteSent},
		{"ReplaceInviteCode", testReplaceInviteCode},
		{"RedeemFirst", testRedeemFirst},
		{"RedeemLinksUser", testRedeemLinksUser},
		{"RedeemNewUserOnly", testRedeemNewUserOnly},
		{"RedeemTwice", testRedeemTwice},
		{"RedeemLater", testRedeemLater},
		{"RedeemExpired", testRedeemExpired},
		{"RedeemRevoked", testRedeemRevoked},
		{"RedeemWindow", testRedeemWindow},
		{"RedeemConcurrent", testRedeemConcurrent},
		{"RedeemRollback", testRedeemRollback},
		{"Links", testLinks},
		{"RevokeLinkEndsItsSessions", testRevokeLinkEndsItsSessions},
		{"LinkConflict", testLinkConflict},
		{"UseLinkCreated", testUseLinkCreated},
		{"UseLinkOffline", testUseLinkOffline},
		{"UseLinkUnlimited", testUseLinkUnlimited},
		{"UseLinkRefused", testUseLinkRefused},
		{"UseLinkConcurrent", testUseLinkConcurrent},
		{"UseLinkOfflineConcurrent", testUseLinkOfflineConcurrent},
		{"UseLinkWrites", testUseLinkWrites},
		{"UseLinkRollback", testUseLinkRollback},
		{"SetAuditStatus", testSetAuditStatus},
		{"RevokeLink", testRevokeLink},
		{"RevokeUserLinks", testRevokeUserLinks},
		{"Tickets", testTickets},
		{"TicketConflict", testTicketConflict},
		{"ClaimTicket", testClaimTicket},
		{"ClaimTicketLease", testClaimTicketLease},
		{"ClaimTicketRefused", testClaimTicketRefused},
		{"ClaimTicketConcurrent", testClaimTicketConcurrent},
		{"FinishTicketStamp", testFinishTicketStamp},
		{"FinishTicketGiveBack", testFinishTicketGiveBack},
		{"FinishTicketStale", testFinishTicketStale},
		{"RevokeTicket", testRevokeTicket},
		{"ExpireTickets", testExpireTickets},
	}
	tests = append(tests, outboxTests...)
	tests = append(tests, auditCountTests...)
	tests = append(tests, retentionTests...)
	tests = append(tests, statsTests...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.f(t, s)
		})
	}
}

// base is a fixed, microsecond-aligned instant, so failures are repeatable.
var base = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

func at(d time.Duration) time.Time { return base.Add(d) }

// roleSite is where mustCreateUser grants roles to a user known on every
// site (which has no site of its own to hold them).
const roleSite = "app.example.org"

// rolesOn makes roles on one site.
func rolesOn(site string, names ...string) []store.Role {
	var out []store.Role
	for _, n := range names {
		out = append(out, store.Role{Site: site, Name: n})
	}
	return out
}

// mustCreateUser grants roles on the user's site, or on roleSite for a user
// known on every site.
func mustCreateUser(t *testing.T, s store.Store, site, email string, roles ...string) *store.User {
	t.Helper()
	rs := site
	if rs == "" {
		rs = roleSite
	}
	u := &store.User{Site: site, Email: email, Name: "N " + email, Active: true, Roles: rolesOn(rs, roles...)}
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser(%q, %q): %v", site, email, err)
	}
	return u
}

func equalTime(a, b time.Time) bool { return a.Equal(b) && a.IsZero() == b.IsZero() }

// sortedRoles lists roles as name@site, sorted.
func sortedRoles(r []store.Role) []string {
	var out []string
	for _, x := range r {
		out = append(out, x.String())
	}
	slices.Sort(out)
	return out
}

// diffUser lists the fields in which got differs from want.
func diffUser(got, want *store.User) []string {
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
	check("Active", got.Active == want.Active, got.Active, want.Active)
	check("Roles", slices.Equal(sortedRoles(got.Roles), sortedRoles(want.Roles)), got.Roles, want.Roles)
	check("CreatedAt", equalTime(got.CreatedAt, want.CreatedAt), got.CreatedAt, want.CreatedAt)
	check("CurrentLoginAt", equalTime(got.CurrentLoginAt, want.CurrentLoginAt), got.CurrentLoginAt, want.CurrentLoginAt)
	check("CurrentLoginIP", got.CurrentLoginIP == want.CurrentLoginIP, got.CurrentLoginIP, want.CurrentLoginIP)
	check("LastLoginAt", equalTime(got.LastLoginAt, want.LastLoginAt), got.LastLoginAt, want.LastLoginAt)
	check("LastLoginIP", got.LastLoginIP == want.LastLoginIP, got.LastLoginIP, want.LastLoginIP)
	check("LoginCount", got.LoginCount == want.LoginCount, got.LoginCount, want.LoginCount)
	check("LinksRevokedBefore", equalTime(got.LinksRevokedBefore, want.LinksRevokedBefore), got.LinksRevokedBefore, want.LinksRevokedBefore)
	return d
}

func testUsers(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := &store.User{
		Site:      "wiki.example.org",
		Email:     "  Ann.Smith@Example.ORG ",
		Name:      "Ann Smith",
		Phone:     "+44 20 7946 0000",
		Active:    true,
		Roles:     rolesOn("wiki.example.org", "editor", "admin"),
		CreatedAt: at(0),
	}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if u.ID == 0 {
		t.Fatal("CreateUser did not set ID")
	}
	if !u.CreatedAt.Equal(at(0)) {
		t.Errorf("CreateUser changed a given CreatedAt to %v", u.CreatedAt)
	}
	want := *u
	want.Email = "ann.smith@example.org"

	got, err := s.User(ctx, u.ID)
	if err != nil {
		t.Fatalf("User(%d): %v", u.ID, err)
	}
	if d := diffUser(got, &want); d != nil {
		t.Errorf("User(%d) differs: %v", u.ID, d)
	}
	if !got.CurrentLoginAt.IsZero() || !got.LastLoginAt.IsZero() {
		t.Errorf("new user has login times %v, %v; want zero", got.CurrentLoginAt, got.LastLoginAt)
	}

	for _, email := range []string{"ann.smith@example.org", "ANN.SMITH@EXAMPLE.ORG", " ann.smith@example.org\t"} {
		got, err := s.UserByEmail(ctx, "wiki.example.org", email)
		if err != nil {
			t.Errorf("UserByEmail(%q): %v", email, err)
			continue
		}
		if got.ID != u.ID {
			t.Errorf("UserByEmail(%q).ID = %d, want %d", email, got.ID, u.ID)
		}
	}
	if _, err := s.UserByEmail(ctx, "other.example.org", "ann.smith@example.org"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UserByEmail on another site: err = %v, want ErrNotFound", err)
	}
	if _, err := s.UserByEmail(ctx, "wiki.example.org", "bob@example.org"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UserByEmail of unknown address: err = %v, want ErrNotFound", err)
	}
	if _, err := s.User(ctx, u.ID+1000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("User of unknown id: err = %v, want ErrNotFound", err)
	}

	// CreatedAt is filled in when zero.
	before := time.Now()
	v := &store.User{Email: "bob@example.org"}
	if err := s.CreateUser(ctx, v); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if v.CreatedAt.IsZero() || v.CreatedAt.Before(before.Add(-time.Second)) || v.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("CreatedAt defaulted to %v, want about now", v.CreatedAt)
	}
	if v.ID == u.ID {
		t.Errorf("two users got ID %d", v.ID)
	}
	gv, err := s.User(ctx, v.ID)
	if err != nil {
		t.Fatalf("User(%d): %v", v.ID, err)
	}
	if gv.Active || gv.Site != "" || len(gv.Roles) != 0 {
		t.Errorf("User(%d) = %+v, want inactive, no site, no roles", v.ID, gv)
	}

	all, err := s.Users(ctx)
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	if len(all) != 2 || all[0].ID != u.ID || all[1].ID != v.ID {
		t.Fatalf("Users = %+v, want users %d and %d in that order", all, u.ID, v.ID)
	}
	if d := diffUser(&all[0], &want); d != nil {
		t.Errorf("Users()[0] differs: %v", d)
	}

	if err := s.CreateUser(ctx, &store.User{Email: "  "}); err == nil {
		t.Error("CreateUser with a blank e-mail address succeeded")
	}
}

func testUserConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := mustCreateUser(t, s, "a.example", "dup@example.org")
	err := s.CreateUser(ctx, &store.User{Site: "a.example", Email: " DUP@example.org"})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate CreateUser: err = %v, want ErrConflict", err)
	}
	// The same address is a different user on another site, and on the
	// empty (every-site) site.
	mustCreateUser(t, s, "b.example", "dup@example.org")
	mustCreateUser(t, s, "", "dup@example.org")
	if err := s.CreateUser(ctx, &store.User{Email: "dup@example.org"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate CreateUser on the empty site: err = %v, want ErrConflict", err)
	}
	// A failed create leaves nothing behind.
	all, err := s.Users(ctx)
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	if len(all) != 3 {
		t.Errorf("Users has %d users after conflicts, want 3", len(all))
	}
	got, err := s.UserByEmail(ctx, "a.example", "dup@example.org")
	if err != nil || got.ID != first.ID {
		t.Errorf("UserByEmail after conflict = %+v, %v; want user %d", got, err, first.ID)
	}
}

func testRoles(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := mustCreateUser(t, s, "", "a@example.org", "admin", "viewer")
	b := mustCreateUser(t, s, "", "b@example.org")
	c := mustCreateUser(t, s, "", "c@example.org", "viewer")

	for _, tc := range []struct {
		u    *store.User
		want []string
	}{{a, []string{"admin@" + roleSite, "viewer@" + roleSite}}, {b, nil}, {c, []string{"viewer@" + roleSite}}} {
		got, err := s.User(ctx, tc.u.ID)
		if err != nil {
			t.Fatalf("User(%d): %v", tc.u.ID, err)
		}
		if !slices.Equal(sortedRoles(got.Roles), tc.want) {
			t.Errorf("User(%d).Roles = %q, want %q", tc.u.ID, got.Roles, tc.want)
		}
		for _, r := range tc.want {
			name := strings.TrimSuffix(r, "@"+roleSite)
			if !got.HasRole(roleSite, name) {
				t.Errorf("User(%d).HasRole(%q, %q) = false", tc.u.ID, roleSite, name)
			}
			// A role on one site grants nothing on another.
			if got.HasRole("other.example.org", name) || got.HasRole("", name) {
				t.Errorf("User(%d) holds %q on a site it was not granted on", tc.u.ID, name)
			}
		}
		if got.HasRole(roleSite, "root") {
			t.Errorf("User(%d).HasRole(\"root\") = true", tc.u.ID)
		}
	}
	all, err := s.Users(ctx)
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	if len(all) != 3 {
		t.Fatalf("Users returned %d users, want 3", len(all))
	}
	if !slices.Equal(sortedRoles(all[0].Roles), []string{"admin@" + roleSite, "viewer@" + roleSite}) || len(all[1].Roles) != 0 || !slices.Equal(sortedRoles(all[2].Roles), []string{"viewer@" + roleSite}) {
		t.Errorf("Users roles = %q, %q, %q", all[0].Roles, all[1].Roles, all[2].Roles)
	}
}

func testSetUserActive(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "", "a@example.org")
	for _, active := range []bool{false, false, true} {
		if err := s.SetUserActive(ctx, u.ID, active); err != nil {
			t.Fatalf("SetUserActive(%d, %t): %v", u.ID, active, err)
		}
		got, err := s.User(ctx, u.ID)
		if err != nil {
			t.Fatalf("User: %v", err)
		}
		if got.Active != active {
			t.Errorf("after SetUserActive(%t), Active = %t", active, got.Active)
		}
	}
	if err := s.SetUserActive(ctx, u.ID+1000, true); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetUserActive of unknown id: err = %v, want ErrNotFound", err)
	}
}

func testRecordLogin(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "", "a@example.org")
	if err := s.RecordLogin(ctx, u.ID, at(time.Hour), "192.0.2.1"); err != nil {
		t.Fatalf("RecordLogin: %v", err)
	}
	got, err := s.User(ctx, u.ID)
	if err != nil {
		t.Fatalf("User: %v", err)
	}
	if !got.CurrentLoginAt.Equal(at(time.Hour)) || got.CurrentLoginIP != "192.0.2.1" || !got.LastLoginAt.IsZero() || got.LastLoginIP != "" || got.LoginCount != 1 {
		t.Errorf("after first login: current %v %q, last %v %q, count %d", got.CurrentLoginAt, got.CurrentLoginIP, got.LastLoginAt, got.LastLoginIP, got.LoginCount)
	}
	if err := s.RecordLogin(ctx, u.ID, at(2*time.Hour), "2001:db8::1"); err != nil {
		t.Fatalf("RecordLogin: %v", err)
	}
	got, err = s.User(ctx, u.ID)
	if err != nil {
		t.Fatalf("User: %v", err)
	}
	if !got.CurrentLoginAt.Equal(at(2*time.Hour)) || got.CurrentLoginIP != "2001:db8::1" || !got.LastLoginAt.Equal(at(time.Hour)) || got.LastLoginIP != "192.0.2.1" || got.LoginCount != 2 {
		t.Errorf("after second login: current %v %q, last %v %q, count %d", got.CurrentLoginAt, got.CurrentLoginIP, got.LastLoginAt, got.LastLoginIP, got.LoginCount)
	}
	if err := s.RecordLogin(ctx, u.ID+1000, at(0), "192.0.2.1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RecordLogin of unknown id: err = %v, want ErrNotFound", err)
	}
}

func newSession(u *store.User, id string, created time.Time) *store.Session {
	return &store.Session{
		ID:           id,
		UserID:       u.ID,
		TokenHash:    []byte("hash-of-" + id),
		CreatedAt:    created,
		LastSeenAt:   created,
		ExpiresAt:    created.Add(24 * time.Hour),
		IP:           "198.51.100.7",
		UserAgent:    "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
		Kind:         "invite",
		CredentialID: "inv-" + id,
	}
}

func diffSession(got, want *store.Session) []string {
	var d []string
	check := func(name string, ok bool, g, w any) {
		if !ok {
			d = append(d, fmt.Sprintf("%s = %v, want %v", name, g, w))
		}
	}
	check("ID", got.ID == want.ID, got.ID, want.ID)
	check("UserID", got.UserID == want.UserID, got.UserID, want.UserID)
	check("TokenHash", bytes.Equal(got.TokenHash, want.TokenHash), got.TokenHash, want.TokenHash)
	check("CreatedAt", equalTime(got.CreatedAt, want.CreatedAt), got.CreatedAt, want.CreatedAt)
	check("LastSeenAt", equalTime(got.LastSeenAt, want.LastSeenAt), got.LastSeenAt, want.LastSeenAt)
	check("ExpiresAt", equalTime(got.ExpiresAt, want.ExpiresAt), got.ExpiresAt, want.ExpiresAt)
	check("RevokedAt", equalTime(got.RevokedAt, want.RevokedAt), got.RevokedAt, want.RevokedAt)
	check("IP", got.IP == want.IP, got.IP, want.IP)
	check("UserAgent", got.UserAgent == want.UserAgent, got.UserAgent, want.UserAgent)
	check("Kind", got.Kind == want.Kind, got.Kind, want.Kind)
	check("CredentialID", got.CredentialID == want.CredentialID, got.CredentialID, want.CredentialID)
	return d
}

func testSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "", "a@example.org")
	sess := newSession(u, "s1", at(0))
	want := *sess
	if err := s.CreateSession(ctx, sess); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	got, err := s.SessionByTokenHash(ctx, []byte("hash-of-s1"))
	if err != nil {
		t.Fatalf("SessionByTokenHash: %v", err)
	}
	if d := diffSession(&got.Session, &want); d != nil {
		t.Errorf("SessionByTokenHash differs: %v", d)
	}
	if !got.UserActive {
		t.Error("UserActive = false for an active user")
	}
	if !got.RevokedAt.IsZero() {
		t.Errorf("RevokedAt = %v for a new session", got.RevokedAt)
	}

	if err := s.SetUserActive(ctx, u.ID, false); err != nil {
		t.Fatalf("SetUserActive: %v", err)
	}
	got, err = s.SessionByTokenHash(ctx, []byte("hash-of-s1"))
	if err != nil {
		t.Fatalf("SessionByTokenHash: %v", err)
	}
	if got.UserActive {
		t.Error("UserActive = true after the user was deactivated")
	}

	if _, err := s.SessionByTokenHash(ctx, []byte("no such hash")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SessionByTokenHash of unknown hash: err = %v, want ErrNotFound", err)
	}
	if err := s.CreateSession(ctx, newSession(&store.User{ID: u.ID + 1000}, "s2", at(0))); err == nil {
		t.Error("CreateSession for an unknown user succeeded")
	}
}

func testSessionConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "", "a@example.org")
	if err := s.CreateSession(ctx, newSession(u, "s1", at(0))); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	sameID := newSession(u, "s1", at(0))
	sameID.TokenHash = []byte("another hash")
	if err := s.CreateSession(ctx, sameID); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateSession with a used ID: err = %v, want ErrConflict", err)
	}
	sameHash := newSession(u, "s2", at(0))
	sameHash.TokenHash = []byte("hash-of-s1")
	if err := s.CreateSession(ctx, sameHash); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateSession with a used token hash: err = %v, want ErrConflict", err)
	}
}

func testTouchSession(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "", "a@example.org")
	if err := s.CreateSession(ctx, newSession(u, "s1", at(0))); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	lastSeen := func() time.Time {
		t.Helper()
		got, err := s.SessionByTokenHash(ctx, []byte("hash-of-s1"))
		if err != nil {
			t.Fatalf("SessionByTokenHash: %v", err)
		}
		return got.LastSeenAt
	}
	steps := []struct {
		touch, want time.Time
	}{
		{at(time.Minute), at(time.Minute)},
		{at(30 * time.Second), at(time.Minute)}, // older: ignored
		{at(time.Minute), at(time.Minute)},      // equal: no change
		{at(2 * time.Minute), at(2 * time.Minute)},
	}
	for _, st := range steps {
		if err := s.TouchSession(ctx, "s1", st.touch); err != nil {
			t.Fatalf("TouchSession(%v): %v", st.touch, err)
		}
		if got := lastSeen(); !got.Equal(st.want) {
			t.Errorf("after TouchSession(%v), LastSeenAt = %v, want %v", st.touch, got, st.want)
		}
	}

	// Touches arriving in any order from concurrent requests leave the
	// newest.
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if err := s.TouchSession(ctx, "s1", at(time.Hour+time.Duration(i)*time.Second)); err != nil {
				t.Errorf("TouchSession: %v", err)
			}
		})
	}
	wg.Wait()
	if got, want := lastSeen(), at(time.Hour+49*time.Second); !got.Equal(want) {
		t.Errorf("after concurrent touches, LastSeenAt = %v, want %v", got, want)
	}

	if err := s.TouchSession(ctx, "no such session", at(time.Hour)); err != nil {
		t.Errorf("TouchSession of a missing session: %v, want nil", err)
	}
}

func testRevokeSession(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "", "a@example.org")
	if err := s.CreateSession(ctx, newSession(u, "s1", at(0))); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	if err := s.RevokeSession(ctx, "s1", at(time.Hour)); err != nil {
		t.Fatalf("RevokeSession: %v", err)
	}
	got, err := s.SessionByTokenHash(ctx, []byte("hash-of-s1"))
	if err != nil {
		t.Fatalf("SessionByTokenHash of a revoked session: %v", err)
	}
	if !got.RevokedAt.Equal(at(time.Hour)) {
		t.Errorf("RevokedAt = %v, want %v", got.RevokedAt, at(time.Hour))
	}
	// A second revocation keeps the first time.
	if err := s.RevokeSession(ctx, "s1", at(2*time.Hour)); err != nil {
		t.Fatalf("second RevokeSession: %v", err)
	}
	got, err = s.SessionByTokenHash(ctx, []byte("hash-of-s1"))
	if err != nil {
		t.Fatalf("SessionByTokenHash: %v", err)
	}
	if !got.RevokedAt.Equal(at(time.Hour)) {
		t.Errorf("after a second revocation, RevokedAt = %v, want %v", got.RevokedAt, at(time.Hour))
	}
	if err := s.RevokeSession(ctx, "nope", at(0)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeSession of unknown id: err = %v, want ErrNotFound", err)
	}
}

func sessionIDs(ss []store.Session) []string {
	var ids []string
	for _, s := range ss {
		ids = append(ids, s.ID)
	}
	return ids
}

func testSessionFilter(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := mustCreateUser(t, s, "", "a@example.org")
	b := mustCreateUser(t, s, "", "b@example.org")
	// Created one minute apart; each lasts a day.
	for i, tc := range []struct {
		u  *store.User
		id string
	}{{a, "a1"}, {b, "b1"}, {a, "a2"}, {a, "a3"}, {b, "b2"}} {
		if err := s.CreateSession(ctx, newSession(tc.u, tc.id, at(time.Duration(i)*time.Minute))); err != nil {
			t.Fatalf("CreateSession(%s): %v", tc.id, err)
		}
	}
	if err := s.RevokeSession(ctx, "a2", at(time.Hour)); err != nil {
		t.Fatalf("RevokeSession: %v", err)
	}
	// a1 expires at 24h, b1 at 24h+1m: at 24h+30s only b1 of the two is left.
	now := at(24*time.Hour + 30*time.Second)

	for _, tc := range []struct {
		f    store.SessionFilter
		want []string
	}{
		{store.SessionFilter{}, []string{"b2", "a3", "a2", "b1", "a1"}},
		{store.SessionFilter{UserID: a.ID}, []string{"a3", "a2", "a1"}},
		{store.SessionFilter{UserID: b.ID}, []string{"b2", "b1"}},
		{store.SessionFilter{ActiveOnly: true, Now: at(2 * time.Hour)}, []string{"b2", "a3", "b1", "a1"}},
		{store.SessionFilter{ActiveOnly: true, Now: now}, []string{"b2", "a3", "b1"}},
		{store.SessionFilter{ActiveOnly: true, Now: now, UserID: a.ID}, []string{"a3"}},
		{store.SessionFilter{ActiveOnly: true, Now: at(48 * time.Hour)}, nil},
		{store.SessionFilter{Limit: 2}, []string{"b2", "a3"}},
		{store.SessionFilter{UserID: a.ID, Limit: 1}, []string{"a3"}},
		{store.SessionFilter{UserID: a.ID + b.ID + 1000}, nil},
	} {
		got, err := s.Sessions(ctx, tc.f)
		if err != nil {
			t.Fatalf("Sessions(%+v): %v", tc.f, err)
		}
		if ids := sessionIDs(got); !slices.Equal(ids, tc.want) {
			t.Errorf("Sessions(%+v) = %q, want %q", tc.f, ids, tc.want)
		}
	}

	// Listed sessions carry all their fields.
	got, err := s.Sessions(ctx, store.SessionFilter{UserID: a.ID, Limit: 1})
	if err != nil || len(got) != 1 {
		t.Fatalf("Sessions: %v, %v", got, err)
	}
	want := newSession(a, "a3", at(3*time.Minute))
	got[0].TokenHash = want.TokenHash // listing need not return hashes
	if d := diffSession(&got[0], want); d != nil {
		t.Errorf("listed session differs: %v", d)
	}
}

func testAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	want := []store.AuditEvent{{
		Time:         at(0),
		Kind:         "invite",
		CredentialID: "inv-1",
		UserID:       7,
		SessionID:    "s1",
		Outcome:      store.OutcomeAccepted,
		Reason:       "",
		Method:       "GET",
		Host:         "wiki.example.org",
		Path:         "/start?x=1",
		Status:       302,
		ClientIP:     "203.0.113.9",
		UserAgent:    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1",
		UABrowser:    "Safari",
		UAVersion:    "17.0",
		UAOS:         "iOS",
		UADevice:     "mobile",
		UABot:        false,
		Latency:      1500 * time.Microsecond,
	}, {
		Time:      at(time.Second),
		Kind:      "session",
		Outcome:   store.OutcomeRefused,
		Reason:    "expired",
		Method:    "POST",
		Host:      "wiki.example.org",
		Path:      "/",
		UserAgent: "Googlebot/2.1",
		UADevice:  "bot",
		UABot:     true,
		Latency:   3 * time.Second,
	}}
	if err := s.WriteAudit(ctx, slices.Clone(want)); err != nil {
		t.Fatalf("WriteAudit: %v", err)
	}
	if err := s.WriteAudit(ctx, nil); err != nil {
		t.Fatalf("WriteAudit(nil): %v", err)
	}
	got, err := s.Audit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("Audit returned %d events, want 2", len(got))
	}
	slices.Reverse(got) // newest first
	for i := range want {
		g, w := got[i], want[i]
		if g.ID == 0 {
			t.Errorf("event %d has no ID", i)
		}
		if !g.Time.Equal(w.Time) {
			t.Errorf("event %d Time = %v, want %v", i, g.Time, w.Time)
		}
		g.ID, g.Time, w.Time = 0, time.Time{}, time.Time{}
		w.Count = max(w.Count, 1) // one attempt; see AuditCount
		if g != w {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
	if got[0].ID == got[1].ID {
		t.Errorf("two events got ID %d", got[0].ID)
	}
}

func testAuditFilter(t *testing.T, s store.Store) {
	ctx := t.Context()
	// Event i happens at i seconds; its kind, outcome and user vary.
	kinds := []string{"session", "invite", "ticket", "link"}
	var events []store.AuditEvent
	for i := range 40 {
		e := store.AuditEvent{
			Time:    at(time.Duration(i) * time.Second),
			Kind:    kinds[i%4],
			UserID:  int64(i % 3), // 0: unknown user
			Outcome: store.OutcomeAccepted,
			Path:    fmt.Sprintf("/%d", i),
			// c1 and c10, c11: an exact match, not a prefix.
			CredentialID: fmt.Sprintf("c%d", i%12),
		}
		if i%5 == 0 {
			e.Outcome = store.OutcomeRefused
		}
		events = append(events, e)
	}
	// Written in two batches, the later events first, so that order comes
	// from Time and not from insertion.
	if err := s.WriteAudit(ctx, slices.Clone(events[20:])); err != nil {
		t.Fatalf("WriteAudit: %v", err)
	}
	if err := s.WriteAudit(ctx, slices.Clone(events[:20])); err != nil {
		t.Fatalf("WriteAudit: %v", err)
	}

	match := func(f store.AuditFilter) []string {
		var paths []string
		for i := len(events) - 1; i >= 0; i-- {
			e := events[i]
			if (f.Since.IsZero() || !e.Time.Before(f.Since)) &&
				(f.UserID == 0 || e.UserID == f.UserID) &&
				(f.CredentialID == "" || e.CredentialID == f.CredentialID) &&
				(f.Kind == "" || e.Kind == f.Kind) &&
				(f.Outcome == "" || e.Outcome == f.Outcome) {
				paths = append(paths, e.Path)
			}
		}
		if f.Limit > 0 && len(paths) > f.Limit {
			paths = paths[:f.Limit]
		}
		return paths
	}
	for _, f := range []store.AuditFilter{
		{},
		{Since: at(30 * time.Second)},
		{Since: at(30*time.Second + 1)},
		{UserID: 1},
		{UserID: 2, Since: at(10 * time.Second)},
		{Kind: "invite"},
		{Outcome: store.OutcomeRefused},
		{Kind: "session", Outcome: store.OutcomeRefused},
		{Kind: "link", UserID: 2, Outcome: store.OutcomeAccepted},
		{Limit: 5},
		{Kind: "ticket", Limit: 3},
		{Kind: "none"},
		{Since: at(time.Hour)},
		{CredentialID: "c1"},
		{CredentialID: "c10", Since: at(20 * time.Second)},
		{CredentialID: "c3", Kind: "link"},
		{CredentialID: "c5", Outcome: store.OutcomeRefused, Limit: 1},
		{CredentialID: "c"},
	} {
		got, err := s.Audit(ctx, f)
		if err != nil {
			t.Fatalf("Audit(%+v): %v", f, err)
		}
		var paths []string
		for _, e := range got {
			paths = append(paths, e.Path)
		}
		if want := match(f); !slices.Equal(paths, want) {
			t.Errorf("Audit(%+v) = %q, want %q", f, paths, want)
		}
	}
}

func testAuditDefaultLimit(t *testing.T, s store.Store) {
	ctx := t.Context()
	events := make([]store.AuditEvent, 150)
	for i := range events {
		events[i] = store.AuditEvent{Time: at(time.Duration(i) * time.Millisecond), Kind: "session", Path: fmt.Sprint(i)}
	}
	if err := s.WriteAudit(ctx, events); err != nil {
		t.Fatalf("WriteAudit: %v", err)
	}
	got, err := s.Audit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	if len(got) != 100 {
		t.Fatalf("Audit with Limit 0 returned %d events, want 100", len(got))
	}
	if got[0].Path != "149" || got[99].Path != "50" {
		t.Errorf("Audit with Limit 0 returned %s..%s, want the newest 149..50", got[0].Path, got[99].Path)
	}
	got, err = s.Audit(ctx, store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	if len(got) != 150 {
		t.Errorf("Audit with Limit 1000 returned %d events, want 150", len(got))
	}
}

func testSecret(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.Secret(ctx, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Secret(nil) before any secret: err = %v, want ErrNotFound", err)
	}
	// Concurrent first calls, each offering its own secret, agree on one.
	const n = 8
	got := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sec, err := s.Secret(ctx, []byte(fmt.Sprintf("secret-%d-0123456789abcdef", i)))
			if err != nil {
				t.Errorf("Secret: %v", err)
			}
			got[i] = sec
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(got[0]) == 0 {
		t.Fatal("Secret returned an empty secret")
	}
	for i := range got {
		if !bytes.Equal(got[i], got[0]) {
			t.Fatalf("concurrent Secret calls disagree: %q and %q", got[0], got[i])
		}
	}
	again, err := s.Secret(ctx, []byte("a later, different secret"))
	if err != nil {
		t.Fatalf("Secret: %v", err)
	}
	if !bytes.Equal(again, got[0]) {
		t.Errorf("Secret changed from %q to %q", got[0], again)
	}
	// The returned slice is the caller's to keep.
	again[0] ^= 0xff
	third, err := s.Secret(ctx, nil)
	if err != nil {
		t.Fatalf("Secret(nil): %v", err)
	}
	if !bytes.Equal(third, got[0]) {
		t.Errorf("modifying a returned secret changed the stored one to %q", third)
	}
}

func testDeleteSecret(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.DeleteSecret(ctx); err != nil {
		t.Fatalf("DeleteSecret with no secret: %v", err)
	}
	if _, err := s.Secret(ctx, []byte("the first secret-0123456789abcdef")); err != nil {
		t.Fatalf("Secret: %v", err)
	}
	if err := s.DeleteSecret(ctx); err != nil {
		t.Fatalf("DeleteSecret: %v", err)
	}
	if sec, err := s.Secret(ctx, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Secret(nil) after DeleteSecret = %q, %v; want ErrNotFound", sec, err)
	}
	if err := s.DeleteSecret(ctx); err != nil {
		t.Errorf("DeleteSecret twice: %v", err)
	}
	// A secret offered afterwards is kept again, not the deleted one.
	sec, err := s.Secret(ctx, []byte("a second secret-0123456789abcdef"))
	if err != nil || string(sec) != "a second secret-0123456789abcdef" {
		t.Errorf("Secret after DeleteSecret = %q, %v; want the newly offered one", sec, err)
	}
}

func testSchemaVersion(t *testing.T, s store.Store) {
	v, err := s.SchemaVersion(t.Context())
	if err != nil {
		t.Fatalf("SchemaVersion: %v", err)
	}
	if v < 1 {
		t.Errorf("SchemaVersion = %d, want at least 1", v)
	}
}

func testConcurrentWriters(t *testing.T, s store.Store) {
	ctx := t.Context()
	const (
		writers  = 8
		users    = 25
		batch    = 64
		batches  = 10
		sessions = 5
	)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range users {
				u := &store.User{Email: fmt.Sprintf("w%d-u%d@example.org", w, i), Active: true, Roles: rolesOn(roleSite, "viewer")}
				if err := s.CreateUser(ctx, u); err != nil {
					t.Errorf("writer %d: CreateUser: %v", w, err)
					return
				}
				if i < sessions {
					sess := newSession(u, fmt.Sprintf("w%d-s%d", w, i), at(0))
					if err := s.CreateSession(ctx, sess); err != nil {
						t.Errorf("writer %d: CreateSession: %v", w, err)
						return
					}
					if err := s.TouchSession(ctx, sess.ID, at(time.Minute)); err != nil {
						t.Errorf("writer %d: TouchSession: %v", w, err)
						return
					}
				}
			}
		})
		wg.Go(func() {
			for b := range batches {
				events := make([]store.AuditEvent, batch)
				for i := range events {
					events[i] = store.AuditEvent{Time: at(time.Duration(b*batch+i) * time.Microsecond), Kind: "session", Host: fmt.Sprintf("w%d", w)}
				}
				if err := s.WriteAudit(ctx, events); err != nil {
					t.Errorf("writer %d: WriteAudit: %v", w, err)
					return
				}
			}
		})
		// Readers alongside the writers.
		wg.Go(func() {
			for range users {
				if _, err := s.Users(ctx); err != nil {
					t.Errorf("reader %d: Users: %v", w, err)
					return
				}
				if _, err := s.Audit(ctx, store.AuditFilter{Limit: 10}); err != nil {
					t.Errorf("reader %d: Audit: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	all, err := s.Users(ctx)
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	if len(all) != writers*users {
		t.Errorf("Users has %d users, want %d", len(all), writers*users)
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID <= all[i-1].ID {
			t.Fatalf("Users not ordered by ID: %d after %d", all[i].ID, all[i-1].ID)
		}
	}
	ev, err := s.Audit(ctx, store.AuditFilter{Limit: writers * batch * batches * 2})
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	if len(ev) != writers*batch*batches {
		t.Errorf("Audit has %d events, want %d", len(ev), writers*batch*batches)
	}
	ss, err := s.Sessions(ctx, store.SessionFilter{})
	if err != nil {
		t.Fatalf("Sessions: %v", err)
	}
	if len(ss) != writers*sessions {
		t.Errorf("Sessions has %d sessions, want %d", len(ss), writers*sessions)
	}
}
