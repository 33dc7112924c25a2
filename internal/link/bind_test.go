package link

import "testing"

// TestBindRawPath: Bind takes the path as sent (r.URL.EscapedPath()) and
// refuses, for exact and prefix matches alike, every path some upstream
// could read as another place.
func TestBindRawPath(t *testing.T) {
	claims := func(target string) *Claims {
		c := baseClaims()
		c.Target = target
		return c
	}
	exact := claims("app.example.com/unsubscribe")
	below := claims("app.example.com/unsubscribe/news")
	spaced := claims("app.example.com/unsubscribe/a b")
	noSlash := []string{"/unsubscribe"}
	slash := []string{"/unsubscribe/"}

	attacks := []string{
		"/unsubscribe/..;/admin",
		"/unsubscribe/..;/",
		"/unsubscribe/%2e%2e/admin",
		"/unsubscribe/%2E%2E/admin",
		"/unsubscribe/.%2E/admin",
		"/unsubscribe/%2e./admin",
		"/unsubscribe/%2e%2e;/admin",
		"/unsubscribe/..%3b/admin",
		"/unsubscribe/%252e%252e/admin",
		"/unsubscribe/%c0%ae%c0%ae/admin",
		"/unsubscribe/../admin",
		"/unsubscribe/./news",
		"/unsubscribe/news/..",
		"/unsubscribe/...",
		"/unsubscribe;jsessionid=x",
		"/unsubscribe;jsessionid=x/news",
		"/unsubscribe/news;x=y",
		"/unsubscribe%3bjsessionid=x",
		"/unsubscribe/%2fadmin",
		"/unsubscribe/%2Fadmin",
		"/unsubscribe%2fnews",
		"/unsubscribe/%5cadmin",
		"/unsubscribe/..\\admin",
		"/unsubscribe\\news",
		"/unsubscribe//x",
		"/unsubscribe//",
		"//unsubscribe",
		"/unsubscribe/news//",
		"/unsubscribe/%00",
		"/unsubscribe%00",
		"/unsubscribe/%0a",
		"/unsubscribe/%ef%bc%8fadmin",
		"/unsubscribe/%ef%bc%8e%ef%bc%8e/admin",
		"/unsubscribe/100%25",
		"/unsubscribe/%zz",
		"/unsubscribe/%",
		"unsubscribe",
		"",
	}
	type tc struct {
		name     string
		c        *Claims
		path     string
		prefixes []string
		want     bool
	}
	var tests []tc
	for _, p := range attacks {
		for _, c := range []*Claims{exact, below} {
			tests = append(tests,
				tc{"exact " + c.Target, c, p, nil, false},
				tc{"prefix /unsubscribe " + c.Target, c, p, noSlash, false},
				tc{"prefix /unsubscribe/ " + c.Target, c, p, slash, false},
			)
		}
	}
	tests = append(tests,
		tc{"exact", exact, "/unsubscribe", nil, true},
		tc{"exact, escaped letter", exact, "/unsub%73cribe", nil, true},
		tc{"exact below, no prefixes", below, "/unsubscribe/news", nil, true},
		tc{"exact with a space", spaced, "/unsubscribe/a%20b", nil, true},
		tc{"exact with a space, prefix /unsubscribe/", spaced, "/unsubscribe/a%20b", slash, true},
		tc{"space below, prefix /unsubscribe/", below, "/unsubscribe/a%20b", slash, true},
		tc{"space below, prefix /unsubscribe", exact, "/unsubscribe/a%20b", noSlash, true},
		tc{"sibling, prefix /unsubscribe/", below, "/unsubscribe/other", slash, true},
		tc{"trailing slash, prefix /unsubscribe/", below, "/unsubscribe/", slash, true},
		tc{"the prefix itself, prefix /unsubscribe", below, "/unsubscribe", noSlash, true},
		tc{"dotted name, prefix /unsubscribe/", below, "/unsubscribe/a.b..c", slash, true},
		tc{"UTF-8, prefix /unsubscribe/", below, "/unsubscribe/caf%C3%A9", slash, true},
		tc{"space, no prefix", exact, "/unsubscribe/a%20b", nil, false},
		tc{"decoded path given (wrong argument)", spaced, "/unsubscribe/a b", slash, false},
		tc{"outside the prefix", below, "/admin", slash, false},
		tc{"encoded outside the prefix", below, "/%61dmin", slash, false},
		// Targets the signer should not have signed: a prefix match needs a
		// clean target too.
		tc{"target with dot-dot", claims("app.example.com/unsubscribe/../admin"), "/unsubscribe/x", slash, false},
		tc{"target with ;", claims("app.example.com/unsubscribe/;x"), "/unsubscribe/x", slash, false},
		tc{"target with //", claims("app.example.com/unsubscribe//x"), "/unsubscribe/x", slash, false},
		tc{"target with %", claims("app.example.com/unsubscribe/100%"), "/unsubscribe/100%25", slash, false},
		tc{"target with %, exact", claims("app.example.com/unsubscribe/100%"), "/unsubscribe/100%25", nil, false},
		tc{"target with ; exact", claims("app.example.com/unsubscribe;x"), "/unsubscribe;x", nil, false},
	)
	for _, tt := range tests {
		if got := Bind(tt.c, "app.example.com", tt.path, "", "GET", false, tt.prefixes); got != tt.want {
			t.Errorf("%s: Bind(path %q, prefixes %q) = %v, want %v", tt.name, tt.path, tt.prefixes, got, tt.want)
		}
	}
}
