// Command latchkey-bench measures latchkey next to plain Caddy with a real
// load generator, wrk, on loopback, and prints (and writes as JSON) a
// table of ratios for the SQLite store and one for the PostgreSQL store.
// `make bench` builds bin/caddy and runs it:
//
//	latchkey-bench -caddy bin/caddy -json bin/bench-results.json
//
// Caddy runs as separate bin/caddy processes, so wrk, the upstream and the
// harness stay out of Caddy's process and each Caddy's peak RSS is its own:
//
//   - "reverse_proxy": plain reverse_proxy to the upstream, and a static
//     `respond 401` site (the baselines; no latchkey app at all);
//   - "latchkey": latchkey in front of the same reverse_proxy, on four sites
//     (sessions, an unlimited link, one-use links with confirm off, tickets)
//     sharing one SQLite store;
//   - "forward_auth": Caddy's forward_auth to a tiny auth server in the
//     harness that answers 200 and Remote-User at once (the best case of
//     Authelia or oauth2-proxy), then the same reverse_proxy;
//   - "store-1k" and "store-1M" (-store-small, -store-big): latchkey on
//     its own store holding the same 1,000 sessions, the second with filler
//     sessions up to 1,000,000 rows;
//   - "latchkey-pg": the four sites of "latchkey" on `storage postgres`
//     (one gateway), its store filled the same way, in a throwaway
//     PostgreSQL cluster that the run starts with pgtest, as the store's
//     tests do (PostgreSQL 15's binaries, fsync off; its directory under
//     -dir). Without those binaries the run fails; -no-postgres leaves the
//     PostgreSQL rows out.
//
// The upstream (net/http, a tiny body) and the auth server run in this
// process. Every row compares targets measured in the same run: each
// target gets a warm-up, then -rounds rounds of -round each, interleaved
// (A B, B A, A B, ...) so that drift falls on both sides alike, with
// `wrk -t2 -c32` and bench.lua, which pre-builds each thread's requests
// from a file (one cookie, 5,000 cookies in rotation, or one-shot
// credentials each sent once) and counts every response's status. A row's
// ratio is the median over the rounds of latchkey's req/s over the
// baseline's in the same round. The PostgreSQL targets run in the groups
// of their SQLite counterparts, so the two tables share their baselines'
// rounds. Each Caddy's CPU time is read around every round, for Caddy's
// CPU per request, and the PostgreSQL server's for the PostgreSQL rows,
// and the machine's (/proc/stat), to say how much other processes were
// running during the load.
//
// The run fails (exit 1) if any request got a status other than the one
// its target expects (2xx for everything latchkey should let through), on
// any socket error or timeout, if the upstream saw a request through
// latchkey without the identity the gateway sets (or with its cookie or
// credentials left in), if a refusal reached the upstream, if fewer
// requests reached the upstream or the audit trail than wrk counted as
// answered, or if a one-shot credential was used twice; on each store.
package main

import (
	"context"
	"debug/buildinfo"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/latchkeyhq/latchkey/internal/loadrig"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/postgres"
)

//go:embed bench.lua
var luaScript []byte

const secret = "latchkey-bench-secret-0123456789abcdef-0123"

// Targets the brief of the "Scale and speed" issue sets; rows without one
// show "—".
const (
	targetConsumedPerSec = 5000 // one-shot links and tickets consumed per second
	targetStoreRatio     = 0.90 // session path with 1M sessions rows / with 1k
	targetRSSRatio       = 1.30 // peak RSS latchkey / reverse_proxy
	targetOneSession     = 0.95 // one session cookie / reverse_proxy
	targetRotation       = 0.90 // 5,000 sessions in rotation / reverse_proxy
	targetLink           = 0.80 // unlimited request-mode link / reverse_proxy
	targetRefusal        = 0.60 // refusal / a static respond 401
	targetVsForwardAuth  = 1.00 // every latchkey path must be ahead of forward_auth's best case
)

type config struct {
	caddy, wrk, jsonOut string
	round, warmup       time.Duration
	rounds              int
	threads, conns      int
	rotate, small, big  int
	poolRate            int
	keep                bool
	dir                 string
	noPG                bool
}

func main() {
	var c config
	flag.StringVar(&c.caddy, "caddy", "bin/caddy", "the Caddy binary with latchkey (make build)")
	flag.StringVar(&c.wrk, "wrk", "wrk", "the wrk binary")
	flag.StringVar(&c.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.DurationVar(&c.round, "round", 2*time.Second, "length of one measured round (whole seconds)")
	flag.IntVar(&c.rounds, "rounds", 4, "measured rounds per target, interleaved")
	flag.DurationVar(&c.warmup, "warmup", time.Second, "warm-up per target before its rounds (whole seconds)")
	flag.IntVar(&c.threads, "threads", 2, "wrk threads")
	flag.IntVar(&c.conns, "conns", 32, "wrk connections")
	flag.IntVar(&c.rotate, "sessions", 5000, "distinct sessions in rotation (row 2)")
	flag.IntVar(&c.small, "store-small", 1000, "sessions in the small store, all in rotation (row 7)")
	flag.IntVar(&c.big, "store-big", 1_000_000, "sessions rows in the big store (row 7)")
	flag.IntVar(&c.poolRate, "pool-rate", 8000, "one-shot credentials made per second of load; a faster gateway runs out, which is reported")
	flag.BoolVar(&c.keep, "keep", false, "keep the temporary directory (stores, Caddyfiles, logs)")
	flag.StringVar(&c.dir, "dir", defaultDir(), "where the temporary directory (the stores) and the PostgreSQL cluster go: tmpfs by default, so that other processes' disk I/O does not stall SQLite's checkpoints; a directory on disk to include the disk")
	flag.BoolVar(&c.noPG, "no-postgres", false, "leave out the PostgreSQL rows (they need PostgreSQL 15's server binaries: make deps installs them)")
	flag.Parse()
	if flag.NArg() > 0 {
		fail(2, "unexpected arguments: %q", flag.Args())
	}
	switch {
	case c.round < time.Second || c.round > time.Minute || c.round%time.Second != 0:
		fail(2, "-round must be whole seconds from 1s to 1m")
	case c.warmup < time.Second || c.warmup > time.Minute || c.warmup%time.Second != 0:
		fail(2, "-warmup must be whole seconds from 1s to 1m")
	case c.rounds < 1 || c.rounds > 20:
		fail(2, "-rounds must be 1 to 20")
	case c.threads < 1 || c.conns < c.threads || c.conns > 1024:
		fail(2, "-threads and -conns: 1 <= threads <= conns <= 1024")
	case c.rotate < 1 || c.small < 1 || c.big < c.small:
		fail(2, "-sessions, -store-small >= 1 and -store-big >= -store-small")
	case c.poolRate < 100:
		fail(2, "-pool-rate must be at least 100")
	}
	for _, bin := range []string{c.caddy, c.wrk} {
		if _, err := lookPath(bin); err != nil {
			fail(2, "%v (make bench builds bin/caddy and installs wrk)", err)
		}
	}

	b := &bench{cfg: c, start: time.Now()}
	// Bounded in time whatever happens: 13 targets, 19 with PostgreSQL's.
	perTarget := c.warmup + time.Duration(c.rounds)*c.round
	limit := 12*perTarget + 5*time.Minute
	if !c.noPG {
		limit += 6 * perTarget
	}
	watchdog := time.AfterFunc(limit, func() {
		fmt.Fprintf(os.Stderr, "latchkey-bench: still running after %s; giving up\n", limit)
		b.cleanup()
		os.Exit(3)
	})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "latchkey-bench: interrupted")
		b.cleanup()
		os.Exit(130)
	}()

	res, err := b.run()
	watchdog.Stop()
	b.cleanup()
	if err != nil {
		fail(1, "%v", err)
	}
	res.print(os.Stdout)
	if c.jsonOut != "" {
		js, err := json.MarshalIndent(res, "", "  ")
		if err == nil {
			err = os.WriteFile(c.jsonOut, append(js, '\n'), 0o644)
		}
		if err != nil {
			fail(1, "writing %s: %v", c.jsonOut, err)
		}
		fmt.Printf("\nwritten to %s\n", c.jsonOut)
	}
	if !res.OK {
		os.Exit(1)
	}
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "latchkey-bench: "+format+"\n", args...)
	os.Exit(code)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

