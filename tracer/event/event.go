// Package event decodes the records that twtop's kernel programs write (the
// layout of struct event in bpf/twtop.h) into Go values. It is pure Go and
// needs no privileges: the live tracer and the replay of a recording decode
// the same bytes with the same code.
package event

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
)

// RecordSize is the size of one whole raw record, sizeof(struct event).
// The kernel writes only the head of a record without an owner (WireSize);
// readers widen every record to RecordSize bytes, the rest zeros, before
// anything else sees it.
const RecordSize = 112

// The sizes of the heads the kernel writes (EVENT_SIZE_* in bpf/twtop.h):
// an AF_INET record (or one without addresses) without an owner, and an
// AF_INET6 one.
const (
	MinRecordSize   = 56
	RecordSizeInet6 = 80
)

// Byte offsets of the fields of struct event (checked against the generated
// type by tracer's tests).
const (
	offTs       = 0
	offPtr      = 8
	offNetns    = 16
	offSeq      = 20
	offAux      = 24
	offAux2     = 28
	offKind     = 32
	offCPU      = 34
	offSport    = 36
	offDport    = 38
	offFamily   = 40
	offOldstate = 41
	offNewstate = 42
	offFlags    = 43
	offCause    = 44
	offSaddr    = 48
	offDaddr    = 64
	offDaddr4   = 52 // an AF_INET destination: packed after the source
	offCgroup   = 80
	offPid      = 88
	offTid      = 92
	offComm     = 96
)

// WireSize is how many bytes of the record whose head is b the kernel
// wrote: RecordSize with an owner, else the head its family needs. b holds
// at least MinRecordSize bytes.
func WireSize(b []byte) int {
	switch {
	case b[offFlags]&FlagOwner != 0:
		return RecordSize
	case b[offFamily] == AFInet6:
		return RecordSizeInet6
	}
	return MinRecordSize
}

// Widen appends the record src (a head of at least MinRecordSize bytes,
// or a whole record) to dst as a whole record: the bytes the kernel wrote,
// then zeros.
func Widen(dst, src []byte) []byte {
	n := min(len(src), RecordSize)
	if n > MinRecordSize {
		n = min(n, WireSize(src))
	}
	dst = append(dst, src[:n]...)
	return append(dst, zeros[:RecordSize-n]...)
}

var zeros [RecordSize]byte

// Address families as the kernel numbers them.
const (
	AFInet  = 2
	AFInet6 = 10
)

// Flags of a record (EVF_* in bpf/twtop.h).
const (
	FlagOwner     = 0x01 // Pid, Comm and Cgroup describe the socket's owner
	FlagInferred  = 0x02 // the figure is inferred, not seen exactly
	FlagInConnect = 0x04 // happened inside the owner's connect()
	FlagRSTRx     = 0x08 // a state change to CLOSE caused by an RST received

	// On the wire only: Owners.Restore clears them.
	FlagOwnerNew  = 0x10 // with FlagOwner: its CPU's owner from here on
	FlagOwnerSame = 0x20 // the owner is its CPU's last FlagOwnerNew one, left out
)

// Event is one decoded record.
type Event struct {
	Kind     Kind
	Time     uint64 // CLOCK_MONOTONIC nanoseconds
	CPU      uint16
	Seq      uint32 // per-CPU sequence number
	Ptr      uint64 // kernel address of the socket or timewait socket
	Netns    uint32
	Family   uint8
	Src, Dst netip.AddrPort
	OldState State
	NewState State // for timewait kinds: the substate (TIME_WAIT or FIN_WAIT2)
	Flags    uint8
	Cause    Cause
	Aux      uint32 // kind specific, see the accessors
	Aux2     uint32
	Pid, Tid uint32
	Cgroup   uint64
	Comm     [16]byte

	// Lifetime is set by the Tracker: on ends, how long the timewait socket
	// lived; on reuse, its age. Nanoseconds, -1 when unknown.
	Lifetime int64
}

// Error describes a record that cannot be decoded.
type Error struct {
	Reason string
}

func (e *Error) Error() string { return "bad record: " + e.Reason }

// Decode decodes one raw record into e. It never panics on bad input.
func Decode(b []byte, e *Event) error {
	if len(b) < RecordSize {
		return &Error{Reason: fmt.Sprintf("%d bytes, want %d", len(b), RecordSize)}
	}
	le := binary.LittleEndian
	kind := Kind(le.Uint16(b[offKind:]))
	if kind == 0 || kind >= kindMax {
		return &Error{Reason: fmt.Sprintf("unknown kind %d", kind)}
	}
	family := b[offFamily]
	*e = Event{
		Kind:     kind,
		Time:     le.Uint64(b[offTs:]),
		CPU:      le.Uint16(b[offCPU:]),
		Seq:      le.Uint32(b[offSeq:]),
		Ptr:      le.Uint64(b[offPtr:]),
		Netns:    le.Uint32(b[offNetns:]),
		Family:   family,
		OldState: State(b[offOldstate]),
		NewState: State(b[offNewstate]),
		Flags:    b[offFlags],
		Cause:    Cause(b[offCause]),
		Aux:      le.Uint32(b[offAux:]),
		Aux2:     le.Uint32(b[offAux2:]),
		Pid:      le.Uint32(b[offPid:]),
		Tid:      le.Uint32(b[offTid:]),
		Cgroup:   le.Uint64(b[offCgroup:]),
		Lifetime: -1,
	}
	copy(e.Comm[:], b[offComm:offComm+16])
	sport, dport := le.Uint16(b[offSport:]), le.Uint16(b[offDport:])
	switch family {
	case AFInet:
		e.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[offSaddr:offSaddr+4])), sport)
		e.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[offDaddr4:offDaddr4+4])), dport)
	case AFInet6:
		e.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[offSaddr:offSaddr+16])), sport)
		e.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[offDaddr:offDaddr+16])), dport)
	case 0:
		// scan end markers carry no tuple
	default:
		return &Error{Reason: fmt.Sprintf("unknown address family %d", family)}
	}
	return nil
}

