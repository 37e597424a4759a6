package tracer

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/twtop/twtop/tracer/event"
)

// The Go decoder reads struct event by hand; this pins it to the layout
// that bpf2go generated from bpf/twtop.h.
func TestEventLayoutMatchesC(t *testing.T) {
	if got := unsafe.Sizeof(twtopEvent{}); got != event.RecordSize {
		t.Fatalf("sizeof(struct event) = %d, decoder expects %d", got, event.RecordSize)
	}
	// the heads the kernel writes without an owner (EVENT_SIZE_*): up to
	// the packed AF_INET addresses, up to the owner
	if got := unsafe.Offsetof(twtopEvent{}.Saddr) + 8; got != event.MinRecordSize {
		t.Errorf("an AF_INET head ends at %d, decoder expects %d", got, event.MinRecordSize)
	}
	if got := unsafe.Offsetof(twtopEvent{}.Cgroup); got != event.RecordSizeInet6 {
		t.Errorf("an AF_INET6 head ends at %d, decoder expects %d", got, event.RecordSizeInet6)
	}
	c := twtopEvent{
		TsNs: 0x0102030405060708, Ptr: 0xffff888102dec0c0, Cgroup: 77,
		Pid: 1234, Tid: 1235, Netns: 4026532177, Seq: 99, Aux: 15000, Aux2: 4096,
		Kind: uint16(event.KindTWCreate), Cpu: 3, Sport: 33584, Dport: 8080,
		Family: event.AFInet, Oldstate: 4, Newstate: 6, Flags: event.FlagOwner, Cause: 2,
	}
	// an AF_INET record as written: the destination packed after the source
	copy(c.Saddr[:], []byte{127, 0, 0, 1, 10, 1, 2, 3})
	for i, ch := range "curl" {
		c.Comm[i] = int8(ch)
	}
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, &c); err != nil {
		t.Fatal(err)
	}
	var e event.Event
	if err := event.Decode(buf.Bytes(), &e); err != nil {
		t.Fatal(err)
	}
	want := event.Event{
		Kind: event.KindTWCreate, Time: c.TsNs, CPU: 3, Seq: 99, Ptr: c.Ptr, Netns: c.Netns,
		Family: event.AFInet, Src: netip.MustParseAddrPort("127.0.0.1:33584"),
		Dst: netip.MustParseAddrPort("10.1.2.3:8080"), OldState: event.FinWait1,
		NewState: event.TimeWait, Flags: event.FlagOwner, Cause: event.CauseSYN,
		Aux: 15000, Aux2: 4096, Pid: 1234, Tid: 1235, Cgroup: 77, Lifetime: -1,
	}
	copy(want.Comm[:], "curl")
	if e != want {
		t.Fatalf("decoded\n%+v\nwant\n%+v", e, want)
	}
	var back [event.RecordSize]byte
	event.Encode(&e, back[:])
	if !bytes.Equal(back[:], buf.Bytes()) {
		t.Fatalf("Encode(Decode(b)) != b:\n%x\n%x", back, buf.Bytes())
	}
}