// bench is one run.
type bench struct {
	cfg    config
	start  time.Time
	dir    string
	script string
	up     *upstream
	auth   *http.Server
	procs  []*caddyProc
	pg     *pgServer // nil with -no-postgres
	res    *Result
}

func (b *bench) cleanup() {
	for _, p := range b.procs {
		p.kill()
	}
	// After the Caddys: a gateway whose database went first would log
	// errors into a run that is over.
	if b.pg != nil {
		b.pg.stop()
		b.pg = nil
	}
	if b.up != nil {
		b.up.srv.Close()
	}
	if b.auth != nil {
		b.auth.Close()
	}
	if b.dir != "" && !b.cfg.keep {
		os.RemoveAll(b.dir)
		b.dir = ""
	}
}

// target is one site under load.
type target struct {
	Name   string `json:"name"`
	Proc   string `json:"process"`
	URL    string `json:"url"`
	Mode   string `json:"mode"` // cycle or once
	Expect int    `json:"expect_status"`
	// Gate: a latchkey target whose answers must all be Expect (2xx).
	Gate bool `json:"latchkey"`

	WarmUp *wrkResult   `json:"warm_up"`
	Rounds []*wrkResult `json:"rounds"`

	ReqPerSec      float64   `json:"req_per_sec"`
	OKPerSec       float64   `json:"expected_status_per_sec"`
	RoundReqPerSec []float64 `json:"round_req_per_sec"`
	Spread         float64   `json:"round_spread"` // max/min - 1 over the rounds
	P50US          int64     `json:"p50_us"`       // median over the rounds of each round's p50
	P99US          int64     `json:"p99_us"`       // worst round's p99
	Answered       int64     `json:"answered_incl_warm_up"`
	Unexpected     int64     `json:"unexpected_incl_warm_up"`
	Exhausted      bool      `json:"pool_exhausted,omitempty"`
	ClientCPU      float64   `json:"wrk_cpu_share"` // wrk's CPU time over wall time, measured rounds
	// Caddy's own CPU: per request (µs), and over wall time (1 = one core).
	CaddyCPUPerReqUS float64 `json:"caddy_cpu_per_request_us"`
	CaddyCPUShare    float64 `json:"caddy_cpu_share"`
	// The PostgreSQL server's CPU, for the targets on latchkey-pg: part
	// of what a request costs there, which Caddy's own leaves out.
	PGCPUPerReqUS float64 `json:"postgres_cpu_per_request_us,omitempty"`
	PGCPUShare    float64 `json:"postgres_cpu_share,omitempty"`

	proc   *caddyProc
	prefix string   // the upstream path prefix its answers carry
	files  []string // request files: one (cycle), or one per run (once)
}

func (t *target) file(run int) string {
	if len(t.files) == 1 {
		return t.files[0]
	}
	return t.files[run]
}

// Result is what the run measured; it is also the JSON output.
type Result struct {
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
	Notes    []string `json:"notes,omitempty"`
	Machine  struct {
		NProc       int     `json:"nproc"`
		CPU         string  `json:"cpu"`
		GoVersion   string  `json:"go_version"`
		Caddy       string  `json:"caddy_binary"`
		CaddyGo     string  `json:"caddy_go_version"`
		LoadBefore  string  `json:"loadavg_before"`
		LoadAfter   string  `json:"loadavg_after"`
		OtherCPU    float64 `json:"other_cpu_cores"` // busy CPU of processes not in the run, in cores, during the load
		MachineBusy float64 `json:"machine_busy_cores"`
		// Pressure stall information during the load: the share of time
		// some task waited for I/O, or for a CPU (/proc/pressure).
		IOPressure  float64 `json:"io_pressure_some"`
		CPUPressure float64 `json:"cpu_pressure_some"`
		Dir         string  `json:"dir"`
		// Postgres is the server the PostgreSQL rows ran on: version and
		// settings ("" with -no-postgres).
		Postgres string `json:"postgres,omitempty"`
	} `json:"machine"`
	Settings struct {
		Threads   int     `json:"wrk_threads"`
		Conns     int     `json:"wrk_connections"`
		RoundS    float64 `json:"round_seconds"`
		Rounds    int     `json:"rounds"`
		WarmupS   float64 `json:"warmup_seconds"`
		Rotation  int     `json:"rotation_sessions"`
		StoreLow  int     `json:"store_small_sessions"`
		StoreHigh int     `json:"store_big_sessions"`
		PoolRate  int     `json:"pool_rate"`
		Postgres  bool    `json:"postgres"`
	} `json:"settings"`
	Rows []Row `json:"rows"` // SQLite
	// PostgresRows are rows 1 to 5 on latchkey-pg, against the same
	// baselines in the same rounds as Rows.
	PostgresRows []Row            `json:"postgres_rows,omitempty"`
	Groups       []string         `json:"groups"` // the targets measured together, in order
	Targets      []*target        `json:"targets"`
	Processes    []ProcessResult  `json:"processes"`
	Checks       map[string]int64 `json:"checks"`
	Setup        struct {
		Seconds     float64 `json:"seconds"`
		FillSeconds float64 `json:"fill_seconds"`
	} `json:"setup"`
	Seconds float64 `json:"seconds"`
}

// Row is one line of the table.
type Row struct {
	N        string  `json:"row"`
	Path     string  `json:"path"`
	Unit     string  `json:"unit"`
	Latchkey float64 `json:"latchkey"`
	Baseline float64 `json:"baseline,omitempty"`
	// Ratio is the median over the rounds of latchkey's req/s over the
	// baseline's in the same round (neighbours in time); RatioOfTotals
	// divides the two columns.
	Ratio         float64 `json:"ratio,omitempty"`
	RatioOfTotals float64 `json:"ratio_of_totals,omitempty"`
	// CPUCost is Caddy's CPU per request, latchkey's over the baseline's
	// (2 = twice the CPU a request): the measure least disturbed by other
	// load. For consumption rows, CPUPerReqUS is latchkey's alone.
	CPUCost     float64 `json:"caddy_cpu_per_request_ratio,omitempty"`
	CPUPerReqUS float64 `json:"caddy_cpu_per_request_us,omitempty"`
	Target      string  `json:"target,omitempty"`
	Met         *bool   `json:"met,omitempty"`
	// Spread is the larger round spread of the row's targets: a
	// difference smaller than this is noise.
	Spread float64 `json:"round_spread,omitempty"`
	Note   string  `json:"note,omitempty"`
}

// ProcessResult is one Caddy process, sampled before it was stopped.
type ProcessResult struct {
	Name   string  `json:"name"`
	PeakMB float64 `json:"peak_rss_mb"` // VmHWM
	RSSMB  float64 `json:"rss_mb"`      // VmRSS at the end
	CPUS   float64 `json:"cpu_seconds"`
	// PeakAfterGroupMB is VmHWM after each group of rows (Result.Groups).
	PeakAfterGroupMB []float64 `json:"peak_rss_after_group_mb"`
}

