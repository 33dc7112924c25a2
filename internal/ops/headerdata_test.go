package ops

import (
	"strings"
	"testing"
)

func TestCheckHeaderData(t *testing.T) {
	for _, c := range []struct {
		name string
		data map[string]any
		ok   bool
	}{
		{"none", nil, true},
		{"small", map[string]any{"room": 12}, true},
		// {"v":"…"} is 8 bytes of JSON around the value.
		{"ascii at the limit", map[string]any{"v": strings.Repeat("a", MaxHeaderData-8)}, true},
		{"ascii over", map[string]any{"v": strings.Repeat("a", MaxHeaderData-7)}, false},
		// é is 2 bytes of UTF-8 but 6 once escaped: 700 of them are 4,200.
		{"escaping counted", map[string]any{"v": strings.Repeat("é", 700)}, false},
		{"astral counted twice", map[string]any{"v": strings.Repeat("𝄞", 345)}, false},
	} {
		err := checkHeaderData("data", c.data)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
