package audit

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

const (
	uaChromeWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	uaSafariIPhone  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
	uaSafariIPad    = "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
	uaFirefoxLinux  = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
	uaSafariMac     = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"
	uaChromeAndroid = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"
	uaChromeTablet  = "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	uaFirefoxTablet = "Mozilla/5.0 (Android 14; Tablet; rv:125.0) Gecko/125.0 Firefox/125.0"
	uaGooglebot     = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
	uaGooglebotMob  = "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.60 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
	uaCurl          = "curl/8.5.0"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want UA
	}{
		{"chrome windows", uaChromeWindows, UA{Browser: "Chrome", Version: "124.0.0.0", OS: "Windows 10", Device: DeviceDesktop}},
		{"safari iphone", uaSafariIPhone, UA{Browser: "Safari", Version: "17.4", OS: "iOS 17.4", Device: DeviceMobile}},
		{"safari ipad", uaSafariIPad, UA{Browser: "Safari", Version: "17.4", OS: "iPadOS 17.4", Device: DeviceTablet}},
		{"firefox linux", uaFirefoxLinux, UA{Browser: "Firefox", Version: "125.0", OS: "Linux", Device: DeviceDesktop}},
		{"safari mac", uaSafariMac, UA{Browser: "Safari", Version: "17.4", OS: "Mac OS X 10.15.7", Device: DeviceDesktop}},
		{"chrome android phone", uaChromeAndroid, UA{Browser: "Chrome", Version: "124.0.0.0", OS: "Android 14", Device: DeviceMobile}},
		{"chrome android tablet", uaChromeTablet, UA{Browser: "Chrome", Version: "124.0.0.0", OS: "Android 13", Device: DeviceTablet}},
		{"firefox android tablet", uaFirefoxTablet, UA{Browser: "Firefox", Version: "125.0", OS: "Android 14", Device: DeviceTablet}},
		{"googlebot", uaGooglebot, UA{Browser: "Googlebot", Version: "2.1", Device: DeviceBot, Bot: true}},
		{"googlebot smartphone", uaGooglebotMob, UA{Browser: "Googlebot", Version: "2.1", Device: DeviceBot, Bot: true}},
		{"curl", uaCurl, UA{Browser: "curl", Version: "8.5.0", Device: DeviceUnknown}},
		{"empty", "", UA{Device: DeviceUnknown}},
	}
	p := NewUAParser(16)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Parse(tt.raw); got != tt.want {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tt.raw, got, tt.want)
			}
		})
	}
}

func TestParseGarbage(t *testing.T) {
	// 10KB of bytes that are neither UTF-8 nor a user agent.
	var b strings.Builder
	for b.Len() < 10<<10 {
		b.WriteString("\x00\xff(garbage;\x1b[31m\xc3")
	}
	raw := b.String()

	p := NewUAParser(16)
	got := p.Parse(raw)
	if got.Device != DeviceUnknown || got.Bot {
		t.Errorf("Device, Bot = %q, %v; want unknown, false", got.Device, got.Bot)
	}
	for name, f := range map[string]string{"Browser": got.Browser, "Version": got.Version, "OS": got.OS} {
		if len(f) > maxUAField || !utf8.ValidString(f) || strings.ContainsAny(f, "\x00\x1b") {
			t.Errorf("%s = %q: want short printable UTF-8", name, f)
		}
	}

	// Only the first MaxUALen bytes count, so a header differing further
	// on shares the cache entry.
	other := raw[:MaxUALen] + strings.Repeat("x", 5000)
	p.Parse(other)
	if p.Hits() != 1 || p.Misses() != 1 || p.Len() != 1 {
		t.Errorf("hits, misses, len = %d, %d, %d; want 1, 1, 1", p.Hits(), p.Misses(), p.Len())
	}
	// The cached key must not keep the 10KB header alive.
	p.mu.RLock()
	for k := range p.cur {
		if len(k) > MaxUALen {
			t.Errorf("cached key is %d bytes", len(k))
		}
	}
	p.mu.RUnlock()
}