func (b *bench) run() (*Result, error) {
	c := b.cfg
	ctx := context.Background()
	res := &Result{Checks: map[string]int64{}}
	b.res = res
	res.Machine.NProc = runtime.NumCPU()
	res.Machine.CPU = cpuModel()
	res.Machine.GoVersion = runtime.Version()
	res.Machine.Caddy = c.caddy
	if bi, err := buildinfo.ReadFile(c.caddy); err == nil {
		res.Machine.CaddyGo = bi.GoVersion
	}
	res.Machine.LoadBefore = loadavg()
	res.Settings.Threads, res.Settings.Conns = c.threads, c.conns
	res.Settings.RoundS, res.Settings.Rounds, res.Settings.WarmupS = c.round.Seconds(), c.rounds, c.warmup.Seconds()
	res.Settings.Rotation, res.Settings.StoreLow, res.Settings.StoreHigh = c.rotate, c.small, c.big
	res.Settings.PoolRate = c.poolRate
	res.Settings.Postgres = !c.noPG

	var err error
	// PostgreSQL first: a machine without it fails at once, not after
	// the stores are filled.
	if !c.noPG {
		t0 := time.Now()
		if b.pg, err = startPostgres(c.dir); err != nil {
			return nil, err
		}
		// The gateway opens its store without options: pgx's default pool,
		// the larger of 4 and the number of CPUs, which bounds the
		// one-shot rows' concurrency on the server.
		res.Machine.Postgres = fmt.Sprintf("PostgreSQL %s; pgtest's throwaway cluster in %s, %s; the gateway's pool: pgx's default, %d connections",
			b.pg.version, c.dir, pgSettings, max(4, runtime.NumCPU()))
		logf("latchkey-bench: %s (%.1fs)", res.Machine.Postgres, time.Since(t0).Seconds())
	}
	if b.dir, err = os.MkdirTemp(c.dir, "latchkey-bench-"); err != nil {
		return nil, err
	}
	if c.keep {
		logf("latchkey-bench: working in %s (kept)", b.dir)
	}
	b.script = filepath.Join(b.dir, "bench.lua")
	if err := os.WriteFile(b.script, luaScript, 0o600); err != nil {
		return nil, err
	}
	path := func(name string) string { return filepath.Join(b.dir, name) }

	ports := map[string]int{}
	for _, name := range []string{"plain", "static401", "session", "link", "limited", "ticket", "fwd", "small", "big", "pg-session", "pg-link", "pg-limited", "pg-ticket"} {
		if ports[name], err = freePort(); err != nil {
			return nil, err
		}
	}
	site := func(name, p string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", ports[name], p) }

	// ---- The stores, before any Caddy opens them: the main store and
	// the two session stores are made at the same time. ----
	t0 := time.Now()
	mainDB, smallDB, bigDB := path("main/latchkey.db"), path("small/latchkey.db"), path("big/latchkey.db")
	runs := 1 + c.rounds
	poolRun := func(d time.Duration) int { return int(float64(c.poolRate)*d.Seconds()) + c.conns }
	poolTotal := poolRun(c.warmup) + c.rounds*poolRun(c.round)
	var lkFill, pgFill *mainFill
	var smallToks []string
	mainDone, smallDone, pgDone := make(chan error, 1), make(chan error, 1), make(chan error, 1)
	go func() {
		st, err := openStore(ctx, mainDB)
		if err != nil {
			mainDone <- err
			return
		}
		lkFill, err = fillMain(ctx, st, c.rotate, poolTotal, 1)
		if cerr := st.Close(); err == nil {
			err = cerr
		}
		logf("latchkey-bench: main store: %d+%d sessions, %d tickets (%.1fs)", 1, c.rotate, poolTotal, time.Since(t0).Seconds())
		mainDone <- err
	}()
	// The PostgreSQL store is filled as the main one, by the store itself;
	// on several connections, each insert being a round trip to the server.
	go func() {
		if b.pg == nil {
			pgDone <- nil
			return
		}
		st, err := postgres.Open(ctx, b.pg.dsn, postgres.WithMaxConns(pgFillWorkers))
		if err != nil {
			pgDone <- fmt.Errorf("opening the PostgreSQL store: %w", err)
			return
		}
		pgFill, err = fillMain(ctx, st, c.rotate, poolTotal, pgFillWorkers)
		if cerr := st.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			err = fmt.Errorf("filling the PostgreSQL store: %w", err)
		}
		logf("latchkey-bench: PostgreSQL store: %d+%d sessions, %d tickets (%.1fs)", 1, c.rotate, poolTotal, time.Since(t0).Seconds())
		pgDone <- err
	}()
	go func() {
		st, err := openStore(ctx, smallDB)
		if err != nil {
			smallDone <- err
			return
		}
		smallUsers, err := users(ctx, st, "store", c.small)
		if err == nil {
			smallToks, err = sessions(ctx, st, smallUsers, 1)
		}
		if cerr := st.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = copyStore(smallDB, bigDB)
		}
		if err == nil {
			err = fillSessions(ctx, bigDB, smallUsers, c.big-c.small)
		}
		if err == nil {
			var n int64
			if n, err = count(ctx, bigDB, "SELECT count(*) FROM sessions"); err == nil && n != int64(c.big) {
				err = fmt.Errorf("the big store has %d sessions, want %d", n, c.big)
			}
		}
		res.Setup.FillSeconds = round2(time.Since(t0).Seconds())
		logf("latchkey-bench: stores of %d and %d sessions (%.1fs)", c.small, c.big, res.Setup.FillSeconds)
		smallDone <- err
	}()
	if err := errors.Join(<-mainDone, <-smallDone, <-pgDone); err != nil {
		return nil, err
	}

	linkUID := itoa(lkFill.one[0])
	unlimited, err := links(lkFill.one[0], site("link", prefixLink+"page?x=1"), 1, 0)
	if err != nil {
		return nil, err
	}
	limited, err := links(lkFill.one[0], site("limited", prefixLimited+"page"), poolTotal, 1)
	if err != nil {
		return nil, err
	}
	var pgLinkUID string
	var pgUnlimited, pgLimited []string
	if b.pg != nil {
		pgLinkUID = itoa(pgFill.one[0])
		if pgUnlimited, err = links(pgFill.one[0], site("pg-link", prefixPGLink+"page?x=1"), 1, 0); err != nil {
			return nil, err
		}
		if pgLimited, err = links(pgFill.one[0], site("pg-limited", prefixPGLimited+"page"), poolTotal, 1); err != nil {
			return nil, err
		}
	}

	// ---- Request files. ----
	files := map[string]string{}
	writeFile := func(name string, lines []string) error {
		files[name] = path(name + ".txt")
		return writeLines(files[name], lines)
	}
	oneCookie := cookieLines(prefixSession+"page", lkFill.oneTok)[0]
	if strings.Count(oneCookie, prefixSession) != 1 {
		return nil, fmt.Errorf("request line %q", oneCookie)
	}
	for _, f := range []struct {
		name  string
		lines []string
	}{
		{"one", []string{oneCookie}},
		{"one-plain", []string{strings.Replace(oneCookie, prefixSession, prefixPlain, 1)}},
		{"one-fwd", []string{strings.Replace(oneCookie, prefixSession, prefixFwd, 1)}},
		{"rot", cookieLines(prefixSession+"page", lkFill.rotToks)},
		{"rot-plain", cookieLines(prefixPlain+"page", lkFill.rotToks)},
		// One link, used by many clients (the per-IP link throttle
		// reserves an attempt before the check: 32 concurrent requests
		// from one IP would be refused 429 beyond 30).
		{"link", fromClient(repeat(unlimited[0], c.rotate))},
		{"link-plain", fromClient(repeat(strings.Replace(unlimited[0], prefixLink, prefixPlain, 1), c.rotate))},
		{"refused", []string{pathRefused}},
		{"static401", []string{prefixPlain + "refused"}},
		{"store", cookieLines(prefixStore+"page", smallToks)},
	} {
		if err := writeFile(f.name, f.lines); err != nil {
			return nil, err
		}
	}
	if b.pg != nil {
		// The same requests to latchkey-pg, with its own credentials.
		for _, f := range []struct {
			name  string
			lines []string
		}{
			{"pg-one", cookieLines(prefixPGSession+"page", pgFill.oneTok)},
			{"pg-rot", cookieLines(prefixPGSession+"page", pgFill.rotToks)},
			{"pg-link", fromClient(repeat(pgUnlimited[0], c.rotate))},
			{"pg-refused", []string{pathPGRefused}},
		} {
			if err := writeFile(f.name, f.lines); err != nil {
				return nil, err
			}
		}
	}
	// One-shot credentials: a separate file per run, so no credential is
	// sent twice.
	onceFiles := func(name string, lines []string) ([]string, error) {
		var out []string
		for run := range runs {
			d := c.round
			if run == 0 {
				d = c.warmup
			}
			n := poolRun(d)
			f := path(fmt.Sprintf("%s-%d.txt", name, run))
			if err := writeLines(f, lines[:n]); err != nil {
				return nil, err
			}
			lines = lines[n:]
			out = append(out, f)
		}
		return out, nil
	}
	ticketLines := func(prefix string, queries []string) []string {
		out := make([]string, len(queries))
		for i, q := range queries {
			out[i] = prefix + "page?" + q
		}
		return fromClient(out)
	}
	ticketFiles, err := onceFiles("tickets", ticketLines(prefixTicket, lkFill.ticketQs))
	if err != nil {
		return nil, err
	}
	limitedFiles, err := onceFiles("limited", fromClient(limited))
	if err != nil {
		return nil, err
	}
	var pgTicketFiles, pgLimitedFiles []string
	if b.pg != nil {
		if pgTicketFiles, err = onceFiles("pg-tickets", ticketLines(prefixPGTicket, pgFill.ticketQs)); err != nil {
			return nil, err
		}
		if pgLimitedFiles, err = onceFiles("pg-limited", fromClient(pgLimited)); err != nil {
			return nil, err
		}
	}
	res.Setup.Seconds = time.Since(b.start).Seconds()

	// ---- The upstream, the auth server and the Caddy processes. ----
	if b.up, err = startUpstream(linkUID, pgLinkUID); err != nil {
		return nil, err
	}
	authAddr, authSrv, err := startAuth()
	if err != nil {
		return nil, err
	}
	b.auth = authSrv
	rp := loadrig.ReverseProxy(b.up.addr, c.conns)
	// The one-shot credentials come "from" many clients, in
	// X-Forwarded-For (fromClient).
	const trustLoopback = "servers {\n\ttrusted_proxies static 127.0.0.1/32\n}"
	start := func(name string, cfg loadrig.Process) (*caddyProc, error) {
		p, err := startCaddy(c.caddy, b.dir, name, cfg)
		if err != nil {
			return nil, err
		}
		b.procs = append(b.procs, p)
		return p, nil
	}
	proc := func(name, db string, sites []loadrig.Block) (*caddyProc, error) {
		cfg := loadrig.Process{Dir: path(name), GracePeriod: "5s", LogLevel: "WARN", Sites: sites}
		if db != "" {
			cfg.DB, cfg.Secret = db, secret
			cfg.Global = trustLoopback
		}
		p, err := start(name, cfg)
		if err == nil && db != "" {
			p.count = func(ctx context.Context, query string, args ...any) (int64, error) {
				return count(ctx, db, query, args...)
			}
		}
		return p, err
	}
	base, err := proc("reverse_proxy", "", []loadrig.Block{
		{Port: ports["plain"], Body: rp},
		{Port: ports["static401"], Body: "respond 401"},
	})
	if err != nil {
		return nil, err
	}
	// The four blocks are one latchkey site, 127.0.0.1, on four ports: it
	// has one origin.
	fourSites := func(prefix string) []loadrig.Block {
		origin := site(prefix+"session", "")
		return []loadrig.Block{
			{Port: ports[prefix+"session"], Body: loadrig.WithOrigin("latchkey", origin) + "\n" + rp},
			{Port: ports[prefix+"link"], Body: loadrig.WithOrigin("latchkey {\nlink\n}", origin) + "\n" + rp},
			{Port: ports[prefix+"limited"], Body: loadrig.WithOrigin("latchkey {\nlink {\nconfirm off\n}\n}", origin) + "\n" + rp},
			{Port: ports[prefix+"ticket"], Body: loadrig.WithOrigin("latchkey {\nticket bench run\n}", origin) + "\n" + rp},
		}
	}
	lk, err := proc("latchkey", mainDB, fourSites(""))
	if err != nil {
		return nil, err
	}
	var lkPG *caddyProc
	if b.pg != nil {
		// loadrig writes `storage sqlite` only; with no DB it writes no
		// latchkey block, and this one, as README.md documents it, goes
		// with the other global options.
		cfg := loadrig.Process{Dir: path("latchkey-pg"), GracePeriod: "5s", LogLevel: "WARN", Sites: fourSites("pg-"),
			Global: trustLoopback + "\nlatchkey {\nstorage postgres " + strconv.Quote(b.pg.dsn) + "\nsecret " + secret + "\n}"}
		if lkPG, err = start("latchkey-pg", cfg); err != nil {
			return nil, err
		}
		lkPG.count, lkPG.pg = b.pg.count, b.pg
	}
	fwd, err := proc("forward_auth", "", []loadrig.Block{
		{Port: ports["fwd"], Body: fmt.Sprintf("forward_auth %s {\n\turi /auth\n\tcopy_headers Remote-User\n}\n%s", authAddr, rp)},
	})
	if err != nil {
		return nil, err
	}
	small, err := proc("store-"+count1k(c.small), smallDB, []loadrig.Block{{Port: ports["small"], Body: "latchkey\n" + rp}})
	if err != nil {
		return nil, err
	}
	big, err := proc("store-"+count1k(c.big), bigDB, []loadrig.Block{{Port: ports["big"], Body: "latchkey\n" + rp}})
	if err != nil {
		return nil, err
	}

	newT := func(name string, p *caddyProc, port string, file string, expect int, gate bool, prefix string) *target {
		t := &target{Name: name, Proc: p.name, URL: site(port, ""), Mode: "cycle", Expect: expect, Gate: gate,
			proc: p, prefix: prefix, files: []string{files[file]}}
		res.Targets = append(res.Targets, t)
		return t
	}
	tPlain := newT("reverse_proxy, one cookie", base, "plain", "one-plain", 200, false, prefixPlain)
	tSession := newT("latchkey, one session", lk, "session", "one", 200, true, prefixSession)
	tFwd := newT("forward_auth, one cookie", fwd, "fwd", "one-fwd", 200, false, prefixFwd)
	tPlainRot := newT(fmt.Sprintf("reverse_proxy, %d cookies", c.rotate), base, "plain", "rot-plain", 200, false, prefixPlain)
	tRot := newT(fmt.Sprintf("latchkey, %d sessions", c.rotate), lk, "session", "rot", 200, true, prefixSession)
	tPlainLink := newT("reverse_proxy, link URL", base, "plain", "link-plain", 200, false, prefixPlain)
	tLink := newT("latchkey, unlimited link", lk, "link", "link", 200, true, prefixLink)
	tStatic := newT("respond 401", base, "static401", "static401", 401, false, "")
	tRefused := newT("latchkey, no credential", lk, "session", "refused", 401, false, "")
	tSmall := newT(fmt.Sprintf("latchkey, %d sessions in store", c.small), small, "small", "store", 200, true, prefixStore)
	tBig := newT(fmt.Sprintf("latchkey, %d sessions in store", c.big), big, "big", "store", 200, true, prefixStore)
	tLimited := newT("latchkey, one-use links", lk, "limited", "", 200, true, prefixLimited)
	tLimited.Mode, tLimited.files = "once", limitedFiles
	tTicket := newT("latchkey, tickets", lk, "ticket", "", 200, true, prefixTicket)
	tTicket.Mode, tTicket.files = "once", ticketFiles
	var pgT pgTargets
	if lkPG != nil {
		pgT.session = newT("latchkey-pg, one session", lkPG, "pg-session", "pg-one", 200, true, prefixPGSession)
		pgT.rot = newT(fmt.Sprintf("latchkey-pg, %d sessions", c.rotate), lkPG, "pg-session", "pg-rot", 200, true, prefixPGSession)
		pgT.link = newT("latchkey-pg, unlimited link", lkPG, "pg-link", "pg-link", 200, true, prefixPGLink)
		pgT.refused = newT("latchkey-pg, no credential", lkPG, "pg-session", "pg-refused", 401, false, "")
		pgT.limited = newT("latchkey-pg, one-use links", lkPG, "pg-limited", "", 200, true, prefixPGLimited)
		pgT.limited.Mode, pgT.limited.files = "once", pgLimitedFiles
		pgT.ticket = newT("latchkey-pg, tickets", lkPG, "pg-ticket", "", 200, true, prefixPGTicket)
		pgT.ticket.Mode, pgT.ticket.files = "once", pgTicketFiles
	}

	// Probes: every cycling target answers as it should before any load.
	probes := map[*caddyProc]int64{}
	for _, t := range res.Targets {
		if t.Mode != "cycle" {
			continue
		}
		if err := probe(t); err != nil {
			return nil, err
		}
		if t.Gate {
			probes[t.proc]++
		}
		t.Answered++
	}

	// ---- The load, group by group. ----
	busy0, _ := machineCPU()
	ours0 := b.ourCPU()
	io0, cpuP0 := pressure("io"), pressure("cpu")
	loadStart := time.Now()
	// Each PostgreSQL target goes with its SQLite counterpart, so that
	// both are measured against the same baseline rounds.
	groups := [][]*target{
		{tPlain, tSession, tFwd, pgT.session},
		{tPlainRot, tRot, pgT.rot},
		{tPlainLink, tLink, pgT.link},
		{tStatic, tRefused, pgT.refused},
		{tSmall, tBig},
		{tLimited, tTicket, pgT.limited, pgT.ticket},
	}
	for i, g := range groups {
		g = slices.DeleteFunc(g, func(t *target) bool { return t == nil })
		if err := b.runGroup(g); err != nil {
			return nil, err
		}
		// The peak RSS so far, to see which load made it.
		for _, p := range b.procs {
			if err := p.sample(); err != nil {
				return nil, fmt.Errorf("sampling caddy %s: %w", p.name, err)
			}
			p.hwmByGroup = append(p.hwmByGroup, mb(p.HWMKiB))
		}
		names := make([]string, len(g))
		for j, t := range g {
			names[j] = t.Name
		}
		res.Groups = append(res.Groups, fmt.Sprintf("%d: %s", i+1, strings.Join(names, " | ")))
	}
	loadWall := time.Since(loadStart)
	for _, p := range b.procs {
		if err := p.sample(); err != nil {
			return nil, fmt.Errorf("sampling caddy %s: %w", p.name, err)
		}
	}
	busy1, _ := machineCPU()
	ours1 := b.ourCPU()
	res.Machine.MachineBusy = round2((busy1 - busy0).Seconds() / loadWall.Seconds())
	res.Machine.OtherCPU = round2(math.Max(0, ((busy1-busy0)-(ours1-ours0)).Seconds()/loadWall.Seconds()))
	res.Machine.LoadAfter = loadavg()
	if io0 >= 0 {
		res.Machine.IOPressure = round3((pressure("io") - io0).Seconds() / loadWall.Seconds())
		res.Machine.CPUPressure = round3((pressure("cpu") - cpuP0).Seconds() / loadWall.Seconds())
	}
	res.Machine.Dir = c.dir

	// ---- Stop every Caddy gracefully (the audit writer flushes), then
	// check what reached the upstream and the stores. ----
	for _, p := range b.procs {
		res.Processes = append(res.Processes, ProcessResult{Name: p.name, PeakMB: mb(p.HWMKiB), RSSMB: mb(p.RSSKiB), CPUS: round2(p.CPU.Seconds()), PeakAfterGroupMB: p.hwmByGroup})
		if err := p.stop(); err != nil {
			res.problem("%v", err)
		}
	}
	b.procs = nil
	b.checkUpstream()
	for _, p := range []*caddyProc{lk, small, big, lkPG} {
		if p != nil {
			b.checkAudit(ctx, p, probes[p])
		}
	}
	b.checkOnce(ctx, lk, tTicket, tLimited)
	if lkPG != nil {
		b.checkOnce(ctx, lkPG, pgT.ticket, pgT.limited)
	}

	// ---- The tables. ----
	b.rows(tPlain, tSession, tFwd, tPlainRot, tRot, tPlainLink, tLink, tLimited, tTicket, tStatic, tRefused, tSmall, tBig, base, lk, big)
	if lkPG != nil {
		b.pgRows(tPlain, tPlainRot, tPlainLink, tStatic, pgT)
	}
	if res.Machine.OtherCPU > 0.25 {
		res.Notes = append(res.Notes, fmt.Sprintf("other processes kept %.2f CPU cores busy during the load (of %d): the numbers are disturbed; run again on a quiet machine", res.Machine.OtherCPU, res.Machine.NProc))
	}
	if res.Machine.IOPressure > 0.10 {
		res.Notes = append(res.Notes, fmt.Sprintf("some task waited for disk I/O %.0f%% of the time during the load (/proc/pressure/io): SQLite's syncs may have stalled if the stores are on disk (%s)", res.Machine.IOPressure*100, c.dir))
	}
	res.Seconds = round2(time.Since(b.start).Seconds())
	res.OK = len(res.Problems) == 0
	return res, nil
}

