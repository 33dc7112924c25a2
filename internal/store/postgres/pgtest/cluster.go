package pgtest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a throwaway PostgreSQL cluster of one test's own, which the
// test may stop and start again: for what a gateway does while its
// database is down. It is started as DSN's cluster is (same binaries,
// settings and user), whether or not LATCHKEY_TEST_PG_DSN is set: a test
// that stops its server cannot share one.
type Cluster struct {
	t    testing.TB
	bin  string
	cred *syscall.Credential

	mu      sync.Mutex
	s       *server
	running bool
}

// StartCluster starts a cluster for t, stopped and removed when t ends.
// Without a PostgreSQL server to run it fails t in CI and skips it
// elsewhere, as DSN does.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	s, bin, cred, err := prepare()
	if err != nil {
		unavailable(t, err)
	}
	for attempt := 0; ; attempt++ {
		err = s.run(bin, cred)
		if err == nil {
			break
		}
		if attempt == 2 {
			os.RemoveAll(s.dir)
			unavailable(t, err)
		}
	}
	c := &Cluster{t: t, bin: bin, cred: cred, s: s, running: true}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.s.stop()
		c.running = false
	})
	return c
}

// Port is the cluster's port on 127.0.0.1, the same across restarts.
func (c *Cluster) Port() int { return c.s.port }

// DSN makes a new, empty database on the running cluster and returns its
// key=value DSN (user postgres, no password). It goes with the cluster.
func (c *Cluster) DSN() string {
	c.t.Helper()
	name := "t_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.s.dsn("postgres"))
	if err != nil {
		c.t.Fatalf("pgtest: connecting to the cluster: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+name); err != nil {
		c.t.Fatalf("pgtest: creating database %s: %v", name, err)
	}
	return c.s.dsn(name)
}

// Stop shuts the server down the way `pg_ctl stop -m fast` does: clients
// are disconnected, transactions in progress rolled back, and the port
// refuses connections until Start. It waits until the server has exited.
func (c *Cluster) Stop() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return
	}
	c.s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.s.done:
	case <-time.After(30 * time.Second):
		c.s.cmd.Process.Kill()
		<-c.s.done
	}
	c.s.cmd = nil
	c.running = false
}

// Start starts the stopped server again, on the same port with the same
// data, and waits until it takes connections.
func (c *Cluster) Start() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return
	}
	if err := c.s.runOn(c.bin, c.cred, c.s.port); err != nil {
		c.t.Fatalf("pgtest: restarting the cluster on port %d: %v", c.s.port, err)
	}
	c.running = true
}

// String names the cluster, for logs.
func (c *Cluster) String() string {
	return fmt.Sprintf("pgtest cluster on 127.0.0.1:%d in %s", c.s.port, c.s.dir)
}
