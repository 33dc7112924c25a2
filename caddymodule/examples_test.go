package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The examples in examples/ run against a real gateway, with the
// interpreters apps use: Debian's python3 (with python3-jwt) and php-cli.
// `make deps` installs them. A missing one fails the test rather than
// skipping it, so that the examples cannot rot unnoticed.

const debianPython = "/usr/bin/python3" // the python3 on PATH may be a pyenv one without jwt

func examplesDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// needTools fails the test when an interpreter the examples need is missing.
func needTools(t *testing.T) (python, php string) {
	t.Helper()
	if out, err := exec.Command(debianPython, "-c", "import jwt").CombinedOutput(); err != nil {
		t.Fatalf("%s with PyJWT is needed to run examples/python (apt-get install python3-jwt, or make deps): %v\n%s", debianPython, err, out)
	}
	php, err := exec.LookPath("php")
	if err != nil {
		t.Fatalf("php is needed to run examples/php (apt-get install php-cli, or make deps): %v", err)
	}
	return debianPython, php
}

// runExample runs an example script with args and extra environment, and
// returns its standard output, trimmed.
func runExample(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// decodeWithExamples feeds a header value, exactly as the upstream got it,
// to the Python and PHP decoding snippets, and checks they both read want.
func decodeWithExamples(t *testing.T, python, php, header, value string, want map[string]any) {
	t.Helper()
	dir := examplesDir(t)
	env := []string{"HTTP_" + strings.ToUpper(strings.ReplaceAll(header, "-", "_")) + "=" + value}
	field := "link"
	if header == "X-Ticket-Data" {
		field = "ticket"
	}
	for _, run := range [][]string{
		{python, filepath.Join(dir, "python", "decode_headers.py")},
		{php, filepath.Join(dir, "php", "decode_headers.php")},
	} {
		out := runExample(t, env, run[0], run[1:]...)
		var got map[string]map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%s printed %q: %v", run[1], out, err)
		}
		if !reflect.DeepEqual(got[field], want) {
			t.Errorf("%s decoded %s %q as %v, want %v", filepath.Base(run[1]), header, value, got[field], want)
		}
	}
}

// TestExamplesMintLinks: each minting example's link, opened through Caddy,
// reaches the upstream as its user, once.
func TestExamplesMintLinks(t *testing.T) {
	python, php := needTools(t)
	dir := examplesDir(t)
	o := gwOpts{handler: "link {\n confirm off\n}"}
	g := startGateway(t, o)
	u := g.user("leonard@example.com")
	var key string
	for _, r := range g.linkKeys(o) {
		if r.KID == "default" && r.Alg == "HS256" {
			key = r.Secret
		}
	}
	if key == "" {
		t.Fatal("no HS256 key default in links keys --json")
	}
	data := `{"list":"news","name":"Léonard"}`
	wantData := map[string]any{"list": "news", "name": "Léonard"}

	for _, ex := range []struct {
		name string
		argv []string // before key, kid, url, user
		user string
		tail []string // after them
	}{
		{"python, standard library", []string{python, filepath.Join(dir, "python", "mint_link_stdlib.py")}, "leonard@example.com", []string{"--data", data}},
		{"python, PyJWT", []string{python, filepath.Join(dir, "python", "mint_link_pyjwt.py")}, "Leonard@Example.com", []string{"--data", data}},
		{"php", []string{php, filepath.Join(dir, "php", "mint_link.php")}, fmt.Sprint(u.ID), []string{"3600", "1", "request", data}},
	} {
		t.Run(ex.name, func(t *testing.T) {
			args := append(append(ex.argv[1:], key, "default", g.url+"/unsubscribe?list=news", ex.user), ex.tail...)
			link := runExample(t, nil, ex.argv[0], args...)
			if !strings.HasPrefix(link, g.url+"/unsubscribe?list=news&token=") {
				t.Fatalf("printed %q", link)
			}
			before := g.upstream.count()
			if r := g.send(http.MethodGet, link, "", nil); r.StatusCode != 200 || g.upstream.count() != before+1 {
				t.Fatalf("first use: %d, upstream saw %d requests", r.StatusCode, g.upstream.count()-before)
			}
			seen := g.upstream.last(t)
			if got := seen.Get("X-User-ID"); got != fmt.Sprint(u.ID) {
				t.Errorf("upstream X-User-ID %q, want %d", got, u.ID)
			}
			if uri := g.lastURI(); uri != "/unsubscribe?list=news" {
				t.Errorf("upstream URI %q", uri)
			}
			decodeWithExamples(t, python, php, "X-Latchkey-Link-Data", seen.Get("X-Latchkey-Link-Data"), wantData)
			// max 1 (the examples' default, and the format's): once only.
			if r := g.send(http.MethodGet, link, "", nil); r.StatusCode != http.StatusGone || g.upstream.count() != before+1 {
				t.Errorf("second use: %d, want 410 and nothing upstream", r.StatusCode)
			}
		})
	}
}

