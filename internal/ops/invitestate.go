package ops

import (
	"github.com/latchkeyhq/latchkey/internal/invite"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// ToInviteJSON is inv's JSON form with its state by the rules of the site
// it belongs to, as the gateway would judge it now.
func (o *Ops) ToInviteJSON(inv *store.Invite) InviteJSON {
	j := ToInviteJSON(inv)
	rules := invite.DefaultRules()
	for _, s := range o.Sites {
		if s.Invites && invite.SameSite(inv.Site, s.Site.Name) {
			rules = s.inviteRules()
			break
		}
	}
	now := o.now()
	end := inv.CreatedAt.Add(rules.UsageWindow)
	if !inv.FirstUsedAt.IsZero() {
		end = rules.CodeExpiresAt(inv.FirstUsedAt)
		if end.IsZero() { // one-shot: it ended with its first use
			end = inv.FirstUsedAt
		}
	}
	j.ExpiresAt = At(end)
	switch {
	case !inv.RevokedAt.IsZero():
		j.State = "revoked"
	case !now.Before(end):
		j.State = "expired"
	case inv.FirstUsedAt.IsZero():
		j.State = "valid"
	default:
		j.State = "active"
	}
	return j
}
