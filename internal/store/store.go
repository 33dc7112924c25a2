// Package store defines what latchkey keeps: users, sessions, audit events
// and the gateway's own secret. Implementations live in subpackages (sqlite,
// and later postgres); every implementation passes the same conformance
// suite in storetest.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// ErrUserExists is returned by RedeemInvite when a redemption that must
// register a new user (NewUserOnly) finds one with the invite's site and
// address.
var ErrUserExists = errors.New("a user with that address already exists")

// ErrConflict is returned when a row would violate a uniqueness rule.
var ErrConflict = errors.New("already exists")

// User is a person the gateway knows. Site is the name of the site the user
// belongs to; the empty site means the user is known on every site. Roles
// always name their site: a role on one site grants nothing on another.
type User struct {
	ID             int64
	Site           string
	Email          string
	Name           string
	Phone          string
	Active         bool
	Roles          []Role
	CreatedAt      time.Time
	CurrentLoginAt time.Time
	CurrentLoginIP string
	LastLoginAt    time.Time
	LastLoginIP    string
	LoginCount     int64
	// LinksRevokedBefore: signed links for this user issued (iat) before
	// this time are refused; set by revoking all of a user's links.
	LinksRevokedBefore time.Time
	// PasswordHash is the user's password hash as internal/password reads
	// it (argon2id, or a legacy app's hash until the next login upgrades
	// it); "" when the user has none. Never shown: listings name its
	// scheme only.
	PasswordHash string
}

// Role is a role held on one site. A Role with an empty Site grants nothing:
// it is what a role of a user known on every site became when sites were
// introduced, until an operator grants it again on a named site.
type Role struct {
	Site string
	Name string
}

// String is "name" for a role on site, else "name@site".
func (r Role) String() string { return r.Name + "@" + r.Site }

// HasRole reports whether the user holds role on site. An empty site never
// matches: every site a gateway serves has a name.
func (u *User) HasRole(site, role string) bool {
	if site == "" {
		return false
	}
	for _, r := range u.Roles {
		if r.Name == role && r.Site == site {
			return true
		}
	}
	return false
}

// RolesOn lists the names of the roles the user holds on site.
func (u *User) RolesOn(site string) []string {
	var out []string
	for _, r := range u.Roles {
		if r.Site == site && site != "" {
			out = append(out, r.Name)
		}
	}
	return out
}

// Session is a server-side gateway session. Only the keyed hash of the cookie
// value is kept; ID is the public identifier sent upstream as X-Session-ID.
type Session struct {
	ID     string
	UserID int64
	// Site is the site the session was started on; no other site accepts it.
	Site       string
	TokenHash  []byte
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time // absolute end, fixed at creation
	RevokedAt  time.Time // zero while not revoked
	IP         string
	UserAgent  string
	// Kind and CredentialID name the credential that started the session
	// (for example "invite" and the invite's id), so that a session can be
	// ended when that credential expires.
	Kind         string
	CredentialID string
}

// SessionUser is a session joined with the state of its user, which is what
// the request hot path needs in one lookup.
type SessionUser struct {
	Session
	UserActive bool
}

// AuditEvent is one credential attempt, accepted or refused.
type AuditEvent struct {
	ID           int64
	Time         time.Time
	Kind         string // "session", "invite", "ticket", "link"
	CredentialID string
	UserID       int64 // 0 when unknown
	SessionID    string
	Outcome      string // "accepted" or "refused"
	Reason       string
	Method       string
	Host         string
	Path         string
	Status       int // upstream or gateway response status, 0 if unknown
	ClientIP     string
	UserAgent    string
	UABrowser    string
	UAVersion    string
	UAOS         string
	UADevice     string // "desktop", "mobile", "bot", "unknown"
	UABot        bool
	Latency      time.Duration
	// Count is how many identical refusals the record stands for: the audit
	// writer folds a flood (same client IP, reason, kind and host within a
	// second) into its first record. 0 or 1 is one; the store keeps at
	// least 1 and reads back what it keeps.
	Count int64
	// CountsLinkUse: the record is a use of a link with unlimited uses
	// (CredentialID its jti), and WriteAudit counts it on the link's row
	// (uses, first and last use) with the record. Limited links are
	// counted by UseLink, in the use's own transaction.
	CountsLinkUse bool
	// StatusUpdate: this is not a new record but the upstream's status and
	// the latency of the record with ID, written earlier with a consumed
	// credential. WriteAudit fills them in; a missing record is skipped.
	StatusUpdate bool
}

