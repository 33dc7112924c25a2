package mint

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/link"
)

var (
	secret = []byte("0123456789abcdef0123456789abcdef")
	now    = time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)
	edPriv = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
)

func clock() time.Time { return now }

// gateway is the key ring the gateway builds from the same secret, with an
// Ed25519 verifier under kid "app".
func gateway(t *testing.T) *link.KeyRing {
	t.Helper()
	kr, err := link.NewKeyRing(link.HS256Key(secret, "default"),
		link.Key{ID: "app", Alg: link.AlgEdDSA, Public: edPriv.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// use checks a minted URL the way the gateway does, at time at, and returns
// the claims or the refusal reason.
func use(t *testing.T, kr *link.KeyRing, minted, method string, at time.Time, prefixes ...string) (*link.Claims, string) {
	t.Helper()
	u, err := url.Parse(minted)
	if err != nil {
		t.Fatal(err)
	}
	token, rest, found := link.TokenFromQuery(u.RawQuery, DefaultParam)
	if !found {
		t.Fatalf("no token in %s", minted)
	}
	c, reason, err := kr.Verify(token, at)
	if err != nil {
		return nil, reason
	}
	if !link.Bind(c, u.Host, u.Path, rest, method, false, prefixes) {
		return nil, link.ReasonWrongTarget
	}
	return c, ""
}

func TestLinkRoundTrip(t *testing.T) {
	hm := New(secret)
	hm.Clock = clock
	em := NewEd25519("app", edPriv)
	em.Clock = clock
	for name, m := range map[string]*Minter{"HS256": hm, "EdDSA": em} {
		t.Run(name, func(t *testing.T) {
			minted, info, err := m.Link(Options{
				UserID: 42, URL: "https://App.Example.com/unsubscribe?list=news#done",
				Data: map[string]any{"list": "news", "id": 7},
			})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(minted, "https://App.Example.com/unsubscribe?list=news&token=") || !strings.HasSuffix(minted, "#done") {
				t.Errorf("URL %s", minted)
			}
			c, reason := use(t, gateway(t), minted, "GET", now)
			if reason != "" {
				t.Fatalf("gateway refused the link: %s", reason)
			}
			want := &Info{
				Token: info.Token, JTI: c.ID, UserID: 42, Target: "app.example.com/unsubscribe", Mode: ModeRequest,
				MaxUses: 1, IssuedAt: now.Truncate(time.Second), ExpiresAt: now.Truncate(time.Second).Add(DefaultTTL),
				MailHeaders: map[string]string{"List-Unsubscribe": "<" + minted + ">", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
			}
			if !reflect.DeepEqual(info, want) {
				t.Errorf("info\n got %+v\nwant %+v", info, want)
			}
			if id, _ := c.UserID(); id != 42 || c.Mode != ModeRequest || c.MaxUses != 1 || c.Query != "" || len(c.Methods) != 0 || c.NotBefore != nil {
				t.Errorf("claims %+v", c)
			}
			if !c.ExpiresAt.Equal(info.ExpiresAt) || !c.IssuedAt.Equal(info.IssuedAt) {
				t.Errorf("claims times %v %v, info %v %v", c.IssuedAt, c.ExpiresAt, info.IssuedAt, info.ExpiresAt)
			}
			if !reflect.DeepEqual(c.Data, map[string]any{"list": "news", "id": json.Number("7")}) {
				t.Errorf("data %#v", c.Data)
			}
			if _, reason := use(t, gateway(t), minted, "GET", info.ExpiresAt); reason != link.ReasonExpired {
				t.Errorf("at expiry: %q", reason)
			}
		})
	}
}

func TestLinkOptions(t *testing.T) {
	m := New(secret)
	m.Clock = clock
	kr := gateway(t)
	tests := []struct {
		name   string
		o      Options
		check  func(t *testing.T, minted string, info *Info)
		method string
		at     time.Time
		reason string // the gateway's verdict at `at`
	}{
		{
			name: "existing token parameter replaced, others kept in order",
			o:    Options{UserID: 1, URL: "https://app.example.com/u?b=2&token=old&a=%2F&token=older"},
			check: func(t *testing.T, minted string, info *Info) {
				if want := "https://app.example.com/u?b=2&a=%2F&token=" + info.Token; minted != want {
					t.Errorf("URL %s\nwant %s", minted, want)
				}
			},
		},
		{
			name: "custom param",
			o:    Options{UserID: 1, URL: "https://app.example.com/u", Param: "t"},
			check: func(t *testing.T, minted string, info *Info) {
				if minted != "https://app.example.com/u?t="+info.Token {
					t.Errorf("URL %s", minted)
				}
			},
			reason: "skip", // use() looks for "token"
		},
		{
			name: "TTL",
			o:    Options{UserID: 1, URL: "https://app.example.com/u", TTL: time.Hour},
			check: func(t *testing.T, _ string, info *Info) {
				if info.ExpiresAt.Sub(info.IssuedAt) != time.Hour {
					t.Errorf("lives %v", info.ExpiresAt.Sub(info.IssuedAt))
				}
			},
			at: now.Add(time.Hour), reason: link.ReasonExpired,
		},
		{
			name: "not before",
			o:    Options{UserID: 1, URL: "https://app.example.com/u", NotBefore: now.Add(time.Minute)},
			at:   now, reason: link.ReasonNotYetValid,
		},
		{
			name: "not before reached",
			o:    Options{UserID: 1, URL: "https://app.example.com/u", NotBefore: now.Add(time.Minute)},
			at:   now.Add(time.Minute),
		},
		{
			name: "max uses and unlimited",
			o:    Options{UserID: 1, URL: "https://app.example.com/u", Unlimited: true},
			check: func(t *testing.T, _ string, info *Info) {
				if info.MaxUses != 0 {
					t.Errorf("max uses %d, want 0 (unlimited)", info.MaxUses)
				}
			},
		},
		{
			name: "max uses",
			o:    Options{UserID: 1, URL: "https://app.example.com/u", MaxUses: 5},
			check: func(t *testing.T, _ string, info *Info) {
				if info.MaxUses != 5 {
					t.Errorf("max uses %d", info.MaxUses)
				}
			},
		},
		{
			name: "login mode",
			o:    Options{UserID: 1, URL: "https://app.example.com/", Mode: ModeLogin},
			check: func(t *testing.T, _ string, info *Info) {
				if info.Mode != ModeLogin || info.Target != "app.example.com/" {
					t.Errorf("info %+v", info)
				}
			},
		},
		{
			name:   "methods upper-cased",
			o:      Options{UserID: 1, URL: "https://app.example.com/u", Methods: []string{" post "}},
			method: "POST",
		},
		{
			name:   "methods: GET no longer allowed",
			o:      Options{UserID: 1, URL: "https://app.example.com/u", Methods: []string{"POST"}},
			reason: link.ReasonWrongTarget,
		},
		{
			name: "bind query",
			o:    Options{UserID: 1, URL: "https://app.example.com/u?list=news&b=x%20y&token=old", BindQuery: true},
			check: func(t *testing.T, _ string, info *Info) {
				if info.Query != "b=x+y&list=news" {
					t.Errorf("query %q", info.Query)
				}
				c := &link.Claims{Target: info.Target, Query: info.Query}
				if !link.Bind(c, "app.example.com", "/u", "list=news&b=x+y", "GET", false, nil) {
					t.Error("reordered query refused")
				}
				if link.Bind(c, "app.example.com", "/u", "list=other&b=x+y", "GET", false, nil) {
					t.Error("other query accepted")
				}
			},
		},
		{
			name: "port kept",
			o:    Options{UserID: 1, URL: "http://localhost:8080/x"},
			check: func(t *testing.T, _ string, info *Info) {
				if info.Target != "localhost:8080/x" {
					t.Errorf("target %q", info.Target)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			minted, info, err := m.Link(tt.o)
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, minted, info)
			}
			if tt.reason == "skip" {
				return
			}
			at, method := tt.at, tt.method
			if at.IsZero() {
				at = now
			}
			if method == "" {
				method = "GET"
			}
			if _, reason := use(t, kr, minted, method, at); reason != tt.reason {
				t.Errorf("gateway: %q, want %q", reason, tt.reason)
			}
		})
	}
}

func TestLinkErrors(t *testing.T) {
	ok := Options{UserID: 1, URL: "https://app.example.com/u"}
	with := func(edit func(*Options)) Options { o := ok; edit(&o); return o }
	tests := []struct {
		name string
		m    *Minter
		o    Options
		err  string
	}{
		{"zero Minter", &Minter{}, ok, "use New"},
		{"nil Minter", nil, ok, "use New"},
		{"short secret", New([]byte("short")), ok, "too short"},
		{"bad Ed25519 key", NewEd25519("app", edPriv[:5]), ok, "Ed25519 private key"},
		{"empty kid", NewEd25519("", edPriv), ok, "kid"},
		{"no user", New(secret), with(func(o *Options) { o.UserID = 0 }), "user id"},
		{"negative user", New(secret), with(func(o *Options) { o.UserID = -3 }), "user id"},
		{"no URL", New(secret), with(func(o *Options) { o.URL = "" }), "URL is required"},
		{"relative URL", New(secret), with(func(o *Options) { o.URL = "/unsubscribe" }), "absolute"},
		{"no scheme", New(secret), with(func(o *Options) { o.URL = "app.example.com/u" }), "absolute"},
		{"ftp", New(secret), with(func(o *Options) { o.URL = "ftp://app.example.com/u" }), "absolute"},
		{"no host", New(secret), with(func(o *Options) { o.URL = "https:///u" }), "no host"},
		{"port only", New(secret), with(func(o *Options) { o.URL = "https://:443/u" }), "no host"},
		{"user info", New(secret), with(func(o *Options) { o.URL = "https://me:pw@app.example.com/u" }), "user info"},
		{"unparsable URL", New(secret), with(func(o *Options) { o.URL = "https://app.example.com:x/u" }), "URL"},
		{"negative TTL", New(secret), with(func(o *Options) { o.TTL = -time.Hour }), "negative"},
		{"sub-second TTL", New(secret), with(func(o *Options) { o.TTL = time.Millisecond }), "under a second"},
		{"negative max uses", New(secret), with(func(o *Options) { o.MaxUses = -1 }), "Unlimited"},
		{"max uses and unlimited", New(secret), with(func(o *Options) { o.MaxUses = 2; o.Unlimited = true }), "contradict"},
		{"unknown mode", New(secret), with(func(o *Options) { o.Mode = "admin" }), "mode"},
		{"bad method", New(secret), with(func(o *Options) { o.Methods = []string{"G ET"} }), "method"},
		{"empty method", New(secret), with(func(o *Options) { o.Methods = []string{""} }), "method"},
		{"bad param", New(secret), with(func(o *Options) { o.Param = "a=b" }), "parameter"},
		{"not before after expiry", New(secret), with(func(o *Options) { o.NotBefore = time.Now().Add(8 * 24 * time.Hour) }), "NotBefore"},
		{"data not JSON", New(secret), with(func(o *Options) { o.Data = map[string]any{"c": make(chan int)} }), "signing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, info, err := tt.m.Link(tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Link = %q, %v, %v; want an error with %q", u, info, err, tt.err)
			}
			if u != "" || info != nil {
				t.Errorf("Link returned %q, %v with its error", u, info)
			}
		})
	}
}

