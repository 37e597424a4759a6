package settings_test

import (
	"errors"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/twtop/twtop/tracer/settings"
)

func TestParseNetstatTestdata(t *testing.T) {
	for _, tc := range []struct {
		file   string
		fields int // number of Section.Field keys in the file
		want   map[string]int64
	}{
		{"testdata/netstat.txt", 229, map[string]int64{
			"TcpExt.TW":                  92,
			"TcpExt.TWRecycled":          0,
			"TcpExt.TWKilled":            0,
			"TcpExt.TCPTimeWaitOverflow": 0,
			"MPTcpExt.MPCapableSYNRX":    0,
		}},
		{"testdata/snmp.txt", 83, map[string]int64{
			"Tcp.RtoMin":      200,
			"Tcp.MaxConn":     -1,
			"Tcp.ActiveOpens": 94,
			"Tcp.InSegs":      12041,
			"Ip.DefaultTTL":   64,
			"IcmpMsg.InType3": 1,
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f, err := os.Open(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			c, err := settings.ParseNetstat(f)
			if err != nil {
				t.Fatalf("ParseNetstat: %v", err)
			}
			if len(c) != tc.fields {
				t.Errorf("got %d counters, want %d", len(c), tc.fields)
			}
			for k, v := range tc.want {
				got, ok := c[k]
				if !ok {
					t.Errorf("%s missing", k)
				} else if got != v {
					t.Errorf("%s = %d, want %d", k, got, v)
				}
			}
		})
	}
}

func TestParseNetstat(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    settings.Counters
		wantErr string // substring of the error; "" means success
	}{
		{name: "empty", in: "", want: settings.Counters{}},
		{
			name: "two sections",
			in:   "TcpExt: TW TWKilled\nTcpExt: 5 -2\nIpExt: InNoRoutes\nIpExt: 9223372036854775807\n",
			want: settings.Counters{"TcpExt.TW": 5, "TcpExt.TWKilled": -2, "IpExt.InNoRoutes": 9223372036854775807},
		},
		{
			name: "blank lines, no final newline, tabs",
			in:   "\nTcp:\tA  B\n\nTcp: 1\t2",
			want: settings.Counters{"Tcp.A": 1, "Tcp.B": 2},
		},
		{name: "empty section", in: "IcmpMsg:\nIcmpMsg:\n", want: settings.Counters{}},
		{name: "more values", in: "TcpExt: A B\nTcpExt: 1 2 3\n", wantErr: "line 2: section TcpExt has 2 fields on line 1 but 3 values"},
		{name: "fewer values", in: "Tcp: A B C\nTcp: 1 2\n", wantErr: "line 2: section Tcp has 3 fields on line 1 but 2 values"},
		{name: "section mismatch", in: "Tcp: A\nUdp: 1\n", wantErr: "line 2: values of section \"Udp\" follow the header of \"Tcp\""},
		{name: "header without values", in: "Tcp: A\nTcp: 1\nUdp: B\n", wantErr: "line 3: header of section Udp without values"},
		{name: "garbage value", in: "Tcp: A B\nTcp: 1 x2\n", wantErr: "line 2: Tcp.B: strconv.ParseInt: parsing \"x2\": invalid syntax"},
		{name: "float value", in: "Tcp: A\nTcp: 1.5\n", wantErr: "line 2: Tcp.A"},
		{name: "overflow", in: "Tcp: A\nTcp: 9223372036854775808\n", wantErr: "value out of range"},
		{name: "no section", in: "hello world\n", wantErr: "line 1: want \"Section:\" first"},
		{name: "bare colon", in: ": A\n: 1\n", wantErr: "line 1: want \"Section:\" first"},
		{name: "binary", in: "\x00\x01\x02 \xff\n", wantErr: "line 1"},
		{name: "line too long", in: "Tcp: " + strings.Repeat("A", 2<<20) + "\n", wantErr: "line 1: bufio.Scanner: token too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := settings.ParseNetstat(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("no error, got %v", c)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %q does not contain %q", err, tc.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "settings: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseNetstat: %v", err)
			}
			if len(c) != len(tc.want) {
				t.Errorf("got %v, want %v", c, tc.want)
			}
			for k, v := range tc.want {
				if got, ok := c[k]; !ok || got != v {
					t.Errorf("%s = %d (present %v), want %d", k, got, ok, v)
				}
			}
		})
	}
}