// Outcomes of an audit event.
const (
	OutcomeAccepted = "accepted"
	OutcomeRefused  = "refused"
)

// AuditFilter selects audit events; zero fields do not filter.
type AuditFilter struct {
	Since        time.Time
	Until        time.Time // records before it (exclusive); zero: no bound
	CredentialID string
	UserID       int64
	Kind         string
	Outcome      string
	Reason       string
	ClientIP     string
	SessionID    string
	// Hosts: records whose host (without its port) is one of these; a
	// site's hosts, for `audit list --site`.
	Hosts []string
	// BeforeID continues a listing: records older than the record with
	// this id (in the listing's order: time, then id, newest first).
	BeforeID int64
	Limit    int
}

// SessionFilter selects sessions; zero fields do not filter.
type SessionFilter struct {
	UserID     int64
	Site       string
	ActiveOnly bool
	Now        time.Time
	Limit      int
}

// Invite lets one person into one site. Only the keyed hash of its code is
// kept: the plain code is shown once, when the invite is created.
type Invite struct {
	ID        int64
	Site      string // host name the code works on
	Email     string // stored trimmed and lower-cased, as for users
	Name      string
	Phone     string
	CodeHash  []byte
	CreatedAt time.Time
	CreatedBy string // "cli", "admin-api", "user:<id>"
	// Set by the first use, which registers the user.
	UserID      int64
	FirstUsedAt time.Time
	LastUsedAt  time.Time
	UseCount    int64
	RevokedAt   time.Time
	// Delivery: SentAt is the last successful send; SendError the last
	// failure ("" after a success).
	SentAt    time.Time
	SendError string
}

// InviteFilter selects invites; zero fields do not filter.
type InviteFilter struct {
	Site  string
	Limit int // 0: no limit
}

// Redemption is one accepted use of an invite code. The store writes the use,
// the user (on first use), the login, the session and the audit record in one
// transaction, deciding the use with one conditional UPDATE so that
// concurrent uses cannot both pass a rule.
type Redemption struct {
	InviteID int64
	At       time.Time
	IP       string // recorded as the user's login IP
	// First: the registering use. It succeeds only while the invite is
	// unused, unrevoked and CreatedAt > CreatedAfter (the usage window).
	// It creates NewUser (site, email, name, phone of the invite) unless a
	// user with that site and email exists, in which case that user is
	// linked; either way the invite's UserID is set. A created user takes
	// site and e-mail address from the invite and is active; NewUser gives
	// the rest (name, phone, roles, and CreatedAt, At if zero), and a nil
	// NewUser takes name and phone from the invite. A zero CreatedAfter
	// sets no window.
	First   bool
	NewUser *User
	// NewUserOnly: the registering use must create the user; one that
	// exists already makes it fail with ErrUserExists, writing nothing.
	// Invites made by staff on the site's page are so: they may never hand
	// over an account, even one created after the invite.
	NewUserOnly  bool
	CreatedAfter time.Time
	// Later uses succeed only while the invite is unrevoked, already
	// registered and FirstUsedAt > FirstUsedAfter (the expiry); a zero
	// FirstUsedAfter sets no expiry.
	FirstUsedAfter time.Time
	// Session and Audit are written in the same transaction; the store fills
	// in Session.UserID, Audit.UserID and Audit.SessionID (the latter only
	// with a Session), and writes both back, with the defaults
	// CreateSession fills in, only if the transaction commits. A zero
	// Audit.Time is stored as At.
	Session *Session
	Audit   *AuditEvent
}

// Link is the server-side record of a signed link, keyed by its JWT id. A
// link minted by the CLI or admin API gets its row at creation; one minted
// offline (with the mint package) gets it at its first use.
type Link struct {
	JTI string
	// Site is the site the link was made for or first used on; it is used
	// on no other.
	Site        string
	UserID      int64
	Target      string // host + path the link is bound to
	Mode        string // "request" or "login"
	MaxUses     int    // 0: unlimited within ExpiresAt
	Uses        int
	CreatedAt   time.Time
	CreatedBy   string
	ExpiresAt   time.Time
	FirstUsedAt time.Time
	LastUsedAt  time.Time
	RevokedAt   time.Time
}

