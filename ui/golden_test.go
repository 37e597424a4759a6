package ui

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gdamore/tcell/v2"
	"github.com/twtop/twtop/tracer/model"
)

var update = flag.Bool("update", false, "rewrite ui/testdata/*.golden")

// shot is a picture of the UI: a recording, what to show, and how.
type shot struct {
	name   string
	rec    string                          // recording under testdata/ ("": no snapshot yet)
	snap   func(s *model.Snapshot)         // changes the recording's snapshot (a copy)
	status func(rec string) Status         // nil: replayStatus
	keys   func(a *app)                    // what the user pressed
	check  func(t *testing.T, text string) // what the picture must show
}

var shots = []shot{
	{name: "overview-server-closes", rec: "server-closes", check: func(t *testing.T, text string) {
		mustContain(t, text, "600 active 50%", "600 passive 50%", "TIME_WAIT 600/131072", "WARN", "REPLAY server-closes.twrec", "DONE", "x4")
	}},
	{name: "overview-port-pressure", rec: "port-pressure", check: func(t *testing.T, text string) {
		mustContain(t, text, "CRIT", "Ephemeral ports towards 10.77.0.2:8080 are 100% used", "p50 1.51s", "128 reused",
			"16 EADDRNOTAVAIL", "TWRecycled +128", "(inferred)")
	}},
	{name: "overview-nginx-proxy", rec: "nginx-proxy", check: func(t *testing.T, text string) {
		mustContain(t, text, "98 simultaneous", "614 open", "TW +614")
	}},
	{name: "overview-evidence", rec: "port-pressure", keys: func(a *app) {
		a.handleKey(key(tcell.KeyEnter))
	}, check: func(t *testing.T, text string) {
		mustContain(t, text, "16 connect() calls towards 10.77.0.2:8080 failed with EADDRNOTAVAIL")
		mustNotContain(t, text, "1152") // needed_at_rate: reuse took 128 tuples over
	}},
	{name: "overview-live", rec: "nginx-proxy", status: func(string) Status {
		return Status{Host: "proxy-7", Kernel: "6.12.48-cloud-amd64", Tier: "fentry", Live: true, Speed: 1,
			Paused: true, EventsPerSec: 15230, Lost: 42, Version: 3}
	}, check: func(t *testing.T, text string) {
		mustContain(t, text, "LIVE", "PAUSED", "lost 42", "15.2k ev/s", "tier fentry")
		mustNotContain(t, text, "inferred)", "REPLAY", "speed")
	}},
	{name: "waiting", status: func(string) Status {
		return Status{Host: "proxy-7", Kernel: "6.12.48-cloud-amd64", Tier: "kprobe", Live: true, Speed: 1}
	}, check: func(t *testing.T, text string) {
		mustContain(t, text, "Waiting for the first events")
	}},
	{name: "closers-nginx-proxy", rec: "nginx-proxy", keys: func(a *app) {
		a.handleKey(ch('2'))
	}, check: func(t *testing.T, text string) {
		mustContain(t, text, "ACTIVE▼", "recordings[32010]", "nginx[32027]", "wrk[32037]")
	}},
	{name: "closers-port", rec: "nginx-proxy", keys: func(a *app) {
		typeKeys(a, "2b")
	}, check: func(t *testing.T, text string) {
		mustContain(t, text, "netns 4026532315 :8080", "netns 4026532315 :80")
	}},
	{name: "closers-pod", rec: "nginx-proxy", snap: podRows, keys: func(a *app) {
		typeKeys(a, "2bbbb")
	}, check: func(t *testing.T, text string) {
		// (cut to fit at 80 columns)
		mustContain(t, text, " pod  container  (b)", "shop/cart-7f9c8d6b5-x", "kube-system/coredns-5", "0b7f3c1e-2d4a-4f8e-9c", "409")
		mustNotContain(t, text, "service")
	}},
	{name: "drill-nginx", rec: "nginx-proxy", keys: func(a *app) {
		a.handleKey(ch('2'))
		a.draw()
		a.handleKey(key(tcell.KeyDown))
		a.handleKey(key(tcell.KeyEnter))
	}, check: func(t *testing.T, text string) {
		mustContain(t, text, "process nginx[32027]", "LAST_ACK→CLOSE", "81 made")
	}},
	{name: "ports-port-pressure", rec: "port-pressure", keys: func(a *app) {
		a.handleKey(ch('3'))
	}, check: func(t *testing.T, text string) {
		mustContain(t, text, "10.77.0.2:8080", "100%", "yes", "tcp_tw_reuse can apply", "took over 128", "Only the ports held outside TIME_WAIT")
		mustNotContain(t, text, "1152") // needed_at_rate: reuse took 128 tuples over
	}},
	{name: "ports-nginx-proxy", rec: "nginx-proxy", keys: func(a *app) {
		a.handleKey(ch('3'))
	}, check: func(t *testing.T, text string) {
		// 81 held of 28232; 16.3 TIME_WAIT sockets/s level off at 977
		mustContain(t, text, "10.77.0.1:80", "977", "stay within the range")
		mustNotContain(t, text, "runs out", "30m")
	}},
	{name: "ports-pod", rec: "nginx-proxy", snap: podPorts, keys: func(a *app) {
		a.handleKey(ch('3'))
	}, check: func(t *testing.T, text string) {
		// (cut to fit at 80 columns)
		mustContain(t, text, " POD ", "shop/cart", "0b7f3c1e", "Held by pod shop/cart-7f9c8d6b5-x2x9z: netns 4026532315 is")
	}},
	{name: "events-port-pressure", rec: "port-pressure", keys: func(a *app) {
		a.handleKey(ch('4'))
	}, check: func(t *testing.T, text string) {
		mustContain(t, text, "tw_kill*", "connect_reuse 1.52s", "following")
	}},
	{name: "help", rec: "server-closes", keys: func(a *app) {
		a.handleKey(ch('?'))
	}, check: func(t *testing.T, text string) {
		mustContain(t, text, "twtop keys", "Shift-Tab", "reverse the sort")
	}},
}

