package model

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/twtop/twtop/tracer/settings"
)

func netstat(tw, killed, recycled, overflow int64) settings.Counters {
	return settings.Counters{
		"TcpExt.TW": tw, "TcpExt.TWKilled": killed, "TcpExt.TWRecycled": recycled,
		"TcpExt.TCPTimeWaitOverflow": overflow, "Tcp.ActiveOpens": 12345,
	}
}

func TestKernelCounters(t *testing.T) {
	type reading struct {
		netns uint32
		c     settings.Counters
	}
	tests := []struct {
		name     string
		readings []reading
		want     []KernelCounters
	}{{
		name: "none", want: []KernelCounters{},
	}, {
		name:     "one reading: nothing moved yet",
		readings: []reading{{nsA, netstat(100, 5, 2, 0)}},
		want:     []KernelCounters{{Netns: nsA}},
	}, {
		// periodic re-reads: the latest minus the first, never a sum
		name: "three readings",
		readings: []reading{
			{nsA, netstat(100, 5, 2, 0)}, {nsA, netstat(150, 6, 10, 1)}, {nsA, netstat(400, 9, 30, 4)},
		},
		want: []KernelCounters{{Netns: nsA, TW: 300, TWKilled: 4, TWRecycled: 28, TimewaitOverflow: 4}},
	}, {
		name: "namespaces come out by inode",
		readings: []reading{
			{9, netstat(10, 0, 0, 0)}, {3, netstat(0, 0, 0, 0)}, {9, netstat(15, 0, 1, 0)}, {3, netstat(7, 1, 0, 2)},
		},
		want: []KernelCounters{{Netns: 3, TW: 7, TWKilled: 1, TimewaitOverflow: 2}, {Netns: 9, TW: 5, TWRecycled: 1}},
	}, {
		name: "a reading without TcpExt is no reading",
		readings: []reading{
			{nsA, settings.Counters{"Tcp.ActiveOpens": 5}}, {nsA, netstat(100, 0, 0, 0)},
			{nsA, settings.Counters{}}, {nsA, nil}, {nsA, netstat(160, 0, 0, 0)},
		},
		want: []KernelCounters{{Netns: nsA, TW: 60}},
	}, {
		// counters never go back in a namespace: the inode names a new one
		name: "counters restart",
		readings: []reading{
			{nsA, netstat(1000, 50, 20, 3)}, {nsA, netstat(1100, 50, 20, 3)}, {nsA, netstat(40, 1, 0, 0)}, {nsA, netstat(90, 2, 0, 0)},
		},
		want: []KernelCounters{{Netns: nsA, TW: 50, TWKilled: 1}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Config{})
			for _, r := range tc.readings {
				m.SetCounters(r.netns, r.c)
			}
			s := m.Snapshot()
			if got := s.Kernel; !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("kernel %+v, want %+v", got, tc.want)
			}
			// the report always has the key, as a list
			var buf bytes.Buffer
			if err := s.Report(Meta{}).WriteJSON(&buf); err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Kernel []map[string]int64 `json:"kernel"`
			}
			if err := json.Unmarshal(buf.Bytes(), &doc); err != nil || doc.Kernel == nil || len(doc.Kernel) != len(tc.want) {
				t.Fatalf("report kernel %v (%v) in\n%s", doc.Kernel, err, buf.Bytes())
			}
			for i, w := range tc.want {
				k := doc.Kernel[i]
				if k["netns"] != int64(w.Netns) || k["tw"] != w.TW || k["tw_killed"] != w.TWKilled ||
					k["tw_recycled"] != w.TWRecycled || k["timewait_overflow"] != w.TimewaitOverflow {
					t.Errorf("report kernel[%d] %v, want %+v", i, k, w)
				}
			}
		})
	}
}

// The snapshot's copy does not move with later readings, and the text
// report shows the kernel's view.
func TestKernelCountersSnapshot(t *testing.T) {
	m := New(Config{})
	c := netstat(100, 0, 0, 0)
	m.SetCounters(nsA, c)
	c["TcpExt.TW"] = 900 // the caller's map is not kept
	m.SetCounters(nsA, netstat(130, 1, 2, 3))
	s := m.Snapshot()
	m.SetCounters(nsA, netstat(500, 1, 2, 3))
	if s.Kernel[0].TW != 30 || m.Snapshot().Kernel[0].TW != 400 {
		t.Fatalf("snapshot %+v, now %+v", s.Kernel, m.Snapshot().Kernel)
	}
	var b strings.Builder
	if err := s.Report(Meta{}).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if want := "netns 7: TcpExt TW +30, TWKilled +1, TWRecycled +2, TCPTimeWaitOverflow +3"; !strings.Contains(b.String(), want) {
		t.Fatalf("text report lacks %q:\n%s", want, b.String())
	}
}