// ourCPU is the CPU time of the processes the run is made of: the Caddys,
// this process (upstream, auth server), the wrk runs that have ended and
// the PostgreSQL server (its backends are not this process's children, so
// RUSAGE_CHILDREN does not have them).
func (b *bench) ourCPU() time.Duration {
	var ru syscall.Rusage
	var d time.Duration
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		d += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) == nil {
		d += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for _, p := range b.procs {
		if cpu, err := procCPU(p.cmd.Process.Pid); err == nil {
			d += cpu
		}
	}
	return d + b.pg.cpu()
}

// runGroup warms up each target, then runs the rounds, interleaved: the
// order is reversed every other round (A B C, C B A, ...).
func (b *bench) runGroup(g []*target) error {
	c := b.cfg
	for _, t := range g {
		r, err := b.wrk(t, 0, c.warmup)
		if err != nil {
			return err
		}
		t.WarmUp = r
	}
	for i := range c.rounds {
		order := g
		if i%2 == 1 {
			order = make([]*target, len(g))
			for j, t := range g {
				order[len(g)-1-j] = t
			}
		}
		for _, t := range order {
			r, err := b.wrk(t, i+1, c.round)
			if err != nil {
				return err
			}
			t.Rounds = append(t.Rounds, r)
			logf("  round %d  %-34s %9.0f req/s  p50 %s  p99 %s", i+1, t.Name, r.reqPerSec(), us(r.LatencyUS.P50), us(r.LatencyUS.P99))
		}
	}
	for _, t := range g {
		t.finish(c.round)
	}
	return nil
}

