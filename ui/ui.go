package ui

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"
	"github.com/twtop/twtop/tracer/model"
)

// Options tune the UI.
type Options struct {
	// Refresh is how often the UI checks the Source for news (default
	// 250ms). It redraws only when Status().Version moved, and at once
	// on a key or a resize.
	Refresh time.Duration
	// NoColor draws without any colour (NO_COLOR), with attributes only.
	NoColor bool
}

const defaultRefresh = 250 * time.Millisecond

// Run shows the UI on screen (nil: the terminal, through tcell.NewScreen)
// until the user quits (q, Ctrl-C) or ctx is done. It initialises the
// screen (give one not initialised yet) and finalises it before
// returning. It reads src only through Snapshot and Status, so it never
// holds up the pipeline behind it.
func Run(ctx context.Context, src Source, screen tcell.Screen, opts Options) error {
	return newApp(src, screen, opts).run(ctx)
}

// run runs the event loop until the user quits or ctx is done.
func (a *app) run(ctx context.Context) error {
	src := a.src
	tv := tview.NewApplication()
	if a.screen != nil {
		tv.SetScreen(a.screen)
	}
	tv.SetRoot(a.root, true)
	tv.SetBeforeDrawFunc(func(s tcell.Screen) bool {
		a.screen = s
		a.frame()
		return false
	})
	// Only the ticker goroutine below talks to the event loop from
	// outside (QueueUpdate waits until the loop has run the update, so one
	// queued after the loop stopped would wait forever), and it is also
	// what stops the loop: a quit key or the end of ctx asks it to.
	stop := make(chan struct{})
	var stopOnce sync.Once
	tv.SetInputCapture(func(ev *tcell.EventKey) *tcell.EventKey {
		a.handleKey(ev)
		if a.quit {
			stopOnce.Do(func() { close(stop) })
		}
		return nil // every key is handled here; tview draws after it
	})

	// redraw when the Source's version moves, checked every Refresh
	seen := src.Status().Version
	done := make(chan struct{}) // the loop has returned
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(a.opts.Refresh)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-stop:
				tv.QueueUpdate(tv.Stop)
				return
			case <-ctx.Done():
				tv.QueueUpdate(tv.Stop)
				return
			case <-tick.C:
				if v := src.Status().Version; v != seen {
					seen = v
					tv.QueueUpdateDraw(func() {})
				}
			}
		}
	}()
	err := tv.Run()
	close(done)
	if err != nil {
		// the loop failed on its own: the ticker may be waiting on it
		// for good, so it is left behind rather than waited for
		return err
	}
	wg.Wait() // it stopped the loop, and returns right after
	return nil
}

// view is a screen of the UI.
type view int

const (
	viewOverview view = iota
	viewClosers
	viewPorts
	viewEvents
	numViews
)

var viewNames = [numViews]string{"Overview", "Closers", "Ports", "Events"}

// app is the UI's state. Everything but draws (counted atomically, for
// tests) is touched by one goroutine: the event loop.
type app struct {
	src    Source
	screen tcell.Screen
	opts   Options
	th     theme

	root  *tview.Pages
	pages *tview.Pages // the screens

	cur   view
	drill bool // the closers screen shows a row's events
	help  bool
	quit  bool

	// the filter being typed ("/"), and the filter it replaces
	editing  bool
	edit     []rune
	editPrev string

	// what the last frame showed
	snap *model.Snapshot
	st   Status

	ov overviewState
	cl closersState
	dr drillState
	po portsState
	ev eventsState

	draws atomic.Uint64
}

// newApp builds the UI on screen without running it: draw renders a
// frame, handleKey acts on a key.
func newApp(src Source, screen tcell.Screen, opts Options) *app {
	if opts.Refresh <= 0 {
		opts.Refresh = defaultRefresh
	}
	a := &app{src: src, screen: screen, opts: opts, th: newTheme(opts.NoColor)}
	a.ov.expanded = map[string]bool{}
	a.cl.init()
	a.ev.list.follow = true

	main := tview.NewFlex().SetDirection(tview.FlexRow)
	main.SetBackgroundColor(tcell.ColorDefault)
	a.pages = tview.NewPages()
	a.pages.SetBackgroundColor(tcell.ColorDefault)
	for v := range numViews {
		a.pages.AddPage(viewNames[v], a.box(a.drawView(v)), true, v == a.cur)
	}
	main.AddItem(a.box(a.drawHeader), 2, 0, false).
		AddItem(a.box(a.drawTabs), 1, 0, false).
		AddItem(a.pages, 0, 1, false).
		AddItem(a.box(a.drawFooter), 1, 0, false)

	a.root = tview.NewPages()
	a.root.SetBackgroundColor(tcell.ColorDefault)
	a.root.AddPage("main", main, true, true)
	a.root.AddPage("help", &overlay{Box: tview.NewBox(), draw: a.drawHelp}, true, false)
	return a
}

// frame reads the Source for the frame about to be drawn.
func (a *app) frame() {
	a.draws.Add(1)
	a.snap = a.src.Snapshot()
	a.st = a.src.Status()
}

// draw renders one frame on the app's screen.
func (a *app) draw() {
	a.frame()
	w, h := a.screen.Size()
	a.root.SetRect(0, 0, w, h)
	a.root.Draw(a.screen)
	a.screen.Show()
}

// ensure reads the Source when no frame was drawn yet, for keys that act
// on what is shown.
func (a *app) ensure() {
	if a.snap == nil {
		a.snap = a.src.Snapshot()
		a.st = a.src.Status()
	}
}

// setView switches screens.
func (a *app) setView(v view) {
	a.cur = (v + numViews) % numViews
	a.drill = false
	a.pages.SwitchToPage(viewNames[a.cur])
}

func (a *app) setHelp(on bool) {
	a.help = on
	if on {
		a.root.ShowPage("help")
	} else {
		a.root.HidePage("help")
	}
}

func (a *app) drawView(v view) func(canvas) {
	return func(c canvas) {
		if a.snap == nil {
			c.text(1, 1, "Waiting for the first events…", a.th.dim)
			return
		}
		switch v {
		case viewOverview:
			a.drawOverview(c)
		case viewClosers:
			if a.drill {
				a.drawDrill(c)
			} else {
				a.drawClosers(c)
			}
		case viewPorts:
			a.drawPorts(c)
		case viewEvents:
			a.drawEvents(c)
		}
	}
}

// box is a tview primitive that draws with fn in its rectangle.
func (a *app) box(fn func(canvas)) tview.Primitive {
	return &panel{Box: tview.NewBox(), draw: fn}
}

type panel struct {
	*tview.Box
	draw func(canvas)
}

func (p *panel) Draw(screen tcell.Screen) {
	x, y, w, h := p.GetRect()
	c := canvas{screen, x, y, w, h}
	c.clear(tcell.StyleDefault)
	p.draw(c)
}

// overlay draws over what is under it, clearing only what it draws.
type overlay struct {
	*tview.Box
	draw func(canvas)
}

func (o *overlay) Draw(screen tcell.Screen) {
	x, y, w, h := o.GetRect()
	o.draw(canvas{screen, x, y, w, h})
}
