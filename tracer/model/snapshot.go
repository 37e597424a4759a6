package model

import (
	"sort"
	"sync/atomic"

	"github.com/twtop/twtop/tracer/settings"
)

// Counters are the model's running totals.
type Counters struct {
	Events              uint64
	Closes              [5]uint64 // by Side
	Created             uint64    // TIME_WAIT sockets created while tracing
	CreatedFinWait2     uint64    // of those, born in the FIN_WAIT2 substate
	Existing            uint64    // TIME_WAIT sockets found at start
	Ended               [endBuckets]uint64
	EndedUntracked      uint64 // ends of TIME_WAIT sockets the model did not track
	Overflow            uint64
	ReuseConnect        uint64
	ReuseSyn            uint64
	SynTakeoverAttempts uint64 // SYNs that reached a TIME_WAIT socket (exact tiers)
	ConnectAddrNotAvail uint64
	BindAddrInUse       uint64
	EvictedSockets      uint64 // full sockets not tracked: table full
	EvictedTimewait     uint64 // TIME_WAIT sockets not tracked: table full
	FoldedDestinations  uint64 // port-pressure updates counted under "other"
	Inferred            struct {
		Ended, Overflow, Reuse bool
	}
}

// NetnsStats are per network namespace figures.
type NetnsStats struct {
	Netns      uint32    `json:"netns"`
	Closes     [5]uint64 `json:"-"`
	Created    uint64    `json:"timewait_created"`
	Open       int64     `json:"timewait_open"`
	Overflow   uint64    `json:"overflow"`
	MaxBuckets uint32    `json:"tcp_max_tw_buckets,omitempty"`
}

// Snapshot is a consistent copy of the model at one point of the event
// stream; it shares nothing with the model.
type Snapshot struct {
	First, Now uint64 // event time span (CLOCK_MONOTONIC ns)
	Counters   Counters
	Lifetime   Histogram
	OpenNow    int
	Closers    [aggKinds][]Closer
	Netns      []NetnsStats
	Ports      []PortPressure
	// OpenSeries is the number of open TIME_WAIT sockets at the end of each
	// of the last (up to) 600 seconds of event time, oldest first.
	OpenSeries []int64
	Findings   []Finding
	Settings   []settings.Settings
}

// Snapshot copies the model's figures.
func (m *Model) Snapshot() *Snapshot {
	s := &Snapshot{First: m.first, Now: m.now, Counters: m.c, Lifetime: m.life, OpenNow: len(m.tws)}
	s.Closers = m.aggs.top(m.cfg.TopN)
	s.Ports = m.ports()
	s.OpenSeries = m.openTW.last(m.now, seriesSeconds)
	for _, st := range m.settings {
		s.Settings = append(s.Settings, st)
	}
	sort.Slice(s.Settings, func(i, j int) bool { return s.Settings[i].Netns < s.Settings[j].Netns })
	s.Findings = m.findings(s)
	for _, n := range m.netns {
		s.Netns = append(s.Netns, *n)
	}
	sort.Slice(s.Netns, func(i, j int) bool { return s.Netns[i].Netns < s.Netns[j].Netns })
	return s
}

// DurationSeconds is the span of event time the snapshot covers.
func (s *Snapshot) DurationSeconds() float64 {
	if s.Now <= s.First {
		return 0
	}
	return float64(s.Now-s.First) / 1e9
}

// ClosedSockets is the number of sockets whose close was classified.
func (s *Snapshot) ClosedSockets() uint64 {
	var n uint64
	for _, v := range s.Counters.Closes[SideActive:] {
		n += v
	}
	return n
}

// Publish makes a fresh snapshot visible to Latest. The model's writer
// calls it (for example once per redraw period); readers never lock.
func (m *Model) Publish() *Snapshot {
	s := m.Snapshot()
	m.latest.Store(s)
	return s
}

// Latest returns the last published snapshot (nil before the first
// Publish). It is safe from any goroutine, concurrently with Apply.
func (m *Model) Latest() *Snapshot { return m.latest.Load() }

type latestSnapshot = atomic.Pointer[Snapshot]
