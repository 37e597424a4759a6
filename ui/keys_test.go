package ui

import (
	"slices"
	"strings"
	"testing"

	"github.com/gdamore/tcell/v2"
	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/model"
)

func replayApp(t *testing.T, rec string, w, h int) (*app, *fakeSource, tcell.SimulationScreen) {
	t.Helper()
	src := &fakeSource{snap: loadSnapshot(t, rec), st: replayStatus(rec)}
	a, scr := newTestApp(t, src, w, h, false)
	a.draw()
	return a, src, scr
}

// tableKeys are the first words of the rows under the closers table's
// header, as drawn.
func tableKeys(t *testing.T, scr tcell.SimulationScreen) []string {
	t.Helper()
	lines := screenLines(scr)
	var keys []string
	in := false
	for _, l := range lines[:len(lines)-1] { // not the footer
		if strings.HasPrefix(l, "KEY") {
			in = true
			continue
		}
		if in && strings.TrimSpace(l) != "" {
			// a key may hold blanks ("netns 4026532315 :80"): cut at the
			// first run of two
			keys = append(keys, strings.TrimSpace(strings.SplitN(l, "  ", 2)[0]))
		}
	}
	if !in {
		t.Fatalf("no closers table on screen:\n%s", strings.Join(lines, "\n"))
	}
	return keys
}

func TestSwitchScreens(t *testing.T) {
	a, _, scr := replayApp(t, "nginx-proxy", 80, 24)
	marks := map[view]string{
		viewOverview: "Findings", viewClosers: "Who closes first", viewPorts: "Ports held per destination", viewEvents: "Latest events",
	}
	shows := func(v view) {
		t.Helper()
		a.draw()
		if a.cur != v {
			t.Fatalf("screen %v, want %v", a.cur, v)
		}
		if text := screenText(scr); !strings.Contains(text, marks[v]) {
			t.Fatalf("screen %v does not show %q:\n%s", v, marks[v], text)
		}
	}
	shows(viewOverview)
	for _, want := range []view{viewClosers, viewPorts, viewEvents, viewOverview} {
		a.handleKey(key(tcell.KeyTab))
		shows(want)
	}
	for _, want := range []view{viewEvents, viewPorts} {
		a.handleKey(tcell.NewEventKey(tcell.KeyBacktab, 0, tcell.ModShift))
		shows(want)
	}
	for _, k := range []struct {
		r rune
		v view
	}{{'2', viewClosers}, {'1', viewOverview}, {'4', viewEvents}, {'3', viewPorts}} {
		a.handleKey(ch(k.r))
		shows(k.v)
	}
}

func TestSortReordersRows(t *testing.T) {
	a, _, scr := replayApp(t, "nginx-proxy", 80, 24)
	a.handleKey(ch('2'))
	step := func(k *tcell.EventKey, header string, want ...string) {
		t.Helper()
		if k != nil {
			a.handleKey(k)
		}
		a.draw()
		if got := tableKeys(t, scr); !slices.Equal(got, want) {
			t.Errorf("after %v: rows %q, want %q", k, got, want)
		}
		if text := screenText(scr); !strings.Contains(text, header) {
			t.Errorf("after %v: header does not show %q:\n%s", k, header, text)
		}
	}
	// active: recordings 479, nginx 32, wrk 5
	step(nil, "ACTIVE▼", "recordings[32010]", "nginx[32027]", "wrk[32037]")
	// passive: nginx 484, recordings 32, wrk 0
	step(ch('>'), "PASSIVE▼", "nginx[32027]", "recordings[32010]", "wrk[32037]")
	step(ch('r'), "PASSIVE▲", "wrk[32037]", "recordings[32010]", "nginx[32027]")
	// key, A to Z
	step(ch('<'), "ACTIVE▼", "recordings[32010]", "nginx[32027]", "wrk[32037]")
	step(ch('<'), "KEY▲", "nginx[32027]", "recordings[32010]", "wrk[32037]")
	step(ch('<'), "KEY▲", "nginx[32027]", "recordings[32010]", "wrk[32037]") // the first column stays
	// s cycles: active, passive, simul, reset, active%, TW made, TW open, key
	for _, h := range []string{"ACTIVE▼", "PASSIVE▼", "SIMUL▼", "RESET▼", "ACTIVE%▼", "TW MADE▼"} {
		a.handleKey(ch('s'))
		a.draw()
		if text := screenText(scr); !strings.Contains(text, h) {
			t.Fatalf("s: header does not show %q", h)
		}
	}
	// active share: wrk 100%, recordings 86%, nginx 6%
	step(ch('<'), "ACTIVE%▼", "wrk[32037]", "recordings[32010]", "nginx[32027]")
	// TIME_WAIT made: recordings 528, nginx 81, wrk 5
	step(ch('>'), "TW MADE▼", "recordings[32010]", "nginx[32027]", "wrk[32037]")
	a.handleKey(ch('>'))
	step(ch('s'), "KEY▲", "nginx[32027]", "recordings[32010]", "wrk[32037]")

	// b: the next ranking
	step(ch('b'), "KEY▲", "netns 4026532315 :80", "netns 4026532315 :8080")
	if a.cl.by != model.ByPort {
		t.Errorf("ranking %v, want port", a.cl.by)
	}
}

