package record

import (
	"time"

	"github.com/twtop/twtop/internal/workload"
	"github.com/twtop/twtop/tracer/settings"
)

// Header describes where and how a recording was made. It is the payload
// of the first block.
type Header struct {
	// Version of twtop that wrote the file.
	Twtop string `json:"twtop_version"`
	Host  string `json:"host"`
	// Kernel is the traced kernel's release (uname -r).
	Kernel string `json:"kernel"`
	// Tier is the attach tier: fentry, kprobe or tracepoint.
	Tier string `json:"tier"`
	// HZ is the kernel's timer frequency; timewait timers are in jiffies.
	HZ uint32 `json:"hz"`
	// ByteOrder of the raw records: "little" (the only one written).
	ByteOrder string `json:"byte_order"`
	// RecordSize is the size of one raw record.
	RecordSize int `json:"record_size"`
	// WallOffsetNs turns a record's CLOCK_MONOTONIC timestamp into Unix
	// time: unix_ns = time_ns + WallOffsetNs.
	WallOffsetNs int64 `json:"wall_offset_ns"`
	// Started is the wall-clock time recording started, for people.
	Started time.Time `json:"started"`
	// Filters are the in-kernel filters the recording was made with.
	Filters Filters `json:"filters"`
	// Notes are the tracer's remarks at start (tiers skipped and why,
	// functions that could not be hooked).
	Notes []string `json:"notes,omitempty"`
}

// Filters are the in-kernel event filters (0 or empty: none).
type Filters struct {
	Netns uint32 `json:"netns,omitempty"`
	Pid   uint32 `json:"pid,omitempty"`
	// Cgroup is the cgroup directory of --pod, --container or --cgroup.
	Cgroup string `json:"cgroup,omitempty"`
	Port   uint16 `json:"port,omitempty"`
	Family uint8  `json:"family,omitempty"`
}

// State is a reading of one namespace's settings and counters, and of the
// tracer's own counters, at one point of the recording. A replay hands it
// to the model where it appears in the stream, as live tracing did.
type State struct {
	// TimeNs is CLOCK_MONOTONIC when it was read (same clock as records).
	TimeNs   uint64            `json:"time_ns"`
	Settings settings.Settings `json:"settings"`
	Counters settings.Counters `json:"counters,omitempty"`
	Tracer   TracerStats       `json:"tracer"`
}

// TracerStats are the tracer's own counters so far.
type TracerStats struct {
	Records         uint64 `json:"records"`
	Lost            uint64 `json:"lost"`
	RecursionMisses uint64 `json:"recursion_misses"`
}

// Trailer ends a recording that was closed cleanly.
type Trailer struct {
	TimeNs uint64      `json:"time_ns"`
	Tracer TracerStats `json:"tracer"`
	// Records is the number of raw records in the file's event blocks.
	Records uint64 `json:"records_written"`
}

// Workloads are the workloads resolved while recording: of owner cgroups,
// by cgroup id, and of the records' network namespaces, by inode (both in
// decimal: JSON keys are strings). A recording carries each id once, in
// the block written after it was resolved, so that a replay elsewhere
// names pods, containers and services as the host did, and the pods whose
// namespaces hold TIME_WAIT sockets and ports. Readers that predate Netns
// ignore it (unknown keys are skipped), and recordings that predate it
// replay without it.
type Workloads struct {
	Cgroups map[string]workload.Workload `json:"cgroups"`
	Netns   map[string]workload.Workload `json:"netns,omitempty"`
}
