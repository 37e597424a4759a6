package ui

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/twtop/twtop/internal/ingest"
	"github.com/twtop/twtop/tracer/model"
)

// fakeSource is a Source with a fixed snapshot and status, recording what
// the UI asks of it.
type fakeSource struct {
	mu     sync.Mutex
	snap   *model.Snapshot
	st     Status
	paused []bool
	speeds []float64
	reads  int // Status calls
}

func (f *fakeSource) Snapshot() *model.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap
}

func (f *fakeSource) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return f.st
}

func (f *fakeSource) SetPaused(p bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused = append(f.paused, p)
	f.st.Paused = p
	f.st.Version++
}

func (f *fakeSource) SetSpeed(s float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.speeds = append(f.speeds, s)
	f.st.Speed = s
	f.st.Version++
}

func (f *fakeSource) set(fn func(*fakeSource)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

var (
	snapMu    sync.Mutex
	snapCache = map[string]*model.Snapshot{}
)

// loadSnapshot replays a recording of testdata/ at the repository's root
// through the decoder and the model, as a replay does, and returns the
// model's final snapshot.
func loadSnapshot(t testing.TB, name string) *model.Snapshot {
	t.Helper()
	snapMu.Lock()
	defer snapMu.Unlock()
	if s := snapCache[name]; s != nil {
		return s
	}
	m, _, err := ingest.File(filepath.Join("..", "testdata", name+".twrec"))
	if err != nil {
		t.Fatal(err)
	}
	s := m.Snapshot()
	snapCache[name] = s
	return s
}

// replayStatus is a fixed status of a replay that ended, for stable
// pictures.
func replayStatus(file string) Status {
	return Status{
		Host: "vm", Kernel: "6.18.44-fc-v669", Tier: "tracepoint", Inferred: true,
		File: "testdata/" + file + ".twrec", Position: 5100 * time.Millisecond, Length: 5100 * time.Millisecond,
		Speed: 4, Done: true, EventsPerSec: 1234, Version: 1,
	}
}

// newTestApp builds the UI on a simulated screen of w×h cells.
func newTestApp(t testing.TB, src Source, w, h int, noColor bool) (*app, tcell.SimulationScreen) {
	t.Helper()
	scr := tcell.NewSimulationScreen("")
	if err := scr.Init(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(scr.Fini)
	scr.SetSize(w, h)
	return newApp(src, scr, Options{NoColor: noColor}), scr
}

// screenLines is the screen's text, one string per row, trailing blanks
// trimmed.
func screenLines(scr tcell.SimulationScreen) []string {
	cells, w, h := scr.GetContents()
	lines := make([]string, h)
	for y := range h {
		var b strings.Builder
		for x := 0; x < w; x++ {
			c := cells[y*w+x]
			if len(c.Runes) == 0 {
				b.WriteByte(' ')
				continue
			}
			b.WriteString(string(c.Runes))
		}
		lines[y] = strings.TrimRight(b.String(), " ")
	}
	return lines
}

func screenText(scr tcell.SimulationScreen) string {
	return strings.Join(screenLines(scr), "\n") + "\n"
}

func key(k tcell.Key) *tcell.EventKey { return tcell.NewEventKey(k, 0, tcell.ModNone) }
func ch(r rune) *tcell.EventKey       { return tcell.NewEventKey(tcell.KeyRune, r, tcell.ModNone) }

// typeKeys sends each rune of s as a key.
func typeKeys(a *app, s string) {
	for _, r := range s {
		a.handleKey(ch(r))
	}
}