// wrk runs one warm-up (run 0) or round of t and checks its answers.
func (b *bench) wrk(t *target, run int, d time.Duration) (*wrkResult, error) {
	pid := t.proc.cmd.Process.Pid
	cpu0, err := procCPU(pid)
	if err != nil {
		return nil, fmt.Errorf("caddy %s: %w", t.proc.name, err)
	}
	pg0 := t.proc.pg.cpu()
	r, err := runWrk(b.cfg.wrk, b.script, t.URL, t.file(run), t.Mode, b.cfg.threads, b.cfg.conns, d)
	if err != nil {
		return nil, err
	}
	cpu1, err := procCPU(pid)
	if err != nil {
		return nil, fmt.Errorf("caddy %s: %w", t.proc.name, err)
	}
	r.CaddyCPU = cpu1 - cpu0
	r.PGCPU = t.proc.pg.cpu() - pg0
	what := "round " + strconv.Itoa(run)
	if run == 0 {
		what = "warm-up"
	}
	for s, n := range r.Statuses {
		code, _ := strconv.Atoi(s)
		if code == t.Expect {
			t.Answered += n
			continue
		}
		t.Unexpected += n
		kind := "requests"
		if t.Gate {
			kind = "latchkey requests that should succeed"
		}
		b.res.problem("%s, %s: %d %s got status %d, want %d", t.Name, what, n, kind, code, t.Expect)
	}
	if n := r.socketErrors(); n > 0 {
		b.res.problem("%s, %s: %d socket errors or timeouts (connect %d, read %d, write %d, timeout %d)",
			t.Name, what, n, r.Errors.Connect, r.Errors.Read, r.Errors.Write, r.Errors.Timeout)
	}
	if r.Requests == 0 {
		b.res.problem("%s, %s: no request answered", t.Name, what)
	}
	if r.ExhaustedThreads > 0 {
		t.Exhausted = true
	}
	return r, nil
}

