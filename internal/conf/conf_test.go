package conf

import (
	"fmt"
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

func TestName(t *testing.T) {
	for _, tc := range [][3]string{
		{"MaxConnectionAge", "max-connection-age", "max_connection_age"},
		{"MaxRecvMsgSize", "max-recv-msg-size", "max_recv_msg_size"},
		{"ForbidPingsWithoutStream", "forbid-pings-without-stream", "forbid_pings_without_stream"},
		{"HTTPAddr", "http-addr", "http_addr"},
		{"UseTLS", "use-tls", "use_tls"},
		{"X", "x", "x"},
	} {
		if kebab, snake := Name(tc[0], "-"), Name(tc[0], "_"); kebab != tc[1] || snake != tc[2] {
			t.Errorf("Name(%q) = %q, %q; want %q, %q", tc[0], kebab, snake, tc[1], tc[2])
		}
	}
}

func TestFill(t *testing.T) {
	type cfg struct {
		Age  time.Duration
		N    int
		On   bool
		Addr string
	}
	c := cfg{Age: Off, On: true}
	Fill(&c, cfg{Age: time.Second, N: 3, Addr: ":1"})
	if want := (cfg{Age: Off, N: 3, On: true, Addr: ":1"}); c != want {
		t.Errorf("Fill = %+v, want %+v: zero fields take the default, set ones (Off too) stay", c, want)
	}
}

func TestLogValue(t *testing.T) {
	v := LogValue(struct {
		MaxAge time.Duration
		Limit  int
		Bytes  int64
		Strict bool
		Name   string
	}{Off, 5, -1, true, "x"})
	var got []string
	for _, a := range v.Group() {
		got = append(got, a.String())
	}
	if want := "[max_age=off limit=5 bytes=-1 strict=true]"; fmt.Sprint(got) != want {
		t.Errorf("LogValue = %v, want %s", got, want)
	}
}
