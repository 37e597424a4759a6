package lifecycle

import (
	"bytes"
	"flag"
	"testing"

	"github.com/twtop/twtop/internal/golden"
	"github.com/twtop/twtop/tracer/event"
)

// The same records through the Tracker: the two server-side TIME_WAIT
// sockets the first scan found are "existing", the client's new one is
// created by its timer arm, the abort creates none, and all three are still
// open at the end.
func TestTrackerGolden(t *testing.T) {
	recs := golden.HexRecords(t, "../tracer/event/testdata/records.hex")
	tk := NewTracker(250)
	var out bytes.Buffer
	emit := func(e *event.Event) {
		out.Write(event.AppendJSON(nil, e, 250))
		out.WriteByte('\n')
	}
	var e event.Event
	for _, r := range recs {
		if err := event.Decode(r, &e); err != nil {
			t.Fatal(err)
		}
		tk.Add(&e, emit)
	}
	tk.Flush(emit)
	golden.Compare(t, "testdata/tracker.json", out.Bytes(), *update)
	if tk.Open() != 3 {
		t.Fatalf("open timewait sockets at end = %d, want 3", tk.Open())
	}
}

var update = flag.Bool("update", false, "rewrite golden files")
