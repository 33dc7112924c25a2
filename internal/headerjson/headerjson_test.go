package headerjson

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestMarshal(t *testing.T) {
	for _, c := range []struct {
		in   map[string]any
		want string
	}{
		{map[string]any{"a": "plain"}, `{"a":"plain"}`},
		{map[string]any{"n": "Léonard"}, `{"n":"L\u00e9onard"}`},
		{map[string]any{"e": "🎨"}, `{"e":"\ud83c\udfa8"}`},
	} {
		got, err := Marshal(c.in)
		if err != nil || got != c.want {
			t.Errorf("Marshal(%v) = %s, %v; want %s", c.in, got, err, c.want)
		}
		var back map[string]any
		if err := json.Unmarshal([]byte(got), &back); err != nil || !reflect.DeepEqual(back, c.in) {
			t.Errorf("%s reads back as %v (%v)", got, back, err)
		}
		for i := 0; i < len(got); i++ {
			if got[i] >= 0x80 {
				t.Errorf("%s is not ASCII", got)
				break
			}
		}
	}
}
