package event

import "encoding/binary"

// Byte offsets of the fields of the first layout of struct event (112
// bytes, the owner's fields after the pointer, AF_INET destinations at the
// start of daddr), which recordings of format version 1 hold.
const (
	v1Cgroup   = 16
	v1Pid      = 24
	v1Tid      = 28
	v1Netns    = 32
	v1Seq      = 36
	v1Aux      = 40
	v1Aux2     = 44
	v1Kind     = 48 // 16 bits, then cpu, sport, dport
	v1Family   = 56 // 8 bytes: family, oldstate, newstate, flags, cause, pad
	v1Saddr    = 64
	v1Daddr    = 80
	v1Comm     = 96
	layout1End = 112
)

// FromLayout1 rewrites the record b, of the first layout, in place into
// this one. b holds RecordSize bytes.
func FromLayout1(b []byte) {
	le := binary.LittleEndian
	var old [layout1End]byte
	copy(old[:], b[:RecordSize])
	clear(b[offNetns:RecordSize]) // time and pointer stay
	le.PutUint32(b[offNetns:], le.Uint32(old[v1Netns:]))
	le.PutUint32(b[offSeq:], le.Uint32(old[v1Seq:]))
	le.PutUint32(b[offAux:], le.Uint32(old[v1Aux:]))
	le.PutUint32(b[offAux2:], le.Uint32(old[v1Aux2:]))
	copy(b[offKind:offKind+8], old[v1Kind:v1Kind+8])
	copy(b[offFamily:offFamily+8], old[v1Family:v1Family+8])
	if old[v1Family] == AFInet {
		copy(b[offSaddr:offSaddr+4], old[v1Saddr:v1Saddr+4])
		copy(b[offDaddr4:offDaddr4+4], old[v1Daddr:v1Daddr+4])
	} else {
		copy(b[offSaddr:offSaddr+32], old[v1Saddr:v1Saddr+32])
	}
	le.PutUint64(b[offCgroup:], le.Uint64(old[v1Cgroup:]))
	le.PutUint32(b[offPid:], le.Uint32(old[v1Pid:]))
	le.PutUint32(b[offTid:], le.Uint32(old[v1Tid:]))
	copy(b[offComm:offComm+16], old[v1Comm:v1Comm+16])
}
