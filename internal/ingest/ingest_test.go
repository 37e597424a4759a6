package ingest

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/twtop/twtop/internal/workload"
	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/model"
	"github.com/twtop/twtop/tracer/record"
)

const (
	podNetns  = 4026532001
	hostNetns = 4026531840
)

// recording writes a recording: TIME_WAIT sockets the scan finds at
// start (3 in a pod's network namespace, 1 in the host's), one created
// later in the pod's with no owner seen, one of those ending, and, when
// ws is not nil, a workloads block after the records, as twtop --record
// writes them once the resolver answered.
func recording(t *testing.T, ws *record.Workloads) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := record.NewWriter(&b, record.Header{Twtop: "test", Tier: "fentry", HZ: 250, ByteOrder: "little", RecordSize: event.RecordSize})
	if err != nil {
		t.Fatal(err)
	}
	var tm uint64 = 1e9
	var buf [event.RecordSize]byte
	add := func(e event.Event) {
		tm += 1e6
		e.Time, e.Family = tm, event.AFInet
		if e.Kind != event.KindScanEnd {
			e.NewState = event.TimeWait
		}
		event.Encode(&e, buf[:])
		if err := w.Add(buf[:]); err != nil {
			t.Fatal(err)
		}
	}
	dst := netip.MustParseAddrPort("10.0.0.2:80")
	src := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), port) }
	for i := range uint64(3) {
		add(event.Event{Kind: event.KindScanTW, Ptr: 0x100 + i*0x40, Netns: podNetns, Src: src(41000 + uint16(i)), Dst: dst})
	}
	add(event.Event{Kind: event.KindScanEnd, Netns: podNetns})
	add(event.Event{Kind: event.KindScanTW, Ptr: 0x400, Netns: hostNetns, Src: src(41000), Dst: dst})
	add(event.Event{Kind: event.KindScanEnd, Netns: hostNetns})
	add(event.Event{Kind: event.KindTWCreate, Ptr: 0x200, Netns: podNetns, Src: src(42000), Dst: dst})
	add(event.Event{Kind: event.KindTWExpire, Ptr: 0x100, Netns: podNetns, Src: src(41000), Dst: dst})
	if ws != nil {
		if err := w.Workloads(*ws); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(record.Trailer{TimeNs: tm}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func replay(t *testing.T, file []byte) *model.Snapshot {
	t.Helper()
	rd, err := record.NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Recording(rd)
	if err != nil {
		t.Fatal(err)
	}
	return m.Snapshot()
}

// A recording's workloads block names the pods of network namespaces: the
// replay counts the TIME_WAIT sockets no owner closed for the pod whose
// namespace holds them, and names it on the destinations, with neither
// the runtime nor the node at hand. A recording without the namespaces'
// workloads (made before they were recorded) replays with neither.
func TestReplayNamesNetnsPods(t *testing.T) {
	pod := workload.Workload{Kind: workload.KindPod, PodUID: "uid-w", Namespace: "shop", Pod: "web-1", Path: "/kubepods.slice/x.slice"}
	s := replay(t, recording(t, &record.Workloads{Cgroups: map[string]workload.Workload{},
		Netns: map[string]workload.Workload{"4026532001": pod}}))
	if s.Counters.Existing != 4 || s.Counters.Created != 1 || s.OpenNow != 4 {
		t.Fatalf("existing %d, created %d, open %d; want 4, 1, 4", s.Counters.Existing, s.Counters.Created, s.OpenNow)
	}
	rows := s.AllClosers[model.ByPod]
	if len(rows) != 1 {
		t.Fatalf("pod rows %+v, want one", rows)
	}
	r := rows[0]
	if r.Key != "shop/web-1" || r.Namespace != "shop" || r.Pod != "web-1" || r.PodUID != "uid-w" || r.TimewaitCreated != 4 || r.TimewaitOpen != 3 || r.Total() != 0 {
		t.Errorf("pod row %+v, want shop/web-1 (uid-w) with 4 TIME_WAIT sockets, 3 open, no close", r)
	}
	named := 0
	for _, p := range s.AllPorts {
		switch p.Netns {
		case podNetns:
			named++
			if p.Namespace != "shop" || p.Pod != "web-1" || p.PodUID != "" || p.TimeWait != 3 {
				t.Errorf("pod's destination %+v, want shop/web-1 holding 3", p)
			}
		case hostNetns:
			if p.PodName() != "" || p.TimeWait != 1 {
				t.Errorf("host's destination %+v, want no pod, 1 held", p)
			}
		}
	}
	if named != 1 {
		t.Errorf("%d destinations in the pod's namespace, want 1: %+v", named, s.AllPorts)
	}

	// older recordings: a workloads block without namespaces, or none
	for name, ws := range map[string]*record.Workloads{"cgroups only": {Cgroups: map[string]workload.Workload{"7": pod}}, "no block": nil} {
		s := replay(t, recording(t, ws))
		if s.OpenNow != 4 || len(s.AllClosers[model.ByPod]) != 0 {
			t.Errorf("%s: %d open, pod rows %+v; want 4 open, none", name, s.OpenNow, s.AllClosers[model.ByPod])
		}
		for _, p := range s.AllPorts {
			if p.PodName() != "" {
				t.Errorf("%s: destination names pod %s", name, p.PodName())
			}
		}
	}
}
