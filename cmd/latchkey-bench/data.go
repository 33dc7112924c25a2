package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver, for the bulk insert and the read-back counts

	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
	"github.com/latchkeyhq/latchkey/internal/ticket"
	"github.com/latchkeyhq/latchkey/mint"
)

// siteName is the latchkey site of every block http://127.0.0.1:PORT.
const siteName = "127.0.0.1"

// cookieName is the gateway's session cookie.
const cookieName = "latchkey_session"

// users creates n active users on the site, through the store.
func users(ctx context.Context, st store.Store, prefix string, n int) ([]int64, error) {
	ids := make([]int64, n)
	for i := range n {
		u := &store.User{Site: siteName, Email: fmt.Sprintf("%s-%d@bench.example", prefix, i), Name: "Bench", Active: true}
		if err := st.CreateUser(ctx, u); err != nil {
			return nil, err
		}
		ids[i] = u.ID
	}
	return ids, nil
}

// sessions starts one session for each user, through the session manager
// with the gateway's secret (as cmd/latchkey-load does), on workers
// goroutines, and returns the cookie values.
func sessions(ctx context.Context, st store.Store, uids []int64, workers int) ([]string, error) {
	m := session.New(st, []byte(secret), session.Config{Site: siteName}, nil, nil)
	tokens := make([]string, len(uids))
	err := parallel(len(uids), workers, func(i int) error {
		tok, _, err := m.Start(ctx, uids[i], "bench", "", "127.0.0.1", "latchkey-bench")
		tokens[i] = tok
		return err
	})
	return tokens, err
}

// tickets creates n bench/run tickets with generated passwords, as
// `caddy latchkey tickets create` does, on workers goroutines, and returns
// each one's query.
func tickets(ctx context.Context, st store.Store, n, workers int) ([]string, error) {
	h, err := ticket.NewHasher([]byte(secret), ticket.DefaultArgon2Params)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	queries := make([]string, n)
	err = parallel(n, workers, func(i int) error {
		pw, err := ticket.GeneratePassword()
		if err != nil {
			return err
		}
		hash, err := h.HashGenerated(pw)
		if err != nil {
			return err
		}
		t := &store.Ticket{UUID: ticket.NewUUID(), Place: "bench", Purpose: "run", PasswordHash: hash,
			PasswordKind: ticket.KindKeyed, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := st.CreateTicket(ctx, t); err != nil {
			return err
		}
		queries[i] = url.Values{"uuid": {t.UUID}, "password": {pw}}.Encode()
		return nil
	})
	return queries, err
}

// parallel runs f(0) … f(n-1) on workers goroutines (1: in order, here) and
// returns the first error, after which no more are started.
func parallel(n, workers int, f func(i int) error) error {
	if workers <= 1 {
		for i := range n {
			if err := f(i); err != nil {
				return err
			}
		}
		return nil
	}
	var next atomic.Int64
	var first atomic.Value // error
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first.Load() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := first.Load().(error); err != nil {
		return err
	}
	return nil
}

// pgFillWorkers is how many connections fill the PostgreSQL store: each
// insert is a round trip to the server and a commit of its own, which
// several in flight overlap.
const pgFillWorkers = 8

// mainFill is what the store of the four latchkey sites holds: one user
// with one session (row 1; the links' user), rotate users with a session
// each (row 2), and tickets (row 4).
type mainFill struct {
	one                       []int64
	oneTok, rotToks, ticketQs []string
}

// fillMain fills st, SQLite's or PostgreSQL's, with rotate sessions in
// rotation and nTickets tickets, on workers goroutines.
func fillMain(ctx context.Context, st store.Store, rotate, nTickets, workers int) (*mainFill, error) {
	f := &mainFill{}
	var err error
	if f.one, err = users(ctx, st, "one", 1); err != nil {
		return nil, err
	}
	if f.oneTok, err = sessions(ctx, st, f.one, 1); err != nil {
		return nil, err
	}
	rotUsers, err := users(ctx, st, "rot", rotate)
	if err != nil {
		return nil, err
	}
	if f.rotToks, err = sessions(ctx, st, rotUsers, workers); err != nil {
		return nil, err
	}
	if f.ticketQs, err = tickets(ctx, st, nTickets, workers); err != nil {
		return nil, err
	}
	return f, nil
}

// links mints n request-mode links for uid to rawURL with the mint package
// (as an app would: no row in the store until the first use), each good
// for maxUses uses (0: unlimited). It returns each link's path and query.
func links(uid int64, rawURL string, n, maxUses int) ([]string, error) {
	m := mint.New([]byte(secret))
	out := make([]string, n)
	for i := range n {
		u, _, err := m.Link(mint.Options{UserID: uid, URL: rawURL, TTL: time.Hour, MaxUses: maxUses, Unlimited: maxUses == 0})
		if err != nil {
			return nil, err
		}
		p, err := url.Parse(u)
		if err != nil {
			return nil, err
		}
		out[i] = p.RequestURI()
	}
	return out, nil
}

// fillSessions adds n sessions to the store file at db in one transaction,
// with SQL that keeps to the sessions table's schema: random 256-bit token
// hashes and 128-bit ids (no cookie hashes to them, like the sessions of
// users who are not around), spread over uids, live for 30 days, on the
// bench site. db must not be open elsewhere.
func fillSessions(ctx context.Context, db string, uids []int64, n int) error {
	if n <= 0 {
		return nil
	}
	conn, err := sql.Open("sqlite", "file:"+db+"?_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_txlock=immediate")
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetMaxOpenConns(1)
	// A large page cache keeps the index B-trees in memory while the random
	// keys go in; the WAL and its checkpoint are what the gateway's own
	// writes go through too.
	for _, pragma := range []string{"PRAGMA cache_size = -400000", "PRAGMA temp_store = MEMORY"} {
		if _, err := conn.ExecContext(ctx, pragma); err != nil {
			return err
		}
	}
	now := time.Now()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// The users' ids are consecutive (created in one go), so the filler is
	// spread over them with a modulo.
	first, last := uids[0], uids[len(uids)-1]
	if last-first+1 != int64(len(uids)) {
		return fmt.Errorf("user ids %d..%d are not consecutive", first, last)
	}
	// The random hashes are made first and inserted in their order, so
	// that the token_hash index (the lookup every request makes) and the
	// primary key (the hash's first half, as hex: just as random) are
	// built by appending rather than by a million random B-tree inserts,
	// which takes minutes in a pure-Go SQLite. The keys are as uniformly
	// spread as real ones; only the pages come out fuller.
	if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE filler AS
		WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?)
		SELECT i, randomblob(32) AS h FROM seq`, n); err != nil {
		return fmt.Errorf("making %d filler hashes: %w", n, err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at, ip, user_agent, kind, credential_id, site)
		SELECT lower(hex(substr(h, 1, 16))), h, ? + (i % ?), ?, ?, ?, '127.0.0.1', 'latchkey-bench filler', 'bench', '', ?
		FROM filler ORDER BY h`,
		first, int64(len(uids)), now.UnixNano(), now.UnixNano(), now.Add(session.DefaultLifetime).UnixNano(), siteName)
	if err != nil {
		return fmt.Errorf("inserting %d filler sessions: %w", n, err)
	}
	if _, err := tx.ExecContext(ctx, "DROP TABLE temp.filler"); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	return err
}

