package model

import (
	"github.com/twtop/twtop/tracer/event"
	"slices"
	"sort"

	"github.com/twtop/twtop/tracer/settings"
)

// Counters are the model's running totals.
type Counters struct {
	Events              uint64
	Closes              [5]uint64 // by Side
	ResetReceived       uint64    // of Closes[SideReset], those where the peer sent the RST
	Created             uint64    // TIME_WAIT sockets created while tracing
	CreatedFinWait2     uint64    // of those, born in the FIN_WAIT2 substate
	Existing            uint64    // TIME_WAIT sockets found at start
	Ended               [endBuckets]uint64
	EndedUntracked      uint64 // ends of TIME_WAIT sockets the model did not track
	EndedUnseen         uint64 // TIME_WAIT sockets whose address a new one took before their end was seen (in Ended as unknown)
	Overflow            uint64
	Connects            uint64 // connect() calls that sent a SYN (CLOSE -> SYN_SENT)
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
	// Tier is the attach tier the events came from and whether it sees
	// TIME_WAIT ends exactly (Tier.Exact) or infers them.
	Tier       Tier
	First, Now uint64 // event time span (CLOCK_MONOTONIC ns)
	Counters   Counters
	Lifetime   Histogram
	ReuseAge   Histogram // age of TIME_WAIT sockets when taken over
	// Recent are the latest events worth showing (transitions, TIME_WAIT
	// creations, ends, reuses, takeovers, overflows, errors), oldest first.
	Recent  []event.Event
	OpenNow int
	// Closers are the rankings as the report shows them: the TopN rows of
	// each in the default order (most closes, most TIME_WAIT created, key)
	// and the rest folded into a last "other" row.
	Closers [byKinds][]Closer
	// AllClosers are every row of each ranking (at most MaxKeys, then the
	// "other" row of keys past that), in the default order, for readers
	// that rank by another column (TopClosers).
	AllClosers [byKinds][]Closer
	// WorkloadCgroups are, per workload ranking (pod, container, service)
	// and per row id (pod UID, container id, unit), the owner cgroups the
	// row sums: see RowCgroups.
	WorkloadCgroups [byKinds]map[string][]uint64
	Netns           []NetnsStats
	// Ports are the TopN destinations holding the most ports, as the
	// report shows them.
	Ports []PortPressure
	// AllPorts are every destination in the same order (at most MaxKeys,
	// then an "other" row of those past that), for readers with their own
	// cap (the metrics exporter).
	AllPorts []PortPressure
	// OpenSeries is the number of open TIME_WAIT sockets at the end of each
	// of the last (up to) 600 seconds of event time, oldest first.
	OpenSeries []int64
	Findings   []Finding
	Settings   []settings.Settings
	// Kernel is how much each namespace's own TIME_WAIT counters moved
	// while tracing (SetCounters), by netns.
	Kernel []KernelCounters
}

// Snapshot copies the model's figures. With a resolver (Config.Workloads)
// it also asks once more about the owners' cgroup ids not resolved yet, so
// it is called from the goroutine that calls Apply, as the pipeline does.
func (m *Model) Snapshot() *Snapshot {
	s := &Snapshot{Tier: m.cfg.Tier, First: m.first, Now: m.now, Counters: m.c, Lifetime: m.life, ReuseAge: m.reuseAge, OpenNow: m.tws.Len()}
	s.Recent = m.tail.events()
	s.AllClosers = m.aggs.all()
	m.workloadRankings(s)
	for by, rows := range s.AllClosers {
		body, other := splitOther(rows)
		s.Closers[by] = foldTop(body, other, By(by).String(), m.cfg.TopN)
	}
	s.AllPorts = m.ports()
	s.Ports = slices.Clone(s.AllPorts[:min(len(s.AllPorts), m.cfg.TopN)])
	s.OpenSeries = m.openTW.last(m.now, seriesSeconds)
	for _, st := range m.settings {
		s.Settings = append(s.Settings, st)
	}
	sort.Slice(s.Settings, func(i, j int) bool { return s.Settings[i].Netns < s.Settings[j].Netns })
	s.Kernel = m.kernelCounters()
	for _, n := range m.netns {
		s.Netns = append(s.Netns, *n)
	}
	sort.Slice(s.Netns, func(i, j int) bool { return s.Netns[i].Netns < s.Netns[j].Netns })
	s.Findings = m.findings(s) // last: the advisor reads the figures above
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
func (s *Snapshot) ClosedSockets() uint64 { return Closed(&s.Counters.Closes) }

// TopClosers ranks one ranking's rows by a column, descending when desc,
// and returns the first n (all when n <= 0) with the rest, and the keys
// past MaxKeys, summed into a last "other" row. Ties go by key. It returns
// a new slice; nil for an unknown ranking.
func (s *Snapshot) TopClosers(by By, col CloserColumn, desc bool, n int) []Closer {
	if by < 0 || by >= byKinds {
		return nil
	}
	body, other := splitOther(s.AllClosers[by])
	rows := slices.Clone(body)
	SortClosers(rows, col, desc)
	return foldTop(rows, other, by.String(), n)
}
