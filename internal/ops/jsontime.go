package ops

import (
	"bytes"
	"time"
)

// TimeFormat is how every time in --json output and on the admin API is
// written: RFC 3339, UTC, always milliseconds, so that scripts can compare
// and sort them as text.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// Time is a time in JSON output: TimeFormat, or null when there is none
// (never used, not revoked, …), so that a record's keys do not depend on
// its values.
type Time struct{ time.Time }

// At is t as a JSON time; the zero time is null.
func At(t time.Time) Time { return Time{t} }

// MarshalJSON writes TimeFormat in UTC, or null.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	b := make([]byte, 0, len(TimeFormat)+2)
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, TimeFormat)
	return append(b, '"'), nil
}

// UnmarshalJSON reads any RFC 3339 time, or null.
func (t *Time) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		t.Time = time.Time{}
		return nil
	}
	return t.Time.UnmarshalJSON(b)
}
