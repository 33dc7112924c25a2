package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// TestGroupCommitExactlyOnce: N concurrent consumptions of one credential,
// which the committer puts into shared transactions, give exactly the
// successes the credential allows, and each success has exactly its own
// audit record (and session), written in the same transaction; the refused
// ones write nothing and get nothing written back.
func TestGroupCommitExactlyOnce(t *testing.T) {
	ctx := t.Context()
	s := openTemp(t)
	const site = "s.example"
	u := &store.User{Site: site, Email: "owner@s.example", Active: true}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateLink(ctx, &store.Link{JTI: "L3", Site: site, UserID: u.ID, Target: site + "/x", Mode: "login", MaxUses: 3}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTicket(ctx, testTicket("T1")); err != nil {
		t.Fatal(err)
	}
	inv := &store.Invite{Site: site, Email: "guest@s.example", Name: "Guest", CodeHash: []byte("code-1")}
	if err := s.CreateInvite(ctx, inv); err != nil {
		t.Fatal(err)
	}
	invID := fmt.Sprint(inv.ID)

	const n = 300
	type result struct {
		err   error
		uses  int
		audit store.AuditEvent
		sess  store.Session
	}
	var links, tickets, invites [n]result
	start := make(chan struct{})
	var wg sync.WaitGroup
	now := time.Now()
	for i := range n {
		reason := fmt.Sprint("g", i)
		wg.Go(func() {
			<-start
			r := &links[i]
			r.audit = store.AuditEvent{Kind: "link", CredentialID: "L3", Outcome: store.OutcomeAccepted, Reason: reason}
			r.sess = store.Session{ID: "link-" + reason, UserID: u.ID, Site: site, TokenHash: []byte("link-hash-" + reason),
				ExpiresAt: now.Add(time.Hour), Kind: "link", CredentialID: "L3"}
			r.uses, r.err = s.UseLink(ctx, &store.LinkUse{JTI: "L3", Site: site, UserID: u.ID, Target: site + "/x", Mode: "login",
				MaxUses: 3, Session: &r.sess, Audit: &r.audit})
		})
		wg.Go(func() {
			<-start
			r := &tickets[i]
			r.audit = store.AuditEvent{Kind: "ticket", CredentialID: "T1", Outcome: store.OutcomeAccepted, Reason: reason}
			r.err = s.ClaimTicket(ctx, "T1", time.Time{}, time.Now().Add(time.Minute), &r.audit)
		})
		wg.Go(func() {
			<-start
			r := &invites[i]
			r.audit = store.AuditEvent{Kind: "invite", CredentialID: invID, Outcome: store.OutcomeAccepted, Reason: reason}
			r.sess = store.Session{ID: "invite-" + reason, Site: site, TokenHash: []byte("invite-hash-" + reason),
				ExpiresAt: now.Add(time.Hour), Kind: "invite", CredentialID: invID}
			_, r.err = s.RedeemInvite(ctx, &store.Redemption{InviteID: inv.ID, First: true, IP: "192.0.2.1",
				Session: &r.sess, Audit: &r.audit})
		})
	}
	close(start)
	wg.Wait()

	// check counts the outcomes of one kind of consumption and compares
	// the winners with the accepted audit records of the credential.
	check := func(kind, cred string, rs *[n]result, want int) map[string]result {
		t.Helper()
		won := map[string]result{}
		for i := range rs {
			r := &rs[i]
			switch {
			case r.err == nil:
				won[r.audit.Reason] = *r
				if r.audit.ID == 0 {
					t.Errorf("%s %s: winner %d got no audit ID back", kind, cred, i)
				}
			case errors.Is(r.err, store.ErrConflict):
				if r.audit.ID != 0 {
					t.Errorf("%s %s: refused caller %d got audit ID %d back", kind, cred, i, r.audit.ID)
				}
			default:
				t.Errorf("%s %s: caller %d: %v (want success or ErrConflict)", kind, cred, i, r.err)
			}
		}
		if len(won) != want {
			t.Errorf("%s %s: %d of %d consumptions succeeded, want exactly %d", kind, cred, len(won), n, want)
		}
		rows, err := s.r.QueryContext(ctx, `SELECT id, reason, outcome, session_id FROM audit WHERE kind = ? AND credential_id = ?`, kind, cred)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		seen := map[string]bool{}
		for rows.Next() {
			var id int64
			var reason, outcome, sessID string
			if err := rows.Scan(&id, &reason, &outcome, &sessID); err != nil {
				t.Fatal(err)
			}
			w, ok := won[reason]
			switch {
			case !ok:
				t.Errorf("%s %s: audit record %d (%s) belongs to no successful consumption", kind, cred, id, reason)
			case seen[reason]:
				t.Errorf("%s %s: a second audit record %d for %s", kind, cred, id, reason)
			case id != w.audit.ID || outcome != store.OutcomeAccepted:
				t.Errorf("%s %s: record %d %s for %s; the caller was given ID %d", kind, cred, id, outcome, reason, w.audit.ID)
			case kind != "ticket" && (sessID == "" || sessID != w.sess.ID):
				t.Errorf("%s %s: record %d names session %q, the caller's is %q", kind, cred, id, sessID, w.sess.ID)
			}
			seen[reason] = true
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if len(seen) != len(won) {
			t.Errorf("%s %s: %d audit records for %d successful consumptions", kind, cred, len(seen), len(won))
		}
		return won
	}

	wonLinks := check("link", "L3", &links, 3)
	var gotUses []int
	for _, r := range wonLinks {
		gotUses = append(gotUses, r.uses)
	}
	slices.Sort(gotUses)
	if !slices.Equal(gotUses, []int{1, 2, 3}) {
		t.Errorf("winners of L3 were told uses %v, want 1, 2, 3", gotUses)
	}
	if l, err := s.Link(ctx, "L3"); err != nil || l.Uses != 3 {
		t.Errorf("link L3 = %+v, %v; want uses 3", l, err)
	}
	check("ticket", "T1", &tickets, 1)
	if tk, err := s.Ticket(ctx, "T1"); err != nil || tk.State != store.TicketInUse {
		t.Errorf("ticket T1 = %+v, %v; want in_use", tk, err)
	}
	wonInvite := check("invite", invID, &invites, 1)
	got, err := s.Invite(ctx, inv.ID)
	if err != nil || got.UseCount != 1 || got.UserID == 0 || got.FirstUsedAt.IsZero() {
		t.Errorf("invite = %+v, %v; want used once, with a user", got, err)
	}

	// Sessions come and go with their consumptions, like the records.
	for kind, wantN := range map[string]int{"link": 3, "invite": 1} {
		rows, err := s.r.QueryContext(ctx, `SELECT id FROM sessions WHERE kind = ?`, kind)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for rows.Next() {
			var id string
			rows.Scan(&id)
			ids = append(ids, id)
		}
		rows.Close()
		if len(ids) != wantN {
			t.Errorf("%d %s sessions %v, want %d", len(ids), kind, ids, wantN)
		}
		for _, id := range ids {
			if !strings.HasPrefix(id, kind+"-") {
				t.Errorf("%s session %q", kind, id)
				continue
			}
			var r result
			var ok bool
			if kind == "link" {
				r, ok = wonLinks[strings.TrimPrefix(id, kind+"-")]
			} else {
				r, ok = wonInvite[strings.TrimPrefix(id, kind+"-")]
			}
			if !ok {
				t.Errorf("%s session %q belongs to a refused consumption", kind, id)
			} else if r.sess.ID != id {
				t.Errorf("%s session %q written back as %q", kind, id, r.sess.ID)
			}
		}
	}
	var users, logins int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(login_count), 0) FROM users WHERE email = 'guest@s.example'`).Scan(&users, &logins); err != nil {
		t.Fatal(err)
	}
	if users != 1 || logins != 1 {
		t.Errorf("invitee: %d users with %d logins, want 1 and 1", users, logins)
	}
}

// Crash test: a child process (this test binary, re-run) hammers the store
// until the parent kills it with SIGKILL; the parent then reopens the file
// and checks that it is intact and that every consumption that committed
// has its audit record, and no record exists without its consumption.
const (
	crashDBEnv  = "LATCHKEY_CRASH_DB"
	crashRunEnv = "LATCHKEY_CRASH_RUN"
	crashSite   = "crash.example"
)

// TestCrashChild is the process TestGroupCommitSurvivesKill9 kills; it does
// nothing unless started by it.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashDBEnv)
	if path == "" {
		return
	}
	run := os.Getenv(crashRunEnv)
	die := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "crash child: "+format+"\n", args...)
		os.Exit(2)
	}
	// Never outlive a parent that went away without killing us.
	time.AfterFunc(30*time.Second, func() { die("not killed within 30s") })

	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		die("%v", err)
	}
	links, err := s.Links(ctx, store.LinkFilter{})
	if err != nil {
		die("%v", err)
	}
	tickets, err := s.Tickets(ctx, store.TicketFilter{State: store.TicketValid})
	if err != nil {
		die("%v", err)
	}
	if len(links) == 0 || len(tickets) == 0 {
		die("%d links, %d valid tickets", len(links), len(tickets))
	}
	var nextTicket atomic.Int64
	for g := range 32 {
		go func() {
			for n := 0; ; n++ {
				id := fmt.Sprintf("r%s-g%d-%d", run, g, n)
				if rand.N(3) == 0 {
					if i := nextTicket.Add(1) - 1; i < int64(len(tickets)) {
						uuid := tickets[i].UUID
						ev := &store.AuditEvent{Kind: "ticket", CredentialID: uuid, Outcome: store.OutcomeAccepted, Reason: "claimed"}
						lease := time.Now().Add(time.Minute)
						if err := s.ClaimTicket(ctx, uuid, time.Time{}, lease, ev); err != nil {
							die("claiming %s: %v", uuid, err)
						}
						if err := s.FinishTicket(ctx, uuid, lease, true, time.Time{}, "192.0.2.7", "crash", 200, ev.ID, 3*time.Millisecond); err != nil {
							die("finishing %s: %v", uuid, err)
						}
						continue
					}
				}
				var u store.LinkUse
				if rand.N(10) == 0 {
					// A link minted offline: its row comes with its first use.
					u = store.LinkUse{JTI: fmt.Sprintf("off-%s-%d", run, rand.N(40)), Site: crashSite, Target: crashSite + "/off",
						Mode: "request", MaxUses: 2}
				} else {
					l := links[rand.N(len(links))]
					u = store.LinkUse{JTI: l.JTI, Site: l.Site, UserID: l.UserID, Target: l.Target, Mode: l.Mode, MaxUses: l.MaxUses}
				}
				u.Audit = &store.AuditEvent{Kind: "link", CredentialID: u.JTI, Outcome: store.OutcomeAccepted, Reason: id}
				if u.Mode == "login" {
					u.Session = &store.Session{ID: id, UserID: u.UserID, Site: crashSite, TokenHash: []byte("h-" + id),
						ExpiresAt: time.Now().Add(time.Hour), Kind: "link", CredentialID: u.JTI}
				}
				if _, err := s.UseLink(ctx, &u); err != nil && !errors.Is(err, store.ErrConflict) {
					die("%v", err)
				}
			}
		}()
	}
	select {}
}

// TestGroupCommitSurvivesKill9 kills a process that is consuming
// credentials as fast as it can, three times over on the same file.
func TestGroupCommitSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills processes")
	}
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "crash.db")

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	u := &store.User{Site: crashSite, Email: "crash@crash.example", Active: true}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		l := &store.Link{Site: crashSite, UserID: u.ID, Target: crashSite + "/p", Mode: "request"}
		if i%2 == 0 {
			l.Mode = "login"
		}
		if i < 150 {
			l.JTI = fmt.Sprint("unl-", i) // unlimited
		} else {
			l.JTI, l.MaxUses = fmt.Sprint("lim-", i), 1+i%12
		}
		if err := s.CreateLink(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	// A few tickets the ordinary way, and the rest in one statement (under
	// -race a CreateTicket each would take seconds) with the same columns.
	for i := range 3 {
		tk := testTicket(fmt.Sprint("tk-", i))
		tk.UserID = u.ID
		if err := s.CreateTicket(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.w.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 3 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < 4000)
		INSERT INTO tickets (uuid, place, purpose, password_hash, password_kind, created_at, user_id)
		SELECT 'tk-' || i, 'hotel', 'checkin', CAST('h-tk-' || i AS BLOB), 'keyed', ?, ? FROM n`,
		time.Now().UnixNano(), u.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Tickets(ctx, store.TicketFilter{State: store.TicketValid}); err != nil || len(got) != 4000 {
		t.Fatalf("%d valid tickets, %v; want 4000", len(got), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	abs, _ := filepath.Abs(path)
	var prevState crashState // after the previous run
	for run := range 3 {
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, exe, "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDBEnv+"="+path, fmt.Sprint(crashRunEnv, "=", run))
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()

		// Wait for the child to get going, through a reader of our own,
		// which is closed before the kill so that the child is the only
		// process on the file when it dies.
		poll, err := sql.Open("sqlite", dsn(abs, false))
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		var seen int
		for {
			poll.QueryRowContext(ctx, `SELECT count(*) FROM audit`).Scan(&seen)
			if seen >= prevState.accepted+100 {
				break
			}
			select {
			case err := <-exited:
				poll.Close()
				t.Fatalf("run %d: the child exited on its own (%v):\n%s", run, err, out.String())
			case <-time.After(10 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				poll.Close()
				cmd.Process.Kill()
				<-exited
				t.Fatalf("run %d: the child wrote %d records in 10s:\n%s", run, seen-prevState.accepted, out.String())
			}
		}
		poll.Close()
		time.Sleep(time.Duration(rand.N(300)) * time.Millisecond)
		select {
		case err := <-exited:
			t.Fatalf("run %d: the child exited on its own (%v):\n%s", run, err, out.String())
		default:
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		err = <-exited
		if ee, ok := err.(*exec.ExitError); !ok || ee.ProcessState.Exited() {
			t.Fatalf("run %d: child ended with %v, want killed by a signal:\n%s", run, err, out.String())
		}
		if out.Len() > 0 {
			t.Errorf("run %d: the child printed:\n%s", run, out.String())
		}
		walFrames, walTail := crashWALTail(t, path+"-wal")

		s, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("run %d: reopening after kill -9: %v", run, err)
		}
		st := crashCheck(t, s, run)
		if err := s.Close(); err != nil {
			t.Errorf("run %d: closing: %v", run, err)
		}
		t.Logf("run %d: killed after %d committed consumptions (%d link uses, %d ticket claims); %d tickets claimed and never finished; "+
			"the WAL held %d frames, the last %d of them after the last commit",
			run, st.accepted-prevState.accepted, st.linkUses-prevState.linkUses, st.claims-prevState.claims, st.inUse-prevState.inUse,
			walFrames, walTail)
		prevState = st
	}
}

// crashWALTail reads the frame headers of the WAL file a killed process
// left: how many frames belong to the current WAL (their salts match the
// header's), and how many of those follow the last commit frame, which is
// a transaction that was being written when the process died. It is
// informational: SQLite's recovery, not this, decides what counts.
func crashWALTail(t *testing.T, path string) (frames, tail int) {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 32 {
		return 0, 0
	}
	be := func(p []byte) uint32 { return uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3]) }
	pageSize := int(be(b[8:]))
	if pageSize == 1 {
		pageSize = 65536
	}
	salt1, salt2 := be(b[16:]), be(b[20:])
	for off := 32; off+24+pageSize <= len(b); off += 24 + pageSize {
		h := b[off:]
		if be(h[8:]) != salt1 || be(h[12:]) != salt2 {
			break
		}
		frames++
		if be(h[4:]) != 0 { // a commit frame: the database size after it
			tail = 0
		} else {
			tail++
		}
	}
	return frames, tail
}

type crashState struct {
	accepted int // accepted audit records
	linkUses int
	claims   int
	inUse    int
}

// crashCheck checks the file and the invariants that must hold whenever the
// process died.
func crashCheck(t *testing.T, s *Store, run int) crashState {
	t.Helper()
	ctx := t.Context()
	var st crashState
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("run %d: "+format, append([]any{run}, args...)...)
	}
	rowsOf := func(q string, args ...any) [][]any {
		t.Helper()
		rows, err := s.r.QueryContext(ctx, q, args...)
		if err != nil {
			t.Fatalf("run %d: %s: %v", run, q, err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		var out [][]any
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			out = append(out, vals)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("run %d: %s: %v", run, q, err)
		}
		return out
	}

	if r := rowsOf(`PRAGMA integrity_check`); len(r) != 1 || fmt.Sprint(r[0][0]) != "ok" {
		fail("integrity_check: %v", r)
	}
	if r := rowsOf(`PRAGMA foreign_key_check`); len(r) != 0 {
		fail("foreign_key_check: %v", r)
	}

	// Links: uses is the number of accepted records, never above max_uses;
	// a login link has one session per use, named by its record.
	for _, r := range rowsOf(`SELECT l.jti, l.uses, l.max_uses, l.mode, l.first_used_at IS NOT NULL,
			(SELECT count(*) FROM audit a WHERE a.kind = 'link' AND a.credential_id = l.jti AND a.outcome = 'accepted'),
			(SELECT count(*) FROM sessions s WHERE s.kind = 'link' AND s.credential_id = l.jti),
			(SELECT count(*) FROM audit a JOIN sessions s ON s.id = a.session_id AND s.credential_id = l.jti
				WHERE a.kind = 'link' AND a.credential_id = l.jti AND a.outcome = 'accepted')
		FROM links l`) {
		jti, uses, maxUses, mode, used, records, sessions, joined := r[0], r[1].(int64), r[2].(int64), r[3], r[4].(int64), r[5].(int64), r[6].(int64), r[7].(int64)
		st.linkUses += int(uses)
		if uses != records {
			fail("link %s: uses %d, but %d accepted audit records", jti, uses, records)
		}
		if maxUses > 0 && uses > maxUses {
			fail("link %s: uses %d above max_uses %d", jti, uses, maxUses)
		}
		if (used == 1) != (uses > 0) {
			fail("link %s: uses %d, first_used_at set: %v", jti, uses, used == 1)
		}
		wantSessions := int64(0)
		if fmt.Sprint(mode) == "login" {
			wantSessions = uses
		}
		if sessions != wantSessions || joined != wantSessions {
			fail("link %s (%s): uses %d, %d sessions, %d records naming one; want %d", jti, mode, uses, sessions, joined, wantSessions)
		}
	}
	// Tickets: claimed (in_use or used) exactly when there is one claim
	// record; used exactly when that record has the finish's status.
	for _, r := range rowsOf(`SELECT t.uuid, t.state, t.lease_until IS NOT NULL, t.used_at IS NOT NULL, t.use_status,
			(SELECT count(*) FROM audit a WHERE a.kind = 'ticket' AND a.credential_id = t.uuid),
			(SELECT count(*) FROM audit a WHERE a.kind = 'ticket' AND a.credential_id = t.uuid AND a.outcome = 'accepted' AND a.reason = 'claimed'),
			(SELECT group_concat(a.status || '/' || a.latency_us) FROM audit a WHERE a.kind = 'ticket' AND a.credential_id = t.uuid)
		FROM tickets t`) {
		uuid, state, leased, stamped, status, all, claims, finish := r[0], fmt.Sprint(r[1]), r[2].(int64), r[3].(int64), r[4].(int64), r[5].(int64), r[6].(int64), fmt.Sprint(r[7])
		switch state {
		case store.TicketValid:
			if all != 0 || leased != 0 || stamped != 0 {
				fail("ticket %s valid, but leased %d, stamped %d, with %d audit records", uuid, leased, stamped, all)
			}
		case store.TicketInUse:
			st.claims++
			st.inUse++
			if all != 1 || claims != 1 || leased != 1 || finish != "0/0" {
				fail("ticket %s in_use (leased %d) with %d records (%d claims), status/latency %s; want one unfinished claim", uuid, leased, all, claims, finish)
			}
		case store.TicketUsed:
			st.claims++
			if all != 1 || claims != 1 || leased != 0 || stamped != 1 || status != 200 || finish != "200/3000" {
				fail("ticket %s used (leased %d, stamped %d, status %d) with %d records (%d claims), status/latency %s; want one finished claim",
					uuid, leased, stamped, status, all, claims, finish)
			}
		default:
			fail("ticket %s in state %s", uuid, state)
		}
	}
	// No record, and no session, without its credential.
	if r := rowsOf(`SELECT id, kind, credential_id FROM audit a WHERE
			(kind = 'link' AND NOT EXISTS (SELECT 1 FROM links l WHERE l.jti = a.credential_id))
			OR (kind = 'ticket' AND NOT EXISTS (SELECT 1 FROM tickets t WHERE t.uuid = a.credential_id))
			OR kind NOT IN ('link', 'ticket') OR outcome != 'accepted'`); len(r) != 0 {
		fail("%d audit records of no consumption, e.g. %v", len(r), r[0])
	}
	if r := rowsOf(`SELECT id FROM sessions s WHERE NOT EXISTS (SELECT 1 FROM audit a WHERE a.session_id = s.id)`); len(r) != 0 {
		fail("%d sessions with no audit record, e.g. %v", len(r), r[0])
	}
	if r := rowsOf(`SELECT count(*) FROM audit`); len(r) == 1 {
		st.accepted = int(r[0][0].(int64))
	}
	if st.accepted != st.linkUses+st.claims {
		fail("%d audit records for %d link uses and %d ticket claims", st.accepted, st.linkUses, st.claims)
	}
	return st
}
