package caddymodule_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/jackc/pgx/v5"

	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/postgres"
	"github.com/latchkeyhq/latchkey/internal/store/postgres/pgtest"
)

func pgFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func pgCaddyfile(port int, storage string) string {
	return fmt.Sprintf(`{
	admin off
	auto_https off
	log {
		output discard
	}
	latchkey {
		%s
		secret {env.LATCHKEY_TEST_SECRET}
	}
}
http://127.0.0.1:%d {
	latchkey
	respond "secret"
}`, storage, port)
}

func loadCaddyfile(src string) error {
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), nil)
	if err != nil {
		return err
	}
	return caddy.Load(adapted, true)
}

// TestPostgresGateway runs a gateway on storage postgres with the DSN from
// the environment: a refused request is audited in the database, and a
// reload keeps working on the shared store.
func TestPostgresGateway(t *testing.T) {
	dsn := pgtest.DSN(t)
	t.Setenv("LATCHKEY_TEST_PG_DSN_GW", dsn)
	t.Setenv("LATCHKEY_TEST_SECRET", strings.Repeat("k", 40))
	port := pgFreePort(t)
	cfg := pgCaddyfile(port, "storage postgres {env.LATCHKEY_TEST_PG_DSN_GW}")
	if err := loadCaddyfile(cfg); err != nil {
		t.Fatalf("loading: %v", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			caddy.Stop()
		}
	}()
	for i := range 2 {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/private", port))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("request without a credential got %d", resp.StatusCode)
		}
		if i == 0 {
			// A reload shares the open store.
			if err := loadCaddyfile(cfg); err != nil {
				t.Fatalf("reloading: %v", err)
			}
		}
	}
	if err := caddy.Stop(); err != nil { // flushes the audit writer
		t.Fatal(err)
	}
	stopped = true

	st, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	events, err := st.Audit(t.Context(), store.AuditFilter{Outcome: store.OutcomeRefused})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) < 2 {
		t.Errorf("%d refused requests audited in PostgreSQL, want 2", len(events))
	}
	if _, err := st.Secret(t.Context(), nil); err == nil {
		t.Error("a configured secret was kept in the database")
	}
}

// TestPostgresGatewayBadPassword: a DSN with a wrong password fails the
// load, and the error does not show the password.
func TestPostgresGatewayBadPassword(t *testing.T) {
	dsn := pgtest.DSN(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	role := "gw_" + strings.TrimPrefix(cfg.Database, "t_")
	if _, err := conn.Exec(t.Context(), `CREATE ROLE `+role+` LOGIN PASSWORD 'the-right-one'`); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.Background(), `DROP ROLE IF EXISTS `+role)

	const password = "wr0ng-Pa55word-not-shown"
	t.Setenv("LATCHKEY_TEST_SECRET", strings.Repeat("k", 40))
	bad := fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable&connect_timeout=5", role, password,
		net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)), cfg.Database)
	if c, err := pgx.Connect(t.Context(), bad); err == nil {
		c.Close(context.Background())
		t.Log("the test server (LATCHKEY_TEST_PG_DSN) does not check passwords; nothing to test")
		return
	}
	start := time.Now()
	err = loadCaddyfile(pgCaddyfile(pgFreePort(t), fmt.Sprintf("storage postgres %q", bad)))
	if err == nil {
		caddy.Stop()
		t.Fatal("a DSN with a wrong password loaded")
	}
	if strings.Contains(err.Error(), password) {
		t.Errorf("load error shows the password: %v", err)
	}
	if !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("load error %q does not say why", err)
	}
	t.Logf("after %v: %v", time.Since(start), err)
}