func (t *target) finish(round time.Duration) {
	var n, ok, dur int64
	var cpu, caddyCPU, pgCPU time.Duration
	var p50s []int64
	for _, r := range t.Rounds {
		n += r.Requests
		ok += r.Statuses[strconv.Itoa(t.Expect)]
		dur += r.DurationUS
		cpu += r.CPU
		caddyCPU += r.CaddyCPU
		pgCPU += r.PGCPU
		rps := r.reqPerSec()
		t.RoundReqPerSec = append(t.RoundReqPerSec, math.Round(rps))
		p50s = append(p50s, r.LatencyUS.P50)
		t.P99US = max(t.P99US, r.LatencyUS.P99)
	}
	if dur > 0 {
		t.ReqPerSec = math.Round(float64(n) / (float64(dur) / 1e6))
		t.OKPerSec = math.Round(float64(ok) / (float64(dur) / 1e6))
		t.ClientCPU = round2(cpu.Seconds() / (float64(dur) / 1e6))
		t.CaddyCPUShare = round2(caddyCPU.Seconds() / (float64(dur) / 1e6))
		t.PGCPUShare = round2(pgCPU.Seconds() / (float64(dur) / 1e6))
	}
	if n > 0 {
		t.CaddyCPUPerReqUS = math.Round(float64(caddyCPU.Microseconds())/float64(n)*10) / 10
		t.PGCPUPerReqUS = math.Round(float64(pgCPU.Microseconds())/float64(n)*10) / 10
	}
	sort.Slice(p50s, func(i, j int) bool { return p50s[i] < p50s[j] })
	if len(p50s) > 0 {
		t.P50US = p50s[len(p50s)/2]
	}
	lo, hi := math.Inf(1), 0.0
	for _, v := range t.RoundReqPerSec {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if lo > 0 && !math.IsInf(lo, 1) {
		t.Spread = round3(hi/lo - 1)
	}
}

// probe sends the first request of t's file once, with net/http.
func probe(t *target) error {
	b, err := os.ReadFile(t.files[0])
	if err != nil {
		return err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Split(line, "\t")
	path := fields[0]
	req, err := http.NewRequest(http.MethodGet, t.URL+path, nil)
	if err != nil {
		return err
	}
	for _, h := range fields[1:] {
		if k, v, ok := strings.Cut(h, ": "); ok {
			req.Header.Set(k, v)
		}
	}
	client := &http.Client{
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("probe of %s (%s): %w", t.Name, t.URL, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 2000))
	resp.Body.Close()
	if resp.StatusCode != t.Expect {
		return fmt.Errorf("probe of %s (%s%s): status %d, want %d:\n%s\ncaddy log:\n%s", t.Name, t.URL, path, resp.StatusCode, t.Expect, body, tail(t.proc.log))
	}
	return nil
}

func (res *Result) problem(format string, args ...any) {
	res.Problems = append(res.Problems, fmt.Sprintf(format, args...))
}

// checkUpstream: every answer wrk counted reached the upstream (the
// upstream may have seen a few more: requests in flight when wrk stopped),
// with the identity the gateway sets; no refusal reached it.
func (b *bench) checkUpstream() {
	res, up := b.res, b.up
	answered := map[string]int64{}
	slack := map[string]int64{}
	for _, t := range res.Targets {
		if t.prefix == "" {
			continue
		}
		answered[t.prefix] += t.Answered
		// In flight when a run ended, and answers not counted once a
		// thread ran out of one-shot credentials.
		slack[t.prefix] += int64(b.cfg.conns) * int64(1+len(t.Rounds))
	}
	for prefix, c := range up.counts {
		n, bad := c.n.Load(), c.bad.Load()
		res.Checks["upstream "+prefix] = n
		if bad > 0 {
			res.problem("upstream: %d requests under %s were wrong: %v (first)", bad, prefix, c.why.Load())
		}
		if n < answered[prefix] {
			res.problem("upstream: %d requests under %s, fewer than the %d answered 2xx: some answers did not come from the upstream", n, prefix, answered[prefix])
		}
		if n > answered[prefix]+slack[prefix] {
			res.problem("upstream: %d requests under %s, more than the %d answered and %d possibly in flight", n, prefix, answered[prefix], slack[prefix])
		}
	}
	if n := up.leaked.n.Load(); n > 0 {
		res.problem("upstream: %d refused requests reached it", n)
	}
	if n := up.unknown.n.Load(); n > 0 {
		res.problem("upstream: %d requests with an unexpected path (%v)", n, up.unknown.why.Load())
	}
}

// checkAudit: the store of p holds an accepted audit record for every
// latchkey answer wrk counted (and for the probes).
func (b *bench) checkAudit(ctx context.Context, p *caddyProc, probes int64) {
	res := b.res
	// Links and tickets have a record per use; sessions are audited by
	// their activity (a record per new client of a session), so they are
	// checked for that.
	var want, slack int64 = 0, probes
	sessions := false
	for _, t := range res.Targets {
		if t.proc != p || !t.Gate {
			continue
		}
		if strings.Contains(t.Name, "link") || strings.Contains(t.Name, "ticket") {
			want += t.Answered
			slack += int64(b.cfg.conns) * int64(1+len(t.Rounds))
		} else {
			sessions = true
		}
	}
	got, err := p.count(ctx, "SELECT coalesce(sum(count), 0) FROM audit WHERE outcome = ? AND kind IN ('link', 'ticket')", store.OutcomeAccepted)
	if err != nil {
		res.problem("audit of %s: %v", p.name, err)
		return
	}
	if sessions {
		seen, err := p.count(ctx, "SELECT count(*) FROM audit WHERE kind = 'session' AND outcome = ?", store.OutcomeAccepted)
		res.Checks["audit session activity "+p.name] = seen
		if err != nil || seen == 0 {
			res.problem("audit of %s: no session activity recorded (%v)", p.name, err)
		}
	}
	res.Checks["audit accepted "+p.name] = got
	res.Checks["audit accepted "+p.name+" wanted"] = want
	switch {
	case got < want:
		res.problem("audit of %s: %d accepted records, fewer than the %d latchkey answers", p.name, got, want)
	case got > want+slack:
		res.problem("audit of %s: %d accepted records, more than the %d answers and %d possibly in flight", p.name, got, want, slack)
	}
}

// checkOnce: every ticket and one-use link answered is used, and none was
// used twice, in the store of p.
func (b *bench) checkOnce(ctx context.Context, p *caddyProc, tickets, limited *target) {
	res := b.res
	used, err := p.count(ctx, "SELECT count(*) FROM tickets WHERE state = ?", store.TicketUsed)
	if err != nil {
		res.problem("reading the tickets of %s: %v", p.name, err)
		return
	}
	inUse, _ := p.count(ctx, "SELECT count(*) FROM tickets WHERE state = ?", store.TicketInUse)
	res.Checks["tickets used "+p.name], res.Checks["tickets in_use "+p.name] = used, inUse
	if used < tickets.Answered {
		res.problem("tickets of %s: %d used, fewer than the %d answered 200", p.name, used, tickets.Answered)
	}
	linksUsed, err := p.count(ctx, "SELECT count(*) FROM links WHERE max_uses = 1 AND uses >= 1")
	if err != nil {
		res.problem("reading the links of %s: %v", p.name, err)
		return
	}
	over, _ := p.count(ctx, "SELECT count(*) FROM links WHERE max_uses > 0 AND uses > max_uses")
	res.Checks["one-use links used "+p.name], res.Checks["links over their max_uses "+p.name] = linksUsed, over
	if linksUsed < limited.Answered {
		res.problem("links of %s: %d one-use links used, fewer than the %d answered 200", p.name, linksUsed, limited.Answered)
	}
	if over > 0 {
		res.problem("links of %s: %d used more than max_uses", p.name, over)
	}
}

func ratioRow(n, path string, a, bl *target) Row {
	return Row{N: n, Path: path, Unit: "req/s", Latchkey: a.ReqPerSec, Baseline: bl.ReqPerSec,
		Ratio: pairedRatio(a, bl), RatioOfTotals: ratio(a.ReqPerSec, bl.ReqPerSec),
		CPUCost: ratio(a.CaddyCPUPerReqUS, bl.CaddyCPUPerReqUS), Spread: math.Max(a.Spread, bl.Spread)}
}

func atLeast(r Row, want float64) Row {
	r.Target, r.Met = fmt.Sprintf("≥ %.2f", want), ptr(r.Ratio >= want)
	return r
}

// commonRows are rows 1 to 4, which both stores have: sessions, the
// unlimited link, and the one-shot credentials consumed.
func (b *bench) commonRows(tPlain, tSession, tPlainRot, tRot, tPlainLink, tLink, tLimited, tTicket *target) []Row {
	rows := []Row{
		atLeast(ratioRow("1", "session, one cookie / reverse_proxy", tSession, tPlain), targetOneSession),
		atLeast(ratioRow("2", fmt.Sprintf("session, %d sessions in rotation / reverse_proxy", b.cfg.rotate), tRot, tPlainRot), targetRotation),
		atLeast(ratioRow("3", "link, request mode, unlimited / reverse_proxy", tLink, tPlainLink), targetLink),
	}
	for _, t := range []*target{tLimited, tTicket} {
		name := "one-use links consumed/s (confirm off)"
		if t == tTicket {
			name = "tickets consumed/s"
		}
		r := Row{N: "4", Path: name, Unit: "consumed/s", Latchkey: t.OKPerSec, Spread: t.Spread, CPUPerReqUS: t.CaddyCPUPerReqUS}
		r.Target, r.Met = fmt.Sprintf("≥ %d/s", targetConsumedPerSec), ptr(t.OKPerSec >= targetConsumedPerSec)
		if t.Exhausted {
			r.Note = "the pool ran out (a lower bound: raise -pool-rate)"
		}
		rows = append(rows, r)
	}
	return rows
}

// refusalRow is row 5.
func refusalRow(tRefused, tStatic *target) Row {
	return atLeast(ratioRow("5", "refusal, no credential → 401 / respond 401", tRefused, tStatic), targetRefusal)
}

// pgTargets are latchkey-pg's targets, nil with -no-postgres.
type pgTargets struct {
	session, rot, link, refused, limited, ticket *target
}

// pgRows are rows 1 to 5 on PostgreSQL, against the baselines of the SQLite
// rows (measured in the same rounds). Caddy's CPU per request leaves out
// the server's, which each row's note gives.
func (b *bench) pgRows(tPlain, tPlainRot, tPlainLink, tStatic *target, pg pgTargets) {
	rows := append(b.commonRows(tPlain, pg.session, tPlainRot, pg.rot, tPlainLink, pg.link, pg.limited, pg.ticket),
		refusalRow(pg.refused, tStatic))
	for i, t := range []*target{pg.session, pg.rot, pg.link, pg.limited, pg.ticket, pg.refused} {
		note := fmt.Sprintf("PostgreSQL's CPU %.0fµs/req (%.2f cores)", t.PGCPUPerReqUS, t.PGCPUShare)
		if rows[i].Note != "" {
			note = rows[i].Note + "; " + note
		}
		rows[i].Note = note
	}
	b.res.PostgresRows = rows
}

func (b *bench) rows(tPlain, tSession, tFwd, tPlainRot, tRot, tPlainLink, tLink, tLimited, tTicket, tStatic, tRefused, tSmall, tBig *target, base, lk, big *caddyProc) {
	res := b.res
	rows := b.commonRows(tPlain, tSession, tPlainRot, tRot, tPlainLink, tLink, tLimited, tTicket)
	// Every latchkey path against forward_auth's best case: the ratio of
	// their ratios to reverse_proxy, each measured against its own
	// baseline in the same run.
	fwd := pairedRatio(tFwd, tPlain)
	vsFwd := func(path string, r Row) Row {
		out := Row{N: "6", Path: path + " / forward_auth best case", Unit: "ratio", Ratio: r.Ratio / fwd}
		out.Target, out.Met = fmt.Sprintf("> %.2f", targetVsForwardAuth), ptr(out.Ratio > targetVsForwardAuth)
		return out
	}
	rows = append(rows,
		refusalRow(tRefused, tStatic),
		ratioRow("6", "forward_auth best case (not latchkey) / reverse_proxy", tFwd, tPlain),
		vsFwd("session, one cookie", rows[0]),
		vsFwd("sessions in rotation", rows[1]),
		vsFwd("link, unlimited", rows[2]),
	)
	r7 := ratioRow("7", fmt.Sprintf("session, %d in rotation: %s / %s sessions rows", b.cfg.small, count1k(b.cfg.big), count1k(b.cfg.small)), tBig, tSmall)
	r7.Target, r7.Met = fmt.Sprintf("≥ %.2f", targetStoreRatio), ptr(r7.Ratio >= targetStoreRatio)
	if b.cfg.big < 1_000_000 {
		r7.Note = fmt.Sprintf("the big store has %d rows, not 1M (-store-big)", b.cfg.big)
	}
	rows = append(rows, r7)
	r8 := Row{N: "8", Path: "peak RSS (VmHWM), latchkey / reverse_proxy process", Unit: "MB",
		Latchkey: mb(lk.HWMKiB), Baseline: mb(base.HWMKiB), Ratio: ratio(float64(lk.HWMKiB), float64(base.HWMKiB))}
	r8.Target, r8.Met = fmt.Sprintf("≤ %.2f", targetRSSRatio), ptr(r8.Ratio <= targetRSSRatio)
	r8b := Row{N: "8", Path: fmt.Sprintf("peak RSS, latchkey with %s sessions / reverse_proxy", count1k(b.cfg.big)), Unit: "MB",
		Latchkey: mb(big.HWMKiB), Baseline: mb(base.HWMKiB), Ratio: ratio(float64(big.HWMKiB), float64(base.HWMKiB))}
	rows = append(rows, r8, r8b)
	res.Rows = rows
}

func (res *Result) print(out io.Writer) {
	m, s := res.Machine, res.Settings
	fmt.Fprintf(out, "\nlatchkey-bench: wrk -t%d -c%d, %d rounds × %gs per target (interleaved) after a %gs warm-up; caddy %s\n",
		s.Threads, s.Conns, s.Rounds, s.RoundS, s.WarmupS, m.Caddy)
	fmt.Fprintf(out, "machine: %d CPUs, %s, %s; load %s before, %s after; during the load: other processes busy %.2f cores, I/O pressure %.0f%%; stores in %s\n\n",
		m.NProc, m.CPU, m.CaddyGo, m.LoadBefore, m.LoadAfter, m.OtherCPU, m.IOPressure*100, m.Dir)
	fmt.Fprintln(out, "SQLite (one gateway per store):")
	printRows(out, res.Rows, "ratio: median over the rounds of latchkey's req/s over the baseline's in the same round; CPU/req: Caddy's CPU per request, latchkey's over the baseline's (one-shot rows: latchkey's); spread: max/min-1 of the rounds' req/s")
	if len(res.PostgresRows) > 0 {
		fmt.Fprintln(out, "\nPostgreSQL (one gateway, latchkey-pg; the same baselines, in the same rounds):")
		printRows(out, res.PostgresRows, "columns as above; CPU/req is Caddy's alone, and the notes add the PostgreSQL server's CPU per request, and in cores")
		fmt.Fprintln(out, "server: "+m.Postgres)
	} else {
		fmt.Fprintln(out, "\nPostgreSQL: left out (-no-postgres)")
	}
	pgCPU := ""
	if len(res.PostgresRows) > 0 {
		pgCPU = " (and the PostgreSQL server's, for latchkey-pg)"
	}
	fmt.Fprintf(out, "\nper target (measured rounds): req/s, per round, p50 (median round), p99 (worst round), Caddy's CPU per request and in cores, wrk's CPU in cores%s\n", pgCPU)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, t := range res.Targets {
		rs := make([]string, len(t.RoundReqPerSec))
		for i, v := range t.RoundReqPerSec {
			rs[i] = strconv.FormatFloat(v, 'f', 0, 64)
		}
		pg := ""
		if t.proc != nil && t.proc.pg != nil {
			pg = fmt.Sprintf("postgres %.0fµs/req %.2f", t.PGCPUPerReqUS, t.PGCPUShare)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%.0f\t%s\tp50 %s\tp99 %s\tcaddy %.0fµs/req %.2f\twrk %.2f\t%s\t\n", t.Name, t.Proc, t.ReqPerSec, strings.Join(rs, " "),
			us(t.P50US), us(t.P99US), t.CaddyCPUPerReqUS, t.CaddyCPUShare, t.ClientCPU, pg)
	}
	tw.Flush()
	fmt.Fprintln(out, "\nprocesses: peak RSS (VmHWM) after each group of rows, RSS at the end, CPU time")
	for _, p := range res.Processes {
		ps := make([]string, len(p.PeakAfterGroupMB))
		for i, v := range p.PeakAfterGroupMB {
			ps[i] = strconv.FormatFloat(v, 'f', 1, 64)
		}
		fmt.Fprintf(out, "  %-14s peak %s MB; RSS %.1f MB; CPU %.1fs\n", p.Name, strings.Join(ps, " → "), p.RSSMB, p.CPUS)
	}
	fmt.Fprintf(out, "setup %.1fs (filling the big store %.1fs), whole run %.1fs\n", res.Setup.Seconds, res.Setup.FillSeconds, res.Seconds)
	for _, n := range res.Notes {
		fmt.Fprintln(out, "NOTE: "+n)
	}
	if res.OK {
		stores := "the SQLite stores"
		if len(res.PostgresRows) > 0 {
			stores = "the SQLite stores and PostgreSQL"
		}
		fmt.Fprintf(out, "OK: every request got its expected status; every latchkey answer reached the upstream as its user and is in the audit trail; no one-shot credential used twice (%s)\n", stores)
		return
	}
	fmt.Fprintln(out, "FAILED:")
	for _, p := range res.Problems {
		fmt.Fprintln(out, "  "+p)
	}
}

// printRows prints one table of rows, a legend line under it, and the
// rows' notes.
func printRows(out io.Writer, rows []Row, legend string) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tpath\tlatchkey\tbaseline\tratio\ttarget\tmet?\tCPU/req\tspread\t")
	for _, r := range rows {
		unit := ""
		switch r.Unit {
		case "MB":
			unit = " MB"
		case "consumed/s":
			unit = "/s"
		}
		val := func(v float64) string {
			if r.Unit == "MB" {
				return fmt.Sprintf("%.1f MB", v)
			}
			return fmt.Sprintf("%.0f%s", v, unit)
		}
		bl, ratio, target, met := "—", "—", "—", "—"
		if r.Baseline > 0 {
			bl = val(r.Baseline)
		}
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f×", r.Ratio)
		}
		if r.Target != "" {
			target = r.Target
		}
		if r.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*r.Met]
		}
		spread, cpu := "", ""
		if r.Spread > 0 {
			spread = fmt.Sprintf("%.0f%%", r.Spread*100)
		}
		switch {
		case r.CPUCost > 0:
			cpu = fmt.Sprintf("%.2f×", r.CPUCost)
		case r.CPUPerReqUS > 0:
			cpu = fmt.Sprintf("%.0fµs", r.CPUPerReqUS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.N, r.Path, val(r.Latchkey), bl, ratio, target, met, cpu, spread)
	}
	tw.Flush()
	fmt.Fprintln(out, legend)
	for _, r := range rows {
		if r.Note != "" {
			fmt.Fprintf(out, "row %s, %s: %s\n", r.N, r.Path, r.Note)
		}
	}
}

