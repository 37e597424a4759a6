package event

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// ownerRecord is a whole record of cpu with flags, and the owner pid/comm
// when written.
func ownerRecord(cpu uint16, flags uint8, pid uint32, comm string) []byte {
	b := make([]byte, RecordSize)
	binary.LittleEndian.PutUint16(b[offCPU:], cpu)
	b[offFamily] = AFInet
	b[offFlags] = flags
	if flags&FlagOwner != 0 {
		binary.LittleEndian.PutUint64(b[offCgroup:], uint64(pid)*10)
		binary.LittleEndian.PutUint32(b[offPid:], pid)
		binary.LittleEndian.PutUint32(b[offTid:], pid+1)
		copy(b[offComm:], comm)
	}
	return b
}

func TestOwnersRestore(t *testing.T) {
	var w Owners
	const (
		nw   = FlagOwner | FlagOwnerNew
		same = FlagOwnerSame
	)
	steps := []struct {
		name string
		rec  []byte
		want []byte // the record after Restore
	}{
		{"a CPU without an owner yet", ownerRecord(1, same|FlagInferred, 0, ""), ownerRecord(1, FlagInferred, 0, "")},
		{"CPU 1 writes curl", ownerRecord(1, nw, 100, "curl"), ownerRecord(1, FlagOwner, 100, "curl")},
		{"CPU 1 leaves curl out", ownerRecord(1, same|FlagInConnect, 0, ""), ownerRecord(1, FlagOwner|FlagInConnect, 100, "curl")},
		{"CPU 0 has none: CPU 1's is not its", ownerRecord(0, same, 0, ""), ownerRecord(0, 0, 0, "")},
		{"CPU 70 writes nginx", ownerRecord(70, nw, 200, "nginx"), ownerRecord(70, FlagOwner, 200, "nginx")},
		{"an interrupt on CPU 1 writes its owner whole", ownerRecord(1, FlagOwner, 300, "envoy"), ownerRecord(1, FlagOwner, 300, "envoy")},
		{"which does not change CPU 1's", ownerRecord(1, same, 0, ""), ownerRecord(1, FlagOwner, 100, "curl")},
		{"a record without an owner", ownerRecord(1, FlagRSTRx, 0, ""), ownerRecord(1, FlagRSTRx, 0, "")},
		{"CPU 70 leaves nginx out", ownerRecord(70, same, 0, ""), ownerRecord(70, FlagOwner, 200, "nginx")},
		{"CPU 1 writes another", ownerRecord(1, nw, 400, "haproxy"), ownerRecord(1, FlagOwner, 400, "haproxy")},
		{"CPU 1 leaves it out", ownerRecord(1, same, 0, ""), ownerRecord(1, FlagOwner, 400, "haproxy")},
	}
	for _, s := range steps {
		rec := bytes.Clone(s.rec)
		w.Restore(rec)
		if !bytes.Equal(rec, s.want) {
			t.Errorf("%s:\n got %x\nwant %x", s.name, rec, s.want)
		}
	}
	restored, unknown := w.Counts()
	if restored != 4 || unknown != 2 {
		t.Errorf("Counts() = %d restored, %d unknown; want 4, 2", restored, unknown)
	}
}

// A record whose owner is left out is as short as one without an owner.
func TestWireSizeOwnerLeftOut(t *testing.T) {
	b := ownerRecord(0, FlagOwnerSame, 0, "")
	if n := WireSize(b); n != MinRecordSize {
		t.Errorf("AF_INET: WireSize = %d, want %d", n, MinRecordSize)
	}
	b[offFamily] = AFInet6
	if n := WireSize(b); n != RecordSizeInet6 {
		t.Errorf("AF_INET6: WireSize = %d, want %d", n, RecordSizeInet6)
	}
	if n := WireSize(ownerRecord(0, FlagOwner|FlagOwnerNew, 1, "x")); n != RecordSize {
		t.Errorf("owner written: WireSize = %d, want %d", n, RecordSize)
	}
}
