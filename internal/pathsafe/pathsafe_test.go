package pathsafe

import (
	"net/url"
	"strings"
	"testing"
)

// cleanAccepted are paths as sent on the wire that Clean accepts, with
// what it returns.
var cleanAccepted = []struct{ raw, want string }{
	{"/", "/"},
	{"/a", "/a"},
	{"/a/b", "/a/b"},
	{"/a/b/", "/a/b/"},
	{"/unsubscribe", "/unsubscribe"},
	{"/unsubscribe/", "/unsubscribe/"},
	{"/unsubscribe/a%20b", "/unsubscribe/a b"},
	{"/unsubscribe/a+b", "/unsubscribe/a+b"},
	{"/%41%62c", "/Abc"},
	{"/caf%C3%A9", "/café"},
	{"/%E6%97%A5%E6%9C%AC/%E3%81%93%E3%82%93", "/日本/こん"},
	{"/file.txt", "/file.txt"},
	{"/.well-known/x", "/.well-known/x"},
	{"/a.b/c..d/.e/f./..g/h..", "/a.b/c..d/.e/f./..g/h.."},
	{"/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="},
	{"/~user/x-y_z", "/~user/x-y_z"},
	{"/[0]", "/[0]"},
	{"/q%3Fx/h%23y", "/q?x/h#y"},
	{"/a%22b%3Cc%3E%7B%7D%7C%5E%60", "/a\"b<c>{}|^`"},
	{"/https:/evil.example", "/https:/evil.example"},
	{"/@evil.example", "/@evil.example"},
}

// cleanRefused are paths some server reads differently from the plain
// decoded path, or that are not paths a client sends.
var cleanRefused = []string{
	"", "a", "*", "a/b", "%2f", "http://x/a",
	// empty segments
	"//", "//a", "/a//b", "/a///", "///evil.example",
	// dot segments, every spelling
	"/.", "/..", "/./", "/../", "/a/.", "/a/..", "/a/./b", "/a/../b", "/../admin",
	"/unsubscribe/../admin", "/unsubscribe/./admin",
	"/%2e", "/%2E", "/%2e%2e", "/%2E%2E/", "/.%2e/", "/.%2E/", "/%2e./", "/%2e%2E/",
	"/unsubscribe/%2e%2e/admin", "/unsubscribe/.%2E/admin", "/unsubscribe/%2E./admin",
	"/a%2eb", "/file%2Etxt", "/...", "/..../x", "/.. /x", "/. /x", "/ ../x", "/%20../x",
	"/..%20/x", "/%20/x", "/a/%20%20", "/..%09/x", "/..%00/x", "/.%00./x",
	// path parameters (Tomcat, Spring, Jetty)
	"/unsubscribe/..;/admin", "/unsubscribe;jsessionid=x", "/unsubscribe;/x", "/a;b",
	"/;/admin", "/unsubscribe/%2e%2e;/admin", "/unsubscribe/..%3b/admin",
	"/unsubscribe/..%3B/admin", "/a%3bb", "/a%3Bb", "/..;", "/.;/x",
	// encoded separators
	"/unsubscribe/%2fadmin", "/unsubscribe/%2Fadmin", "/a%2f..%2fadmin", "/%2f%2fevil",
	"/unsubscribe/%5cadmin", "/unsubscribe/%5C..%5Cadmin", "/a\\b", "/unsubscribe/..\\admin",
	"/\\evil", "/a/\\/b",
	// double and over-long encodings
	"/%252e%252e/admin", "/%252E%252E%252Fadmin", "/%252f", "/%255c", "/%253b", "/%25",
	"/100%25", "/%25%32%65", "/%%32%65", "/%2%65", "/%c0%ae%c0%ae/admin", "/%c0%af",
	"/%e0%80%ae", "/%f0%80%80%ae", "/%c1%9c", "/%c0%2e", "/%ed%a0%80", "/%ff", "/%80",
	"/%u002e%u002e/admin", "/%u2215",
	// invalid escapes
	"/%", "/%2", "/a%", "/a%z1", "/a%1z", "/%zz", "/%%",
	// control characters, raw and encoded
	"/a\x00b", "/a%00b", "/a%0ab", "/a%0d%0aX:y", "/a%09", "/a\tb", "/a\nb", "/a\rb",
	"/a%7f", "/a\x7f", "/a%1b", "/%c2%85", "/%c2%9f", "/a b",
	// Unicode format characters
	"/%e2%80%8b", "/%ef%bb%bf", "/%e2%80%ae", "/%c2%ad", "/%e2%81%a0",
	// look-alikes that NFKC or best-fit mapping turn into structure
	"/%ef%bc%8f", "/a%ef%bc%8fb", "/%e2%88%95", "/%e2%81%84", "/%e2%a7%b8",
	"/%ef%bc%bc", "/%ef%b9%a8", "/%e2%88%96", "/%e2%a7%b5", "/%c2%a5", "/%e2%82%a9",
	"/%e2%80%a5", "/%e2%80%a4%e2%80%a4", "/%e2%80%a6", "/%ef%bc%8e%ef%bc%8e/admin",
	"/%ef%b9%92", "/%ef%b8%b0", "/%ef%bc%9b", "/%cd%be", "/%ef%b9%94", "/%ef%bc%85",
	"/%ef%b9%aa2e", "/%ef%bc%83", "/%ef%bc%9f", "/%e2%92%88", "/%f0%9f%84%80",
	// raw bytes an escaped path never has
	"/a?b", "/a#b", "/a|b", "/a\"b", "/a<b>", "/a{b}", "/a^b", "/a`b", "/caf\xc3\xa9",
	"/\xff", "/a%",
}

