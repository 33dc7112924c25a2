// Package audit records credential attempts without letting the audit trail
// slow down or fail the requests it describes. Events are queued in memory,
// enriched (user-agent parsing) and written to the store in batches by a
// single goroutine; when the store cannot keep up, events are dropped and
// counted rather than applying back-pressure to clients.
package audit

import (
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/mssola/useragent"
)

// MaxUALen bounds how much of a User-Agent header is kept, parsed and used
// as a cache key. Real browsers stay well under it; anything longer is
// either broken or hostile, and must not let one header pin kilobytes in the
// cache or the queue.
const MaxUALen = 512

// maxUAField bounds each parsed field, because the parser happily returns
// most of a garbage header as the "browser name", and those fields end up in
// indexed audit columns.
const maxUAField = 64

// DefaultUACacheSize is used when NewUAParser is given a non-positive
// capacity. A gateway sees a small working set of distinct user agents
// (a few browser versions per user), so a few thousand covers it.
const DefaultUACacheSize = 4096

// Device classes stored in store.AuditEvent.UADevice.
const (
	DeviceDesktop = "desktop"
	DeviceMobile  = "mobile"
	DeviceTablet  = "tablet"
	DeviceBot     = "bot"
	DeviceUnknown = "unknown"
)

// UA is the part of a User-Agent header worth keeping in the audit trail.
type UA struct {
	Browser string
	Version string
	OS      string
	Device  string
	Bot     bool
}

// UAParser parses User-Agent headers through a bounded cache, because the
// same handful of headers arrive over and over and parsing one allocates
// heavily.
//
// The cache is two generations of maps: lookups check the current then the
// previous generation, and when the current one is full it becomes the
// previous one and the old previous one is discarded. That keeps memory at
// most the capacity while keeping recently used entries (which get promoted
// on a hit), at the cost of occasionally forgetting a hot entry once.
type UAParser struct {
	genSize int

	mu   sync.RWMutex
	cur  map[string]UA
	prev map[string]UA

	hits   atomic.Uint64
	misses atomic.Uint64
}

// NewUAParser returns a parser caching at most capacity distinct headers
// (DefaultUACacheSize if capacity <= 0; a capacity of 1 acts as 2).
func NewUAParser(capacity int) *UAParser {
	if capacity <= 0 {
		capacity = DefaultUACacheSize
	}
	// Two generations of half the capacity each.
	gen := max(capacity/2, 1)
	return &UAParser{
		genSize: gen,
		cur:     make(map[string]UA), // grown as met: most gateways see few distinct agents
	}
}

// Parse describes raw. Headers longer than MaxUALen are cut first, so two
// headers differing only past that point share one result.
func (p *UAParser) Parse(raw string) UA {
	if raw == "" {
		return UA{Device: DeviceUnknown}
	}
	raw = TruncateUA(raw)

	p.mu.RLock()
	u, ok := p.cur[raw]
	inPrev := false
	if !ok {
		u, inPrev = p.prev[raw]
	}
	p.mu.RUnlock()

	switch {
	case ok:
		p.hits.Add(1)
		return u
	case inPrev:
		p.hits.Add(1)
		// Promote so that entries in use survive the next rotation.
		p.put(raw, u)
		return u
	}

	p.misses.Add(1)
	u = parseUA(raw)
	p.put(raw, u)
	return u
}

// put clones the key because raw may be a slice of a much larger header
// (or request buffer) that the cache would otherwise keep alive.
func (p *UAParser) put(raw string, u UA) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.cur[raw]; ok {
		return
	}
	if len(p.cur) >= p.genSize {
		p.prev = p.cur
		p.cur = make(map[string]UA)
	}
	p.cur[strings.Clone(raw)] = u
}

// Hits reports cache hits, so that tests and metrics can tell whether the
// cache is doing its job.
func (p *UAParser) Hits() uint64 { return p.hits.Load() }

// Misses reports headers that had to be parsed.
func (p *UAParser) Misses() uint64 { return p.misses.Load() }

// Len reports how many headers are cached now, so that tests can check the
// cache stays bounded.
func (p *UAParser) Len() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.cur) + len(p.prev)
}

// TruncateUA cuts s to at most MaxUALen bytes without splitting a UTF-8
// sequence, so the stored header stays valid text when it was valid text.
func TruncateUA(s string) string {
	if len(s) <= MaxUALen {
		return s
	}
	n := MaxUALen
	for n > MaxUALen-utf8.UTFMax && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func parseUA(raw string) UA {
	p := useragent.New(raw)
	name, version := p.Browser()
	u := UA{
		Browser: cleanField(name),
		Version: cleanField(version),
		OS:      cleanField(osName(p)),
		Bot:     p.Bot(),
	}
	switch {
	case u.Bot:
		u.Device = DeviceBot
	case isTablet(p, raw):
		u.Device = DeviceTablet
	case p.Mobile():
		u.Device = DeviceMobile
	case u.OS != "":
		u.Device = DeviceDesktop
	default:
		// curl, scripts, garbage: no basis to call it a desktop.
		u.Device = DeviceUnknown
	}
	return u
}

// isTablet covers what the parser lumps in with phones: iPads, Firefox's
// explicit "Tablet" token, and Android browsers that leave out "Mobile"
// (which is how Chrome on Android tablets asks for desktop layouts).
func isTablet(p *useragent.UserAgent, raw string) bool {
	switch p.Platform() {
	case "iPad", "Tablet":
		return true
	}
	return strings.HasPrefix(p.OS(), "Android") && !strings.Contains(raw, "Mobile")
}

// osName turns the parser's OS description into the names people use, so
// that grouping by OS in the audit view does not split one OS in two.
func osName(p *useragent.UserAgent) string {
	info := p.OSInfo()
	name, version := info.Name, info.Version
	switch {
	case name == "iPhone OS":
		name = "iOS"
	case p.Platform() == "iPad" && name == "OS":
		name = "iPadOS"
	case strings.HasPrefix(name, "CrOS"):
		name, version = "ChromeOS", ""
	}
	if version == "" {
		return name
	}
	return name + " " + version
}

// cleanField keeps parsed fields printable and short, since on garbage input
// they are arbitrary bytes of the header.
func cleanField(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > maxUAField {
		n := maxUAField
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	return s
}