// LinkFilter selects links; zero fields do not filter.
type LinkFilter struct {
	UserID int64
	Limit  int // 0: no limit
}

// LinkUse is one accepted use of a signed link. The store takes the use with
// one conditional UPDATE (so N concurrent uses of a max_uses 3 link give
// exactly 3 successes) and writes the session (login mode) and the audit
// record in the same transaction.
type LinkUse struct {
	// The link as its verified token describes it; used to create the row
	// when the link was minted offline.
	JTI string
	// Site is where the use happens: a link whose row names another site is
	// refused (ErrConflict) like one used up.
	Site      string
	UserID    int64
	Target    string
	Mode      string
	MaxUses   int
	ExpiresAt time.Time
	At        time.Time
	// Session and Audit are written back, with the defaults CreateSession
	// fills in and the audit record's ID (for SetAuditStatus), only if the
	// transaction commits. The store fills in a zero Audit.UserID from
	// UserID and an empty Audit.SessionID from the session; a zero
	// Audit.Time is stored as At.
	Session *Session    // nil in request mode; UserID filled by the caller
	Audit   *AuditEvent // ID is written back, for SetAuditStatus
}

// Ticket states.
const (
	TicketValid   = "valid"
	TicketInUse   = "in_use"
	TicketUsed    = "used"
	TicketRevoked = "revoked"
	TicketExpired = "expired"
)

// Ticket lets a guest do one action at a place, for a purpose. Only a hash
// of its password is kept: PasswordKind says which ("keyed" for generated
// passwords, "argon2id" for passwords a person chose).
type Ticket struct {
	UUID         string
	Place        string
	Purpose      string
	PasswordHash []byte
	PasswordKind string
	CreatedAt    time.Time
	ExpiresAt    time.Time // zero: never
	UserID       int64     // 0: none
	Data         []byte    // a JSON object, "{}" when empty
	State        string
	LeaseUntil   time.Time // while in_use: when the claim lapses
	UsedAt       time.Time
	UseIP        string
	UseUserAgent string
	UseStatus    int
	RevokedAt    time.Time
}

// TicketFilter selects tickets; zero fields do not filter.
type TicketFilter struct {
	Place   string
	Purpose string
	State   string
	Limit   int // 0: no limit
}

// Store is everything latchkey persists, split by concern so that each
// consumer can name only what it uses. Implementations must be safe for
// concurrent use, and pass the conformance suite in storetest.
type Store interface {
	Meta
	Users
	Roles
	Sessions
	AuditLog
	Invites
	Links
	Tickets
	Changes
	Throttles
	Outbox    // the mail outbox, outbox.go
	Retention // the janitor's deletions and blanking
	Stats     // the admin dashboard's figures of one site
}

// RetainPolicy is what one retention run removes. Each cut is a time: what
// is older goes, what is as old or newer stays; a zero cut removes nothing
// of its kind.
type RetainPolicy struct {
	// SessionsEndedBefore: sessions that expired or were revoked before it
	// are deleted. Deleting a session records a change (see Changes), so
	// every gateway drops it from its cache.
	SessionsEndedBefore time.Time
	// IPsBefore: IP addresses recorded before it are blanked: a session's
	// (recorded when it started, CreatedAt), a user's current and last
	// login's (each by its own time) and an audit record's (by its Time).
	// Nothing else of the row changes.
	IPsBefore time.Time
	// AuditBefore: audit records before it are deleted; zero keeps them.
	AuditBefore time.Time
	// Batch is how many rows one statement deletes or changes, each batch
	// in a transaction of its own, so that a big table does not hold the
	// writer (SQLite's one, PostgreSQL's row locks) for long; 0 is
	// DefaultRetainBatch.
	Batch int
}

// DefaultRetainBatch is RetainPolicy's default batch. Deleting sessions is
// the slowest step: on SQLite, about 25ms a thousand (each deletion records
// a change and takes the row out of six indexes), which is as long as a
// batch should keep other writers waiting.
const DefaultRetainBatch = 1000

