package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// newLink is a link as the CLI creates it: a row before any use.
func newLink(u *store.User, jti string, maxUses int, created time.Time) *store.Link {
	var uid int64
	if u != nil {
		uid = u.ID
	}
	return &store.Link{
		JTI:       jti,
		UserID:    uid,
		Target:    "wiki.example.org/reports/" + jti,
		Mode:      "request",
		MaxUses:   maxUses,
		CreatedAt: created,
		CreatedBy: "cli",
		ExpiresAt: created.Add(7 * 24 * time.Hour),
	}
}

func mustCreateLink(t *testing.T, s store.Store, u *store.User, jti string, maxUses int, created time.Time) *store.Link {
	t.Helper()
	l := newLink(u, jti, maxUses, created)
	if err := s.CreateLink(t.Context(), l); err != nil {
		t.Fatalf("CreateLink(%q): %v", jti, err)
	}
	return l
}

func mustLink(t *testing.T, s store.Store, jti string) *store.Link {
	t.Helper()
	l, err := s.Link(t.Context(), jti)
	if err != nil {
		t.Fatalf("Link(%q): %v", jti, err)
	}
	return l
}

func diffLink(got, want *store.Link) []string {
	var d []string
	check := func(name string, ok bool, g, w any) {
		if !ok {
			d = append(d, fmt.Sprintf("%s = %v, want %v", name, g, w))
		}
	}
	check("JTI", got.JTI == want.JTI, got.JTI, want.JTI)
	check("UserID", got.UserID == want.UserID, got.UserID, want.UserID)
	check("Target", got.Target == want.Target, got.Target, want.Target)
	check("Mode", got.Mode == want.Mode, got.Mode, want.Mode)
	check("MaxUses", got.MaxUses == want.MaxUses, got.MaxUses, want.MaxUses)
	check("Uses", got.Uses == want.Uses, got.Uses, want.Uses)
	check("CreatedAt", equalTime(got.CreatedAt, want.CreatedAt), got.CreatedAt, want.CreatedAt)
	check("CreatedBy", got.CreatedBy == want.CreatedBy, got.CreatedBy, want.CreatedBy)
	check("ExpiresAt", equalTime(got.ExpiresAt, want.ExpiresAt), got.ExpiresAt, want.ExpiresAt)
	check("FirstUsedAt", equalTime(got.FirstUsedAt, want.FirstUsedAt), got.FirstUsedAt, want.FirstUsedAt)
	check("LastUsedAt", equalTime(got.LastUsedAt, want.LastUsedAt), got.LastUsedAt, want.LastUsedAt)
	check("RevokedAt", equalTime(got.RevokedAt, want.RevokedAt), got.RevokedAt, want.RevokedAt)
	return d
}

func linkJTIs(ls []store.Link) []string {
	var ids []string
	for _, l := range ls {
		ids = append(ids, l.JTI)
	}
	return ids
}

// linkUse is a use of the link jti of user u at when, as the verified token
// describes it, with an audit record and, in login mode, a session, both
// named after id.
func linkUse(u *store.User, jti string, maxUses int, login bool, when time.Time, id string) *store.LinkUse {
	lu := &store.LinkUse{
		JTI:       jti,
		UserID:    u.ID,
		Target:    "wiki.example.org/reports/" + jti,
		Mode:      "request",
		MaxUses:   maxUses,
		ExpiresAt: when.Add(time.Hour),
		At:        when,
		Audit: &store.AuditEvent{
			Time:         when,
			Kind:         "link",
			CredentialID: jti,
			Outcome:      store.OutcomeAccepted,
			Reason:       "use " + id,
			Method:       "GET",
			Host:         "wiki.example.org",
			Path:         "/reports/" + jti,
		},
	}
	if login {
		lu.Mode = "login"
		lu.Session = &store.Session{
			ID:           "sess-" + id,
			UserID:       u.ID,
			TokenHash:    []byte("hash-of-sess-" + id),
			CreatedAt:    when,
			ExpiresAt:    when.Add(24 * time.Hour),
			IP:           "192.0.2.1",
			UserAgent:    "Firefox",
			Kind:         "link",
			CredentialID: jti,
		}
	}
	return lu
}

// sameEvent compares audit events, their times with Equal.
func sameEvent(a, b store.AuditEvent) bool {
	ta, tb := a.Time, b.Time
	a.Time, b.Time = time.Time{}, time.Time{}
	return a == b && equalTime(ta, tb)
}