// podRows adds pod and container rankings, as a live run that resolves
// cgroups has them, to a snapshot.
func podRows(s *model.Snapshot) {
	row := func(by model.By, key string, active, passive, made uint64, open int64) model.Closer {
		c := model.Closer{By: by.String(), Key: key, TimewaitCreated: made, TimewaitOpen: open}
		c.Closes[model.SideActive], c.Closes[model.SidePassive] = active, passive
		return c
	}
	pods := []model.Closer{
		row(model.ByPod, "shop/cart-7f9c8d6b5-x2x9z", 412, 3, 409, 388),
		row(model.ByPod, "shop/checkout-6c4d7b9f8-q7w2e", 97, 41, 97, 90),
		row(model.ByPod, "kube-system/coredns-5d78c9869d-abcde", 0, 58, 0, 0),
		row(model.ByPod, "0b7f3c1e-2d4a-4f8e-9c6b-1a2b3c4d5e6f", 12, 0, 12, 12),
	}
	ctrs := []model.Closer{
		row(model.ByContainer, "shop/cart-7f9c8d6b5-x2x9z/app", 410, 3, 407, 386),
		row(model.ByContainer, "shop/cart-7f9c8d6b5-x2x9z/istio-proxy", 2, 0, 2, 2),
	}
	s.AllClosers[model.ByPod], s.Closers[model.ByPod] = pods, pods
	s.AllClosers[model.ByContainer], s.Closers[model.ByContainer] = ctrs, ctrs
}

// podPorts names the pods that hold the destinations' ports, as a live
// run that resolves network namespaces does: one by its names, one by its
// UID (the runtime gave none).
func podPorts(s *model.Snapshot) {
	s.Ports = slices.Clone(s.Ports)
	s.Ports[0].Namespace, s.Ports[0].Pod = "shop", "cart-7f9c8d6b5-x2x9z"
	s.Ports[1].PodUID = "0b7f3c1e-2d4a-4f8e-9c6b-1a2b3c4d5e6f"
}

