// Command latchkey-load measures what latchkey costs next to plain
// reverse_proxy, in one process and one run:
//
//	go run ./cmd/latchkey-load -duration 8s -concurrency 16
//
// It starts an upstream (net/http on 127.0.0.1), and Caddy with two sites on
// two loopback ports proxying to it: "reverse_proxy" alone, and "latchkey"
// in front of the same reverse_proxy, with a SQLite store in a temporary
// directory. A user and a session are created through the store, and every
// latchkey request carries that session's cookie. After a short warm-up of
// each site, -concurrency keep-alive clients load one site at a time, in 4
// interleaved rounds per site (A B B A A B B A) of -duration/4 each, so that
// drift over the run (heap growth, the audit table growing, CPU frequency)
// falls on both sites alike. Each site is measured for -duration; the whole
// run takes a little over twice that.
//
// How to read the numbers:
//
//   - req/s is what the whole loop sustains with -concurrency clients:
//     clients, Caddy and the upstream share this process and its CPUs, so
//     the ratio latchkey/reverse_proxy is the throughput latchkey leaves
//     (0.90 means latchkey costs 10%). The clients' and the upstream's own
//     work is in both, so the gateway's share of Caddy's work is larger
//     than 1-ratio suggests. It is also the number most disturbed by
//     anything else running on the machine.
//   - CPU/req is the process's CPU time (user and system, from getrusage)
//     over the measured rounds divided by the requests answered, clients,
//     upstream and the audit writer included; "CPU use" is that time over
//     wall time (200% = two cores busy). Its ratio is the steadiest measure
//     of latchkey's cost, because it does not depend on whether the
//     loopback round trips or the CPUs are the bottleneck. Where the CPU
//     and the req/s ratios disagree, trust CPU/req and look at "CPU use".
//   - p50/p90/p99 are client-side latencies under that saturation (queueing
//     included), from a histogram with under 1% error. The p50 ratio is the
//     typical added cost; p90/p99 show the tail (the audit writer taking a
//     CPU for a batch of inserts, the session cache's 1s refresh, GC).
//   - "per round" shows the noise: a difference between the sites smaller
//     than the spread between rounds of one site is not a result. Rounds
//     of the two sites next to each other in time (A B, then B A) are the
//     fairest pairs to compare.
//   - audit rows are read back from the store after a graceful caddy.Stop
//     (which flushes the audit writer) and must equal the latchkey requests
//     answered, warm-up included: nothing dropped.
//
// The upstream answers a tiny body, so per-request overhead is as visible as
// it gets. The program exits non-zero if any latchkey or reverse_proxy
// request got anything but 200, if the upstream saw a latchkey request
// without the session user's X-User-ID, or if an audit row is missing.
// -json prints the same results as one JSON object.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/latchkeyhq/latchkey/caddymodule"
	"github.com/latchkeyhq/latchkey/internal/loadrig"
	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
)

const (
	secret = "latchkey-load-secret-0123456789abcdef-0123"
	rounds = 4

	maxDuration    = 10 * time.Minute
	maxConcurrency = 512
	requestTimeout = 10 * time.Second

	plainName = "reverse_proxy"
	gateName  = "latchkey"
)