func TestWrongSecretRefused(t *testing.T) {
	m := New([]byte("another gateway secret, 32 bytes!"))
	m.Clock = clock
	minted, _, err := m.Link(Options{UserID: 1, URL: "https://app.example.com/u"})
	if err != nil {
		t.Fatal(err)
	}
	if _, reason := use(t, gateway(t), minted, "GET", now); reason != link.ReasonBadSignature {
		t.Errorf("gateway: %q, want %q", reason, link.ReasonBadSignature)
	}
}

func TestDataCopied(t *testing.T) {
	m := New(secret)
	m.Clock = clock
	data := map[string]any{"a": "1"}
	minted, _, err := m.Link(Options{UserID: 1, URL: "https://app.example.com/u", Data: data})
	if err != nil {
		t.Fatal(err)
	}
	data["a"] = "2"
	if c, _ := use(t, gateway(t), minted, "GET", now); c == nil || c.Data["a"] != "1" {
		t.Errorf("data %v", c)
	}
}

func TestParseEd25519PrivateKeyPEM(t *testing.T) {
	der, err := x509.MarshalPKCS8PrivateKey(edPriv)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseEd25519PrivateKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil || !k.Equal(edPriv) {
		t.Fatalf("got %v, %v", k, err)
	}
	if _, err := ParseEd25519PrivateKeyPEM([]byte("nope")); err == nil || !strings.HasPrefix(err.Error(), "mint: ") {
		t.Errorf("error %v", err)
	}
}