// RetainResult counts what a retention run removed.
type RetainResult struct {
	SessionsDeleted   int
	SessionIPsBlanked int
	// LoginIPsBlanked counts addresses: a user whose current and last
	// logins were both blanked counts two.
	LoginIPsBlanked int
	AuditIPsBlanked int
	AuditDeleted    int
}

// Retention removes what latchkey keeps no longer than the operator
// allows (the janitor, internal/ops).
type Retention interface {
	// Retain applies p and counts what it removed. It works in batches of
	// p.Batch rows, each committed on its own: a run that fails or whose
	// ctx ends keeps what its finished batches did, and the next run goes
	// on from there. Runs are idempotent (a second run with the same
	// policy removes nothing) and may overlap, in one process or several,
	// without counting a row twice.
	//
	// A store may remember how far it has blanked the audit trail (which
	// is too big to search again on every run) and start the next run
	// there: a record written after a run, with a Time before that run's
	// IPsBefore, may keep its address. The audit writer writes records
	// within seconds of their time, and IPsBefore is far older.
	Retain(ctx context.Context, p RetainPolicy) (RetainResult, error)
}

// Throttles count failed attempts for every gateway on the store.
type Throttles interface {
	// Failures is the count of key's window that is open at now (0 when
	// none is), and when that window ends.
	Failures(ctx context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error)
	// AddFailure counts one failure of key at now, in one statement:
	// in the open window, or in a new one starting at now; it returns the
	// count and when the window ends.
	AddFailure(ctx context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error)
	// PruneThrottles deletes windows that ended before before.
	PruneThrottles(ctx context.Context, before time.Time) (int, error)
}

// Change is a revocation or deactivation that every gateway on the store
// must see: the store records one whenever a session is revoked or deleted,
// whenever a user is deactivated, reactivated or deleted or has their links
// revoked, and whenever a link is revoked or deleted.
type Change struct {
	Seq     int64
	Kind    string // ChangeSession, ChangeUser or ChangeLink
	Subject string // the session's id, the user's id in decimal, or the link's jti
	At      time.Time
}

// Kinds of Change.
const (
	ChangeSession = "session"
	ChangeUser    = "user"
	ChangeLink    = "link"
)

// Changes is the fan-out of revocations, which every gateway follows to
// keep what it caches correct.
type Changes interface {
	// ChangesSince lists changes with Seq > after, oldest first, at most
	// limit of them.
	ChangesSince(ctx context.Context, after int64, limit int) ([]Change, error)
	// LatestChange is the newest Seq, 0 when there is none.
	LatestChange(ctx context.Context) (int64, error)
	// PruneChanges deletes changes recorded before before, and reports how
	// many.
	PruneChanges(ctx context.Context, before time.Time) (int, error)
}

// ChangeWaiter is a store that can say at once that changes were recorded
// (PostgreSQL's LISTEN/NOTIFY); others are polled.
type ChangeWaiter interface {
	// WaitChange returns when changes may have been recorded, or with ctx's
	// error, or with an error when the store cannot say (the caller polls).
	WaitChange(ctx context.Context) error
}

// Meta is the store itself: its secret, schema and lifetime.
type Meta interface {
	// Secret returns the gateway's signing secret, generating and keeping
	// newSecret on first use. Concurrent first calls from several processes
	// agree on one value.
	// With an empty newSecret it only reads, and returns ErrNotFound if no
	// secret was ever kept.
	Secret(ctx context.Context, newSecret []byte) ([]byte, error)
	// DeleteSecret removes the secret Secret keeps, so that the store holds
	// none (the gateway moves it to a file beside the store). Deleting when
	// there is none is not an error.
	DeleteSecret(ctx context.Context) error

	// SchemaVersion is the version of the newest migration applied.
	SchemaVersion(ctx context.Context) (int, error)
	Close() error
}

// Backuper is a store that can copy itself into a new file while gateways
// keep using it (SQLite); a database server's own tools back it up instead.
type Backuper interface {
	// Backup writes a consistent snapshot of the store to a new file at
	// path. It never replaces a file: if path exists it fails with an
	// error wrapping fs.ErrExist and leaves that file as it was. The file
	// appears complete or not at all.
	Backup(ctx context.Context, path string) (BackupInfo, error)
}