func main() {
	duration := flag.Duration("duration", 8*time.Second, "measured time per site (split into 4 rounds); the run takes a little over twice this")
	concurrency := flag.Int("concurrency", 16, "concurrent keep-alive clients")
	asJSON := flag.Bool("json", false, "print the results as JSON")
	flag.Parse()
	if flag.NArg() > 0 {
		fail(2, "unexpected arguments: %q", flag.Args())
	}
	if *duration < 100*time.Millisecond || *duration > maxDuration {
		fail(2, "-duration must be between 100ms and %s", maxDuration)
	}
	if *concurrency < 1 || *concurrency > maxConcurrency {
		fail(2, "-concurrency must be between 1 and %d", maxConcurrency)
	}
	warmup := min(max(*duration/8, 100*time.Millisecond), 2*time.Second)

	// Bounded in time whatever happens: a hung request or a stuck stop ends
	// the run instead of the run never ending.
	limit := 2*(*duration+warmup) + 2*requestTimeout + time.Minute
	watchdog := time.AfterFunc(limit, func() {
		fmt.Fprintf(os.Stderr, "latchkey-load: still running after %s; giving up\n", limit)
		os.Exit(3)
	})
	defer watchdog.Stop()

	res, err := run(*duration, warmup, *concurrency)
	if err != nil {
		fail(1, "%v", err)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fail(1, "%v", err)
		}
	} else {
		res.print(os.Stdout)
	}
	if !res.OK {
		os.Exit(1)
	}
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "latchkey-load: "+format+"\n", args...)
	os.Exit(code)
}

// Result is everything the run measured; it is also the -json output.
type Result struct {
	OK          bool     `json:"ok"`
	Problems    []string `json:"problems,omitempty"`
	GoVersion   string   `json:"go_version"`
	GOMAXPROCS  int      `json:"gomaxprocs"`
	Concurrency int      `json:"concurrency"`
	Rounds      int      `json:"rounds"`
	// Per site, in nanoseconds in JSON.
	RoundDuration time.Duration   `json:"round_duration_ns"`
	Warmup        time.Duration   `json:"warmup_ns"`
	Targets       []*TargetResult `json:"targets"`
	// latchkey divided by reverse_proxy.
	Ratios struct {
		ReqPerSec float64 `json:"req_per_sec"`
		CPUPerReq float64 `json:"cpu_per_request"`
		P50       float64 `json:"p50"`
		P90       float64 `json:"p90"`
		P99       float64 `json:"p99"`
	} `json:"ratios"`
	Upstream struct {
		ViaPlain       int64 `json:"via_reverse_proxy"`
		ViaLatchkey    int64 `json:"via_latchkey"`
		MissingUserID  int64 `json:"latchkey_without_x_user_id"`
		UnexpectedPath int64 `json:"unexpected_path"`
	} `json:"upstream"`
	Audit AuditResult `json:"audit"`
}

// TargetResult is one site's measurements, warm-up excluded.
type TargetResult struct {
	Name      string           `json:"name"`
	URL       string           `json:"url"`
	Requests  int64            `json:"requests"`
	Errors    int64            `json:"errors"`
	ErrorKind map[string]int64 `json:"error_kinds,omitempty"`
	Elapsed   time.Duration    `json:"elapsed_ns"`
	ReqPerSec float64          `json:"req_per_sec"`
	P50       time.Duration    `json:"p50_ns"`
	P90       time.Duration    `json:"p90_ns"`
	P99       time.Duration    `json:"p99_ns"`
	Max       time.Duration    `json:"max_ns"`
	// CPU is the process's CPU time (user and system) during the measured
	// rounds; CPUPerReq divides it by Requests. 0 where not measured.
	CPU       time.Duration `json:"cpu_ns"`
	CPUPerReq time.Duration `json:"cpu_per_request_ns"`
	// RoundReqPerSec shows the spread between rounds: the noise floor.
	RoundReqPerSec []float64 `json:"round_req_per_sec"`
	// RoundCPUPerReq is CPU/req per round, in nanoseconds.
	RoundCPUPerReq []time.Duration `json:"round_cpu_per_request_ns"`
	// Answered counts every response with the expected status, warm-up
	// and probes included: what the audit trail must hold.
	Answered int64 `json:"answered_incl_warmup"`

	hist    histogram
	client  *http.Client
	tr      *http.Transport
	cookie  string
	expectS int
}

// AuditResult is what the gateway wrote, read back after it stopped.
type AuditResult struct {
	Rows             int   `json:"rows"`
	Accepted         int   `json:"accepted"`
	AcceptedExpected int64 `json:"accepted_expected"`
	Refused          int   `json:"refused"`
	RefusedExpected  int64 `json:"refused_expected"`
	// Accepted rows without the session's user and id, or with a status
	// other than 200.
	Mismatched int `json:"mismatched"`
}