// Encode writes e as a raw record into b (at least RecordSize bytes). It is
// the inverse of Decode, used by tests and by derived records.
func Encode(e *Event, b []byte) {
	clear(b[:RecordSize])
	le := binary.LittleEndian
	le.PutUint64(b[offTs:], e.Time)
	le.PutUint64(b[offPtr:], e.Ptr)
	le.PutUint64(b[offCgroup:], e.Cgroup)
	le.PutUint32(b[offPid:], e.Pid)
	le.PutUint32(b[offTid:], e.Tid)
	le.PutUint32(b[offNetns:], e.Netns)
	le.PutUint32(b[offSeq:], e.Seq)
	le.PutUint32(b[offAux:], e.Aux)
	le.PutUint32(b[offAux2:], e.Aux2)
	le.PutUint16(b[offKind:], uint16(e.Kind))
	le.PutUint16(b[offCPU:], e.CPU)
	le.PutUint16(b[offSport:], e.Src.Port())
	le.PutUint16(b[offDport:], e.Dst.Port())
	b[offFamily] = e.Family
	b[offOldstate] = byte(e.OldState)
	b[offNewstate] = byte(e.NewState)
	b[offFlags] = e.Flags
	b[offCause] = byte(e.Cause)
	putAddr(b[offSaddr:offSaddr+16], e.Src.Addr())
	if e.Family != AFInet6 && e.Dst.Addr().Is4() {
		putAddr(b[offDaddr4:offDaddr4+4], e.Dst.Addr())
	} else {
		putAddr(b[offDaddr:offDaddr+16], e.Dst.Addr())
	}
	copy(b[offComm:offComm+16], e.Comm[:])
}

func putAddr(b []byte, a netip.Addr) {
	switch {
	case a.Is4():
		v := a.As4()
		copy(b, v[:])
	case a.Is6():
		v := a.As16()
		copy(b, v[:])
	}
}

// CommString is the process name without its trailing NULs.
func (e *Event) CommString() string {
	n := 0
	for n < len(e.Comm) && e.Comm[n] != 0 {
		n++
	}
	return string(e.Comm[:n])
}

// Owned reports whether Pid/Comm/Cgroup describe the socket's owner.
func (e *Event) Owned() bool { return e.Flags&FlagOwner != 0 }

// Inferred reports whether the record is an inference rather than a direct
// observation (tracepoint tier).
func (e *Event) Inferred() bool { return e.Flags&FlagInferred != 0 }

// Errno is the error of EV_CONNECT_ERR / EV_BIND_ERR records.
func (e *Event) Errno() uint32 { return e.Aux }

// TimerJiffies is the time left on a timewait socket's timer, in jiffies.
func (e *Event) TimerJiffies() uint32 { return e.Aux }

// RxOutcome is the outcome of a segment that hit a timewait socket.
func (e *Event) RxOutcome() Rx { return Rx(e.Aux) }

// RawKind is the kind of a raw record without decoding it (0 if too short).
func RawKind(b []byte) Kind {
	if len(b) < RecordSize {
		return 0
	}
	return Kind(binary.LittleEndian.Uint16(b[offKind:]))
}

// RawOwnerCgroup is the owner's cgroup id of a raw record that describes
// its socket's owner (FlagOwner), without decoding it.
func RawOwnerCgroup(b []byte) (uint64, bool) {
	if len(b) < RecordSize || b[offFlags]&FlagOwner == 0 {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b[offCgroup:]), true
}

// RawNetns is the network namespace inode of a raw record, without
// decoding it; 0 for a short record.
func RawNetns(b []byte) uint32 {
	if len(b) < RecordSize {
		return 0
	}
	return binary.LittleEndian.Uint32(b[offNetns:])
}

// SetRawNetns sets the netns field of a raw record: the scan's end record
// is stamped with the namespace the scan covered.
func SetRawNetns(b []byte, inode uint32) {
	binary.LittleEndian.PutUint32(b[offNetns:], inode)
}

// SetRawScanStart stamps a scan's end record with when the scan began, at
// start (nanoseconds, the records' clock): Aux2 holds the microseconds from
// then to the record's own time. A socket created after the start may be
// missing from the scan without having ended.
func SetRawScanStart(b []byte, start uint64) {
	end := binary.LittleEndian.Uint64(b[offTs:])
	var us uint64
	if end > start {
		us = min((end-start)/1000, math.MaxUint32)
	}
	binary.LittleEndian.PutUint32(b[offAux2:], uint32(us))
}

// ScanStart is when the scan an end record closes began (its own time for
// recordings made before the start was stamped).
func (e *Event) ScanStart() uint64 {
	d := uint64(e.Aux2) * 1000
	if d > e.Time {
		return 0
	}
	return e.Time - d
}
