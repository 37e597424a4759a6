package model

import (
	"net/netip"
	"testing"

	"github.com/twtop/twtop/tracer/event"
)

func TestHistogramCumulativeCounts(t *testing.T) {
	var h Histogram
	vals := []uint64{5, 1e6, 2e6, 59_000_000_000, 60_100_000_000, 61_000_000_000, 200e9}
	var sum uint64
	for _, v := range vals {
		h.Record(v)
		sum += v
	}
	bounds := []uint64{0, 1e6, 1_500_000, 60e9, 60_500_000_000, 120e9, 1 << 62}
	want := []uint64{0, 1, 2, 4, 5, 6, 7} // 1 ms itself is in a bucket that ends past 1 ms
	got := h.CumulativeCounts(bounds)
	for i := range bounds {
		if got[i] != want[i] {
			t.Errorf("count up to %d: %d, want %d", bounds[i], got[i], want[i])
		}
	}
	if h.Sum() != sum {
		t.Errorf("sum %d, want %d", h.Sum(), sum)
	}
	var m Histogram
	m.Merge(&h)
	m.Merge(&h)
	if m.Sum() != 2*sum || m.CumulativeCounts([]uint64{1 << 62})[0] != 2*uint64(len(vals)) {
		t.Errorf("merged: sum %d, count %v", m.Sum(), m.CumulativeCounts([]uint64{1 << 62}))
	}
}

// AllPorts holds every destination in the report's order; Ports is its
// first TopN.
func TestAllPortsExtendsPorts(t *testing.T) {
	var g gen
	for i := uint64(0); i < 30; i++ {
		dst := netip.AddrPortFrom(srvAddr.Addr(), uint16(1000+i))
		src := netip.AddrPortFrom(cliAddr.Addr(), uint16(40000+i))
		for j := uint64(0); j <= i%4; j++ { // 1 to 4 connections each
			p := 100*i + 10*j
			s := netip.AddrPortFrom(src.Addr(), src.Port()+uint16(100*j))
			g.state(p, s, dst, event.Close, event.SynSent, clientPid)
		}
	}
	m := New(Config{TopN: 5})
	for i := range g.evs {
		m.Apply(&g.evs[i])
	}
	s := m.Snapshot()
	if len(s.AllPorts) != 30 || len(s.Ports) != 5 {
		t.Fatalf("%d ports in all, %d in the report; want 30 and 5", len(s.AllPorts), len(s.Ports))
	}
	for i, p := range s.Ports {
		if p != s.AllPorts[i] {
			t.Errorf("row %d: report %+v, all %+v", i, p, s.AllPorts[i])
		}
	}
	if s.AllPorts[0].Held != 4 || s.AllPorts[29].Held != 1 {
		t.Errorf("order: first holds %d, last %d; want 4 and 1", s.AllPorts[0].Held, s.AllPorts[29].Held)
	}
}
