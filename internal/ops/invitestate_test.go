package ops_test

import (
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/invite"
	"github.com/latchkeyhq/latchkey/internal/ops"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// TestInviteState: an invite's state and end, as the gateway would judge
// it now, by the rules of its site's handler.
func TestInviteState(t *testing.T) {
	day := 24 * time.Hour
	a := ops.SiteConf{Site: mustSite(t, "", []string{"a.example.com"}, ""), Invites: true,
		InviteRules: invite.Rules{UsageWindow: 2 * day, Expiry: 10 * day}}
	oneShot := ops.SiteConf{Site: mustSite(t, "", []string{"b.example.com"}, ""), Invites: true,
		InviteRules: invite.Rules{UsageWindow: 2 * day, Expiry: 0}}
	o := &ops.Ops{Sites: []ops.SiteConf{a, oneShot}, Now: func() time.Time { return now }}
	for _, c := range []struct {
		name  string
		inv   store.Invite
		state string
		end   time.Time
	}{
		{"fresh", store.Invite{Site: "a.example.com", CreatedAt: now.Add(-day)}, "valid", now.Add(day)},
		{"never used, window passed", store.Invite{Site: "a.example.com", CreatedAt: now.Add(-3 * day)}, "expired", now.Add(-day)},
		{"used, still a login code", store.Invite{Site: "a.example.com", CreatedAt: now.Add(-5 * day), FirstUsedAt: now.Add(-4 * day)}, "active", now.Add(6 * day)},
		{"used, expired", store.Invite{Site: "a.example.com", CreatedAt: now.Add(-20 * day), FirstUsedAt: now.Add(-19 * day)}, "expired", now.Add(-9 * day)},
		{"one-shot, used", store.Invite{Site: "b.example.com", CreatedAt: now.Add(-day), FirstUsedAt: now.Add(-time.Hour)}, "expired", now.Add(-time.Hour)},
		{"revoked", store.Invite{Site: "a.example.com", CreatedAt: now.Add(-day), RevokedAt: now.Add(-time.Hour)}, "revoked", now.Add(day)},
		{"site without a handler: the defaults", store.Invite{Site: "c.example.com", CreatedAt: now.Add(-day)}, "valid", now.Add(-day + invite.DefaultUsageWindow)},
	} {
		j := o.ToInviteJSON(&c.inv)
		if j.State != c.state || !j.ExpiresAt.Equal(c.end) {
			t.Errorf("%s: %s until %v, want %s until %v", c.name, j.State, j.ExpiresAt.Time, c.state, c.end)
		}
	}
}