func ExampleMinter_Link() {
	m := New([]byte("the gateway secret, at least 32 bytes long"))
	u, info, err := m.Link(Options{
		UserID: 42,
		URL:    "https://app.example.com/unsubscribe?list=news",
		TTL:    30 * 24 * time.Hour,
	})
	if err != nil {
		panic(err)
	}
	_, _ = u, info.JTI // put u in the mail; keep info.JTI to revoke the link
}

// TestMailHeaders: a request-mode link comes with the List-Unsubscribe
// headers of the mail that carries it (RFC 2369, RFC 8058 one-click), its
// URL in angle brackets; a login link comes with none.
func TestMailHeaders(t *testing.T) {
	m := New(secret)
	m.Clock = clock
	minted, info, err := m.Link(Options{UserID: 42, URL: "https://app.example.com/unsubscribe?list=news"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"List-Unsubscribe": "<" + minted + ">", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
	if len(info.MailHeaders) != 2 || info.MailHeaders["List-Unsubscribe"] != want["List-Unsubscribe"] || info.MailHeaders["List-Unsubscribe-Post"] != want["List-Unsubscribe-Post"] {
		t.Errorf("MailHeaders = %v, want %v", info.MailHeaders, want)
	}
	if _, info, err := m.Link(Options{UserID: 42, URL: "https://app.example.com/", Mode: ModeLogin}); err != nil || info.MailHeaders != nil {
		t.Errorf("a login link's MailHeaders = %v (%v), want none", info.MailHeaders, err)
	}
}
