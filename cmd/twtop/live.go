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
	st, err := tr.Stats()
	if err != nil {
		return record.TracerStats{}, false
	}
	ts := pipeline.RecordStats(st)
	fmt.Fprintf(os.Stderr, "twtop: %d records, %d lost, %d missed by the kernel's recursion guard\n",
		ts.Records, ts.Lost, ts.RecursionMisses)
	if ts.Lost > 0 {
		fmt.Fprintln(os.Stderr, "twtop: "+ringAdvice(uint64(tr.RingSize())))
	}
	if st.OwnersUnknown > 0 {
		fmt.Fprintf(os.Stderr, "twtop: %d records came without the owner the kernel said their CPU had written; they show no pid or comm\n",
			st.OwnersUnknown)
	}
	return ts, true
}

// ringAdvice is what the closing lines say when records were lost with
// event buffers of size bytes.
func ringAdvice(size uint64) string {
	msg := "the kernel's event buffers (" + ringSizeString(size) + ") were full at times"
	if 2*size <= maxRingSize {
		msg += "; run with --ring-size " + ringSizeString(2*size) + " to give them more room"
	}
	return msg
}

// ringSizeString writes a ring size the way --ring-size takes it (16M, 1G).
func ringSizeString(n uint64) string {
	if n >= 1<<30 && n%(1<<30) == 0 {
		return fmt.Sprintf("%dG", n>>30)
	}
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%dM", n>>20)
	}
	return fmt.Sprintf("%dK", n>>10)
}
