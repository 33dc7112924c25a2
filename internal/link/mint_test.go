package link

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestMintRoundTrip(t *testing.T) {
	kr := mustRing(t, HS256Key(testSecret, "default"))
	u, _ := url.Parse("https://App.Example.com:443/unsubscribe?list=news&token=old#top")
	data := map[string]any{"list": "news"}
	m, err := Mint(kr, MintOptions{
		UserID: 42, URL: u, Now: t0, TTL: time.Hour, MaxUses: 3, Mode: ModeLogin,
		Methods: []string{"POST"}, Data: data, BindQuery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	data["list"] = "changed"
	if u.String() != "https://App.Example.com:443/unsubscribe?list=news&token=old#top" {
		t.Errorf("Mint changed its URL: %s", u)
	}
	want := "https://App.Example.com:443/unsubscribe?list=news&token=" + m.Token + "#top"
	if m.URL != want {
		t.Errorf("URL %s, want %s", m.URL, want)
	}
	c, reason, err := kr.Verify(m.Token, t0.Add(time.Minute))
	if err != nil {
		t.Fatalf("Verify: %s %v", reason, err)
	}
	id, _ := c.UserID()
	switch {
	case id != 42, c.Target != "app.example.com/unsubscribe", c.Query != "list=news", c.Mode != ModeLogin,
		c.MaxUses != 3, len(c.Methods) != 1 || c.Methods[0] != "POST", c.ID != m.Claims.ID,
		!c.IssuedAt.Time.Equal(t0), !c.ExpiresAt.Time.Equal(t0.Add(time.Hour)), c.NotBefore != nil:
		t.Errorf("claims %+v", c)
	}
	if m.Claims.Data["list"] != "news" {
		t.Errorf("Mint kept the caller's map: %v", m.Claims.Data)
	}
}

func TestMintDefaults(t *testing.T) {
	kr := mustRing(t, HS256Key(testSecret, "default"))
	u, _ := url.Parse("http://app.example.com")
	nbf := t0.Add(time.Minute)
	m, err := Mint(kr, MintOptions{UserID: 1, URL: u, Now: t0, TTL: time.Hour, NotBefore: nbf, Param: "lk"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.URL, "http://app.example.com?lk=") {
		t.Errorf("URL %s", m.URL)
	}
	c := m.Claims
	if c.Mode != ModeRequest || c.Target != "app.example.com/" || c.Query != "" || c.MaxUses != 0 || c.NotBefore == nil || !c.NotBefore.Time.Equal(nbf) {
		t.Errorf("claims %+v", c)
	}
	if m2, _ := Mint(kr, MintOptions{UserID: 1, URL: u, Now: t0, TTL: time.Hour}); !strings.Contains(m2.URL, "?token=") || m2.Claims.ID == c.ID {
		t.Errorf("second link %s with jti %s", m2.URL, m2.Claims.ID)
	}
}

func TestMintRefuses(t *testing.T) {
	kr := mustRing(t, HS256Key(testSecret, "default"))
	good, _ := url.Parse("https://app.example.com/u")
	rel, _ := url.Parse("/u")
	ftp, _ := url.Parse("ftp://app.example.com/u")
	ok := MintOptions{UserID: 1, URL: good, Now: t0, TTL: time.Hour}
	with := func(edit func(*MintOptions)) MintOptions { o := ok; edit(&o); return o }
	tests := []struct {
		name string
		kr   *KeyRing
		o    MintOptions
		err  string
	}{
		{"no ring", nil, ok, "key ring"},
		{"no URL", kr, with(func(o *MintOptions) { o.URL = nil }), "absolute"},
		{"relative URL", kr, with(func(o *MintOptions) { o.URL = rel }), "absolute"},
		{"ftp", kr, with(func(o *MintOptions) { o.URL = ftp }), "absolute"},
		{"no TTL", kr, with(func(o *MintOptions) { o.TTL = 0 }), "TTL"},
		{"bad param", kr, with(func(o *MintOptions) { o.Param = "a&b" }), "parameter"},
		{"no user", kr, with(func(o *MintOptions) { o.UserID = 0 }), "sub"},
		{"bad mode", kr, with(func(o *MintOptions) { o.Mode = "admin" }), "mode"},
		{"negative uses", kr, with(func(o *MintOptions) { o.MaxUses = -1 }), "max uses"},
		{"lower-case method", kr, with(func(o *MintOptions) { o.Methods = []string{"get"} }), "methods"},
		{"not before expiry", kr, with(func(o *MintOptions) { o.NotBefore = t0.Add(2 * time.Hour) }), "nbf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Mint(tt.kr, tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Mint = %+v, %v; want an error with %q", m, err, tt.err)
			}
			if m.URL != "" || m.Token != "" || m.Claims != nil {
				t.Errorf("Mint returned %+v with its error", m)
			}
		})
	}
}

func TestValidParam(t *testing.T) {
	for p, want := range map[string]bool{"token": true, "lk_t": true, "": false, "a=b": false, "a&b": false, "a b": false, "a#": false, "a;b": false, "a?": false} {
		if got := ValidParam(p); got != want {
			t.Errorf("ValidParam(%q) = %v, want %v", p, got, want)
		}
	}
}
