package lifecycle

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/twtop/twtop/tracer/event"
)

// The same records through the Tracker: the two server-side TIME_WAIT
// sockets the first scan found are "existing", the client's new one is
// created by its timer arm, the abort creates none, and all three are still
// open at the end.
func TestTrackerGolden(t *testing.T) {
	recs := readHexRecords(t, "../tracer/event/testdata/records.hex")
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
	compareGolden(t, "testdata/tracker.json", out.Bytes())
	if tk.Open() != 3 {
		t.Fatalf("open timewait sockets at end = %d, want 3", tk.Open())
	}
}

var update = flag.Bool("update", false, "rewrite golden files")

// The records are the decoder's golden input, tracer/event/testdata/records.hex.
func readHexRecords(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		b, err := hex.DecodeString(line)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, b)
	}
	if len(recs) == 0 {
		t.Fatalf("%s: no records", path)
	}
	return recs
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if gl[i] != wl[i] {
				t.Fatalf("%s line %d:\n got %s\nwant %s", path, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("%s: %d lines, want %d", path, len(gl), len(wl))
	}
}
