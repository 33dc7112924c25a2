package ops_test

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/invite"
	"github.com/latchkeyhq/latchkey/internal/link"
	"github.com/latchkeyhq/latchkey/internal/mail"
	"github.com/latchkeyhq/latchkey/internal/ops"
	"github.com/latchkeyhq/latchkey/internal/site"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
	"github.com/latchkeyhq/latchkey/mint"
)

var (
	secret = []byte("0123456789abcdef0123456789abcdef")
	now    = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
)

func newOps(t *testing.T, sites ...ops.SiteConf) *ops.Ops {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "latchkey.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ring, err := link.NewKeyRing(link.HS256Key(secret, "default"))
	if err != nil {
		t.Fatal(err)
	}
	return &ops.Ops{Store: st, Now: func() time.Time { return now }, Secret: secret, Ring: ring, Sites: sites}
}

func mustSite(t *testing.T, name string, hosts []string, origin string) *site.Site {
	t.Helper()
	s, err := site.New(name, hosts, origin)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOneMinter checks that a link the CLI or admin API mints (MintLink)
// and one the public mint package mints for the same user, URL and
// options are the same link: the same claims, the same key, the same URL
// but for the token and its jti.
func TestOneMinter(t *testing.T) {
	o := newOps(t)
	ctx := context.Background()
	u, err := o.AddUser(ctx, ops.NewUser{Email: "ada@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	three := 3
	const target = "https://app.example.com/unsubscribe?list=news&token=stale#done"
	got, err := o.MintLink(ctx, ops.NewLink{
		User: "ada@example.com", URL: target, TTL: "2d", MaxUses: &three, Mode: "login",
		Methods: []string{"post"}, Data: map[string]any{"list": "news"}, BindQuery: true, Param: "lk",
	}, "test")
	if err != nil {
		t.Fatal(err)
	}
	m := mint.New(secret)
	m.Clock = func() time.Time { return now }
	want, info, err := m.Link(mint.Options{
		UserID: u.ID, URL: target, TTL: 48 * time.Hour, MaxUses: 3, Mode: mint.ModeLogin,
		Methods: []string{"POST"}, Data: map[string]any{"list": "news"}, BindQuery: true, Param: "lk",
	})
	if err != nil {
		t.Fatal(err)
	}

	claimsOf := func(raw string) (*link.Claims, string) {
		t.Helper()
		pu, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		token, rest, ok := link.TokenFromQuery(pu.RawQuery, "lk")
		if !ok {
			t.Fatalf("no lk parameter in %s", raw)
		}
		c, reason, err := o.Ring.Verify(token, now.Add(time.Minute))
		if err != nil {
			t.Fatalf("verifying %s: %s %v", raw, reason, err)
		}
		pu.RawQuery = rest
		return c, pu.String()
	}
	gc, gu := claimsOf(got.URL)
	wc, wu := claimsOf(want)
	if gu != wu || gu != "https://app.example.com/unsubscribe?list=news&token=stale#done" {
		t.Errorf("URLs without their tokens differ:\n ops  %s\n mint %s", gu, wu)
	}
	if gc.ID != got.JTI || wc.ID != info.JTI || gc.ID == wc.ID {
		t.Errorf("jti: ops %s (row %s), mint %s (info %s)", gc.ID, got.JTI, wc.ID, info.JTI)
	}
	gc.ID, wc.ID = "", ""
	if !reflect.DeepEqual(gc, wc) {
		t.Errorf("claims differ:\n ops  %+v\n mint %+v", gc, wc)
	}
	if got.Target != info.Target || got.MaxUses != info.MaxUses || got.Mode != info.Mode || got.Site != "app.example.com" {
		t.Errorf("ops row %+v, mint info %+v", got, info)
	}
}

func TestMintLinkInput(t *testing.T) {
	o := newOps(t)
	ctx := context.Background()
	if _, err := o.AddUser(ctx, ops.NewUser{Email: "bo@example.com"}); err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string]ops.NewLink{
		"relative URL": {User: "bo@example.com", URL: "/x"},
		"bad ttl":      {User: "bo@example.com", URL: "https://a.example.com/", TTL: "soon"},
		"bad mode":     {User: "bo@example.com", URL: "https://a.example.com/", Mode: "admin"},
		"bad param":    {User: "bo@example.com", URL: "https://a.example.com/", Param: "a=b"},
		"bad nbf":      {User: "bo@example.com", URL: "https://a.example.com/", NotBefore: "later"},
	} {
		var ie ops.InputError
		if _, err := o.MintLink(ctx, in, "test"); !errors.As(err, &ie) {
			t.Errorf("%s: %v, want an input error", name, err)
		}
	}
	if _, err := o.MintLink(ctx, ops.NewLink{User: "nobody@example.com", URL: "https://a.example.com/"}, "test"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown user: %v", err)
	}
}

type fakeMailer struct {
	invites []string // codes
	links   []mail.LoginLink
	fail    error
}

func (f *fakeMailer) SendInvite(ctx context.Context, inv *store.Invite, code, loginURL string, window time.Duration) error {
	if f.fail != nil {
		return f.fail
	}
	f.invites = append(f.invites, code+" "+loginURL+" "+window.String())
	return nil
}

func (f *fakeMailer) SendLoginLink(ctx context.Context, l mail.LoginLink, ref string) error {
	f.links = append(f.links, l)
	return nil
}

func TestSiteOpsCreateInvite(t *testing.T) {
	conf := ops.SiteConf{
		Site: mustSite(t, "", []string{"app.example.com"}, "https://app.example.com"), Prefix: "/auth/",
		Invites: true, InviteLength: 12, InviteRules: invite.Rules{UsageWindow: 3 * time.Hour, Expiry: time.Hour},
	}
	o := newOps(t, conf)
	page := ops.SiteOps{Ops: o, Site: conf}
	ctx := context.Background()
	if page.CanMail() {
		t.Error("CanMail without a mailer")
	}
	out, err := page.CreateInvite(ctx, ops.NewInvite{Email: " New@Example.com ", Name: " Nia ", Domain: "elsewhere.example.com"}, "user:7")
	if err != nil {
		t.Fatal(err)
	}
	if out.Site != "app.example.com" || out.Email != "new@example.com" || out.Name != "Nia" || out.CreatedBy != "user:7" ||
		len(out.Code) != 12 || out.LoginURL != "https://app.example.com/auth/login" || out.Sent != nil {
		t.Errorf("invite %+v", out)
	}

	fm := &fakeMailer{}
	o.Mailer = fm
	out, err = page.CreateInvite(ctx, ops.NewInvite{Email: "two@example.com", Send: true}, "user:7")
	if err != nil || out.Sent == nil || !*out.Sent || out.SentAt.IsZero() || len(fm.invites) != 1 || fm.invites[0] != out.Code+" https://app.example.com/auth/login 3h0m0s" {
		t.Errorf("sent invite %+v %v, mails %q", out, err, fm.invites)
	}
	fm.fail = errors.New("relay down")
	out, err = page.CreateInvite(ctx, ops.NewInvite{Email: "three@example.com", Send: true}, "user:7")
	if err != nil || out.Sent == nil || *out.Sent || out.SendError != "relay down" || out.Code == "" {
		t.Errorf("unsent invite %+v %v", out, err)
	}
	invs, err := o.Invites(ctx, "app.example.com")
	if err != nil || len(invs) != 3 {
		t.Errorf("invites %+v %v", invs, err)
	}
}

func TestSiteOpsSendLoginLink(t *testing.T) {
	conf := ops.SiteConf{Site: mustSite(t, "", []string{"app.example.com"}, "https://app.example.com"), Links: true, LinkParam: "lk"}
	o := newOps(t, conf)
	page := ops.SiteOps{Ops: o, Site: conf}
	ctx := context.Background()
	u, err := o.AddUser(ctx, ops.NewUser{Email: "cy@example.com", Site: "app.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if err := page.SendLoginLink(ctx, u, "https://app.example.com/home"); err == nil {
		t.Error("a sign-in link without a mailer")
	}
	fm := &fakeMailer{}
	o.Mailer = fm
	if err := page.SendLoginLink(ctx, u, "https://app.example.com/home"); err != nil {
		t.Fatal(err)
	}
	if len(fm.links) != 1 || !strings.HasPrefix(fm.links[0].URL, "https://app.example.com/home?lk=") || fm.links[0].ValidFor != ops.LoginLinkTTL {
		t.Fatalf("mails %+v", fm.links)
	}
	ls, err := o.Links(ctx, "cy@example.com")
	if err != nil || len(ls) != 1 || ls[0].Mode != link.ModeLogin || ls[0].MaxUses != 1 || ls[0].CreatedBy != "login-page" ||
		!ls[0].ExpiresAt.Equal(now.Add(ops.LoginLinkTTL)) {
		t.Errorf("links %+v %v", ls, err)
	}
}

func TestPickSite(t *testing.T) {
	a := ops.SiteConf{Site: mustSite(t, "", []string{"a.example.com", "www.a.example.com"}, ""), Invites: true}
	b := ops.SiteConf{Site: mustSite(t, "b", []string{"b.example.com"}, "")}
	o := &ops.Ops{Sites: []ops.SiteConf{a, b}}
	for name, want := range map[string]string{"": "a.example.com", "b": "b", "B.example.com:443": "b", "www.a.example.com": "a.example.com"} {
		if s, err := o.PickSite(name); err != nil || s.Site.Name != want {
			t.Errorf("PickSite(%q) = %v, %v; want %s", name, s.Site, err, want)
		}
	}
	var ie ops.InputError
	if _, err := o.PickSite("c.example.com"); !errors.As(err, &ie) || !strings.Contains(err.Error(), "a.example.com, b") {
		t.Errorf("unknown site: %v", err)
	}
	o.Sites = append(o.Sites, ops.SiteConf{Site: b.Site, Invites: true})
	if _, err := o.PickSite(""); err == nil || !strings.Contains(err.Error(), "several sites") {
		t.Errorf("two sites with invites: %v", err)
	}
}

func TestMergeSitesAndLinkParam(t *testing.T) {
	confs, err := ops.MergeSites([]ops.SiteConf{
		{Site: mustSite(t, "app", []string{"a.example.com"}, "https://a.example.com"), Links: true, LinkParam: "lk"},
		{Site: mustSite(t, "app", []string{"b.example.com"}, "")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if confs[0].Site != confs[1].Site || len(confs[0].Site.Hosts) != 2 || confs[1].Site.Origin != "https://a.example.com" {
		t.Errorf("merged %+v %+v", confs[0].Site, confs[1].Site)
	}
	o := &ops.Ops{Sites: confs}
	if p := o.LinkParamFor("https://a.example.com/x"); p != "lk" {
		t.Errorf("param for a: %q", p)
	}
	if p := o.LinkParamFor("https://c.example.com/x"); p != "" {
		t.Errorf("param for c: %q", p)
	}
	if _, err := ops.MergeSites([]ops.SiteConf{
		{Site: mustSite(t, "app", nil, "https://a.example.com")},
		{Site: mustSite(t, "app", nil, "https://b.example.com")},
	}); err == nil {
		t.Error("two origins merged")
	}
}

// TestCreateRefusesWhatNoRouteTakes: a link for a host no site serves (or
// not the named site's), and a ticket for a place and purpose no route
// takes, are refused when made, not when someone tries to use them.
func TestCreateRefusesWhatNoRouteTakes(t *testing.T) {
	a := ops.SiteConf{Site: mustSite(t, "", []string{"a.example.com"}, "https://a.example.com"), Links: true,
		TicketPairs: []ops.TicketPair{{Place: "louvre", Purpose: "visit"}}}
	b := ops.SiteConf{Site: mustSite(t, "", []string{"b.example.com"}, "https://b.example.com"), Links: true}
	o := newOps(t, a, b)
	ctx := context.Background()
	if _, err := o.AddUser(ctx, ops.NewUser{Email: "bo@example.com"}); err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string]ops.NewLink{
		"host no site serves":         {User: "bo@example.com", URL: "https://evil.example/x"},
		"host of another site":        {User: "bo@example.com", URL: "https://b.example.com/x", Site: "a.example.com"},
		"site name, unserved host":    {User: "bo@example.com", URL: "https://evil.example/x", Site: "a.example.com"},
		"site that is not the config": {User: "bo@example.com", URL: "https://a.example.com/x", Site: "c.example.com"},
	} {
		var ie ops.InputError
		if _, err := o.MintLink(ctx, in, "test"); !errors.As(err, &ie) {
			t.Errorf("%s: %v, want refused", name, err)
		}
	}
	if _, err := o.MintLink(ctx, ops.NewLink{User: "bo@example.com", URL: "https://b.example.com/x", Site: "b.example.com"}, "test"); err != nil {
		t.Errorf("a link for its site's host: %v", err)
	}
	if _, err := o.CreateTickets(ctx, ops.NewTickets{Place: "orsay", Purpose: "visit"}); err == nil || !strings.Contains(err.Error(), "louvre visit") {
		t.Errorf("a ticket no route takes: %v, want refused naming what the routes take", err)
	}
	if _, err := o.CreateTickets(ctx, ops.NewTickets{Place: "louvre", Purpose: "visit"}); err != nil {
		t.Errorf("a ticket a route takes: %v", err)
	}
}