// linkAudit is the audit trail of one link, newest first.
func linkAudit(t *testing.T, s store.Store, jti string) []store.AuditEvent {
	t.Helper()
	events, err := s.Audit(t.Context(), store.AuditFilter{CredentialID: jti, Limit: 1 << 20})
	if err != nil {
		t.Fatalf("Audit(CredentialID %q): %v", jti, err)
	}
	return events
}

func testLinks(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := mustCreateUser(t, s, "wiki.example.org", "a@example.org")
	b := mustCreateUser(t, s, "wiki.example.org", "b@example.org")

	l := newLink(a, "jti-1", 3, at(0))
	l.Mode = "login"
	if err := s.CreateLink(ctx, l); err != nil {
		t.Fatalf("CreateLink: %v", err)
	}
	if !l.CreatedAt.Equal(at(0)) {
		t.Errorf("CreateLink changed a given CreatedAt to %v", l.CreatedAt)
	}
	want := *l
	if d := diffLink(mustLink(t, s, "jti-1"), &want); d != nil {
		t.Errorf("Link differs: %v", d)
	}
	if _, err := s.Link(ctx, "no-such-jti"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Link of unknown jti: err = %v, want ErrNotFound", err)
	}

	// CreatedAt is filled in when zero; fields are stored as given.
	before := time.Now()
	v := newLink(b, "jti-2", 0, time.Time{})
	v.ExpiresAt = at(time.Hour)
	v.Uses, v.FirstUsedAt, v.LastUsedAt = 2, at(time.Minute), at(2*time.Minute)
	if err := s.CreateLink(ctx, v); err != nil {
		t.Fatalf("CreateLink: %v", err)
	}
	if v.CreatedAt.IsZero() || v.CreatedAt.Before(before.Add(-time.Second)) || v.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("CreatedAt defaulted to %v, want about now", v.CreatedAt)
	}
	got := mustLink(t, s, "jti-2")
	if got.CreatedAt.Sub(v.CreatedAt).Abs() > time.Microsecond {
		t.Errorf("stored CreatedAt %v, written back %v", got.CreatedAt, v.CreatedAt)
	}
	got.CreatedAt = v.CreatedAt
	if d := diffLink(got, v); d != nil {
		t.Errorf("Link(jti-2) differs: %v", d)
	}

	// Listing: newest first, by user, limited.
	c := mustCreateLink(t, s, a, "jti-3", 1, at(time.Minute))
	d := mustCreateLink(t, s, b, "jti-4", 1, at(2*time.Minute))
	e := mustCreateLink(t, s, a, "jti-5", 1, at(3*time.Minute))
	for _, tc := range []struct {
		f    store.LinkFilter
		want []string
	}{
		{store.LinkFilter{}, []string{v.JTI, e.JTI, d.JTI, c.JTI, l.JTI}},
		{store.LinkFilter{UserID: a.ID}, []string{e.JTI, c.JTI, l.JTI}},
		{store.LinkFilter{UserID: b.ID}, []string{v.JTI, d.JTI}},
		{store.LinkFilter{UserID: a.ID, Limit: 2}, []string{e.JTI, c.JTI}},
		{store.LinkFilter{Limit: 1}, []string{v.JTI}},
		{store.LinkFilter{UserID: a.ID + b.ID + 1000}, nil},
	} {
		got, err := s.Links(ctx, tc.f)
		if err != nil {
			t.Fatalf("Links(%+v): %v", tc.f, err)
		}
		if ids := linkJTIs(got); !slices.Equal(ids, tc.want) {
			t.Errorf("Links(%+v) = %q, want %q", tc.f, ids, tc.want)
		}
	}
	// Listed links carry all their fields.
	all, err := s.Links(ctx, store.LinkFilter{UserID: a.ID})
	if err != nil || len(all) != 3 {
		t.Fatalf("Links: %v, %v", all, err)
	}
	if d := diffLink(&all[2], &want); d != nil {
		t.Errorf("listed link differs: %v", d)
	}

	if err := s.CreateLink(ctx, newLink(a, "", 1, at(0))); err == nil {
		t.Error("CreateLink with an empty jti succeeded")
	}
	if err := s.CreateLink(ctx, newLink(&store.User{ID: a.ID + b.ID + 1000}, "jti-nobody", 1, at(0))); err == nil {
		t.Error("CreateLink for an unknown user succeeded")
	}
}

func testLinkConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := mustCreateUser(t, s, "", "a@example.org")
	b := mustCreateUser(t, s, "", "b@example.org")
	first := mustCreateLink(t, s, a, "jti-1", 1, at(0))
	dup := newLink(b, "jti-1", 5, at(time.Minute))
	if err := s.CreateLink(ctx, dup); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CreateLink with a taken jti: err = %v, want ErrConflict", err)
	}
	if d := diffLink(mustLink(t, s, "jti-1"), first); d != nil {
		t.Errorf("a conflicting CreateLink changed the link: %v", d)
	}
	all, err := s.Links(ctx, store.LinkFilter{})
	if err != nil {
		t.Fatalf("Links: %v", err)
	}
	if ids := linkJTIs(all); !slices.Equal(ids, []string{"jti-1"}) {
		t.Errorf("after a conflict, Links = %q, want only jti-1", ids)
	}
	// A jti that was revoked before it had a row has one now.
	if err := s.RevokeLink(ctx, "jti-2", at(0)); err != nil {
		t.Fatalf("RevokeLink: %v", err)
	}
	if err := s.CreateLink(ctx, newLink(a, "jti-2", 1, at(time.Minute))); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateLink of a revoked jti: err = %v, want ErrConflict", err)
	}
}

func testUseLinkCreated(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "wiki.example.org", "a@example.org")
	l := mustCreateLink(t, s, u, "jti-1", 2, at(0))
	t1, t2 := at(time.Minute), at(time.Hour)

	// The use claims more uses than the row allows: the row wins.
	for i, when := range []time.Time{t1, t2} {
		n, err := s.UseLink(ctx, linkUse(u, "jti-1", 5, false, when, strconv.Itoa(i)))
		if err != nil {
			t.Fatalf("UseLink %d: %v", i+1, err)
		}
		if n != i+1 {
			t.Errorf("UseLink %d returned %d uses, want %d", i+1, n, i+1)
		}
	}
	want := *l
	want.Uses, want.FirstUsedAt, want.LastUsedAt = 2, t1, t2
	if d := diffLink(mustLink(t, s, "jti-1"), &want); d != nil {
		t.Errorf("link after two uses differs: %v", d)
	}
	refusedLink(t, s, "third use of a max_uses 2 link", linkUse(u, "jti-1", 5, false, at(2*time.Hour), "2"))
	if d := diffLink(mustLink(t, s, "jti-1"), &want); d != nil {
		t.Errorf("link after a refused use differs: %v", d)
	}
	if n := len(linkAudit(t, s, "jti-1")); n != 2 {
		t.Errorf("%d audit events for the link, want 2", n)
	}
}

func testUseLinkOffline(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "wiki.example.org", "a@example.org")
	when := at(time.Minute)
	lu := linkUse(u, "offline-1", 2, false, when, "1")
	lu.ExpiresAt = at(time.Hour)
	n, err := s.UseLink(ctx, lu)
	if err != nil {
		t.Fatalf("UseLink of an unknown jti: %v", err)
	}
	if n != 1 {
		t.Errorf("UseLink returned %d uses, want 1", n)
	}
	want := store.Link{
		JTI:         "offline-1",
		UserID:      u.ID,
		Target:      lu.Target,
		Mode:        "request",
		MaxUses:     2,
		Uses:        1,
		CreatedAt:   when,
		CreatedBy:   "offline",
		ExpiresAt:   at(time.Hour),
		FirstUsedAt: when,
		LastUsedAt:  when,
	}
	if d := diffLink(mustLink(t, s, "offline-1"), &want); d != nil {
		t.Errorf("link created by its first use differs: %v", d)
	}
	// The row, once there, is what counts: a later use claiming a higher
	// max_uses does not raise it.
	if n, err := s.UseLink(ctx, linkUse(u, "offline-1", 2, false, at(2*time.Minute), "2")); err != nil || n != 2 {
		t.Fatalf("second UseLink = %d, %v; want 2, nil", n, err)
	}
	refusedLink(t, s, "third use of an offline max_uses 2 link", linkUse(u, "offline-1", 10, false, at(3*time.Minute), "3"))
	if got := mustLink(t, s, "offline-1"); got.Uses != 2 || got.MaxUses != 2 || !got.LastUsedAt.Equal(at(2*time.Minute)) || !got.FirstUsedAt.Equal(when) {
		t.Errorf("after a refused third use: %+v", got)
	}
	ls, err := s.Links(ctx, store.LinkFilter{UserID: u.ID})
	if err != nil || len(ls) != 1 {
		t.Errorf("Links of the user = %q, %v; want the offline link", linkJTIs(ls), err)
	}
}