func run(duration, warmup time.Duration, concurrency int) (*Result, error) {
	ctx := context.Background()
	res := &Result{
		GoVersion:     runtime.Version(),
		GOMAXPROCS:    runtime.GOMAXPROCS(0),
		Concurrency:   concurrency,
		Rounds:        rounds,
		RoundDuration: duration / rounds,
		Warmup:        warmup,
	}
	dir, err := os.MkdirTemp("", "latchkey-load-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	db := filepath.Join(dir, "latchkey.db")

	// The user and the session, through the store and with the secret the
	// gateway is configured with, before Caddy opens the same file.
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		return nil, err
	}
	u := &store.User{Email: "load@example.com", Name: "Load", Active: true}
	if err := st.CreateUser(ctx, u); err != nil {
		st.Close()
		return nil, err
	}
	token, sess, err := session.New(st, []byte(secret), session.Config{Site: "127.0.0.1"}, nil, nil).Start(ctx, u.ID, "load", "", "127.0.0.1", "latchkey-load")
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	wantUID := strconv.FormatInt(u.ID, 10)

	// The upstream: a tiny answer, and a check that every request that came
	// through latchkey names the session's user.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	body := []byte("hello from the upstream\n")
	var viaPlain, viaGate, missingUID, unexpected atomic.Int64
	upstream := &http.Server{
		ReadHeaderTimeout: requestTimeout,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case strings.HasPrefix(r.URL.Path, "/latchkey/"):
				viaGate.Add(1)
				if r.Header.Get("X-User-ID") != wantUID {
					missingUID.Add(1)
				}
			case strings.HasPrefix(r.URL.Path, "/plain/"):
				viaPlain.Add(1)
			default:
				unexpected.Add(1)
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write(body)
		}),
	}
	go upstream.Serve(ln)
	defer upstream.Close()

	plainPort, err := freePort()
	if err != nil {
		return nil, err
	}
	gatePort, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := loadCaddy(dir, db, ln.Addr().String(), plainPort, gatePort, concurrency); err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			caddy.Stop()
		}
	}()

	plain := newTarget(plainName, fmt.Sprintf("http://127.0.0.1:%d/plain/page", plainPort), "", concurrency)
	gate := newTarget(gateName, fmt.Sprintf("http://127.0.0.1:%d/latchkey/page", gatePort), "latchkey_session="+token, concurrency)
	res.Targets = []*TargetResult{plain, gate}

	// Probes: both sites answer, and latchkey is really on (a request
	// without the cookie is refused, and audited as such).
	for _, t := range res.Targets {
		if status, err := t.once(t.URL, t.cookie); err != nil || status != http.StatusOK {
			return nil, fmt.Errorf("probe of %s: status %d, %v", t.URL, status, err)
		}
		t.Answered++
	}
	if status, err := gate.once(gate.URL, ""); err != nil || status != http.StatusUnauthorized {
		return nil, fmt.Errorf("probe of %s without a cookie: status %d (want 401), %v", gate.URL, status, err)
	}
	res.Audit.RefusedExpected = 1

	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	logf("latchkey-load: %d clients, warm-up %s per site, then %d rounds of %s per site (GOMAXPROCS=%d)",
		concurrency, warmup, rounds, res.RoundDuration, res.GOMAXPROCS)
	for _, t := range res.Targets {
		t.round(warmup, concurrency, false)
	}
	for i := range rounds {
		order := res.Targets
		if i%2 == 1 {
			order = []*TargetResult{gate, plain}
		}
		for _, t := range order {
			rps, cpu := t.round(res.RoundDuration, concurrency, true)
			logf("  round %d %-14s %9.0f req/s %8s CPU/req", i+1, t.Name, rps, fmtDur(cpu))
		}
	}
	for _, t := range res.Targets {
		t.finish()
		t.tr.CloseIdleConnections()
	}

	// A graceful stop flushes the audit writer; then read back what it
	// wrote.
	if err := caddy.Stop(); err != nil {
		return nil, fmt.Errorf("stopping caddy: %w", err)
	}
	stopped = true
	res.Upstream.ViaPlain, res.Upstream.ViaLatchkey = viaPlain.Load(), viaGate.Load()
	res.Upstream.MissingUserID, res.Upstream.UnexpectedPath = missingUID.Load(), unexpected.Load()
	res.Audit.AcceptedExpected = gate.Answered
	if err := res.readAudit(ctx, db, u.ID, sess.ID); err != nil {
		return nil, err
	}

	p, g := plain, gate
	res.Ratios.ReqPerSec = ratio(g.ReqPerSec, p.ReqPerSec)
	res.Ratios.CPUPerReq = ratio(float64(g.CPUPerReq), float64(p.CPUPerReq))
	res.Ratios.P50 = ratio(float64(g.P50), float64(p.P50))
	res.Ratios.P90 = ratio(float64(g.P90), float64(p.P90))
	res.Ratios.P99 = ratio(float64(g.P99), float64(p.P99))
	res.check()
	return res, nil
}