// BackupInfo describes a backup Backup wrote.
type BackupInfo struct {
	Path          string // absolute
	Size          int64  // bytes
	SchemaVersion int    // the backup's, read back from it
}

// Users are the people the gateway knows.
type Users interface {
	// CreateUser stores the e-mail address trimmed and lower-cased, so that
	// one person typing it two ways is still one user, and writes back ID,
	// that Email and, if it was zero, CreatedAt. A second user with the same
	// site and address is ErrConflict.
	CreateUser(ctx context.Context, u *User) error
	User(ctx context.Context, id int64) (*User, error)
	// UserByEmail matches the site exactly and the address as CreateUser
	// stores it; it does not fall back to the empty site.
	UserByEmail(ctx context.Context, site, email string) (*User, error)
	// Users lists every user with roles, by ID.
	Users(ctx context.Context) ([]User, error)
	SetUserActive(ctx context.Context, id int64, active bool) error
	// RecordLogin moves the current login to last login and sets a new one.
	RecordLogin(ctx context.Context, id int64, at time.Time, ip string) error
	// SetPassword replaces the user's password hash ("" removes it); a
	// missing user is ErrNotFound. It is a change of the user (see
	// Changes), so gateways drop their cached row.
	SetPassword(ctx context.Context, id int64, hash string) error
}

// RoleDef is a role that exists on a site: what `roles create` makes and
// `roles list` shows. Granting a role needs its RoleDef (ops checks), so a
// typo cannot grant a role no route requires.
type RoleDef struct {
	Site        string
	Name        string
	Description string
	CreatedAt   time.Time
	// Members is how many users hold the role; filled in by RoleDefs.
	Members int
}

// Roles are the roles of each site and who holds them. Every grant and
// revocation is a change of the user (see Changes), so that every gateway
// drops the user's cached row and the next request sees the new roles.
type Roles interface {
	// CreateRole writes back CreatedAt if it was zero; a role that exists
	// on the site is ErrConflict.
	CreateRole(ctx context.Context, r *RoleDef) error
	// RoleDefs lists the roles of site (every site's when site is ""), by
	// site and name, with their member counts.
	RoleDefs(ctx context.Context, site string) ([]RoleDef, error)
	// GrantRole gives the user the role; granting one held already is not
	// an error. A missing user is ErrNotFound.
	GrantRole(ctx context.Context, userID int64, r Role) error
	// RevokeRole takes the role from the user; ErrNotFound when the user
	// did not hold it.
	RevokeRole(ctx context.Context, userID int64, r Role) error
}

// Sessions are gateway sessions.
type Sessions interface {
	// CreateSession fails if the user does not exist, and with ErrConflict
	// if the ID or token hash is taken.
	CreateSession(ctx context.Context, s *Session) error
	// SessionByTokenHash returns revoked and expired sessions as well, so
	// that the caller can tell a stale cookie from an unknown one.
	SessionByTokenHash(ctx context.Context, hash []byte) (*SessionUser, error)
	// TouchSession records activity; it only moves LastSeenAt forward.
	// Touching a missing session is not an error: it runs on every request
	// and the next lookup reports the session gone anyway.
	TouchSession(ctx context.Context, id string, at time.Time) error
	// RevokeSession keeps the first revocation time if called again.
	RevokeSession(ctx context.Context, id string, at time.Time) error
	// Sessions lists newest first; a zero Limit means no limit.
	Sessions(ctx context.Context, f SessionFilter) ([]Session, error)
}

// AuditLog is the audit trail.
type AuditLog interface {
	// WriteAudit writes a batch atomically; batching is what makes the
	// audit log cheap enough to keep for every request. Events with
	// StatusUpdate update the record they name instead.
	WriteAudit(ctx context.Context, events []AuditEvent) error
	// Audit lists newest first; a zero Limit means 100, so that a careless
	// call cannot read the whole log.
	Audit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)

	// SetAuditStatus fills in the response status and latency of an audit
	// record written earlier (a consumed credential's record is written
	// before the upstream answers). A missing record is ErrNotFound.
	SetAuditStatus(ctx context.Context, id int64, status int, latency time.Duration) error
}

