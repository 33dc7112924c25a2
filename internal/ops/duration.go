package ops

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// ParseDuration reads a duration as time.ParseDuration does, with one more
// unit, d for 24 hours: "7d", "1.5d", "1d12h". It takes what the Caddyfile
// takes for durations, so that the CLI and the config read "7d" alike.
func ParseDuration(s string) (time.Duration, error) {
	if len(s) > 1024 {
		return 0, errors.New("duration: too long")
	}
	if !strings.Contains(s, "d") {
		return time.ParseDuration(s)
	}
	// Rewrite every "<number>d" as hours, then let time.ParseDuration read
	// the whole.
	var b strings.Builder
	num := -1 // start of the number being read, or -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == 'd':
			if num < 0 {
				return 0, errors.New("duration " + strconv.Quote(s) + ": d without a number")
			}
			days, err := strconv.ParseFloat(s[num:i], 64)
			if err != nil {
				return 0, errors.New("duration " + strconv.Quote(s) + ": bad number of days")
			}
			b.WriteString(strconv.FormatFloat(days*24, 'f', -1, 64))
			b.WriteByte('h')
			num = -1
		case '0' <= c && c <= '9' || c == '.' || c == '-' || c == '+':
			if num < 0 {
				num = i
			}
		default:
			if num >= 0 {
				b.WriteString(s[num:i])
				num = -1
			}
			b.WriteByte(c)
		}
	}
	if num >= 0 {
		b.WriteString(s[num:])
	}
	return time.ParseDuration(b.String())
}