func TestFilterNarrowsRows(t *testing.T) {
	a, _, scr := replayApp(t, "nginx-proxy", 80, 24)
	a.handleKey(ch('2'))
	a.handleKey(ch('/'))
	typeKeys(a, "NGI") // any case
	a.draw()
	if got := tableKeys(t, scr); !slices.Equal(got, []string{"nginx[32027]"}) {
		t.Fatalf("while typing: rows %q", got)
	}
	if text := screenText(scr); !strings.Contains(text, "/NGI") {
		t.Errorf("the prompt does not show the filter:\n%s", text)
	}
	a.handleKey(key(tcell.KeyEnter))
	a.draw()
	if got := tableKeys(t, scr); !slices.Equal(got, []string{"nginx[32027]"}) {
		t.Fatalf("applied: rows %q", got)
	}
	if text := screenText(scr); !strings.Contains(text, "filter NGI") {
		t.Errorf("the filter is not shown:\n%s", text)
	}
	// a new filter typed, then cancelled: the applied one stays
	a.handleKey(ch('/'))
	a.handleKey(key(tcell.KeyBackspace2))
	a.handleKey(key(tcell.KeyBackspace2))
	a.handleKey(key(tcell.KeyBackspace2))
	typeKeys(a, "wrk")
	a.draw()
	if got := tableKeys(t, scr); !slices.Equal(got, []string{"wrk[32037]"}) {
		t.Fatalf("typing wrk: rows %q", got)
	}
	a.handleKey(key(tcell.KeyEsc))
	a.draw()
	if got := tableKeys(t, scr); !slices.Equal(got, []string{"nginx[32027]"}) {
		t.Fatalf("cancelled: rows %q", got)
	}
	// Esc clears it
	a.handleKey(key(tcell.KeyEsc))
	a.draw()
	if got := tableKeys(t, scr); len(got) != 3 {
		t.Fatalf("cleared: rows %q", got)
	}
	// nothing matches
	a.handleKey(ch('/'))
	typeKeys(a, "zzz")
	a.handleKey(key(tcell.KeyEnter))
	a.draw()
	if text := screenText(scr); !strings.Contains(text, `no row matches "zzz"`) {
		t.Errorf("no message for an empty result:\n%s", text)
	}
}

func TestFilterEvents(t *testing.T) {
	a, _, scr := replayApp(t, "port-pressure", 120, 40)
	a.handleKey(ch('4'))
	a.handleKey(ch('/'))
	typeKeys(a, "connect_reuse")
	a.handleKey(key(tcell.KeyEnter))
	a.draw()
	lines := screenLines(scr)
	n := 0
	for _, l := range lines[5 : len(lines)-1] {
		if l == "" {
			continue
		}
		n++
		if !strings.Contains(l, "tw_kill*") || !strings.Contains(l, "connect_reuse") {
			t.Errorf("a line the filter should have left out: %q", l)
		}
	}
	if n == 0 {
		t.Fatalf("no event left:\n%s", strings.Join(lines, "\n"))
	}
}

