package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkeyhq/latchkey/internal/store/postgres/pgtest"
)

// pgServer is the throwaway PostgreSQL cluster the PostgreSQL rows run on:
// pgtest's, as the store's tests start it (initdb and postgres from
// /usr/lib/postgresql/15/bin, as the postgres user when run as root, on a
// free port of 127.0.0.1, fsync, synchronous_commit and full_page_writes
// off), with one database for the gateway.
type pgServer struct {
	tb      *clusterTB
	dsn     string // the gateway's database: key=value, user postgres, no password
	version string // server_version
	pid     int    // the postmaster's, for the server's CPU time; 0 if not found
}

// pgSettings says how pgtest runs the server, for the table's notes: the
// consumption rows are to be read with it (SQLite's stores on tmpfs are no
// more durable).
const pgSettings = "fsync, synchronous_commit and full_page_writes off"

// startPostgres starts the cluster with its directory under dir and makes
// the gateway's database. Without PostgreSQL's binaries it fails, saying
// what is missing and how to get it.
func startPostgres(dir string) (s *pgServer, err error) {
	s = &pgServer{tb: &clusterTB{}}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	// pgtest makes the cluster's directory in os.TempDir(); TMPDIR puts
	// it where the SQLite stores are (tmpfs by default), so that both
	// engines are measured without the disk.
	oldTmp, hadTmp := os.LookupEnv("TMPDIR")
	os.Setenv("TMPDIR", dir)
	err = s.tb.do(func() {
		c := pgtest.StartCluster(s.tb)
		s.dsn = c.DSN()
	})
	if hadTmp {
		os.Setenv("TMPDIR", oldTmp)
	} else {
		os.Unsetenv("TMPDIR")
	}
	if err != nil {
		// pgtest's advice to set its DSN variable is for DSN's tests:
		// StartCluster, like this run, starts a cluster of its own anyway.
		msg := strings.TrimSuffix(err.Error(), fmt.Sprintf(" (set %s, or install postgresql-15: make deps)", pgtest.EnvDSN))
		return nil, fmt.Errorf("starting PostgreSQL for the PostgreSQL rows: %s; make deps installs postgresql-15, -no-postgres leaves the rows out", msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return nil, fmt.Errorf("connecting to the bench's PostgreSQL database: %w", err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&s.version); err != nil {
		return nil, fmt.Errorf("reading PostgreSQL's server_version: %w", err)
	}
	s.pid = postmaster()
	return s, nil
}

// stop stops the cluster and removes its directory (pgtest's cleanups).
func (s *pgServer) stop() {
	if s != nil {
		s.tb.cleanup()
	}
}

// count runs a one-integer query on the gateway's database; its
// parameters are written ? as for SQLite (count), so that the checks share
// their SQL.
func (s *pgServer) count(ctx context.Context, query string, args ...any) (int64, error) {
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return 0, fmt.Errorf("connecting to the bench's PostgreSQL database: %w", err)
	}
	defer conn.Close(context.Background())
	var v int64
	if err := conn.QueryRow(ctx, b.String(), args...).Scan(&v); err != nil {
		return 0, fmt.Errorf("%s: %w", b.String(), err)
	}
	return v, nil
}

// cpu is the server's CPU time so far: the postmaster's, its ended
// children's (backends end when the gateway closes a connection) and its
// live children's. It is part of the run's own CPU (ourCPU) and of the
// PostgreSQL rows' cost, which Caddy's CPU per request leaves out.
func (s *pgServer) cpu() time.Duration {
	if s == nil || s.pid == 0 {
		return 0
	}
	f, err := procStat(s.pid)
	if err != nil || len(f) < 15 {
		return 0
	}
	var t int64
	for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
		n, _ := strconv.ParseInt(f[i], 10, 64)
		t += n
	}
	d := ticks(t)
	for _, pid := range children(s.pid) {
		if cpu, err := procCPU(pid); err == nil {
			d += cpu
		}
	}
	return d
}

// postmaster is the pid of this process's child named postgres (pgtest
// keeps its exec.Cmd to itself), 0 if there is none.
func postmaster() int {
	for _, pid := range children(os.Getpid()) {
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); err == nil && strings.TrimSpace(string(b)) == "postgres" {
			return pid
		}
	}
	return 0
}

// children lists the processes whose parent is ppid, from /proc.
func children(ppid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f, err := procStat(pid); err == nil && len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			out = append(out, pid)
		}
	}
	return out
}

// clusterTB is the testing.TB that pgtest's StartCluster and DSN take: pgtest
// has no entry point for a program. Fatalf and Skipf (pgtest skips a test
// when there is no server, outside CI) end the call with a panic that do
// turns into an error, for the bench must fail then, not skip; Cleanup
// collects what stops the cluster. The embedded TB is nil, so a method
// pgtest might start calling that is not here panics instead of passing
// silently.
type clusterTB struct {
	testing.TB
	cleanups []func()
}

type tbFailure string

func (t *clusterTB) Helper()          {}
func (t *clusterTB) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }
func (t *clusterTB) Fatalf(format string, args ...any) {
	panic(tbFailure(fmt.Sprintf(format, args...)))
}
func (t *clusterTB) Skipf(format string, args ...any)  { panic(tbFailure(fmt.Sprintf(format, args...))) }
func (t *clusterTB) Errorf(format string, args ...any) { logf("latchkey-bench: "+format, args...) }
func (t *clusterTB) Logf(format string, args ...any)   { logf("latchkey-bench: "+format, args...) }

// do runs f, returning a Fatalf's or Skipf's message as an error.
func (t *clusterTB) do(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			msg, ok := r.(tbFailure)
			if !ok {
				panic(r)
			}
			err = errors.New(string(msg))
		}
	}()
	f()
	return nil
}

// cleanup runs the cleanups, last first, once.
func (t *clusterTB) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.cleanups = nil
}
