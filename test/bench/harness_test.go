package main

import (
	"io"
	"os"
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

// A run that failed (a peer killed after it would not exit) is left out of
// the figures and named in the table, which is still printed.
func TestTableMarksFailedRuns(t *testing.T) {
	sh := shape{name: "saturated", streams: 2}
	results := []runResult{
		{shape: sh.name, variant: noTracer, round: 1, churn: churnResult{ConnPerS: 40000}, ratio: 1},
		{shape: sh.name, variant: twtopRecord, round: 1, churn: churnResult{ConnPerS: 36000}, ratio: 0.9, events: 1000},
		{shape: sh.name, variant: noTracer, round: 2, churn: churnResult{ConnPerS: 42000}, ratio: 1},
		{shape: sh.name, variant: twtopRecord, round: 2, failed: "twtop did not exit within 30s of SIGINT"},
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	printTable(options{rounds: 2}, sh, []variant{noTracer, twtopRecord}, results)
	os.Stdout = stdout
	w.Close()
	out, _ := io.ReadAll(r)
	table := string(out)
	if !strings.Contains(table, twtopRecord.String()+" (1 failed)") {
		t.Errorf("the failed run is not marked:\n%s", table)
	}
	if !strings.Contains(table, "36,000") || !strings.Contains(table, "0.900") {
		t.Errorf("the run that did not fail is not the record row's figure:\n%s", table)
	}
}