func TestPause(t *testing.T) {
	a, src, scr := replayApp(t, "server-closes", 80, 24)
	a.handleKey(ch('p'))
	a.draw()
	if text := screenText(scr); !strings.Contains(text, "PAUSED") {
		t.Errorf("no PAUSED in the header:\n%s", text)
	}
	a.handleKey(ch(' '))
	a.draw()
	if text := screenText(scr); strings.Contains(text, "PAUSED") {
		t.Errorf("PAUSED after resuming:\n%s", text)
	}
	if !slices.Equal(src.paused, []bool{true, false}) {
		t.Errorf("SetPaused calls %v, want [true false]", src.paused)
	}
}

func TestSpeed(t *testing.T) {
	a, src, scr := replayApp(t, "server-closes", 80, 24)
	press := func(r rune, n int) {
		for range n {
			a.handleKey(ch(r))
		}
	}
	press('+', 1)
	press('-', 2)
	a.draw()
	if text := screenText(scr); !strings.Contains(text, "x2") {
		t.Errorf("speed x2 not shown:\n%s", text)
	}
	if want := []float64{8, 4, 2}; !slices.Equal(src.speeds, want) {
		t.Fatalf("SetSpeed calls %v, want %v", src.speeds, want)
	}

	// down to 1/16, where - stops
	src.speeds = nil
	press('-', 7)
	if want := []float64{1, 0.5, 0.25, 0.125, 0.0625}; !slices.Equal(src.speeds, want) {
		t.Fatalf("SetSpeed calls %v, want %v", src.speeds, want)
	}
	a.draw()
	if text := screenText(scr); !strings.Contains(text, "x1/16") {
		t.Errorf("speed x1/16 not shown:\n%s", text)
	}

	// up to 1024, then max (0), where + stops; - from max is 1024
	src.speeds = nil
	src.set(func(f *fakeSource) { f.st.Speed = 256 })
	press('+', 4)
	press('-', 1)
	if want := []float64{512, 1024, 0, 1024}; !slices.Equal(src.speeds, want) {
		t.Fatalf("SetSpeed calls %v, want %v", src.speeds, want)
	}
	src.set(func(f *fakeSource) { f.st.Speed = 0 })
	a.draw()
	if text := screenText(scr); !strings.Contains(text, "max") {
		t.Errorf("speed max not shown:\n%s", text)
	}

	// live: no speed
	src.speeds = nil
	src.set(func(f *fakeSource) { f.st.Live, f.st.Speed = true, 1 })
	press('+', 2)
	press('-', 2)
	if len(src.speeds) != 0 {
		t.Errorf("SetSpeed called live: %v", src.speeds)
	}
}

func TestHelp(t *testing.T) {
	a, src, scr := replayApp(t, "server-closes", 80, 24)
	open := func() bool {
		a.draw()
		return strings.Contains(screenText(scr), "twtop keys")
	}
	if open() {
		t.Fatal("help shown at start")
	}
	a.handleKey(ch('?'))
	if !open() {
		t.Fatal("? does not show the help")
	}
	// keys other than the ones closing it do nothing
	a.handleKey(ch('2'))
	a.handleKey(ch('p'))
	if !open() || a.cur != viewOverview || len(src.paused) != 0 {
		t.Fatal("a key acted behind the help")
	}
	a.handleKey(key(tcell.KeyEsc))
	if open() {
		t.Fatal("Esc does not close the help")
	}
	a.handleKey(ch('5'))
	if !open() {
		t.Fatal("5 does not show the help")
	}
	a.handleKey(ch('?'))
	if open() {
		t.Fatal("? does not close the help")
	}
	// every key the help lists is handled: the text names them all
	text := func() string { a.handleKey(ch('?')); a.draw(); return screenText(scr) }()
	for _, k := range []string{"q  Ctrl-C", "Tab  Shift-Tab", "p  Space", "+  -", "/", "Esc", "PgUp PgDn", "Home End", "Enter", "<  >", "b", "s", "r"} {
		if !strings.Contains(text, k) {
			t.Errorf("help does not list %q", k)
		}
	}
}

