package store

import (
	"context"
	"time"
)

// Mail states. A mail is queued until a worker claims it (sending, under a
// lease), and then either sent, queued again for a later attempt, or
// failed for good.
const (
	MailQueued  = "queued"
	MailSending = "sending"
	MailSent    = "sent"
	MailFailed  = "failed"
)

// Mail kinds the gateway enqueues.
const (
	MailKindInvite    = "invite"
	MailKindLoginLink = "login_link"
)

// Mail is one message of the outbox, rendered when it was enqueued: what is
// queued is exactly what is sent.
//
// Text and HTML hold a live credential (an invite code, a sign-in link).
// The store blanks them once the mail leaves the queue for good (sent,
// failed or superseded), keeping only the envelope (to, subject, kind,
// state, times, error), so that the database does not keep credentials
// that were already handed over or will never be. Listings must never show
// the bodies.
type Mail struct {
	ID      int64
	Kind    string // MailKindInvite, MailKindLoginLink, …
	Site    string
	Ref     string // what the mail is about, e.g. the invite's id in decimal
	To      string // bare address
	ToName  string // recipient's name, may be empty
	Subject string
	Text    string // text/plain body; "" once sent or failed
	HTML    string // text/html body; "" once sent or failed
	State   string
	// Attempts counts claims, i.e. tries to send: the successful one, the
	// failed ones and any lost with a crashed worker.
	Attempts      int
	LastError     string
	CreatedAt     time.Time
	NextAttemptAt time.Time // when a queued mail is due
	// ExpiresAt: the credential inside stops working then, so the mail is
	// not worth sending after it; zero for none.
	ExpiresAt  time.Time
	LeaseUntil time.Time // while sending: when the claim lapses
	SentAt     time.Time
	FailedAt   time.Time // when it was given up
}

// MailFilter selects mails; zero fields do not filter.
type MailFilter struct {
	State string
	Kind  string
	Ref   string
	Limit int // 0: no limit
}

// Outbox is the durable queue mail is sent from: a request enqueues, a
// worker (in any of the gateways sharing the store) claims, sends and marks.
type Outbox interface {
	// EnqueueMail stores m and writes back ID, State, Attempts, CreatedAt
	// (now if zero) and NextAttemptAt (CreatedAt if zero). To and Kind are
	// required. With a zero LeaseUntil the mail is queued; with one after
	// CreatedAt it is enqueued already claimed by the caller (sending,
	// Attempts 1), which then sends it and marks it like a ClaimMail.
	// In the same transaction, queued mails with the same Kind and a Ref
	// equal to m's non-empty Ref are superseded: failed with LastError
	// "superseded by mail <id>" and their bodies blanked (a new invite code
	// kills the old one, so its mail is not worth sending).
	EnqueueMail(ctx context.Context, m *Mail) error
	// ClaimMail claims up to limit mails due at now — queued with
	// NextAttemptAt at or before now, or sending with a lease that lapsed
	// at or before now (a worker that died mid-send) — with one
	// conditional UPDATE, so that no two workers, in one process or in
	// several, hold the same mail at once. Each claimed mail is moved to
	// sending with LeaseUntil leaseUntil and Attempts+1, and returned as
	// updated, oldest due first. Nothing due: an empty slice, no error.
	ClaimMail(ctx context.Context, now, leaseUntil time.Time, limit int) ([]Mail, error)
	// MarkMailSent moves a mail claimed under leaseUntil to sent (SentAt at)
	// and blanks its bodies. MarkMailFailed ends the claim of a failed try:
	// with a non-zero retryAt the mail is queued again for then, with a
	// zero one it is given up (failed, FailedAt at, bodies blanked); either
	// way LastError is errMsg. Both apply only while the mail is sending
	// under exactly leaseUntil: a claim that lapsed and was taken over is
	// ErrConflict with nothing written; a missing mail is ErrNotFound.
	MarkMailSent(ctx context.Context, id int64, leaseUntil, at time.Time) error
	MarkMailFailed(ctx context.Context, id int64, leaseUntil, at time.Time, errMsg string, retryAt time.Time) error
	// Mail returns ErrNotFound for a missing id.
	Mail(ctx context.Context, id int64) (*Mail, error)
	// Mails lists newest first (CreatedAt, then ID), with Text and HTML
	// left empty whatever the state: a listing never needs the bodies.
	Mails(ctx context.Context, f MailFilter) ([]Mail, error)
}