// Invites are invite codes and their redemption.
type Invites interface {
	// CreateInvite writes back ID, Email as stored and, if zero, CreatedAt.
	// A code hash that is already taken is ErrConflict (the caller makes a
	// new code); an empty e-mail address or code hash is an error.
	CreateInvite(ctx context.Context, inv *Invite) error
	Invite(ctx context.Context, id int64) (*Invite, error)
	InviteByCodeHash(ctx context.Context, hash []byte) (*Invite, error)
	// Invite and InviteByCodeHash return ErrNotFound for a missing invite.
	// Invites lists newest first; the site matches exactly.
	Invites(ctx context.Context, f InviteFilter) ([]Invite, error)
	// RevokeInvite also revokes every session the invite started (Kind
	// "invite", CredentialID the invite's id in decimal), in the same
	// transaction. Like RevokeSession it keeps the invite's first
	// revocation time, and a session already revoked keeps its own. A
	// missing invite is ErrNotFound.
	RevokeInvite(ctx context.Context, id int64, at time.Time) error
	// ReplaceInviteCode gives an unrevoked invite a new code hash, for a
	// resend (the old code is not kept, so it cannot be sent again). A
	// missing or revoked invite is ErrNotFound; a taken hash ErrConflict.
	ReplaceInviteCode(ctx context.Context, id int64, hash []byte) error
	// SetInviteSent records a delivery attempt: sendErr "" for success,
	// which sets SentAt and clears SendError; a failure sets only
	// SendError. A missing invite is ErrNotFound.
	SetInviteSent(ctx context.Context, id int64, at time.Time, sendErr string) error
	// RedeemInvite applies r atomically and returns the user logged in. If
	// the conditional update matches nothing (used, revoked, out of its
	// window, or a concurrent use won) it returns ErrConflict and writes
	// nothing; the caller re-reads the invite to tell why. Only that update
	// reports ErrConflict: any other failure, a session ID or token hash
	// already taken included, is an error that is not ErrConflict, and also
	// writes nothing. A missing invite matches nothing, so it is ErrConflict.
	RedeemInvite(ctx context.Context, r *Redemption) (*User, error)
}

// Links are the server-side records of signed links.
type Links interface {
	// CreateLink records a link at creation; an existing JTI is ErrConflict.
	// A zero CreatedAt is stored as now and written back.
	CreateLink(ctx context.Context, l *Link) error
	// Link returns ErrNotFound for a JTI with no row.
	Link(ctx context.Context, jti string) (*Link, error)
	// Links lists newest first; a zero Limit means no limit.
	Links(ctx context.Context, f LinkFilter) ([]Link, error)
	// RevokeLink keeps the first revocation time; a JTI with no row yet
	// (minted offline, never used) gets a revoked row (CreatedAt at,
	// CreatedBy "revoked", MaxUses 1), so it can never be used.
	// Sessions the link started (Kind "link", CredentialID the JTI) are
	// revoked with it, in the same transaction.
	RevokeLink(ctx context.Context, jti string, at time.Time) error
	// RevokeUserLinks sets the user's LinksRevokedBefore to at and revokes
	// every row of theirs, in one transaction. Missing user: ErrNotFound.
	// The user's sessions started by links are revoked too.
	RevokeUserLinks(ctx context.Context, userID int64, at time.Time) error
	// UseLink takes one use: it creates the row if missing (from u, with
	// CreatedAt u.At and CreatedBy "offline"; an existing row keeps its own
	// MaxUses and other fields), then conditionally increments uses (not
	// revoked, uses < max_uses unless max_uses is 0) and returns the new
	// count. A link used up or revoked is ErrConflict with nothing written;
	// the caller re-reads to tell which. As for RedeemInvite, only that
	// refusal is ErrConflict: any other failure (a taken session ID or
	// token hash included) is another error, and also writes nothing.
	UseLink(ctx context.Context, u *LinkUse) (uses int, err error)
}

