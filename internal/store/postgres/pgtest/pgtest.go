// Package pgtest gives tests a fresh, empty PostgreSQL database.
//
// With LATCHKEY_TEST_PG_DSN set, the databases are made on that server
// (the DSN must be allowed to CREATE DATABASE). Otherwise the first DSN call
// of a test binary starts a throwaway PostgreSQL 15 cluster (initdb and
// postgres from /usr/lib/postgresql/15/bin, or LATCHKEY_TEST_PG_BIN, or
// failing both the newest /usr/lib/postgresql/<version>/bin):
// data directory and unix socket in a temporary directory, listening on a
// free port of 127.0.0.1, fsync off; the postgres superuser is trusted on
// loopback, other roles need their password. As root it
// runs as the postgres OS user (the temporary directory is given to it).
//
// The cluster is stopped and its directory removed by Main, which every
// package using pgtest calls from its TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// The server is also started with the parent-death signal set, so a test
// binary that is killed (a -timeout panic, a ^C, kill -9) takes it down as
// well; its temporary directory is then left behind, and removed by a later
// start once it is an hour old.
//
// A DSN call that cannot get a server fails the test when the environment
// variable CI is non-empty (tests must never skip in CI) and skips it
// otherwise, with the reason either way.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names an existing server to make the test databases on.
const EnvDSN = "LATCHKEY_TEST_PG_DSN"

// EnvBin overrides the directory of initdb and postgres.
const EnvBin = "LATCHKEY_TEST_PG_BIN"

// DefaultBin is where Debian's postgresql-15 package puts the server.
const DefaultBin = "/usr/lib/postgresql/15/bin"

var (
	once    sync.Once
	cluster *server
	admin   string // DSN of a database to run CREATE/DROP DATABASE from
	initErr error
)

// Main runs the tests and then stops the cluster, if one was started, and
// exits with the tests' code.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops the cluster a DSN call started, if any, and removes its
// directory. Main calls it; it is for a TestMain that does more.
func Stop() {
	if cluster != nil {
		cluster.stop()
		cluster = nil
	}
}

// DSN returns the DSN of a new, empty database, dropped when t ends. Its
// password, if any, is that of LATCHKEY_TEST_PG_DSN.
func DSN(t testing.TB) string {
	t.Helper()
	once.Do(setup)
	if initErr != nil {
		unavailable(t, initErr)
	}
	name := "t_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		unavailable(t, fmt.Errorf("connecting to the test server: %w", err))
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("pgtest: creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("pgtest: dropping database %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		// FORCE: a store the test forgot to close must not keep it.
		if _, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: dropping database %s: %v", name, err)
		}
	})
	return withDatabase(admin, name)
}

// unavailable fails t in CI and skips it elsewhere.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("pgtest: no PostgreSQL server (CI is set, so this is a failure, not a skip): %v", err)
	}
	t.Skipf("pgtest: no PostgreSQL server: %v (set %s, or install postgresql-15: make deps)", err, EnvDSN)
}

func setup() {
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		if _, err := pgx.ParseConfig(dsn); err != nil {
			initErr = fmt.Errorf("%s does not parse", EnvDSN)
			return
		}
		admin = dsn
		return
	}
	cluster, initErr = start()
	if initErr == nil {
		admin = cluster.dsn("postgres")
	}
}

// withDatabase returns dsn with its database replaced by name.
func withDatabase(dsn, name string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			u.Path = "/" + name
			u.RawPath = ""
			return u.String()
		}
	}
	// key=value: a later key overrides an earlier one.
	return dsn + " dbname=" + name
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// server is a throwaway cluster.
type server struct {
	dir  string // temporary directory: data/, the socket, the log
	port int
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

func (s *server) dsn(db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=%s sslmode=disable", s.port, db)
}

// start runs initdb and then postgres, retrying on another port if the one
// picked was taken meanwhile.
func start() (*server, error) {
	s, bin, cred, err := prepare()
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		err := s.run(bin, cred)
		if err == nil {
			return s, nil
		}
		if attempt == 2 {
			os.RemoveAll(s.dir)
			return nil, err
		}
	}
}