func testUseLinkUnlimited(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "", "a@example.org")
	mustCreateLink(t, s, u, "created", 0, at(0))
	for _, jti := range []string{"created", "offline"} {
		for i := range 10 {
			n, err := s.UseLink(ctx, linkUse(u, jti, 0, false, at(time.Duration(i)*time.Minute), jti+strconv.Itoa(i)))
			if err != nil {
				t.Fatalf("%s: UseLink %d of an unlimited link: %v", jti, i+1, err)
			}
			if n != i+1 {
				t.Errorf("%s: UseLink %d returned %d uses", jti, i+1, n)
			}
		}
		if got := mustLink(t, s, jti); got.Uses != 10 || got.MaxUses != 0 || !got.FirstUsedAt.Equal(at(0)) || !got.LastUsedAt.Equal(at(9*time.Minute)) {
			t.Errorf("%s: after 10 uses: %+v", jti, got)
		}
	}
}

// refusedLink runs lu, which must fail with ErrConflict and write nothing.
func refusedLink(t *testing.T, s store.Store, what string, lu *store.LinkUse) {
	t.Helper()
	before := countRows(t, s)
	linkBefore, err := s.Link(t.Context(), lu.JTI)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Link: %v", err)
	}
	var sess *store.Session
	if lu.Session != nil {
		c := *lu.Session
		sess = &c
	}
	var audit *store.AuditEvent
	if lu.Audit != nil {
		c := *lu.Audit
		audit = &c
	}
	n, err := s.UseLink(t.Context(), lu)
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("%s: UseLink = %d, %v; want ErrConflict", what, n, err)
	}
	if c := countRows(t, s); c != before {
		t.Errorf("%s: rows went from %+v to %+v", what, before, c)
	}
	linkAfter, err := s.Link(t.Context(), lu.JTI)
	switch {
	case linkBefore == nil && !errors.Is(err, store.ErrNotFound):
		t.Errorf("%s: a refused use left link %+v, %v behind", what, linkAfter, err)
	case linkBefore != nil && err != nil:
		t.Errorf("%s: Link: %v", what, err)
	case linkBefore != nil:
		if d := diffLink(linkAfter, linkBefore); d != nil {
			t.Errorf("%s: link changed: %v", what, d)
		}
	}
	if sess != nil {
		if d := diffSession(lu.Session, sess); d != nil {
			t.Errorf("%s: a refused UseLink changed lu.Session: %v", what, d)
		}
	}
	if audit != nil && !sameEvent(*lu.Audit, *audit) {
		t.Errorf("%s: a refused UseLink changed lu.Audit to %+v", what, *lu.Audit)
	}
}

func testUseLinkRefused(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "", "a@example.org")

	// Revoked after a use, in both modes.
	mustCreateLink(t, s, u, "revoked", 5, at(0))
	if _, err := s.UseLink(ctx, linkUse(u, "revoked", 5, true, at(time.Minute), "1")); err != nil {
		t.Fatalf("UseLink: %v", err)
	}
	if err := s.RevokeLink(ctx, "revoked", at(2*time.Minute)); err != nil {
		t.Fatalf("RevokeLink: %v", err)
	}
	refusedLink(t, s, "request use of a revoked link", linkUse(u, "revoked", 5, false, at(time.Hour), "2"))
	refusedLink(t, s, "login use of a revoked link", linkUse(u, "revoked", 5, true, at(time.Hour), "3"))
	if got := mustLink(t, s, "revoked"); got.Uses != 1 {
		t.Errorf("revoked link has %d uses, want 1", got.Uses)
	}

	// Used up, in login mode: no session is started.
	mustCreateLink(t, s, u, "once", 1, at(0))
	if _, err := s.UseLink(ctx, linkUse(u, "once", 1, true, at(time.Minute), "4")); err != nil {
		t.Fatalf("UseLink: %v", err)
	}
	refusedLink(t, s, "second login use of a one-use link", linkUse(u, "once", 1, true, at(time.Hour), "5"))
	if c := countRows(t, s); c.sessions != 2 || c.audit != 2 {
		t.Errorf("after refusals: %+v, want 2 sessions and 2 audit events", c)
	}
}

func testUseLinkConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "", "a@example.org")
	mustCreateLink(t, s, u, "jti-1", 3, at(0))
	const n = 50
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		counts    []int
		conflicts int
	)
	for i := range n {
		wg.Go(func() {
			// Half in login mode, each with its own session; every use
			// claims a higher max_uses than the row's.
			lu := linkUse(u, "jti-1", 10, i%2 == 0, at(time.Minute+time.Duration(i)*time.Second), strconv.Itoa(i))
			uses, err := s.UseLink(ctx, lu)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				counts = append(counts, uses)
			case errors.Is(err, store.ErrConflict):
				conflicts++
			default:
				t.Errorf("UseLink %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	slices.Sort(counts)
	if !slices.Equal(counts, []int{1, 2, 3}) || conflicts != n-3 {
		t.Fatalf("uses returned %v and %d conflicts, want [1 2 3] and %d", counts, conflicts, n-3)
	}
	if got := mustLink(t, s, "jti-1"); got.Uses != 3 {
		t.Errorf("link has %d uses, want 3", got.Uses)
	}
	if events := linkAudit(t, s, "jti-1"); len(events) != 3 {
		t.Errorf("%d audit events for the link, want 3", len(events))
	}
	c := countRows(t, s)
	if c.audit != 3 {
		t.Errorf("%d audit events in all, want 3", c.audit)
	}
	// Each winner wrote its session if it had one, and nobody else did.
	events := linkAudit(t, s, "jti-1")
	wantSessions := 0
	for _, e := range events {
		if e.SessionID != "" {
			wantSessions++
		}
	}
	if c.sessions != wantSessions {
		t.Errorf("%d sessions for %d winning login uses", c.sessions, wantSessions)
	}
}

// testUseLinkOfflineConcurrent: concurrent first uses of a link minted
// offline create one row and share its max_uses.
func testUseLinkOfflineConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "", "a@example.org")
	const n = 20
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		wins      int
		conflicts int
	)
	for i := range n {
		wg.Go(func() {
			_, err := s.UseLink(ctx, linkUse(u, "offline", 2, false, at(time.Duration(i)*time.Second), strconv.Itoa(i)))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, store.ErrConflict):
				conflicts++
			default:
				t.Errorf("UseLink %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if wins != 2 || conflicts != n-2 {
		t.Fatalf("%d uses won and %d conflicted, want 2 and %d", wins, conflicts, n-2)
	}
	if got := mustLink(t, s, "offline"); got.Uses != 2 || got.MaxUses != 2 {
		t.Errorf("link = %+v, want 2 of 2 uses", got)
	}
}

func testUseLinkWrites(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "wiki.example.org", "a@example.org")
	mustCreateLink(t, s, u, "login", 2, at(0))

	// Login mode: a session and an audit record, in the same transaction.
	when := at(time.Minute)
	lu := linkUse(u, "login", 2, true, when, "1")
	lu.Audit.UserID, lu.Audit.SessionID = 0, "" // filled in by the store
	lu.Session.ID = ""                          // generated by the store
	lu.Session.LastSeenAt = time.Time{}         // defaults to CreatedAt
	if _, err := s.UseLink(ctx, lu); err != nil {
		t.Fatalf("UseLink: %v", err)
	}
	if lu.Session.ID == "" || !lu.Session.LastSeenAt.Equal(when) {
		t.Errorf("session written back with ID %q, LastSeenAt %v; want an ID and %v", lu.Session.ID, lu.Session.LastSeenAt, when)
	}
	if lu.Audit.ID == 0 {
		t.Error("Audit.ID not written back")
	}
	if lu.Audit.UserID != u.ID || lu.Audit.SessionID != lu.Session.ID {
		t.Errorf("Audit written back with UserID %d, SessionID %q; want %d, %q", lu.Audit.UserID, lu.Audit.SessionID, u.ID, lu.Session.ID)
	}
	sess, err := s.SessionByTokenHash(ctx, lu.Session.TokenHash)
	if err != nil {
		t.Fatalf("SessionByTokenHash: %v", err)
	}
	if d := diffSession(&sess.Session, lu.Session); d != nil {
		t.Errorf("stored session differs: %v", d)
	}
	// A sign-in by link counts as a login, like a code.
	if got, err := s.User(ctx, u.ID); err != nil || got.LoginCount != 1 || !got.CurrentLoginAt.Equal(when) || got.CurrentLoginIP != lu.Session.IP {
		t.Errorf("user after a sign-in by link: %+v, %v; want one login at %v from %s", got, err, when, lu.Session.IP)
	}
	events := linkAudit(t, s, "login")
	if len(events) != 1 {
		t.Fatalf("%d audit events for the link, want 1", len(events))
	}
	if e := events[0]; !sameEvent(e, *lu.Audit) {
		t.Errorf("stored audit event:\n got %+v\nwant %+v", e, *lu.Audit)
	}

	// Request mode: no session; a zero audit Time is stored as At.
	when = at(2 * time.Minute)
	lu = linkUse(u, "login", 2, false, when, "2")
	lu.Audit.Time = time.Time{}
	if _, err := s.UseLink(ctx, lu); err != nil {
		t.Fatalf("UseLink: %v", err)
	}
	if lu.Audit.ID == 0 || !lu.Audit.Time.Equal(when) || lu.Audit.SessionID != "" {
		t.Errorf("Audit written back as %+v, want an ID, Time %v, no session", *lu.Audit, when)
	}
	events = linkAudit(t, s, "login")
	if len(events) != 2 || events[0].ID != lu.Audit.ID || !events[0].Time.Equal(when) {
		t.Errorf("audit events for the link: %+v", events)
	}
	if c := countRows(t, s); c != (counts{1, 1, 2}) {
		t.Errorf("after two uses: %+v, want 1 user, 1 session, 2 audit events", c)
	}

	// Neither session nor audit record.
	lu = linkUse(u, "bare", 0, false, at(3*time.Minute), "3")
	lu.Audit = nil
	if n, err := s.UseLink(ctx, lu); err != nil || n != 1 {
		t.Fatalf("UseLink without audit = %d, %v", n, err)
	}
	if c := countRows(t, s); c != (counts{1, 1, 2}) {
		t.Errorf("after a use without session or audit: %+v, want 1 user, 1 session, 2 audit events", c)
	}
}

func testUseLinkRollback(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "", "a@example.org")
	taken := newSession(u, "taken", at(0))
	if err := s.CreateSession(ctx, taken); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	mustCreateLink(t, s, u, "created", 2, at(0))

	// check runs lu, which fails in the session insert and so must leave
	// nothing behind. The failure is not ErrConflict: that means the link
	// refused the use.
	check := func(what string, lu *store.LinkUse) {
		t.Helper()
		before := countRows(t, s)
		linkBefore, lerr := s.Link(ctx, lu.JTI)
		if lerr != nil && !errors.Is(lerr, store.ErrNotFound) {
			t.Fatalf("Link: %v", lerr)
		}
		n, err := s.UseLink(ctx, lu)
		if err == nil {
			t.Fatalf("%s: UseLink = %d, want an error", what, n)
		}
		if errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: UseLink err = %v, which is ErrConflict", what, err)
		}
		if c := countRows(t, s); c != before {
			t.Errorf("%s: rows went from %+v to %+v", what, before, c)
		}
		linkAfter, err := s.Link(ctx, lu.JTI)
		if linkBefore == nil {
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: a rolled-back first use left link %+v, %v", what, linkAfter, err)
			}
		} else if err != nil {
			t.Errorf("%s: Link: %v", what, err)
		} else if d := diffLink(linkAfter, linkBefore); d != nil {
			t.Errorf("%s: link changed: %v", what, d)
		}
	}

	lu := linkUse(u, "created", 2, true, at(time.Minute), "1")
	lu.Session.ID = "taken"
	check("use with a taken session ID", lu)
	lu = linkUse(u, "created", 2, true, at(time.Minute), "2")
	lu.Session.TokenHash = taken.TokenHash
	check("use with a taken token hash", lu)
	lu = linkUse(u, "offline", 2, true, at(time.Minute), "3")
	lu.Session.ID = "taken"
	check("first use of an offline link with a taken session ID", lu)

	// The link still has both its uses.
	for i := range 2 {
		if _, err := s.UseLink(ctx, linkUse(u, "created", 2, true, at(time.Hour), "ok"+strconv.Itoa(i))); err != nil {
			t.Fatalf("UseLink after rollbacks: %v", err)
		}
	}
}

