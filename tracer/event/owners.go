package event

import (
	"encoding/binary"
	"sync/atomic"
)

// ownerSize is the size of a record's owner: cgroup, pid, tid and comm,
// its last bytes.
const ownerSize = RecordSize - offCgroup

// Owners puts back the owners the kernel leaves out of records.
//
// A kernel program writes a record's owner only when it differs from the
// one its CPU last wrote (FlagOwnerNew); a record whose owner is that one
// leaves it out (FlagOwnerSame, and the size of a record without one).
// Restore, given each CPU's records in the order the CPU wrote them, copies
// the owner back and clears both flags, so that nothing after a reader
// sees the difference. A kernel program forgets an owner it could not
// write, so a lost record costs no later record its owner.
//
// The zero value is ready to use. Restore is not safe for concurrent use:
// a reader keeps one Owners.
type Owners struct {
	cpus     []ownerSlot
	restored atomic.Uint64
	unknown  atomic.Uint64
}

// Counts returns how many records got their owner back, and how many had
// their owner left out while their CPU had none (so they lost it: a
// kernel that broke the rule above). It is safe to call while Restore
// runs.
func (w *Owners) Counts() (restored, unknown uint64) {
	return w.restored.Load(), w.unknown.Load()
}

type ownerSlot struct {
	valid bool
	owner [ownerSize]byte
}

// Restore completes rec, a whole record (RecordSize bytes, see Widen).
func (w *Owners) Restore(rec []byte) {
	f := rec[offFlags]
	if f&(FlagOwnerNew|FlagOwnerSame) == 0 {
		return
	}
	rec[offFlags] = f &^ (FlagOwnerNew | FlagOwnerSame)
	cpu := int(binary.LittleEndian.Uint16(rec[offCPU:]))
	if cpu >= len(w.cpus) {
		w.cpus = append(w.cpus, make([]ownerSlot, cpu+1-len(w.cpus))...)
	}
	s := &w.cpus[cpu]
	switch {
	case f&FlagOwnerNew != 0:
		copy(s.owner[:], rec[offCgroup:RecordSize])
		s.valid = f&FlagOwner != 0
	case f&FlagOwner != 0:
		// written whole: an FlagOwnerSame record has no FlagOwner
	case s.valid:
		copy(rec[offCgroup:RecordSize], s.owner[:])
		rec[offFlags] |= FlagOwner
		w.restored.Add(1)
	default:
		w.unknown.Add(1)
	}
}
