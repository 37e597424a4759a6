package tracer

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/twtop/twtop/tracer/event"
)

// Stats are the tracer's own counters. Nothing is dropped silently: records
// the ring buffer had no room for are Lost, and transitions the kernel never
// delivered because a program was already running on that CPU (the BPF
// recursion guard) are RecursionMisses.
type Stats struct {
	Events     [event.NumKinds]uint64 // records read, per kind
	Lost       [event.NumKinds]uint64 // records dropped, per kind (all CPUs)
	LostPerCPU []uint64
	// ReaderLost are the records perf buffers reported lost (0 with the
	// ring buffer). The programs count the same drops by kind in Lost (a
	// full perf buffer fails their output call), so it is not added to
	// TotalLost: it is a cross-check.
	ReaderLost      uint64
	RecursionMisses map[string]uint64 // per program
	// OwnersRestored are the records whose owner the kernel left out, as
	// the one their CPU wrote last, and the reader put back
	// (event.Owners). OwnersUnknown are those whose CPU had none, which
	// lost their owner; 0 unless the kernel broke that rule.
	OwnersRestored, OwnersUnknown uint64
}

// TotalLost sums Lost.
func (s *Stats) TotalLost() uint64 {
	var n uint64
	for _, v := range s.Lost {
		n += v
	}
	return n
}

// TotalEvents sums Events.
func (s *Stats) TotalEvents() uint64 {
	var n uint64
	for _, v := range s.Events {
		n += v
	}
	return n
}

// TotalRecursionMisses sums RecursionMisses.
func (s *Stats) TotalRecursionMisses() uint64 {
	var n uint64
	for _, v := range s.RecursionMisses {
		n += v
	}
	return n
}

// Stats reads the counters; it is safe to call while Next runs. Events
// may then leave out the last few records Next handed out (countEvery);
// they count them all once Next has waited for records or returned an
// error. After Close it returns the kernel's counters as they were at
// Close, and Events as they are: with the records handed out by a Next
// that ran across Close, once that Next has returned.
func (t *Tracer) Stats() (Stats, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.coll == nil {
		if t.final != nil {
			s := *t.final
			t.events(&s)
			return s, nil
		}
		return Stats{}, ErrClosed
	}
	return t.stats()
}

func (t *Tracer) events(s *Stats) {
	for i := range s.Events {
		s.Events[i] = t.counts[i].Load()
	}
}

// stats reads the counters; t.mu is held.
func (t *Tracer) stats() (Stats, error) {
	var s Stats
	t.events(&s)
	lost := t.coll.Maps["lost"]
	var perCPU []uint64
	for k := uint32(0); k < uint32(event.NumKinds); k++ {
		if err := lost.Lookup(k, &perCPU); err != nil {
			return s, fmt.Errorf("read lost counters: %w", err)
		}
		if s.LostPerCPU == nil {
			s.LostPerCPU = make([]uint64, len(perCPU))
		}
		for cpu, v := range perCPU {
			s.Lost[k] += v
			s.LostPerCPU[cpu] += v
		}
	}
	if t.reader != nil {
		s.ReaderLost = t.reader.Lost()
		s.OwnersRestored, s.OwnersUnknown = t.reader.Owners()
	}
	s.RecursionMisses = make(map[string]uint64)
	for name, p := range t.coll.Programs {
		if n, err := recursionMisses(p); err == nil {
			s.RecursionMisses[name] = n
		}
	}
	return s, nil
}

func recursionMisses(p *ebpf.Program) (uint64, error) {
	st, err := p.Stats()
	if err != nil {
		return 0, err
	}
	return st.RecursionMisses, nil
}
