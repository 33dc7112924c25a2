package mail

import "testing"

func TestNormalizeAddress(t *testing.T) {
	for in, want := range map[string]string{
		"ann@example.com":       "ann@example.com",
		"  Ann@Example.COM \n":  "ann@example.com",
		"Ann <ann@example.com>": "",
		"a@b.c, d@e.f":          "",
		"not an address":        "",
		"":                      "",
	} {
		got, ok := NormalizeAddress(in)
		if got != want || ok != (want != "") {
			t.Errorf("NormalizeAddress(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}