func TestQuitKeys(t *testing.T) {
	for _, k := range []*tcell.EventKey{ch('q'), key(tcell.KeyCtrlC)} {
		a, _, _ := replayApp(t, "server-closes", 80, 24)
		a.handleKey(k)
		if !a.quit {
			t.Errorf("%v does not quit", k.Name())
		}
	}
	// q quits from the help too, but not while typing a filter
	a, _, _ := replayApp(t, "server-closes", 80, 24)
	a.handleKey(ch('?'))
	a.handleKey(ch('q'))
	if !a.quit {
		t.Error("q does not quit from the help")
	}
	a, _, _ = replayApp(t, "server-closes", 80, 24)
	a.handleKey(ch('4'))
	a.handleKey(ch('/'))
	a.handleKey(ch('q'))
	if a.quit || string(a.edit) != "q" {
		t.Errorf("q while typing a filter: quit %v, filter %q", a.quit, string(a.edit))
	}
}

func TestDrillIntoRow(t *testing.T) {
	a, _, scr := replayApp(t, "nginx-proxy", 160, 50)
	a.handleKey(ch('2'))
	a.draw()
	a.handleKey(key(tcell.KeyDown)) // nginx[32027]
	a.handleKey(key(tcell.KeyEnter))
	a.draw()
	text := screenText(scr)
	if !a.drill || !strings.Contains(text, "process nginx[32027]") {
		t.Fatalf("Enter does not show the row's events:\n%s", text)
	}
	lines := screenLines(scr)
	rows := 0
	for _, l := range lines[7 : len(lines)-1] {
		if l == "" {
			continue
		}
		rows++
		// the process's own transitions, or the TIME_WAIT sockets and
		// other events of its connections, never another process's
		if strings.Contains(l, "recordings[") || strings.Contains(l, "wrk[") {
			t.Errorf("another process's event: %q", l)
		}
	}
	if rows == 0 {
		t.Fatal("no events")
	}
	a.handleKey(key(tcell.KeyEsc))
	a.draw()
	if a.drill || !strings.Contains(screenText(scr), "Who closes first") {
		t.Fatal("Esc does not go back to the table")
	}
	// the selection stayed on the row
	if got := a.cl.rows[a.cl.list.sel].Key; got != "nginx[32027]" {
		t.Errorf("selection on %q after going back", got)
	}
}

// TestRowEvents: a row's events are its own (its process, service port,
// peer or namespace) and the other events of the connections those are on.
func TestRowEvents(t *testing.T) {
	s := loadSnapshot(t, "nginx-proxy")
	type tuple struct {
		netns    uint32
		src, dst string
	}
	for _, by := range model.Rankings() {
		for _, row := range s.AllClosers[by] {
			own := func(e *event.Event) bool {
				switch by {
				case model.ByProcess:
					return e.Owned() && e.Pid == row.Pid
				case model.ByPort:
					return e.Netns == row.Netns && e.Src.Port() == row.Port
				case model.ByPeer:
					return e.Dst.String() == row.Peer
				}
				return e.Netns == row.Netns
			}
			evs := rowEvents(&row, by, s.RowCgroups(by, &row), s.Recent)
			mine := map[tuple]bool{}
			for i := range evs {
				if own(&evs[i]) {
					mine[tuple{evs[i].Netns, evs[i].Src.String(), evs[i].Dst.String()}] = true
				}
			}
			if len(mine) == 0 {
				t.Errorf("%v %s: none of its own events among %d", by, row.Key, len(evs))
			}
			for i := range evs {
				e := &evs[i]
				if !own(e) && !mine[tuple{e.Netns, e.Src.String(), e.Dst.String()}] {
					t.Errorf("%v %s: unrelated event %s", by, row.Key, event.AppendJSON(nil, e, 250))
				}
			}
			// and every own event of the snapshot is there
			n := 0
			for i := range s.Recent {
				if own(&s.Recent[i]) {
					n++
				}
			}
			if got := len(mine); n > 0 && got == 0 || n > len(evs) {
				t.Errorf("%v %s: %d own events in the snapshot, %d shown", by, row.Key, n, len(evs))
			}
		}
	}
	if got := rowEvents(&model.Closer{Key: "other"}, model.ByPeer, nil, s.Recent); got != nil {
		t.Errorf("the other row has %d events", len(got))
	}
}

