package ui

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"
)

// startRun runs Run on a simulated screen and waits for its first frame.
func startRun(t *testing.T, ctx context.Context, src Source, opts Options) (*app, tcell.SimulationScreen, chan error) {
	t.Helper()
	scr := tcell.NewSimulationScreen("")
	scr.SetSize(80, 24)
	a := newApp(src, scr, opts)
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	waitFor(t, "the first frame", func() bool { return a.draws.Load() > 0 && liveShows(scr, "twtop") })
	return a, scr, done
}

// liveText is the screen's text read cell by cell through the screen's
// lock (GetContents shares the screen's buffer), for a screen that Run
// draws on in another goroutine.
func liveText(scr tcell.SimulationScreen) []string {
	w, h := scr.Size()
	lines := make([]string, h)
	for y := range h {
		var b strings.Builder
		for x := 0; x < w; x++ {
			str, _, _ := scr.Get(x, y)
			if str == "" {
				str = " "
			}
			b.WriteString(str)
		}
		lines[y] = strings.TrimRight(b.String(), " ")
	}
	return lines
}

func liveShows(scr tcell.SimulationScreen, s string) bool {
	return strings.Contains(strings.Join(liveText(scr), "\n"), s)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func returns(t *testing.T, done chan error, how string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: Run returned %v", how, err)
		}
	case <-time.After(time.Second):
		t.Fatalf("%s: Run did not return within 1 s", how)
	}
}

func TestRunQuits(t *testing.T) {
	for _, k := range []struct {
		name string
		key  tcell.Key
		r    rune
	}{{"q", tcell.KeyRune, 'q'}, {"Ctrl-C", tcell.KeyCtrlC, 0}} {
		src := &fakeSource{snap: loadSnapshot(t, "server-closes"), st: replayStatus("server-closes")}
		_, scr, done := startRun(t, context.Background(), src, Options{})
		scr.InjectKey(k.key, k.r, tcell.ModNone)
		returns(t, done, k.name)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	src := &fakeSource{snap: loadSnapshot(t, "server-closes"), st: replayStatus("server-closes")}
	ctx, cancel := context.WithCancel(context.Background())
	_, _, done := startRun(t, ctx, src, Options{Refresh: 10 * time.Millisecond})
	cancel()
	returns(t, done, "cancel")
}

// TestRunKeys: keys injected on the screen reach the handler, and the
// frame after them shows the result.
func TestRunKeys(t *testing.T) {
	src := &fakeSource{snap: loadSnapshot(t, "nginx-proxy"), st: replayStatus("nginx-proxy")}
	_, scr, done := startRun(t, context.Background(), src, Options{Refresh: time.Hour})
	scr.InjectKey(tcell.KeyRune, '2', tcell.ModNone)
	waitFor(t, "the closers", func() bool { return liveShows(scr, "Who closes first") })
	scr.InjectKey(tcell.KeyRune, 'p', tcell.ModNone)
	waitFor(t, "pause", func() bool { return liveShows(scr, "PAUSED") })
	scr.InjectKey(tcell.KeyRune, 'q', tcell.ModNone)
	returns(t, done, "q")
	src.mu.Lock()
	defer src.mu.Unlock()
	if len(src.paused) != 1 || !src.paused[0] {
		t.Errorf("SetPaused calls %v", src.paused)
	}
}

// TestRedrawOnlyWhenVersionMoves counts frames: none while the Source's
// version stays, one soon after it moves, one on a key and one on a
// resize.
func TestRedrawOnlyWhenVersionMoves(t *testing.T) {
	src := &fakeSource{snap: loadSnapshot(t, "server-closes"), st: replayStatus("server-closes")}
	refresh := 5 * time.Millisecond
	a, scr, done := startRun(t, context.Background(), src, Options{Refresh: refresh})

	time.Sleep(20 * refresh)
	before := a.draws.Load()
	time.Sleep(40 * refresh)
	if got := a.draws.Load(); got != before {
		t.Fatalf("%d frames drawn while the version stayed", got-before)
	}
	src.mu.Lock()
	reads := src.reads
	src.mu.Unlock()
	if reads < 10 {
		t.Errorf("the Source's status read %d times in %d refresh periods", reads, 60)
	}

	src.set(func(f *fakeSource) { f.st.Version++; f.st.EventsPerSec = 4321 })
	waitFor(t, "a frame after the version moved", func() bool { return a.draws.Load() > before })
	waitFor(t, "the new status on screen", func() bool { return liveShows(scr, "4321 ev/s") })
	time.Sleep(20 * refresh)
	if got := a.draws.Load(); got != before+1 {
		t.Errorf("%d frames for one version change, want 1", got-before)
	}

	n := a.draws.Load()
	scr.InjectKey(tcell.KeyTab, 0, tcell.ModNone)
	waitFor(t, "a frame after a key", func() bool { return a.draws.Load() > n })

	n = a.draws.Load()
	scr.SetSize(100, 30)
	if err := scr.PostEvent(tcell.NewEventResize(100, 30)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a frame after a resize", func() bool { return a.draws.Load() > n })
	waitFor(t, "the header at the new width", func() bool {
		lines := liveText(scr)
		return len(lines) == 30 && strings.HasSuffix(lines[0], "TIME_WAIT 600/131072") && len(lines[0]) > 80
	})

	scr.InjectKey(tcell.KeyRune, 'q', tcell.ModNone)
	returns(t, done, "q")
}

// movingSource's version moves on every read, so the ticker asks for a
// redraw on every tick.
type movingSource struct{ *fakeSource }

func (m movingSource) Status() Status {
	st := m.fakeSource.Status()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.Version++
	return st
}

// Quitting while the ticker asks for redraws as fast as it can never hangs
// Run: a redraw request must not wait on an event loop that has stopped.
func TestRunQuitsUnderRedraws(t *testing.T) {
	snap := loadSnapshot(t, "server-closes")
	for i := range 300 {
		src := movingSource{&fakeSource{snap: snap, st: replayStatus("server-closes")}}
		_, scr, done := startRun(t, context.Background(), src, Options{Refresh: 50 * time.Microsecond})
		scr.InjectKey(tcell.KeyRune, 'q', tcell.ModNone)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("quit %d: Run returned %v", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("quit %d: Run did not return within 5 s (redraw requested after the event loop stopped)", i)
		}
	}
}