func TestCleanAccepts(t *testing.T) {
	for _, tt := range cleanAccepted {
		got, ok := Clean(tt.raw)
		if !ok || got != tt.want {
			t.Errorf("Clean(%q) = %q, %v; want %q, true", tt.raw, got, ok, tt.want)
		}
	}
}

func TestCleanRefuses(t *testing.T) {
	for _, raw := range cleanRefused {
		if got, ok := Clean(raw); ok || got != "" {
			t.Errorf("Clean(%q) = %q, %v; want refused", raw, got, ok)
		}
	}
}

// TestCleanRefusesNFKCStructure lists the runes whose NFKC form holds '.',
// '/', '\', ';', '%', '?' or '#' (computed with golang.org/x/text's
// norm.NFKC over every rune, Unicode 15), so the table in confusable
// cannot lose one unnoticed.
func TestCleanRefusesNFKCStructure(t *testing.T) {
	runes := []rune{
		0x037E, 0x2024, 0x2025, 0x2026, 0x2047, 0x2048, 0x2049, 0x2100, 0x2101,
		0x2105, 0x2106, 0x33C2, 0x33C7, 0x33D8, 0xFE14, 0xFE16, 0xFE19, 0xFE30,
		0xFE52, 0xFE54, 0xFE56, 0xFE5F, 0xFE68, 0xFE6A, 0xFF03, 0xFF05, 0xFF0E,
		0xFF0F, 0xFF1B, 0xFF1F, 0xFF3C, 0x1F100,
	}
	for r := rune(0x2488); r <= 0x249B; r++ {
		runes = append(runes, r)
	}
	for _, r := range runes {
		raw := "/a" + url.PathEscape(string(r)) + "b"
		if _, ok := Clean(raw); ok {
			t.Errorf("Clean(%q) (U+%04X) accepted", raw, r)
		}
	}
}

// nextAccepted are redirect targets SafeNext keeps.
var nextAccepted = []string{
	"/",
	"/a",
	"/a/b",
	"/a/b/",
	"/a/b?x=1",
	"/a/b?x=1#f",
	"/a/b#f",
	"/?x=1",
	"/a?next=//evil.example",
	"/a?u=https://evil.example/%2F%5C",
	"/a#//evil.example",
	"/a?x=%0d%0a",
	"/@evil.example",
	"/.evil.example",
	"/evil.example",
	"/https:/evil.example",
	"/a:b",
	"/unsubscribe/a%20b",
	"/%E6%97%A5%E6%9C%AC",
	"/?",
	"/#",
	"/a?b?c#d#e",
	"/" + strings.Repeat("a", MaxNext-1),
}

