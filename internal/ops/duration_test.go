package ops

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{
		"15m":    15 * time.Minute,
		"1h":     time.Hour,
		"12h30m": 12*time.Hour + 30*time.Minute,
		"7d":     7 * 24 * time.Hour,
		"1d":     24 * time.Hour,
		"0d":     0,
		"1.5d":   36 * time.Hour,
		"1d12h":  36 * time.Hour,
		"2d3h4m": 51*time.Hour + 4*time.Minute,
		"1h1d":   25 * time.Hour,
		"-1d":    -24 * time.Hour,
		"+2d":    48 * time.Hour,
		".5d":    12 * time.Hour,
		"1d1d":   48 * time.Hour,
		"500ms":  500 * time.Millisecond,
		"0":      0,
	}
	for in, want := range good {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "7", "yesterday", "1x", "1.2.3d", "d1", "1dd", "h1d", "1 d", "--1d", "1e3d", strings.Repeat("1", 1025) + "d"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
}
