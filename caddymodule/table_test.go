package caddymodule

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
)

func TestCell(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{"/plain/path?q=1", "/plain/path?q=1"},
		{"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"},
		{"José Müller 日本", "José Müller 日本"},
		{"Mozilla\x1b[2J\x1b]0;pwned\x07", `Mozilla\x1b[2J\x1b]0;pwned\a`},
		{"/a\r\nforged row\tcol", `/a\r\nforged row\tcol`},
		{"nul\x00 del\x7f", `nul\x00 del\x7f`},
		{"c1 \u009b31m csi", `c1 \u009b31m csi`},
		{"bad \xff\xfe utf8 \xc3", `bad \xff\xfe utf8 \xc3`},
		{"evil\u202egnp.exe", `evil\u202egnp.exe`},
		{"\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069", `\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069`},
		{"mark\u200fline\u2028para\u2029", `mark\u200fline\u2028para\u2029`},
		// A backslash is escaped too, so client text cannot pass for an escape.
		{`C:\new\x1b`, `C:\\new\\x1b`},
	}
	for _, c := range cases {
		got := cell(c.in)
		if got != c.want {
			t.Errorf("cell(%q) = %q, want %q", c.in, got, c.want)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f || (0x80 <= r && r <= 0x9f) || r == '\t' || (0x202a <= r && r <= 0x202e) || (0x2066 <= r && r <= 0x2069) {
				t.Errorf("cell(%q) = %q still holds %U", c.in, got, r)
			}
		}
	}
	if got := dash(""); got != "-" {
		t.Errorf(`dash("") = %q`, got)
	}
	if got := dash("a\tb"); got != `a\tb` {
		t.Errorf(`dash("a\tb") = %q, want it escaped`, got)
	}
}

func TestAuditTableEscapesClientText(t *testing.T) {
	cf, db := writeCaddyfile(t)
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ua := "Mozilla\x1b[2J\x1b]0;pwned\x07"
	ev := store.AuditEvent{
		Time: time.Now(), Kind: "session", Outcome: store.OutcomeRefused, Reason: "missing", Method: "GET",
		Host: "h", Path: "/x\r\nFORGED\tROW\u202e", Status: 401, ClientIP: "192.0.2.1",
		UserAgent: ua, UABrowser: ua, UAOS: "Linux\u009b", UADevice: "\xff",
	}
	if err := st.WriteAudit(context.Background(), []store.AuditEvent{ev}); err != nil {
		t.Fatal(err)
	}
	out, err := cli(t, cf, "audit", "list")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, raw := range []string{"\x1b", "\x07", "\r", "\t", "\u202e", "\u009b", "\xff"} {
		if strings.Contains(out, raw) {
			t.Errorf("table holds raw %q:\n%s", raw, out)
		}
	}
	for _, esc := range []string{`/x\r\nFORGED\tROW\u202e`, `Mozilla\x1b[2J\x1b]0;pwned\a`, `Linux\u009b`, `\xff`} {
		if !strings.Contains(out, esc) {
			t.Errorf("table lacks %s:\n%s", esc, out)
		}
	}
	if lines := strings.Split(strings.TrimRight(out, "\n"), "\n"); len(lines) != 2 {
		t.Errorf("table has %d lines, want a header and one row:\n%s", len(lines), out)
	}
	// JSON keeps the text as it was.
	out, err = cli(t, cf, "audit", "list", "--json")
	if err != nil || !strings.Contains(out, `\u001b[2J`) {
		t.Errorf("--json: %v\n%s", err, out)
	}
}