// prepare makes a new cluster's directory with initdb, not started.
func prepare() (s *server, bin string, cred *syscall.Credential, err error) {
	bin = binDir()
	for _, exe := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(bin, exe)); err != nil {
			return nil, "", nil, fmt.Errorf("no %s in %s (install postgresql-15, or set %s): %w", exe, bin, EnvBin, err)
		}
	}
	cred, err = credential()
	if err != nil {
		return nil, "", nil, err
	}
	sweep()
	dir, err := os.MkdirTemp("", "latchkey-pgtest-")
	if err != nil {
		return nil, "", nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, "", nil, fmt.Errorf("giving %s to the postgres user: %w", dir, err)
		}
	}
	s = &server{dir: dir}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"),
		"-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, "", nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	// The postgres superuser needs no password; other roles do, so that a
	// test can check what a wrong password gives.
	hba := "local all all trust\n" +
		"host all postgres 127.0.0.1/32 trust\n" +
		"host all all 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(dir, "data", "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, "", nil, fmt.Errorf("writing pg_hba.conf: %w", err)
	}
	return s, bin, cred, nil
}

// binDir is LATCHKEY_TEST_PG_BIN, else DefaultBin, else the newest
// /usr/lib/postgresql/<version>/bin there is (a Debian without
// postgresql-15 installs another version as "postgresql").
func binDir() string {
	if bin := os.Getenv(EnvBin); bin != "" {
		return bin
	}
	if _, err := os.Stat(filepath.Join(DefaultBin, "initdb")); err == nil {
		return DefaultBin
	}
	best, bestV := DefaultBin, 0
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	for _, d := range dirs {
		bin := filepath.Dir(d)
		if v, err := strconv.Atoi(filepath.Base(filepath.Dir(bin))); err == nil && v > bestV {
			best, bestV = bin, v
		}
	}
	return best
}

// credential is the postgres user's when running as root (initdb and
// postgres refuse root), nil otherwise (they run as the current user).
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and there is no postgres user to run the server as: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("postgres user: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// run starts postgres on a free port and waits until it takes connections.
func (s *server) run(bin string, cred *syscall.Credential) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	return s.runOn(bin, cred, port)
}

// runOn starts postgres on port and waits until it takes connections.
func (s *server) runOn(bin string, cred *syscall.Credential, port int) error {
	s.port = port
	logPath := filepath.Join(s.dir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", filepath.Join(s.dir, "data"),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(port),
		"-c", "unix_socket_directories="+s.dir,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=300",
		"-c", "shared_buffers=32MB",
		"-c", "log_min_messages=warning",
		"-c", "logging_collector=off")
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Own process group, so a ^C to the test binary reaches postgres only
	// through the parent-death signal (SIGQUIT: immediate shutdown, which
	// also ends its backends). Pdeathsig is set after the credentials
	// change, so the switch of user does not clear it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { cmd.Wait(); close(s.done) }()

	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.dsn("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres exited at start: %s", tail(log))
		default:
		}
		if time.Now().After(deadline) {
			s.kill()
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres did not accept connections within a minute: %v; log: %s", err, tail(log))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop shuts the server down at once (SIGQUIT, nothing to keep) and removes
// its directory.
func (s *server) stop() {
	s.kill()
	os.RemoveAll(s.dir)
}

func (s *server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// sweep removes the directories of clusters whose test binary was killed:
// their server is gone (no postmaster.pid) and they have not changed for
// an hour. A cluster being set up or running is left alone.
func sweep() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "latchkey-pgtest-*"))
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < time.Hour {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "data", "postmaster.pid")); errors.Is(err, os.ErrNotExist) {
			os.RemoveAll(d)
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
