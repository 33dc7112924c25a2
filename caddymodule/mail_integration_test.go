package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	netmail "net/mail"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/caddymodule"
	"github.com/latchkeyhq/latchkey/internal/mail/mailtest"
	"github.com/latchkeyhq/latchkey/internal/store"
)

func smtpOpts(addr string) gwOpts {
	return gwOpts{
		handler: "invite",
		global:  fmt.Sprintf("smtp %s {\n\t\t\tfrom \"Example <noreply@example.com>\"\n\t\t\ttls none\n\t\t\ttimeout 2s\n\t\t}", addr),
	}
}

// mailParts returns the decoded text/plain and text/html parts of a mail.
func mailParts(t *testing.T, raw []byte) (hdr netmail.Header, text, html string) {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("content type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart() // decodes quoted-printable
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		switch pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); pt {
		case "text/plain":
			text = string(b)
		case "text/html":
			html = string(b)
		}
	}
	return msg.Header, text, html
}

func TestInviteMailThroughRealSMTP(t *testing.T) {
	be := &mailtest.Backend{}
	addr := mailtest.Serve(t, be, nil)
	o := smtpOpts(addr)
	g := startGateway(t, o)
	out := g.cli(o, "invites", "create", "--email", "leonard@example.com", "--name", "Léonard", "--send", "--json")
	var inv struct {
		ID       int64  `json:"id"`
		Code     string `json:"code"`
		LoginURL string `json:"login_url"`
		Sent     bool   `json:"sent"`
	}
	if err := json.Unmarshal([]byte(out), &inv); err != nil || !inv.Sent {
		t.Fatalf("invites create --send: %q %v", out, err)
	}
	msgs := be.Messages()
	if len(msgs) != 1 || len(msgs[0].To) != 1 || msgs[0].To[0] != "leonard@example.com" {
		t.Fatalf("server received %+v", msgs)
	}
	hdr, text, html := mailParts(t, msgs[0].Data)
	for name, part := range map[string]string{"text": text, "html": html} {
		if !strings.Contains(part, inv.Code) || !strings.Contains(part, inv.LoginURL) {
			t.Errorf("%s part lacks the code %s or the URL %s:\n%s", name, inv.Code, inv.LoginURL, part)
		}
	}
	if to, _ := new(mime.WordDecoder).DecodeHeader(hdr.Get("To")); !strings.Contains(to, "Léonard") {
		t.Errorf("To header %q lost the name", to)
	}
	stored, err := g.st.Invite(t.Context(), inv.ID)
	if err != nil || stored.SentAt.IsZero() || stored.SendError != "" {
		t.Errorf("delivery not recorded: %+v %v", stored, err)
	}
	// The mailed code works.
	if r := g.login(inv.Code, ""); r.StatusCode != http.StatusSeeOther {
		t.Errorf("mailed code: %d", r.StatusCode)
	}
}

func TestUnreachableSMTPKeepsInviteForResend(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	o := smtpOpts(dead)
	g := startGateway(t, o)

	path := g.dir + "/Caddyfile.dead"
	writeFile(t, path, g.caddyfile(o))
	out, err := caddymodule.RunCLI("invites", "create", "--email", "x@example.com", "--send", "--config", path, "--adapter", "caddyfile")
	if err == nil || !strings.Contains(out, dead) || !strings.Contains(out, "invites send") {
		t.Fatalf("send to a dead server: err %v, output:\n%s", err, out)
	}
	invs, err := g.st.Invites(t.Context(), store.InviteFilter{})
	if err != nil || len(invs) != 1 || invs[0].SendError == "" || !strings.Contains(invs[0].SendError, dead) {
		t.Fatalf("invite after failed send: %+v %v", invs, err)
	}
	oldHash := string(invs[0].CodeHash)

	// Resend through a server that works: a new code arrives, the old one is gone.
	be := &mailtest.Backend{}
	live := smtpOpts(mailtest.Serve(t, be, nil))
	// The command runs in the gateway, with its mail settings: the
	// operator fixes the config and reloads first.
	g.load(live)
	g.cli(live, "invites", "send", fmt.Sprint(invs[0].ID))
	msgs := be.Messages()
	if len(msgs) != 1 {
		t.Fatalf("resend delivered %d mails", len(msgs))
	}
	_, text, _ := mailParts(t, msgs[0].Data)
	after, _ := g.st.Invite(t.Context(), invs[0].ID)
	if string(after.CodeHash) == oldHash || after.SendError != "" || after.SentAt.IsZero() {
		t.Errorf("invite after resend: %+v", after)
	}
	code := ""
	for _, f := range strings.Fields(text) {
		if len(f) == 9 && strings.ToUpper(f) == f && f[6] >= '0' && f[6] <= '9' {
			code = f
		}
	}
	if code == "" {
		t.Fatalf("no code in the resent mail:\n%s", text)
	}
	if r := g.login(code, ""); r.StatusCode != http.StatusSeeOther {
		t.Errorf("resent code: %d", r.StatusCode)
	}
}