func (res *Result) check() {
	for _, t := range res.Targets {
		if t.Errors > 0 {
			res.Problems = append(res.Problems, fmt.Sprintf("%s: %d requests did not get 200: %v", t.Name, t.Errors, t.ErrorKind))
		}
	}
	up := &res.Upstream
	if up.MissingUserID > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("upstream: %d requests came through latchkey without the session's X-User-ID", up.MissingUserID))
	}
	if up.UnexpectedPath > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("upstream: %d requests with an unexpected path", up.UnexpectedPath))
	}
	a := &res.Audit
	if int64(a.Accepted) != a.AcceptedExpected || int64(a.Refused) != a.RefusedExpected {
		res.Problems = append(res.Problems, fmt.Sprintf("audit: %d accepted and %d refused rows, want %d and %d",
			a.Accepted, a.Refused, a.AcceptedExpected, a.RefusedExpected))
	}
	if a.Mismatched > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("audit: %d accepted rows without the session's user, id or status 200", a.Mismatched))
	}
	res.OK = len(res.Problems) == 0
}

func (res *Result) readAudit(ctx context.Context, db string, userID int64, sessionID string) error {
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		return fmt.Errorf("reopening the store: %w", err)
	}
	defer st.Close()
	a := &res.Audit
	// Twice what is expected, so that extra rows would show too.
	evs, err := st.Audit(ctx, store.AuditFilter{Limit: int(2*(a.AcceptedExpected+a.RefusedExpected)) + 100})
	if err != nil {
		return fmt.Errorf("reading the audit trail: %w", err)
	}
	a.Rows = len(evs)
	for i := range evs {
		e := &evs[i]
		switch e.Outcome {
		case store.OutcomeAccepted:
			a.Accepted++
			if e.UserID != userID || e.SessionID != sessionID || e.Status != http.StatusOK {
				a.Mismatched++
			}
		case store.OutcomeRefused:
			a.Refused++
		}
	}
	return nil
}