func TestParseNetstatWrapsNumError(t *testing.T) {
	_, err := settings.ParseNetstat(strings.NewReader("Tcp: A\nTcp: z\n"))
	if !errors.Is(err, strconv.ErrSyntax) {
		t.Fatalf("error %v does not wrap strconv.ErrSyntax", err)
	}
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestParseNetstatReadError(t *testing.T) {
	_, err := settings.ParseNetstat(failReader{})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("got %v, want the reader's error", err)
	}
}

func TestPortRangeSize(t *testing.T) {
	for _, tc := range []struct {
		low, high, want int
	}{
		{32768, 60999, 28232},
		{40000, 40009, 10},
		{40000, 40000, 1},
		{1, 65535, 65535},
		{0, 0, 1},
		{40001, 40000, 0},
		{-1, 10, 0},
		{1, 70000, 0},
	} {
		s := settings.Settings{PortLow: tc.low, PortHigh: tc.high}
		if got := s.PortRangeSize(); got != tc.want {
			t.Errorf("PortRangeSize(%d..%d) = %d, want %d", tc.low, tc.high, got, tc.want)
		}
	}
}

func TestReuseApplies(t *testing.T) {
	dsts := []struct {
		addr     string
		loopback bool
	}{
		{"127.0.0.1", true},
		{"127.255.0.9", true},
		{"::1", true},
		{"::ffff:127.0.0.1", true},
		{"10.0.0.1", false},
		{"192.0.2.7", false},
		{"2001:db8::1", false},
		{"::ffff:10.0.0.1", false},
		{"::", false},
		{"fe80::1%lo", false},
	}
	for reuse := 0; reuse <= 2; reuse++ {
		for _, ts := range []int{0, 1, 2} {
			for _, d := range dsts {
				dst := netip.MustParseAddr(d.addr)
				s := settings.Settings{TwReuse: reuse, Timestamps: ts}
				want := ts != 0 && (reuse == 1 || reuse == 2 && d.loopback)
				got, why := s.ReuseApplies(dst)
				if got != want {
					t.Errorf("tw_reuse=%d timestamps=%d dst=%s: got %v (%s), want %v", reuse, ts, d.addr, got, why, want)
				}
				if why == "" {
					t.Errorf("tw_reuse=%d timestamps=%d dst=%s: empty reason", reuse, ts, d.addr)
				}
				var wantWhy string
				switch {
				case reuse == 0:
					wantWhy = "tcp_tw_reuse is off"
				case reuse == 2 && !d.loopback:
					wantWhy = "destination is not loopback"
				case ts == 0:
					wantWhy = "tcp_timestamps is off"
				default:
					wantWhy = "tcp_tw_reuse is"
				}
				if !strings.Contains(why, wantWhy) {
					t.Errorf("tw_reuse=%d timestamps=%d dst=%s: reason %q does not contain %q", reuse, ts, d.addr, why, wantWhy)
				}
			}
		}
	}
}

func TestReuseAppliesBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    settings.Settings
		dst  netip.Addr
		why  string
	}{
		{"zero address", settings.Settings{TwReuse: 1, Timestamps: 1}, netip.Addr{}, "invalid destination"},
		{"unknown tw_reuse", settings.Settings{TwReuse: 3, Timestamps: 1}, netip.MustParseAddr("127.0.0.1"), "unknown value 3"},
		{"negative tw_reuse", settings.Settings{TwReuse: -1, Timestamps: 1}, netip.MustParseAddr("::1"), "unknown value -1"},
	} {
		ok, why := tc.s.ReuseApplies(tc.dst)
		if ok || !strings.Contains(why, tc.why) {
			t.Errorf("%s: got %v %q, want false and %q", tc.name, ok, why, tc.why)
		}
	}
}
