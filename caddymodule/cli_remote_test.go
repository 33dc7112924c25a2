package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
)

// cliProc runs `caddy latchkey <args>` as its own process in dir, as an
// operator does from a shell there.
func cliProc(t *testing.T, dir string, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"latchkey"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), envCaddyChild+"=1", "XDG_DATA_HOME="+filepath.Join(dir, "xdg-data"), "HOME="+dir)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.Stdin = strings.NewReader(stdin)
	err = cmd.Run()
	return o.String(), e.String(), err
}

// TestCLIThroughTheRunningGateway: the gateway runs from its own directory
// with a relative store path; the CLI, run from elsewhere with the same
// config, reaches that store through the admin API (its output says so),
// creates nothing where it runs, streams a file it reads, and once the
// gateway is gone refuses with the path it would have opened.
func TestCLIThroughTheRunningGateway(t *testing.T) {
	gwDir, elsewhere := t.TempDir(), t.TempDir()
	port, adminPort := freePort(t), freePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", adminPort)
	cfg := filepath.Join(gwDir, "Caddyfile")
	writeFile(t, cfg, fmt.Sprintf(`{
	admin %s
	auto_https off
	storage file_system ./caddy
	log {
		output discard
	}
	latchkey {
		storage sqlite ./data/latchkey.db
		secret %s
	}
}

http://127.0.0.1:%d {
	latchkey {
		invite
	}
	respond "upstream {http.request.header.X-User-ID}"
}
`, admin, testSecret, port))
	gw := exec.Command(os.Args[0], "run", "--config", "Caddyfile", "--adapter", "caddyfile")
	gw.Dir = gwDir
	gw.Env = append(os.Environ(), envCaddyChild+"=1", "XDG_DATA_HOME="+filepath.Join(gwDir, "xdg"))
	var gwOut bytes.Buffer
	gw.Stdout, gw.Stderr = &gwOut, &gwOut
	gw.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { gw.Wait(); close(done) }()
	stop := func() {
		select {
		case <-done:
			return
		default:
		}
		gw.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			gw.Process.Kill()
			<-done
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("gateway output:\n%s", gwOut.String())
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get(base + "/.latchkey/login")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not start: %v\n%s", err, gwOut.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
	gwDB := filepath.Join(gwDir, "data", "latchkey.db")

	out, errOut, err := cliProc(t, elsewhere, "", "invites", "create", "--email", "ada@example.com", "--json", "--config", cfg, "--adapter", "caddyfile")
	if err != nil {
		t.Fatalf("invites create from another directory: %v\n%s%s", err, out, errOut)
	}
	if want := "latchkey: store sqlite " + gwDB + " (through the admin API at " + admin + ")"; !strings.Contains(errOut, want) {
		t.Errorf("stderr does not say which store:\n%s\nwant a line %q", errOut, want)
	}
	var inv struct {
		Code  string `json:"code"`
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(out), &inv); err != nil || inv.Code == "" || inv.State != "valid" {
		t.Fatalf("invites create --json: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(elsewhere, "data")); err == nil {
		t.Errorf("the CLI made a store where it ran")
	}
	// The code works at the gateway: it went to the gateway's store.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodPost, base+"/.latchkey/login", strings.NewReader(url.Values{"code": {inv.Code}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the invite made from elsewhere, used at the gateway: %d, want 303", resp.StatusCode)
	}

	// A file named relative to where the CLI runs is read there and sent.
	writeFile(t, filepath.Join(elsewhere, "people.csv"), "email,name\nbob@example.com,Bob\ncy@example.com,Cy\n")
	out, errOut, err = cliProc(t, elsewhere, "", "users", "import", "people.csv", "--site", "127.0.0.1", "--json", "--config", cfg, "--adapter", "caddyfile")
	if err != nil || !strings.Contains(out, `"imported": 2`) {
		t.Fatalf("users import through the gateway: %v\n%s%s", err, out, errOut)
	}
	// So is standard input.
	out, errOut, err = cliProc(t, elsewhere, "email\ndee@example.com\n", "users", "import", "-", "--format", "csv", "--config", cfg, "--adapter", "caddyfile")
	if err != nil {
		t.Fatalf("users import - through the gateway: %v\n%s%s", err, out, errOut)
	}
	// A slow pipe: the gateway reads the input as the command works, past
	// the admin server's 10 s request read timeout.
	pr, pw := io.Pipe()
	go func() {
		io.WriteString(pw, "email\n")
		time.Sleep(11 * time.Second)
		io.WriteString(pw, "slow@example.com\n")
		pw.Close()
	}()
	slow := exec.Command(os.Args[0], "latchkey", "users", "import", "-", "--format", "csv", "--site", "127.0.0.1", "--config", cfg, "--adapter", "caddyfile")
	slow.Dir = elsewhere
	slow.Env = append(os.Environ(), envCaddyChild+"=1")
	slow.Stdin = pr
	if b, err := slow.CombinedOutput(); err != nil {
		t.Fatalf("users import from a slow pipe: %v\n%s", err, b)
	}

	// An error comes back as the command's error, once.
	_, errOut, err = cliProc(t, elsewhere, "", "users", "show", "nobody@example.com", "--config", cfg, "--adapter", "caddyfile")
	if err == nil || strings.Count(errOut, "nobody@example.com") != 1 {
		t.Errorf("users show of an unknown user: %v, stderr:\n%s\nwant one error naming the user", err, errOut)
	}

	st, err := sqlite.Open(t.Context(), gwDB)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	users, err := st.Users(t.Context())
	if err != nil || len(users) != 5 {
		t.Errorf("gateway store has %d users (%v), want ada (by the code), bob, cy, dee and slow", len(users), err)
	}

	// The admin API answers a wrong method with 405 and what is allowed.
	req, _ = http.NewRequest(http.MethodDelete, "http://"+admin+"/latchkey/users", nil)
	req.Header.Set("Origin", "http://"+admin)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, POST" {
		t.Errorf("DELETE /latchkey/users: %d, Allow %q; want 405, GET, POST", resp.StatusCode, resp.Header.Get("Allow"))
	}

	// Without the gateway, the same command opens the config's store as
	// the shell's directory makes it — which does not exist there — and
	// says so, creating nothing.
	stop()
	_, errOut, err = cliProc(t, elsewhere, "", "invites", "create", "--email", "eve@example.com", "--config", cfg, "--adapter", "caddyfile")
	if want := filepath.Join(elsewhere, "data", "latchkey.db"); err == nil || !strings.Contains(errOut, want) {
		t.Errorf("with the gateway stopped: %v, stderr:\n%s\nwant an error naming %s", err, errOut, want)
	}
	if _, err := os.Stat(filepath.Join(elsewhere, "data")); err == nil {
		t.Errorf("the CLI made a store where it ran")
	}
	// From the gateway's directory it is the gateway's store again.
	out, errOut, err = cliProc(t, gwDir, "", "users", "list", "--json", "--config", "Caddyfile", "--adapter", "caddyfile")
	if err != nil || strings.Count(out, `"email"`) != 5 || !strings.Contains(errOut, "latchkey: store sqlite "+gwDB+"\n") {
		t.Errorf("users list from the gateway's directory, gateway stopped: %v\n%s%s", err, out, errOut)
	}
	var _ store.Store = st
}