// pairedRatio is the median over the rounds of a's req/s over b's in the
// same round: rounds next to each other in time share whatever else the
// machine was doing, and the median drops a round that a burst of other
// load fell on.
func pairedRatio(a, b *target) float64 {
	var rs []float64
	for i := range min(len(a.Rounds), len(b.Rounds)) {
		if x, y := a.Rounds[i].reqPerSec(), b.Rounds[i].reqPerSec(); y > 0 {
			rs = append(rs, x/y)
		}
	}
	if len(rs) == 0 {
		return 0
	}
	sort.Float64s(rs)
	m := rs[len(rs)/2]
	if len(rs)%2 == 0 {
		m = (rs[len(rs)/2-1] + m) / 2
	}
	return round3(m)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return round3(a / b)
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
func mb(kib int64) float64     { return math.Round(float64(kib)/1024*10) / 10 }
func ptr[T any](v T) *T        { return &v }

func us(v int64) string {
	if v >= 10000 {
		return fmt.Sprintf("%.1fms", float64(v)/1000)
	}
	if v >= 1000 {
		return fmt.Sprintf("%.2fms", float64(v)/1000)
	}
	return fmt.Sprintf("%dµs", v)
}

func count1k(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}

// defaultDir is /dev/shm when it is a writable directory, else the system's
// temporary directory.
func defaultDir() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() && syscall.Access("/dev/shm", 2) == nil {
		return "/dev/shm"
	}
	return os.TempDir()
}

// pressure is the total time some task stalled on resource ("io", "cpu")
// so far, from /proc/pressure; -1 where the kernel does not say.
func pressure(resource string) time.Duration {
	b, err := os.ReadFile("/proc/pressure/" + resource)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "some ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "total="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return -1
				}
				return time.Duration(n) * time.Microsecond
			}
		}
	}
	return -1
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
