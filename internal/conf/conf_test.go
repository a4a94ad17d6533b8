package conf

import (
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	for _, tc := range []struct {
		v, want time.Duration
		err     string
	}{
		{0, 10 * time.Second, ""},
		{time.Second, time.Second, ""},
		{-time.Second, -time.Second, "Config.X is -1s; it must be 0 (meaning 10s) or more"},
	} {
		v := tc.v
		err := Default("Config.X", &v, 10*time.Second)
		if v != tc.want || (err == nil) != (tc.err == "") || err != nil && err.Error() != tc.err {
			t.Errorf("Default(%v) = %v, %v; want %v, %q", tc.v, v, err, tc.want, tc.err)
		}
	}
	n := 0
	if err := Default("Config.N", &n, 1); err != nil || n != 1 {
		t.Errorf("Default(0 of an int) = %d, %v; want 1", n, err)
	}
}