func testSetAuditStatus(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "", "a@example.org")
	lu := linkUse(u, "jti-1", 1, false, at(time.Minute), "1")
	if _, err := s.UseLink(ctx, lu); err != nil {
		t.Fatalf("UseLink: %v", err)
	}
	other := linkUse(u, "jti-2", 1, false, at(time.Minute), "2")
	if _, err := s.UseLink(ctx, other); err != nil {
		t.Fatalf("UseLink: %v", err)
	}
	if lu.Audit.ID == other.Audit.ID {
		t.Fatalf("two uses wrote audit event %d", lu.Audit.ID)
	}
	if err := s.SetAuditStatus(ctx, lu.Audit.ID, 502, 1500*time.Microsecond); err != nil {
		t.Fatalf("SetAuditStatus: %v", err)
	}
	events := linkAudit(t, s, "jti-1")
	if len(events) != 1 {
		t.Fatalf("%d audit events for jti-1, want 1", len(events))
	}
	want := *lu.Audit
	want.Status, want.Latency = 502, 1500*time.Microsecond
	if !sameEvent(events[0], want) {
		t.Errorf("after SetAuditStatus:\n got %+v\nwant %+v", events[0], want)
	}
	// Setting again overwrites.
	if err := s.SetAuditStatus(ctx, lu.Audit.ID, 200, 3*time.Second); err != nil {
		t.Fatalf("SetAuditStatus: %v", err)
	}
	if e := linkAudit(t, s, "jti-1")[0]; e.Status != 200 || e.Latency != 3*time.Second {
		t.Errorf("after a second SetAuditStatus: status %d, latency %v", e.Status, e.Latency)
	}
	// Other records are untouched.
	if e := linkAudit(t, s, "jti-2")[0]; !sameEvent(e, *other.Audit) {
		t.Errorf("another record changed:\n got %+v\nwant %+v", e, *other.Audit)
	}
	if err := s.SetAuditStatus(ctx, lu.Audit.ID+other.Audit.ID+1000, 200, 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetAuditStatus of unknown id: err = %v, want ErrNotFound", err)
	}
}