func TestTruncateUA(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int
	}{
		{"short", "curl/8", 6},
		{"exact", strings.Repeat("a", MaxUALen), MaxUALen},
		{"long ascii", strings.Repeat("a", 10000), MaxUALen},
		// "é" is 2 bytes: 511 a's then é would be cut inside the rune.
		{"rune boundary", strings.Repeat("a", MaxUALen-1) + "éééé", MaxUALen - 1},
		{"invalid bytes", strings.Repeat("\x80", 1000), MaxUALen - utf8.UTFMax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := TruncateUA(tt.in)
			if len(got) != tt.want {
				t.Errorf("len = %d, want %d", len(got), tt.want)
			}
			if utf8.ValidString(tt.in) && !utf8.ValidString(got) {
				t.Errorf("valid input truncated to invalid UTF-8")
			}
		})
	}
}

func TestParseCacheHit(t *testing.T) {
	p := NewUAParser(16)
	first := p.Parse(uaChromeWindows)
	if p.Hits() != 0 || p.Misses() != 1 {
		t.Fatalf("after first parse: hits, misses = %d, %d; want 0, 1", p.Hits(), p.Misses())
	}
	// A different string with the same content must hit too: the cache is
	// keyed by value, not by pointer.
	second := p.Parse(strings.Clone(uaChromeWindows))
	if p.Hits() != 1 || p.Misses() != 1 {
		t.Fatalf("after second parse: hits, misses = %d, %d; want 1, 1", p.Hits(), p.Misses())
	}
	if first != second {
		t.Errorf("cached result %+v differs from parsed %+v", second, first)
	}
}

func TestParseCacheBounded(t *testing.T) {
	const capacity = 100
	p := NewUAParser(capacity)
	for i := range 10000 {
		p.Parse(fmt.Sprintf("%s #%d", uaCurl, i))
		// Keep one header hot; it must survive the rotations.
		p.Parse(uaChromeWindows)
		if n := p.Len(); n > capacity {
			t.Fatalf("after %d headers the cache holds %d > %d", i+1, n, capacity)
		}
	}
	if p.Misses() != 10001 {
		t.Errorf("misses = %d, want 10001 (the hot header parsed once)", p.Misses())
	}
}

func TestParseConcurrent(t *testing.T) {
	p := NewUAParser(8)
	uas := []string{uaChromeWindows, uaSafariIPhone, uaFirefoxLinux, uaGooglebot, uaCurl, ""}
	want := make([]UA, len(uas))
	for i, s := range uas {
		want[i] = parseUAOrEmpty(s)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				j := (i + g) % len(uas)
				if got := p.Parse(uas[j]); got != want[j] {
					t.Errorf("Parse(%q) = %+v, want %+v", uas[j], got, want[j])
					return
				}
				// Some churn so rotation runs concurrently with lookups.
				p.Parse(fmt.Sprintf("x/%d", i%50))
			}
		})
	}
	wg.Wait()
	if p.Len() > 8 {
		t.Errorf("Len = %d > 8", p.Len())
	}
}

func parseUAOrEmpty(s string) UA {
	if s == "" {
		return UA{Device: DeviceUnknown}
	}
	return parseUA(s)
}

func BenchmarkUAParseCached(b *testing.B) {
	p := NewUAParser(0)
	uas := []string{uaChromeWindows, uaSafariIPhone, uaFirefoxLinux, uaGooglebot, uaCurl}
	for _, s := range uas {
		p.Parse(s)
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		p.Parse(uas[i%len(uas)])
		i++
	}
}

func BenchmarkUAParseUncached(b *testing.B) {
	// More distinct headers than the cache holds, so every Parse misses;
	// this measures the miss path including the cache insert.
	p := NewUAParser(1024)
	uas := make([]string, 1<<14)
	for i := range uas {
		uas[i] = fmt.Sprintf("%s %d", uaChromeWindows, i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		p.Parse(uas[i%len(uas)])
		i++
	}
	if p.Hits() != 0 {
		b.Fatalf("%d cache hits in the uncached benchmark", p.Hits())
	}
}
