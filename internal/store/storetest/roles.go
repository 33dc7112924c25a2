package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// roleDefNames lists role defs as "name@site=members".
func roleDefNames(rs []store.RoleDef) []string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s@%s=%d", r.Name, r.Site, r.Members))
	}
	return out
}

func mustRoleDefs(t *testing.T, s store.Store, site string) []store.RoleDef {
	t.Helper()
	rs, err := s.RoleDefs(t.Context(), site)
	if err != nil {
		t.Fatalf("RoleDefs(%q): %v", site, err)
	}
	return rs
}

// changesAfter lists the changes after seq as "kind:subject", in order, and
// the newest seq.
func changesAfter(t *testing.T, s store.Store, seq int64) ([]string, int64) {
	t.Helper()
	got, err := s.ChangesSince(t.Context(), seq, 1000)
	if err != nil {
		t.Fatalf("ChangesSince(%d): %v", seq, err)
	}
	var out []string
	for _, c := range got {
		out = append(out, c.Kind+":"+c.Subject)
		seq = c.Seq
	}
	return out, seq
}

// testRoleDefs: the catalog of each site's roles, its refusals, its order
// and its member counts.
func testRoleDefs(t *testing.T, s store.Store) {
	ctx := t.Context()
	const a, b, c = "a.example", "b.example", "c.example"
	editor := &store.RoleDef{Site: a, Name: "editor", Description: "Edits pages", CreatedAt: at(0)}
	if err := s.CreateRole(ctx, editor); err != nil {
		t.Fatalf("CreateRole: %v", err)
	}
	if !editor.CreatedAt.Equal(at(0)) {
		t.Errorf("CreateRole changed a given CreatedAt to %v", editor.CreatedAt)
	}
	before := time.Now()
	admin := &store.RoleDef{Site: a, Name: "admin"}
	if err := s.CreateRole(ctx, admin); err != nil {
		t.Fatalf("CreateRole: %v", err)
	}
	if admin.CreatedAt.Before(before.Add(-time.Second)) || admin.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("CreateRole with a zero CreatedAt wrote back %v, want about now", admin.CreatedAt)
	}
	// The same name on another site is another role; a site is listed
	// before the next, whatever its roles' names.
	for _, r := range []*store.RoleDef{{Site: b, Name: "editor", CreatedAt: at(time.Minute)}, {Site: c, Name: "aaa", CreatedAt: at(2 * time.Minute)}} {
		if err := s.CreateRole(ctx, r); err != nil {
			t.Fatalf("CreateRole(%s@%s): %v", r.Name, r.Site, err)
		}
	}

	// Refusals write nothing.
	err := s.CreateRole(ctx, &store.RoleDef{Site: a, Name: "editor", Description: "again", CreatedAt: at(time.Hour)})
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), `"editor"`) || !strings.Contains(err.Error(), `"a.example"`) {
		t.Errorf("CreateRole of an existing role: %v, want ErrConflict naming the role and its site", err)
	}
	for _, r := range []store.RoleDef{{Site: a}, {Name: "orphan"}, {}} {
		err := s.CreateRole(ctx, &r)
		if err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("CreateRole(%q on %q) = %v, want an error that is not ErrConflict", r.Name, r.Site, err)
		}
	}

	// Members: two editors on a, one admin; a role held but never created
	// is not in the catalog, and a role on b is not counted on a.
	mustCreateUser(t, s, a, "ed1@example.org", "editor")
	mustCreateUser(t, s, a, "ed2@example.org", "editor", "admin", "ghost")
	everywhere := mustCreateUser(t, s, "", "every@example.org")
	if err := s.GrantRole(ctx, everywhere.ID, store.Role{Site: b, Name: "editor"}); err != nil {
		t.Fatalf("GrantRole: %v", err)
	}

	got := mustRoleDefs(t, s, a)
	if want := []string{"admin@a.example=1", "editor@a.example=2"}; !slices.Equal(roleDefNames(got), want) {
		t.Errorf("RoleDefs(%q) = %q, want %q", a, roleDefNames(got), want)
	}
	for _, r := range got {
		want := admin
		if r.Name == "editor" {
			want = editor
		}
		if r.Description != want.Description || !r.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("RoleDefs(%q) has %+v, want %+v", a, r, *want)
		}
	}
	if got, want := roleDefNames(mustRoleDefs(t, s, b)), []string{"editor@b.example=1"}; !slices.Equal(got, want) {
		t.Errorf("RoleDefs(%q) = %q, want %q", b, got, want)
	}
	all := mustRoleDefs(t, s, "")
	if got, want := roleDefNames(all), []string{"admin@a.example=1", "editor@a.example=2", "editor@b.example=1", "aaa@c.example=0"}; !slices.Equal(got, want) {
		t.Errorf("RoleDefs(\"\") = %q, want %q", got, want)
	}
	if len(all) == 4 && (!all[2].CreatedAt.Equal(at(time.Minute)) || all[2].Description != "") {
		t.Errorf("RoleDefs(\"\") has %+v", all[2])
	}
	if got := mustRoleDefs(t, s, "nowhere.example"); len(got) != 0 {
		t.Errorf("RoleDefs of a site with no roles = %+v", got)
	}
}