// TestExamplesUnsubscribeHeaders: the standard-library example prints the
// mail headers with its link, and a mail client's one-click POST to the
// List-Unsubscribe URL reaches the upstream as the user, with RFC 8058's
// body, once.
func TestExamplesUnsubscribeHeaders(t *testing.T) {
	python, _ := needTools(t)
	o := gwOpts{handler: "link"}
	g := startGateway(t, o)
	u := g.user("leonard@example.com")
	key := ""
	for _, r := range g.linkKeys(o) {
		if r.KID == "default" && r.Alg == "HS256" {
			key = r.Secret
		}
	}
	out := runExample(t, nil, python, filepath.Join(examplesDir(t), "python", "mint_link_stdlib.py"), key, "default", g.url+"/unsubscribe?list=news", "leonard@example.com", "--headers")
	lines := strings.Split(out, "\n")
	if len(lines) != 3 || lines[1] != "List-Unsubscribe: <"+lines[0]+">" || lines[2] != "List-Unsubscribe-Post: List-Unsubscribe=One-Click" {
		t.Fatalf("printed:\n%s", out)
	}
	unsub := strings.TrimSuffix(strings.TrimPrefix(lines[1], "List-Unsubscribe: <"), ">")
	before := g.upstream.count()
	r := g.send(http.MethodPost, unsub, "List-Unsubscribe=One-Click", map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if r.StatusCode != 200 || g.upstream.count() != before+1 || g.upstream.last(t).Get("X-User-ID") != fmt.Sprint(u.ID) {
		t.Fatalf("one-click POST: %d, upstream saw %d requests", r.StatusCode, g.upstream.count()-before)
	}
	if r := g.send(http.MethodPost, unsub, "List-Unsubscribe=One-Click", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}); r.StatusCode != http.StatusGone {
		t.Errorf("second one-click POST: %d, want 410", r.StatusCode)
	}
}

// TestExamplesDecodeTicketData: the decoding snippets read X-Ticket-Data
// as the upstream gets it, accents and all.
func TestExamplesDecodeTicketData(t *testing.T) {
	python, php := needTools(t)
	o := gwOpts{handler: "ticket louvre visit"}
	g := startGateway(t, o)
	tk := g.createTickets(o, "--place", "louvre", "--purpose", "visit", "--data", `{"first_name":"Léonard","note":"crème brûlée ☕ 🎨","party":3}`, "--url", g.url+"/louvre")[0]
	if r := g.send(http.MethodGet, tk.URL, "", nil); r.StatusCode != 200 {
		t.Fatalf("ticket: %d", r.StatusCode)
	}
	value := g.upstream.last(t).Get("X-Ticket-Data")
	for _, c := range value {
		if c > 0x7e {
			t.Fatalf("X-Ticket-Data %q is not ASCII", value)
		}
	}
	decodeWithExamples(t, python, php, "X-Ticket-Data", value, map[string]any{"first_name": "Léonard", "note": "crème brûlée ☕ 🎨", "party": float64(3)})
	// No data: an empty object, not an error.
	decodeWithExamples(t, python, php, "X-Latchkey-Link-Data", "", map[string]any{})
}