// count runs a SELECT count(*) (or any one-integer query) on the store file.
func count(ctx context.Context, db, query string, args ...any) (int64, error) {
	conn, err := sql.Open("sqlite", "file:"+db+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	var n int64
	err = conn.QueryRowContext(ctx, query, args...).Scan(&n)
	return n, err
}

// copyStore copies a closed store (its WAL checkpointed away by the close)
// to dst.
func copyStore(src, dst string) error {
	for _, suffix := range []string{"-wal", "-journal"} {
		if fi, err := os.Stat(src + suffix); err == nil && fi.Size() > 0 {
			return fmt.Errorf("%s%s is still there: the store was not closed cleanly", src, suffix)
		}
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// openStore opens (creating and migrating) the store at db.
func openStore(ctx context.Context, db string) (*sqlite.Store, error) {
	return sqlite.Open(ctx, db)
}

// writeLines writes a request file for bench.lua: one request a line, a
// path and then headers, each after a tab as "Name: value".
func writeLines(path string, lines []string) error {
	var b strings.Builder
	for _, l := range lines {
		if strings.ContainsAny(l, "\n\r") {
			return fmt.Errorf("request line %q has a line break", l)
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// cookieLines is one request line per cookie value, all for path.
func cookieLines(path string, tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		out[i] = path + "\tCookie: " + cookieName + "=" + t
	}
	return out
}

// fromClient adds an X-Forwarded-For header to each line: line i comes
// from client 10.0.x.y number i mod 1024, so that no two of the 32
// connections' requests in flight share a client IP. The gateway, behind
// the loopback as a trusted proxy, takes the header as the client IP. (All
// from 127.0.0.1, the per-IP throttles, which reserve an attempt before
// the credential is checked and give it back when it was good, would
// refuse good requests 429 beyond 10 (tickets) or 30 (links) in flight.)
func fromClient(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		n := i%clientIPs + 1
		out[i] = fmt.Sprintf("%s\tX-Forwarded-For: 10.0.%d.%d", l, n>>8&255, n&255)
	}
	return out
}

const clientIPs = 1024

func repeat(line string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = line
	}
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
