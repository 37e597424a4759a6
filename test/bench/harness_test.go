package main

import (
	"strings"
	"testing"
)

// -short fails on lost events, on a run that handled none, and on
// recursion misses above maxMissShare of the events; never on timings.
func TestShortVerdict(t *testing.T) {
	run := func(v variant, events, lost, misses uint64) runResult {
		return runResult{shape: "saturated", variant: v, round: 1, events: events, lost: lost, misses: misses}
	}
	for _, tc := range []struct {
		name string
		runs []runResult
		want string // "" passes
	}{
		{"clean", []runResult{run(twtopRecord, 600_000, 0, 0), run(twtopUI, 600_000, 0, 0)}, ""},
		{"a pair of misses", []runResult{run(twtopRecord, 600_000, 0, 2), run(twtopUI, 600_000, 0, 0)}, ""},
		{"misses at the bound", []runResult{run(twtopUI, 600_000, 0, 60)}, ""},
		{"misses over the bound", []runResult{run(twtopUI, 600_000, 0, 61)}, "twtop UI missed 61 of 600000 events to the recursion guard"},
		{"a recursing program", []runResult{run(twtopRecord, 600_000, 0, 300_000)}, "twtop --record missed 300000"},
		{"lost", []runResult{run(twtopRecord, 600_000, 1, 0)}, "twtop --record lost 1 events"},
		{"none", []runResult{run(twtopUI, 0, 0, 0)}, "twtop UI handled no events"},
		{"not twtop", []runResult{run(twtopUI, 10, 0, 0), run(bpftracePeer, 10, 5, 5)}, ""},
	} {
		err := shortVerdict(tc.runs)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want a pass", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want a failure saying %q", tc.name, err, tc.want)
		}
	}
}
