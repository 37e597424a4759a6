package ui

import (
	"fmt"
	"strings"

	"github.com/gdamore/tcell/v2"
	"github.com/twtop/twtop/tracer/event"
)

// eventsState is the events screen: the tail of the latest events.
type eventsState struct {
	filter string
	list   eventList
}

// evKey identifies an event across snapshots.
type evKey struct {
	time uint64
	seq  uint32
	cpu  uint16
	kind event.Kind
	ptr  uint64
}

func keyOf(e *event.Event) evKey { return evKey{e.Time, e.Seq, e.CPU, e.Kind, e.Ptr} }

// eventList is a scrollable tail of events, newest at the bottom. It
// follows new events until the user scrolls up; then the view stays on
// the events it shows (anchored on the first one) while new ones arrive
// and old ones leave.
type eventList struct {
	follow bool
	anchor evKey // the first row shown, when not following
	top    int
	rows   int // rows visible at the last draw
	n      int // events listed at the last draw
	keys   []evKey
}

// place computes the first row shown for n events in h rows.
func (l *eventList) place(keys []evKey, h int) {
	l.keys, l.n, l.rows = keys, len(keys), h
	maxTop := max(len(keys)-h, 0)
	if l.follow {
		l.top = maxTop
		return
	}
	top := -1
	for i, k := range keys {
		if k == l.anchor {
			top = i
			break
		}
	}
	if top < 0 { // the anchor left: keep to the first event after it
		top = 0
		for i, k := range keys {
			if k.time >= l.anchor.time {
				top = i
				break
			}
			top = i + 1
		}
	}
	l.top = min(max(top, 0), maxTop)
}

// scroll acts on a navigation key; false when k is not one.
func (l *eventList) scroll(k tcell.Key) bool {
	maxTop := max(l.n-l.rows, 0)
	top, ok := navigate(k, l.top, max(l.rows-1, 1), maxTop)
	if !ok {
		return false
	}
	top = min(max(top, 0), maxTop)
	l.top = top
	if top >= maxTop && k != tcell.KeyHome {
		l.follow = true
		return true
	}
	l.follow = false
	if top < len(l.keys) {
		l.anchor = l.keys[top]
	}
	return true
}

// state says whether the tail follows new events.
func (l *eventList) state() string {
	if l.follow {
		return "following"
	}
	return fmt.Sprintf("scrolled %d-%d of %d (End follows)", l.top+1, min(l.top+l.rows, l.n), l.n)
}

func (a *app) drawEvents(c canvas) {
	th := &a.th
	c.leftRight(0, []seg{{"Latest events, newest at the bottom; times since the first event", th.dim}},
		[]seg{{"* inferred", th.dim}})
	a.drawEventTable(c.sub(0, 1, c.w, c.h-1), a.snap.Recent, &a.ev.list, a.ev.filter)
}

// drawEventTable draws evs (filtered) as a scrollable table with a header.
func (a *app) drawEventTable(c canvas, evs []event.Event, l *eventList, filter string) {
	th := &a.th
	f := strings.ToLower(filter)
	lines := make([]evLine, 0, len(evs))
	keys := make([]evKey, 0, len(evs))
	kinds := make([]event.Kind, 0, len(evs))
	for i := range evs {
		ln := formatEvent(&evs[i], a.snap.First)
		if f != "" && !strings.Contains(strings.ToLower(ln.text()), f) {
			continue
		}
		lines = append(lines, ln)
		keys = append(keys, keyOf(&evs[i]))
		kinds = append(kinds, evs[i].Kind)
	}
	// columns as wide as what they hold, the process last, taking the rest
	cols := []column{
		{title: "TIME", w: 6, right: true},
		{title: "KIND", w: 4},
		{title: "SRC → DST", w: 9},
		{title: "DETAIL", w: 6},
		{title: "PROCESS", w: 7, flex: true},
	}
	for _, ln := range lines {
		cols[0].w = max(cols[0].w, width(ln.time))
		cols[1].w = max(cols[1].w, width(ln.kind))
		cols[2].w = max(cols[2].w, width(ln.flow))
		cols[3].w = max(cols[3].w, width(ln.detail))
	}
	cols[2].w = min(cols[2].w, 47)
	cols[3].w = min(cols[3].w, 24)
	cols[4].w = max(c.w-cols[0].w-cols[1].w-cols[2].w-cols[3].w-4, 0)
	ws := []int{cols[0].w, cols[1].w, cols[2].w, cols[3].w, cols[4].w}
	a.tableHeader(c, 0, cols, ws, -1)
	body := c.sub(0, 1, c.w, c.h-1)
	l.place(keys, body.h)
	if len(lines) == 0 {
		body.text(1, 0, noRows("no events yet", "event", filter), th.dim)
		return
	}
	for y := 0; y < body.h && l.top+y < len(lines); y++ {
		ln := &lines[l.top+y]
		kst, ok := th.kinds[kinds[l.top+y]]
		if !ok {
			kst = th.normal
		}
		body.tableRow(y, cols, ws, []cell{
			styled(ln.time, th.dim), styled(ln.kind, kst), plain(ln.flow), styled(ln.detail, kst), plain(ln.proc),
		}, th.normal)
	}
	if !l.follow {
		body.text(c.w-1, body.h-1, "↓", th.dim)
	}
}
