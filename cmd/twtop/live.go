package main

import (
	"fmt"
	"os"

	"github.com/twtop/twtop/pipeline"
	"github.com/twtop/twtop/tracer"
	"github.com/twtop/twtop/tracer/record"
)

// noteUnmatched says so at the end when --pid N let nothing through.
func noteUnmatched(src *pipeline.LiveSource, pid uint32) {
	if pid != 0 && !src.Matched() {
		fmt.Fprintf(os.Stderr, "twtop: nothing matched --pid %d\n", pid)
	}
}

// printTracerStats prints the tracer's closing line.
func printTracerStats(tr *tracer.Tracer) (record.TracerStats, bool) {
	ts, ok := pipeline.TracerStats(tr)
	if ok {
		fmt.Fprintf(os.Stderr, "twtop: %d records, %d lost, %d missed by the kernel's recursion guard\n",
			ts.Records, ts.Lost, ts.RecursionMisses)
	}
	if s, err := tr.Stats(); err == nil && s.OwnersUnknown > 0 {
		fmt.Fprintf(os.Stderr, "twtop: %d records came without the owner the kernel said their CPU had written; they show no pid or comm\n",
			s.OwnersUnknown)
	}
	return ts, ok
}