func testRevokeLink(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "", "a@example.org")
	l := mustCreateLink(t, s, u, "jti-1", 0, at(0))
	if err := s.RevokeLink(ctx, "jti-1", at(time.Hour)); err != nil {
		t.Fatalf("RevokeLink: %v", err)
	}
	want := *l
	want.RevokedAt = at(time.Hour)
	if d := diffLink(mustLink(t, s, "jti-1"), &want); d != nil {
		t.Errorf("revoked link differs: %v", d)
	}
	// A second revocation keeps the first time.
	if err := s.RevokeLink(ctx, "jti-1", at(2*time.Hour)); err != nil {
		t.Fatalf("second RevokeLink: %v", err)
	}
	if d := diffLink(mustLink(t, s, "jti-1"), &want); d != nil {
		t.Errorf("after a second revocation, link differs: %v", d)
	}
	refusedLink(t, s, "use of a revoked unlimited link", linkUse(u, "jti-1", 0, false, at(3*time.Hour), "1"))

	// A jti with no row gets a revoked one, which refuses its first use.
	if err := s.RevokeLink(ctx, "offline", at(time.Hour)); err != nil {
		t.Fatalf("RevokeLink of an unknown jti: %v", err)
	}
	got := mustLink(t, s, "offline")
	wantOffline := store.Link{JTI: "offline", MaxUses: 1, CreatedAt: at(time.Hour), CreatedBy: "revoked", RevokedAt: at(time.Hour)}
	if d := diffLink(got, &wantOffline); d != nil {
		t.Errorf("row of a revoked unknown jti differs: %v", d)
	}
	refusedLink(t, s, "first use of a link revoked before it had a row", linkUse(u, "offline", 5, true, at(2*time.Hour), "2"))
	if err := s.RevokeLink(ctx, "offline", at(4*time.Hour)); err != nil {
		t.Fatalf("second RevokeLink of the unknown jti: %v", err)
	}
	if got := mustLink(t, s, "offline"); !got.RevokedAt.Equal(at(time.Hour)) {
		t.Errorf("after a second revocation, RevokedAt = %v, want %v", got.RevokedAt, at(time.Hour))
	}
}