func loadCaddy(dir, db, upstream string, plainPort, gatePort, concurrency int) error {
	warnings, err := loadrig.Load(loadrig.Caddyfile(dir, db, secret, upstream, concurrency, []loadrig.Site{
		{Port: plainPort},
		{Port: gatePort, Latchkey: "latchkey"},
	}))
	for _, w := range warnings {
		fmt.Fprintf(os.Stderr, "caddyfile warning: %s\n", w.Message)
	}
	return err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func newTarget(name, url, cookie string, concurrency int) *TargetResult {
	tr := &http.Transport{
		Proxy:               nil, // loopback only, whatever HTTP_PROXY says
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        concurrency,
		MaxIdleConnsPerHost: concurrency, // the default of 2 would reconnect all the time
		MaxConnsPerHost:     concurrency,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return &TargetResult{
		Name:      name,
		URL:       url,
		ErrorKind: map[string]int64{},
		tr:        tr,
		cookie:    cookie,
		expectS:   http.StatusOK,
		client: &http.Client{
			Transport:     tr,
			Timeout:       requestTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

func (t *TargetResult) newRequest(url, cookie string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		panic(err)
	}
	req.Header.Set("User-Agent", "latchkey-load/1")
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	return req
}

// do sends req and reads the whole body, so the connection is reused.
func (t *TargetResult) do(req *http.Request) (int, error) {
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

func (t *TargetResult) once(url, cookie string) (int, error) {
	return t.do(t.newRequest(url, cookie))
}

type workerResult struct {
	n, answered int64
	errs        map[string]int64
	hist        histogram
}

// round runs concurrency clients against t for d and returns the round's
// req/s and CPU/req. Measured rounds add to t's totals; every round adds to
// Answered.
func (t *TargetResult) round(d time.Duration, concurrency int, measured bool) (float64, time.Duration) {
	workers := make([]workerResult, concurrency)
	var wg sync.WaitGroup
	cpu0 := processCPU()
	start := time.Now()
	deadline := start.Add(d)
	for i := range workers {
		w := &workers[i]
		wg.Go(func() {
			req := t.newRequest(t.URL, t.cookie)
			for time.Now().Before(deadline) {
				t0 := time.Now()
				status, err := t.do(req)
				lat := time.Since(t0)
				w.n++
				switch {
				case err != nil:
					w.addErr(errKind(err))
				case status != t.expectS:
					w.addErr("status " + strconv.Itoa(status))
				default:
					w.answered++
				}
				w.hist.add(lat)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	var n int64
	for i := range workers {
		w := &workers[i]
		n += w.n
		t.Answered += w.answered
		// Errors during warm-up count too; only its latencies do not.
		for k, v := range w.errs {
			if !measured {
				k = "warm-up: " + k
			}
			t.ErrorKind[k] += v
			t.Errors += v
		}
		if measured {
			t.hist.merge(&w.hist)
		}
	}
	rps := float64(n) / elapsed.Seconds()
	var cpuReq time.Duration
	if n > 0 {
		cpuReq = cpu / time.Duration(n)
	}
	if measured {
		t.Requests += n
		t.Elapsed += elapsed
		t.CPU += cpu
		t.RoundReqPerSec = append(t.RoundReqPerSec, math.Round(rps))
		t.RoundCPUPerReq = append(t.RoundCPUPerReq, cpuReq)
	}
	return rps, cpuReq
}

func (w *workerResult) addErr(kind string) {
	if w.errs == nil {
		w.errs = map[string]int64{}
	}
	w.errs[kind]++
}

func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

func (t *TargetResult) finish() {
	if t.Elapsed > 0 {
		t.ReqPerSec = math.Round(float64(t.Requests)/t.Elapsed.Seconds()*10) / 10
	}
	if t.Requests > 0 {
		t.CPUPerReq = t.CPU / time.Duration(t.Requests)
	}
	t.P50 = t.hist.quantile(0.50)
	t.P90 = t.hist.quantile(0.90)
	t.P99 = t.hist.quantile(0.99)
	t.Max = t.hist.max
	if len(t.ErrorKind) == 0 {
		t.ErrorKind = nil
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return math.Round(a/b*1000) / 1000
}

// histogram is a log-linear latency histogram: 128 buckets per power of two
// of nanoseconds, so any value is within 1/128 of its bucket, in fixed
// memory however long the run.
type histogram struct {
	counts [64 << subBits]int64
	n      int64
	max    time.Duration
}

const subBits = 7

func bucketOf(d time.Duration) int {
	v := uint64(max(d, 0))
	if v < 2<<subBits {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	return (shift+1)<<subBits + int(v>>shift) - 1<<subBits
}

// bucketMid is the middle of bucket i's range.
func bucketMid(i int) time.Duration {
	if i < 2<<subBits {
		return time.Duration(i)
	}
	shift := i>>subBits - 1
	low := uint64(i&(1<<subBits-1)+1<<subBits) << shift
	return time.Duration(low + (uint64(1)<<shift)/2)
}

func (h *histogram) add(d time.Duration) {
	h.counts[bucketOf(d)]++
	h.n++
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(bucketMid(i), h.max)
		}
	}
	return h.max
}

func (res *Result) print(out io.Writer) {
	fmt.Fprintf(out, "latchkey-load: %d keep-alive clients, %d rounds × %s per site after %s warm-up, GOMAXPROCS=%d, %s\n\n",
		res.Concurrency, res.Rounds, res.RoundDuration, res.Warmup, res.GOMAXPROCS, res.GoVersion)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\trequests\treq/s\tp50\tp90\tp99\tmax\tCPU/req\tCPU use\terrors\t")
	for _, t := range res.Targets {
		cpuReq, cpuUse := "-", "-"
		if t.CPU > 0 {
			cpuReq = fmtDur(t.CPUPerReq)
			cpuUse = fmt.Sprintf("%.0f%%", float64(t.CPU)/float64(t.Elapsed)*100)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", t.Name, t.Requests, t.ReqPerSec,
			fmtDur(t.P50), fmtDur(t.P90), fmtDur(t.P99), fmtDur(t.Max), cpuReq, cpuUse, t.Errors)
	}
	tw.Flush()
	r := res.Ratios
	fmt.Fprintf(out, "\nlatchkey / reverse_proxy:  req/s %.3f (%+.1f%%)   CPU/req %.3f   p50 %.3f   p90 %.3f   p99 %.3f\n",
		r.ReqPerSec, (r.ReqPerSec-1)*100, r.CPUPerReq, r.P50, r.P90, r.P99)
	for _, t := range res.Targets {
		rs := make([]string, len(t.RoundReqPerSec))
		for i, v := range t.RoundReqPerSec {
			rs[i] = strconv.FormatFloat(v, 'f', 0, 64)
		}
		sorted := append([]float64(nil), t.RoundReqPerSec...)
		sort.Float64s(sorted)
		spread := 0.0
		if len(sorted) > 0 && sorted[0] > 0 {
			spread = (sorted[len(sorted)-1]/sorted[0] - 1) * 100
		}
		cs := make([]string, len(t.RoundCPUPerReq))
		for i, v := range t.RoundCPUPerReq {
			cs[i] = fmtDur(v)
		}
		fmt.Fprintf(out, "per round, %-14s req/s %s (spread %.1f%%)   CPU/req %s\n", t.Name+":", strings.Join(rs, " "), spread, strings.Join(cs, " "))
	}
	up := res.Upstream
	fmt.Fprintf(out, "\nupstream: %d requests via reverse_proxy, %d via latchkey, %d of those without the session's X-User-ID\n",
		up.ViaPlain, up.ViaLatchkey, up.MissingUserID)
	a := res.Audit
	fmt.Fprintf(out, "audit rows read back after graceful stop: %d accepted (want %d, one per latchkey answer incl. warm-up), %d refused (want %d, the no-cookie probe), %d mismatched\n",
		a.Accepted, a.AcceptedExpected, a.Refused, a.RefusedExpected, a.Mismatched)
	if res.OK {
		fmt.Fprintln(out, "\nOK: every request answered 200, every latchkey request reached the upstream as the session's user, no audit row dropped")
		return
	}
	fmt.Fprintln(out, "\nFAILED:")
	for _, p := range res.Problems {
		fmt.Fprintln(out, "  "+p)
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	case d >= 100*time.Microsecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	default:
		return fmt.Sprintf("%.1fµs", float64(d)/1e3)
	}
}