func TestFindingsExpand(t *testing.T) {
	a, _, scr := replayApp(t, "port-pressure", 80, 24)
	evidence := "without reuse one destination sustains"
	if strings.Contains(screenText(scr), evidence) {
		t.Fatal("evidence shown before Enter at 80x24")
	}
	a.handleKey(key(tcell.KeyEnter))
	a.draw()
	if !strings.Contains(screenText(scr), evidence) {
		t.Fatalf("Enter does not show the evidence:\n%s", screenText(scr))
	}
	// down scrolls through evidence taller than the view before moving on
	last := "tcp_tw_reuse can apply: tcp_tw_reuse is on"
	for range 10 {
		if strings.Contains(screenText(scr), last) {
			break
		}
		a.handleKey(key(tcell.KeyDown))
		a.draw()
	}
	if !strings.Contains(screenText(scr), last) || a.ov.list.sel != 0 {
		t.Fatalf("the end of the evidence is not reachable (selected %d):\n%s", a.ov.list.sel, screenText(scr))
	}
	for range 5 {
		a.handleKey(key(tcell.KeyDown))
	}
	a.draw()
	if a.ov.list.sel != 1 {
		t.Errorf("selection %d after scrolling past the evidence, want 1", a.ov.list.sel)
	}
	a.handleKey(key(tcell.KeyHome))
	a.handleKey(key(tcell.KeyEnter))
	a.draw()
	if strings.Contains(screenText(scr), evidence) {
		t.Error("Enter again does not hide the evidence")
	}
}

// TestEventsStayPut: scrolled up, the tail keeps showing the same events
// while new ones arrive and old ones leave; at the bottom it follows.
func TestEventsStayPut(t *testing.T) {
	full := loadSnapshot(t, "nginx-proxy")
	if len(full.Recent) < 900 {
		t.Fatalf("only %d recent events", len(full.Recent))
	}
	at := func(lo, hi int) *model.Snapshot {
		s := *full
		s.Recent = full.Recent[lo:hi]
		return &s
	}
	src := &fakeSource{snap: at(0, 500), st: replayStatus("nginx-proxy")}
	a, scr := newTestApp(t, src, 100, 30, false)
	a.handleKey(ch('4'))
	a.draw()
	body := func() []string { l := screenLines(scr); return l[5 : len(l)-1] }
	newest := formatEvent(&full.Recent[499], full.First)
	if got := body(); !strings.Contains(got[len(got)-1], newest.flow) || !strings.HasPrefix(got[len(got)-1], newest.time) {
		t.Fatalf("following: last line %q, want the newest event %+v", got[len(got)-1], newest)
	}
	for range 3 {
		a.handleKey(key(tcell.KeyUp))
	}
	a.handleKey(key(tcell.KeyPgUp))
	a.draw()
	before := body()
	if a.ev.list.follow {
		t.Fatal("still following after scrolling up")
	}
	// 300 new events, 100 old ones gone
	src.set(func(f *fakeSource) { f.snap = at(100, 800); f.st.Version++ })
	a.draw()
	if after := body(); !slices.Equal(before, after) {
		t.Fatalf("the view moved while scrolled up:\nbefore %q\nafter  %q", before[0], after[0])
	}
	if !strings.Contains(screenText(scr), "End follows") {
		t.Error("no sign of being scrolled up")
	}
	// End: follow again, newest at the bottom
	a.handleKey(key(tcell.KeyEnd))
	a.draw()
	newest = formatEvent(&full.Recent[799], full.First)
	if got := body(); !strings.HasPrefix(got[len(got)-1], newest.time) || !strings.Contains(got[len(got)-1], newest.flow) {
		t.Fatalf("End: last line %q, want %+v", got[len(got)-1], newest)
	}
	src.set(func(f *fakeSource) { f.snap = at(200, 900) })
	a.draw()
	newest = formatEvent(&full.Recent[899], full.First)
	if got := body(); !strings.HasPrefix(got[len(got)-1], newest.time) || !strings.Contains(got[len(got)-1], newest.flow) {
		t.Fatalf("following: last line %q, want %+v", got[len(got)-1], newest)
	}
	// Home: the oldest kept event first; the events it showed leave, and
	// the view moves to the oldest still kept
	a.handleKey(key(tcell.KeyHome))
	a.draw()
	oldest := formatEvent(&full.Recent[200], full.First)
	if got := body(); !strings.HasPrefix(got[0], oldest.time) || !strings.Contains(got[0], oldest.flow) {
		t.Fatalf("Home: first line %q, want %+v", got[0], oldest)
	}
	src.set(func(f *fakeSource) { f.snap = at(250, 950) })
	a.draw()
	oldest = formatEvent(&full.Recent[250], full.First)
	if got := body(); !strings.HasPrefix(got[0], oldest.time) || !strings.Contains(got[0], oldest.flow) {
		t.Fatalf("anchor gone: first line %q, want %+v", got[0], oldest)
	}
	// scrolling down to the bottom follows again
	for range 100 {
		a.handleKey(key(tcell.KeyPgDn))
	}
	if !a.ev.list.follow {
		t.Error("not following at the bottom")
	}
}

