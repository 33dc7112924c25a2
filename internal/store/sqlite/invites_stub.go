package sqlite

// TEMPORARY placeholder so the tree compiles while the invites methods are
// written; whoever implements them in invites.go deletes this file.

import (
	"context"
	"errors"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

var errStub = errors.New("invites: not implemented yet")

func (s *Store) CreateInvite(context.Context, *store.Invite) error    { return errStub }
func (s *Store) Invite(context.Context, int64) (*store.Invite, error) { return nil, errStub }
func (s *Store) InviteByCodeHash(context.Context, []byte) (*store.Invite, error) {
	return nil, errStub
}
func (s *Store) Invites(context.Context, store.InviteFilter) ([]store.Invite, error) {
	return nil, errStub
}
func (s *Store) RevokeInvite(context.Context, int64, time.Time) error          { return errStub }
func (s *Store) SetInviteSent(context.Context, int64, time.Time, string) error { return errStub }
func (s *Store) RedeemInvite(context.Context, *store.Redemption) (*store.User, error) {
	return nil, errStub
}