func testRevokeUserLinks(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := mustCreateUser(t, s, "wiki.example.org", "a@example.org")
	b := mustCreateUser(t, s, "wiki.example.org", "b@example.org")
	mustCreateLink(t, s, a, "a-1", 0, at(0))
	mustCreateLink(t, s, a, "a-2", 0, at(0))
	mustCreateLink(t, s, b, "b-1", 0, at(0))
	if _, err := s.UseLink(ctx, linkUse(a, "a-offline", 0, false, at(time.Minute), "1")); err != nil {
		t.Fatalf("UseLink: %v", err)
	}
	if err := s.RevokeLink(ctx, "a-2", at(time.Hour)); err != nil {
		t.Fatalf("RevokeLink: %v", err)
	}

	if err := s.RevokeUserLinks(ctx, a.ID, at(2*time.Hour)); err != nil {
		t.Fatalf("RevokeUserLinks: %v", err)
	}
	want := *mustUser(t, s, b.ID) // b is untouched
	if !want.LinksRevokedBefore.IsZero() {
		t.Errorf("another user's LinksRevokedBefore = %v, want zero", want.LinksRevokedBefore)
	}
	ga := mustUser(t, s, a.ID)
	if !ga.LinksRevokedBefore.Equal(at(2 * time.Hour)) {
		t.Errorf("User.LinksRevokedBefore = %v, want %v", ga.LinksRevokedBefore, at(2*time.Hour))
	}
	if got, err := s.UserByEmail(ctx, "wiki.example.org", "a@example.org"); err != nil || !got.LinksRevokedBefore.Equal(at(2*time.Hour)) {
		t.Errorf("UserByEmail after RevokeUserLinks = %+v, %v", got, err)
	}
	users, err := s.Users(ctx)
	if err != nil || len(users) != 2 {
		t.Fatalf("Users: %v, %v", users, err)
	}
	if d := diffUser(&users[0], ga); d != nil {
		t.Errorf("Users()[0] differs: %v", d)
	}
	for jti, wantRevoked := range map[string]time.Time{
		"a-1":       at(2 * time.Hour),
		"a-2":       at(time.Hour), // keeps its own
		"a-offline": at(2 * time.Hour),
		"b-1":       {},
	} {
		if got := mustLink(t, s, jti); !equalTime(got.RevokedAt, wantRevoked) {
			t.Errorf("link %s RevokedAt = %v, want %v", jti, got.RevokedAt, wantRevoked)
		}
	}
	refusedLink(t, s, "use of a link of a user whose links were revoked", linkUse(a, "a-1", 0, false, at(3*time.Hour), "2"))
	if _, err := s.UseLink(ctx, linkUse(b, "b-1", 0, false, at(3*time.Hour), "3")); err != nil {
		t.Errorf("UseLink of another user's link: %v", err)
	}

	// Again, later: the time moves.
	if err := s.RevokeUserLinks(ctx, a.ID, at(5*time.Hour)); err != nil {
		t.Fatalf("second RevokeUserLinks: %v", err)
	}
	if got := mustUser(t, s, a.ID); !got.LinksRevokedBefore.Equal(at(5 * time.Hour)) {
		t.Errorf("after a second RevokeUserLinks, LinksRevokedBefore = %v, want %v", got.LinksRevokedBefore, at(5*time.Hour))
	}
	if got := mustLink(t, s, "a-1"); !got.RevokedAt.Equal(at(2 * time.Hour)) {
		t.Errorf("after a second RevokeUserLinks, a-1 RevokedAt = %v, want %v", got.RevokedAt, at(2*time.Hour))
	}

	if err := s.RevokeUserLinks(ctx, a.ID+b.ID+1000, at(0)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeUserLinks of unknown user: err = %v, want ErrNotFound", err)
	}
}

// testRevokeLinkEndsItsSessions: a magic link's sessions end when the link,
// or every link of the user, is revoked; other sessions are untouched.
func testRevokeLinkEndsItsSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Now()
	u := mustCreateUser(t, s, "", "magic@example.com")
	mk := func(id, kind, cred string) {
		sess := newSession(u, id, now)
		sess.Kind, sess.CredentialID = kind, cred
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
	}
	mk("by-link-a", "link", "jti-a")
	mk("by-link-b", "link", "jti-b")
	mk("by-invite", "invite", "jti-a")
	revoked := func() map[string]bool {
		ss, err := s.Sessions(ctx, store.SessionFilter{UserID: u.ID})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, x := range ss {
			m[x.ID] = !x.RevokedAt.IsZero()
		}
		return m
	}
	if err := s.RevokeLink(ctx, "jti-a", now); err != nil {
		t.Fatal(err)
	}
	if r := revoked(); !r["by-link-a"] || r["by-link-b"] || r["by-invite"] {
		t.Fatalf("after revoking jti-a: %v, want only by-link-a revoked", r)
	}
	if err := s.RevokeUserLinks(ctx, u.ID, now); err != nil {
		t.Fatal(err)
	}
	if r := revoked(); !r["by-link-b"] || r["by-invite"] {
		t.Fatalf("after revoking the user's links: %v, want by-link-b revoked, by-invite not", r)
	}
}