func TestPortsSelection(t *testing.T) {
	a, _, scr := replayApp(t, "nginx-proxy", 100, 30)
	a.handleKey(ch('3'))
	a.draw()
	if !strings.Contains(screenText(scr), "▸ 10.77.0.1 → 10.77.0.2:8080") {
		t.Fatalf("first destination not described:\n%s", screenText(scr))
	}
	a.handleKey(key(tcell.KeyDown))
	a.draw()
	if !strings.Contains(screenText(scr), "▸ 10.77.0.1 → 10.77.0.1:80") {
		t.Fatalf("Down does not select the second destination:\n%s", screenText(scr))
	}
	a.handleKey(ch('/'))
	typeKeys(a, ":8080")
	a.handleKey(key(tcell.KeyEnter))
	a.draw()
	text := screenText(scr)
	if strings.Contains(text, "10.77.0.1:80 ") || !strings.Contains(text, "10.77.0.2:8080") {
		t.Fatalf("filter :8080:\n%s", text)
	}
}

// TestSmallScreens: nothing breaks on tiny or odd sizes.
func TestSmallScreens(t *testing.T) {
	for _, sz := range [][2]int{{1, 1}, {10, 3}, {40, 10}, {79, 23}, {300, 5}} {
		for _, sh := range shots {
			src := &fakeSource{st: replayStatus(sh.rec)}
			if sh.rec != "" {
				src.snap = loadSnapshot(t, sh.rec)
			}
			a, _ := newTestApp(t, src, sz[0], sz[1], false)
			if sh.keys != nil {
				sh.keys(a)
			}
			a.draw()
			for _, k := range []*tcell.EventKey{key(tcell.KeyDown), key(tcell.KeyPgDn), key(tcell.KeyEnd), key(tcell.KeyUp), key(tcell.KeyHome)} {
				a.handleKey(k)
				a.draw()
			}
		}
	}
}

// b cycles through process, port, peer and netns, and through pod,
// container and service only where they have rows.
func TestRankingCycle(t *testing.T) {
	cycle := func(src *fakeSource, n int) []model.By {
		a, _ := newTestApp(t, src, 80, 24, true)
		a.handleKey(ch('2'))
		var got []model.By
		for range n {
			a.handleKey(ch('b'))
			got = append(got, a.cl.by)
		}
		return got
	}
	plain := &fakeSource{snap: loadSnapshot(t, "nginx-proxy"), st: replayStatus("nginx-proxy")}
	want := []model.By{model.ByPort, model.ByPeer, model.ByNetns, model.ByProcess, model.ByPort}
	if got := cycle(plain, 5); !slices.Equal(got, want) {
		t.Errorf("without workload rows: %v, want %v", got, want)
	}
	s := *loadSnapshot(t, "nginx-proxy")
	podRows(&s) // pod and container rows, no service rows
	pods := &fakeSource{snap: &s, st: replayStatus("nginx-proxy")}
	want = []model.By{model.ByPort, model.ByPeer, model.ByNetns, model.ByPod, model.ByContainer, model.ByProcess}
	if got := cycle(pods, 6); !slices.Equal(got, want) {
		t.Errorf("with pod and container rows: %v, want %v", got, want)
	}
}