var sizes = [][2]int{{80, 24}, {200, 60}}

// render draws a shot at w×h.
func render(t *testing.T, sh shot, w, h int, noColor bool) (*app, tcell.SimulationScreen) {
	t.Helper()
	src := &fakeSource{}
	if sh.rec != "" {
		src.snap = loadSnapshot(t, sh.rec)
	}
	if sh.snap != nil {
		c := *src.snap
		sh.snap(&c)
		src.snap = &c
	}
	if sh.status != nil {
		src.st = sh.status(sh.rec)
	} else {
		src.st = replayStatus(sh.rec)
	}
	a, scr := newTestApp(t, src, w, h, noColor)
	if sh.keys != nil {
		sh.keys(a)
	}
	a.draw()
	return a, scr
}

// TestGolden renders every screen at 80×24 and 200×60 and compares the
// text with ui/testdata/NAME-WxH.golden (go test ./ui -update rewrites
// them).
func TestGolden(t *testing.T) {
	for _, sh := range shots {
		for _, sz := range sizes {
			t.Run(fmt.Sprintf("%s-%dx%d", sh.name, sz[0], sz[1]), func(t *testing.T) {
				_, scr := render(t, sh, sz[0], sz[1], false)
				got := screenText(scr)
				if sh.check != nil {
					sh.check(t, got)
				}
				path := filepath.Join("testdata", fmt.Sprintf("%s-%dx%d.golden", sh.name, sz[0], sz[1]))
				if *update {
					if err := os.MkdirAll("testdata", 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test ./ui -update to create it)", err)
				}
				if got != string(want) {
					t.Errorf("%s differs from the picture drawn:\n%s", path, diffLines(string(want), got))
				}
			})
		}
	}
}

// TestNoColor draws every picture without colour: no cell may have a
// foreground or background colour, and the text must be the same as in
// colour.
func TestNoColor(t *testing.T) {
	for _, sh := range shots {
		for _, sz := range sizes {
			_, plain := render(t, sh, sz[0], sz[1], true)
			cells, _, _ := plain.GetContents()
			for i, c := range cells {
				fg, bg, _ := c.Style.Decompose()
				if fg != tcell.ColorDefault || bg != tcell.ColorDefault {
					t.Fatalf("%s %dx%d: cell %d,%d %q has colours %v/%v", sh.name, sz[0], sz[1], i%sz[0], i/sz[0], string(c.Runes), fg, bg)
				}
			}
			_, colour := render(t, sh, sz[0], sz[1], false)
			if a, b := screenText(plain), screenText(colour); a != b {
				t.Errorf("%s %dx%d: text differs without colour:\n%s", sh.name, sz[0], sz[1], diffLines(b, a))
			}
		}
	}
}

// TestBasicColours: in colour, only the 16 basic colours an 8/16-colour
// terminal has, and some colour somewhere.
func TestBasicColours(t *testing.T) {
	coloured := 0
	for _, sh := range shots {
		_, scr := render(t, sh, 80, 24, false)
		cells, _, _ := scr.GetContents()
		for _, c := range cells {
			fg, bg, _ := c.Style.Decompose()
			for _, col := range []tcell.Color{fg, bg} {
				if col == tcell.ColorDefault {
					continue
				}
				coloured++
				if col.IsRGB() || col&^tcell.ColorValid >= 16 {
					t.Fatalf("%s: colour %v is not a basic one", sh.name, col)
				}
			}
		}
	}
	if coloured == 0 {
		t.Fatal("no cell has a colour")
	}
}

func mustContain(t *testing.T, text string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(text, s) {
			t.Errorf("the screen does not show %q:\n%s", s, text)
		}
	}
}

func mustNotContain(t *testing.T, text string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if strings.Contains(text, s) {
			t.Errorf("the screen shows %q:\n%s", s, text)
		}
	}
}

// diffLines shows the lines that differ.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %q\n  got  %q\n", i+1, wl, gl)
		}
	}
	return b.String()
}