// Tickets are one-shot tickets.
type Tickets interface {
	// CreateTicket stores a new ticket (State valid unless set); a taken
	// UUID is ErrConflict. An empty Data is stored as "{}" and a zero
	// CreatedAt as now; the defaults are written back.
	CreateTicket(ctx context.Context, t *Ticket) error
	Ticket(ctx context.Context, uuid string) (*Ticket, error)
	// Tickets lists newest first.
	Tickets(ctx context.Context, f TicketFilter) ([]Ticket, error)
	// RevokeTicket moves a valid or in_use ticket to revoked; a used,
	// expired or already revoked one is ErrConflict; missing ErrNotFound.
	RevokeTicket(ctx context.Context, uuid string, at time.Time) error
	// ClaimTicket moves a ticket to in_use with a lease until leaseUntil,
	// with one conditional UPDATE: only from valid, or from in_use whose
	// lease has lapsed (a crashed request), and only while not expired
	// (ExpiresAt zero or after at). The audit record is written in the same
	// transaction and its ID written back. Not claimable: ErrConflict,
	// nothing written; the caller re-reads to tell why.
	ClaimTicket(ctx context.Context, uuid string, at, leaseUntil time.Time, audit *AuditEvent) error
	// FinishTicket ends a claim: stamp moves it to used (recording at, ip,
	// userAgent and status), otherwise back to valid. It applies only while
	// the ticket is still in_use under the same lease (leaseUntil), so a
	// claim that lapsed and was taken over is not clobbered: ErrConflict
	// then. The claim's audit record (auditID) gets status and latency in
	// the same transaction; an auditID of 0, or one naming no record, only
	// finishes the ticket.
	FinishTicket(ctx context.Context, uuid string, leaseUntil time.Time, stamp bool, at time.Time, ip, userAgent string, status int, auditID int64, latency time.Duration) error
	// ExpireTickets marks valid tickets whose ExpiresAt is at or before at
	// as expired, and returns how many. Nothing is deleted.
	ExpireTickets(ctx context.Context, at time.Time) (int, error)
}

// Stats are the figures of one site that its admin dashboard shows. Audit
// counts add up the records' Count, so that a flood of refusals folded into
// one record counts what it stands for.
type Stats interface {
	// AuditHistogram counts the records of q by outcome in buckets q.Step
	// wide from q.Since (bucket i holds [Since+i*Step, Since+(i+1)*Step)),
	// in bucket and then outcome order; empty buckets are left out.
	AuditHistogram(ctx context.Context, q StatsQuery) ([]AuditBucket, error)
	// AuditTop counts the records of q by the value of one field (by,
	// TallyClientIP, TallyReason or TallyKind): the limit largest counts,
	// largest first, equal counts by value.
	AuditTop(ctx context.Context, q StatsQuery, by string, limit int) ([]Tally, error)
	// CountSessions counts the site's sessions that are live at now: not
	// revoked, not expired, and seen at or after seenSince (zero: any time).
	CountSessions(ctx context.Context, site string, now, seenSince time.Time) (int, error)
	// MailCounts counts the site's mails by state.
	MailCounts(ctx context.Context, site string) (map[string]int, error)
	// SiteMails lists the site's latest mails as Mails does: newest first,
	// without bodies.
	SiteMails(ctx context.Context, site string, limit int) ([]Mail, error)
}

// StatsQuery selects the audit records Stats counts: those with Since <=
// Time < Until whose host is one of Hosts.
type StatsQuery struct {
	// Hosts are a site's hosts, as site.Site keeps them (lower case, no
	// port). A record's host matches one whatever its case and port; a
	// "*.example.com" matches one label before example.com, as the site
	// does. Empty: every record, whatever its host.
	Hosts        []string
	Since, Until time.Time
	// Outcome, when set, counts only records with it.
	Outcome string
	// Step is AuditHistogram's bucket width; it must be positive there.
	Step time.Duration
}

// AuditBucket is the count of one outcome in one bucket of a histogram.
type AuditBucket struct {
	Start   time.Time
	Outcome string
	Count   int64
}

// Tally is a value and how many records had it.
type Tally struct {
	Value string
	Count int64
}

// Fields AuditTop counts by.
const (
	TallyClientIP = "client_ip"
	TallyReason   = "reason"
	TallyKind     = "kind"
)