// testGrantRevokeRole: grants and revocations, what User reads back, and
// the change of the user each of them records.
func testGrantRevokeRole(t *testing.T, s store.Store) {
	ctx := t.Context()
	const a, b = "a.example", "b.example"
	editorA, editorB, viewerB := store.Role{Site: a, Name: "editor"}, store.Role{Site: b, Name: "editor"}, store.Role{Site: b, Name: "viewer"}
	for _, r := range []store.Role{editorA, editorB, viewerB} {
		if err := s.CreateRole(ctx, &store.RoleDef{Site: r.Site, Name: r.Name}); err != nil {
			t.Fatal(err)
		}
	}
	u := mustCreateUser(t, s, "", "grantee@example.org")
	other := mustCreateUser(t, s, a, "other@example.org", "editor")
	uChange := fmt.Sprintf("user:%d", u.ID)
	_, seq := changesAfter(t, s, 0)

	roles := func(want ...string) {
		t.Helper()
		got := mustUser(t, s, u.ID)
		if !slices.Equal(sortedRoles(got.Roles), want) {
			t.Errorf("User(%d).Roles = %q, want %q", u.ID, sortedRoles(got.Roles), want)
		}
		if o := mustUser(t, s, other.ID); !slices.Equal(sortedRoles(o.Roles), []string{"editor@a.example"}) {
			t.Errorf("another user's roles became %q", sortedRoles(o.Roles))
		}
	}
	changed := func(what string, want ...string) {
		t.Helper()
		var got []string
		got, seq = changesAfter(t, s, seq)
		if !slices.Equal(got, want) {
			t.Errorf("%s recorded %q, want %q", what, got, want)
		}
	}
	members := func(site, want string) {
		t.Helper()
		if got := strings.Join(roleDefNames(mustRoleDefs(t, s, site)), " "); got != want {
			t.Errorf("RoleDefs(%q) = %s, want %s", site, got, want)
		}
	}

	if err := s.GrantRole(ctx, u.ID, editorA); err != nil {
		t.Fatalf("GrantRole: %v", err)
	}
	changed("a grant", uChange)
	roles("editor@a.example")
	got := mustUser(t, s, u.ID)
	if !got.HasRole(a, "editor") || got.HasRole(b, "editor") {
		t.Errorf("after a grant on %s: HasRole(%s) %t, HasRole(%s) %t", a, a, got.HasRole(a, "editor"), b, got.HasRole(b, "editor"))
	}
	members(a, "editor@a.example=2")

	// Granting a role held already changes nothing.
	if err := s.GrantRole(ctx, u.ID, editorA); err != nil {
		t.Errorf("GrantRole of a role held already: %v, want nil", err)
	}
	changed("a grant of a role held already")
	roles("editor@a.example")
	members(a, "editor@a.example=2")

	if err := s.GrantRole(ctx, u.ID, viewerB); err != nil {
		t.Fatalf("GrantRole: %v", err)
	}
	changed("a grant", uChange)
	roles("editor@a.example", "viewer@b.example")
	members(b, "editor@b.example=0 viewer@b.example=1")

	// Refusals record nothing.
	missing := u.ID + other.ID + 1000
	err := s.GrantRole(ctx, missing, editorA)
	if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), fmt.Sprint(missing)) || !strings.Contains(err.Error(), `"editor"`) {
		t.Errorf("GrantRole to a missing user: %v, want ErrNotFound naming the user and the role", err)
	}
	for _, r := range []store.Role{{Site: a}, {Name: "editor"}} {
		if err := s.GrantRole(ctx, u.ID, r); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("GrantRole(%q on %q) = %v, want an error", r.Name, r.Site, err)
		}
	}
	changed("refused grants")
	roles("editor@a.example", "viewer@b.example")

	// A role on one site is not the same name on another.
	err = s.RevokeRole(ctx, u.ID, editorB)
	if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), `"b.example"`) || !strings.Contains(err.Error(), fmt.Sprint(u.ID)) {
		t.Errorf("RevokeRole of a role held on another site: %v, want ErrNotFound naming the site and the user", err)
	}
	changed("revoking a role not held")
	roles("editor@a.example", "viewer@b.example")

	if err := s.RevokeRole(ctx, u.ID, editorA); err != nil {
		t.Fatalf("RevokeRole: %v", err)
	}
	changed("a revocation", uChange)
	roles("viewer@b.example")
	members(a, "editor@a.example=1")
	if err := s.RevokeRole(ctx, u.ID, editorA); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeRole of a role revoked already: %v, want ErrNotFound", err)
	}
	if err := s.RevokeRole(ctx, missing, editorA); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeRole from a missing user: %v, want ErrNotFound", err)
	}
	changed("revoking roles not held")

	// Granted again, it is held again; the catalog is not consulted (the
	// operator's commands are), so a role it lacks is granted too.
	for _, r := range []store.Role{editorA, {Site: a, Name: "uncatalogued"}} {
		if err := s.GrantRole(ctx, u.ID, r); err != nil {
			t.Fatalf("GrantRole(%s): %v", r, err)
		}
	}
	changed("two grants", uChange, uChange)
	roles("editor@a.example", "uncatalogued@a.example", "viewer@b.example")

	// A role of the empty site, which migrating to sites left where it could
	// not be placed, can be revoked.
	legacy := &store.User{Email: "legacy@example.org", Active: true, Roles: []store.Role{{Site: "", Name: "old"}}}
	if err := s.CreateUser(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	_, seq = changesAfter(t, s, seq)
	if err := s.RevokeRole(ctx, legacy.ID, store.Role{Name: "old"}); err != nil {
		t.Errorf("RevokeRole of a role of the empty site: %v", err)
	}
	changed("revoking a role of the empty site", fmt.Sprintf("user:%d", legacy.ID))
	if l := mustUser(t, s, legacy.ID); len(l.Roles) != 0 {
		t.Errorf("after the revocation the user holds %q", sortedRoles(l.Roles))
	}

	// Concurrent grants of one role: all succeed, one is the grant.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := s.GrantRole(ctx, other.ID, viewerB); err != nil {
				t.Errorf("concurrent GrantRole: %v", err)
			}
		})
	}
	wg.Wait()
	changed("concurrent grants of one role", fmt.Sprintf("user:%d", other.ID))
	members(b, "editor@b.example=0 viewer@b.example=2")
}