// nextRefused are redirect targets that leave the site, could to some
// browser or framework, or are not what a clean path looks like. Many come
// from the PortSwigger and OWASP open-redirect payload lists.
var nextRefused = []string{
	"", "a", "a/b", "?x=1", "#f", ".", "..", "../evil",
	// other origins
	"https://evil.example", "http://evil.example", "//evil.example", "///evil.example",
	"////evil.example", "https:evil.example", "http:/evil.example", "javascript:alert(1)",
	"data:text/html,x", "evil.example", "\\\\evil.example", "\\/evil.example",
	"/\\evil.example", "/\\/evil.example", "/\\\\evil.example", "//\\evil.example",
	"/\\/\\/evil.example/", " /evil", "\t/evil", "\n//evil", "%2F%2Fevil.example",
	// encoded slashes and backslashes, once or twice
	"/%5Cevil.example", "/%5cevil", "/%5C%5Cevil.example", "/%2F%2Fevil.example",
	"/%2f/evil", "/%2f%2fevil", "//%2f%2fevil.example", "/%2F/evil.example",
	"/%252F%252Fevil.example", "/%255Cevil.example", "/%25252F%25252Fevil",
	"/https:/%5cevil.example/", "/%68%74%74%70%73:%2F%2Fevil.example",
	// dot segments that resolve to "//" or elsewhere
	"/..//evil.example", "/../evil", "/./evil", "/.//evil", "/x/../..//evil",
	"/%2e%2e//evil.example", "/%2e%2e%2f/evil.example", "/%252e%252e%252fevil",
	"/evil.example/%2f..", "/a/..;/evil", "/;@evil.example", "/%3B@evil.example",
	// whitespace and control characters browsers strip or act on
	"/\t/evil.example", "/%09/evil.example", "/\n/evil.example", "/\r\n/evil",
	"/a\tb", "/a\nb", "/a\rb", "/a b", "/ /evil", "/evil ", "/a%0d%0aLocation:x",
	"/\x00", "/a\x7f", "/a\x0b", "/a\x0c", "/a?x=\ty", "/a#\n", "/a?x=1 2",
	"/%00evil",
	// backslash anywhere
	"/a\\b", "/a?x=\\", "/a#\\",
	// Unicode, raw or encoded look-alikes of '/' '\' '.'
	"/\u3031evil.example", "/\u2215\u2215evil.example", "/\uff0f\uff0fevil.example",
	"/%E2%88%95%E2%88%95evil.example", "/%EF%BC%8F%EF%BC%8Fevil.example",
	"/%EF%BC%BCevil", "/%C2%A5evil", "/\u3002evil", "/\u00a0/evil", "/\ufeff/evil",
	"/%E2%80%8B/evil", "/%c0%af%c0%afevil",
	// invalid escapes
	"/%", "/a%zz", "/a?%zz", "/a#%zz", "/a?x=%", "/a?x=%4", "/%u002f%u002fevil",
	// length
	"/" + strings.Repeat("a", MaxNext), "/a?" + strings.Repeat("b", MaxNext),
}

func TestSafeNextAccepts(t *testing.T) {
	for _, s := range nextAccepted {
		if got := SafeNext(s); got != s {
			t.Errorf("SafeNext(%q) = %q, want it kept", s, got)
		}
		if got := legacySafeNext(s); got != s {
			t.Errorf("table error: the previous check refuses %q", s)
		}
	}
}

func TestSafeNextRefuses(t *testing.T) {
	for _, s := range nextRefused {
		if got := SafeNext(s); got != "" {
			t.Errorf("SafeNext(%q) = %q, want \"\"", s, got)
		}
	}
}

// legacySafeNext is gate.SafeNext as it was before this package: SafeNext
// must refuse everything it refuses.
func legacySafeNext(next string) string {
	if next == "" || next[0] != '/' || len(next) > 2048 {
		return ""
	}
	if len(next) > 1 && (next[1] == '/' || next[1] == '\\') {
		return ""
	}
	for i := 0; i < len(next); i++ {
		if next[i] < 0x20 || next[i] == 0x7f || next[i] == '\\' {
			return ""
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return ""
	}
	return next
}

func BenchmarkClean(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := Clean("/unsubscribe/newsletter/weekly"); !ok {
			b.Fatal("refused")
		}
	}
}

func BenchmarkCleanEscaped(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := Clean("/unsubscribe/caf%C3%A9%20au%20lait"); !ok {
			b.Fatal("refused")
		}
	}
}
