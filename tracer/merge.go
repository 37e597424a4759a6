package tracer

import (
	"encoding/binary"
	"time"

	"github.com/twtop/twtop/tracer/event"
)

// The readers of per-CPU streams (perf buffers, and a ring buffer per CPU)
// merge them by time in a merger. Records leave in the order of their time
// stamps, records of equal time in the order they were read, so a CPU's
// records keep the order its programs stamped them in. A record is held
// back until every stream was read to a point holdBack after its time, so
// that a record stamped earlier on another CPU, and committed later, can
// still overtake it.

// holdBack is how long a record is held back after its time: a CPU may
// commit a record that much after stamping it, so a record stamped earlier
// on another CPU can still arrive within it.
const holdBack = 20 * time.Millisecond

// dueAfter is how long after its time a held record can be released: the
// hold-back and a millisecond more, as pollers may return up to one early.
const dueAfter = int64(holdBack + time.Millisecond)

// mergeChunk is how many record slots the merger allocates at a time.
const mergeChunk = 256

// merger holds records and releases them in the order of their time
// (ts_ns, the first 8 bytes, little-endian), records of equal time in the
// order they were pushed. Records are copied into slots that are reused.
type merger struct {
	held  []heldRecord              // a min-heap by (ts, seq)
	free  []*[event.RecordSize]byte // unused slots
	lent  *[event.RecordSize]byte   // the slot pop returned last
	seq   uint64                    // pushes so far
	slots int                       // slots allocated

	owners event.Owners // a CPU's records are pushed in the order written
}

// heldRecord is one record in the merger.
type heldRecord struct {
	ts  int64
	seq uint64
	rec *[event.RecordSize]byte
}

// push copies rec (a record as written, see event.Widen) as a whole record,
// its owner put back (see event.Owners), and returns its time.
func (m *merger) push(rec []byte) int64 {
	if len(m.free) == 0 {
		chunk := new([mergeChunk][event.RecordSize]byte)
		for i := range chunk {
			m.free = append(m.free, &chunk[i])
		}
		m.slots += mergeChunk
	}
	s := m.free[len(m.free)-1]
	m.free = m.free[:len(m.free)-1]
	event.Widen(s[:0], rec)
	m.owners.Restore(s[:])
	ts := int64(binary.LittleEndian.Uint64(s[:8]))
	m.held = append(m.held, heldRecord{ts: ts, seq: m.seq, rec: s})
	m.seq++
	m.up(len(m.held) - 1)
	return ts
}

// pop returns the oldest record if its time is before cutoff, valid until
// the next pop.
func (m *merger) pop(cutoff int64) ([]byte, bool) {
	if m.lent != nil {
		m.free = append(m.free, m.lent)
		m.lent = nil
	}
	if len(m.held) == 0 || m.held[0].ts >= cutoff {
		return nil, false
	}
	top := m.held[0]
	last := len(m.held) - 1
	m.held[0] = m.held[last]
	m.held[last] = heldRecord{}
	m.held = m.held[:last]
	if last > 0 {
		m.down(0)
	}
	m.lent = top.rec
	return top.rec[:], true
}

// due returns when (CLOCK_MONOTONIC ns) the oldest record held leaves the
// hold-back.
func (m *merger) due() (int64, bool) {
	ts, ok := m.peek()
	return ts + dueAfter, ok
}

// peek returns the time of the oldest record held.
func (m *merger) peek() (int64, bool) {
	if len(m.held) == 0 {
		return 0, false
	}
	return m.held[0].ts, true
}

// count is the number of records held.
func (m *merger) count() int { return len(m.held) }

func (m *merger) less(i, j int) bool {
	a, b := &m.held[i], &m.held[j]
	return a.ts < b.ts || a.ts == b.ts && a.seq < b.seq
}

func (m *merger) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !m.less(i, p) {
			return
		}
		m.held[i], m.held[p] = m.held[p], m.held[i]
		i = p
	}
}

func (m *merger) down(i int) {
	n := len(m.held)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if c+1 < n && m.less(c+1, c) {
			c++
		}
		if !m.less(c, i) {
			return
		}
		m.held[i], m.held[c] = m.held[c], m.held[i]
		i = c
	}
}
