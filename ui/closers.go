package ui

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/gdamore/tcell/v2"
	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/model"
)

// closerCol is a column of the closers table and the model column it
// sorts by.
type closerCol struct {
	column
	by model.CloserColumn
}

var closerCols = []closerCol{
	{column{title: "KEY", w: 16, flex: true}, model.ColumnKey},
	{column{title: "ACTIVE", w: 7, right: true}, model.ColumnActive},
	{column{title: "PASSIVE", w: 8, right: true}, model.ColumnPassive},
	{column{title: "SIMUL", w: 6, right: true, drop: 2}, model.ColumnSimultaneous},
	{column{title: "RESET", w: 6, right: true, drop: 1}, model.ColumnReset},
	{column{title: "ACTIVE%", w: 8, right: true}, model.ColumnActiveShare},
	{column{title: "TW MADE", w: 8, right: true}, model.ColumnTimewaitCreated},
	{column{title: "TW OPEN", w: 8, right: true}, model.ColumnTimewaitOpen},
}

// closersState is the closers table: ranking, sort, filter, selection.
type closersState struct {
	by     model.By
	sort   int // index in closerCols
	desc   bool
	filter string
	list   list
	selKey string // the selected row's key, kept across refreshes
	rows   []model.Closer
}

func (s *closersState) init() {
	s.by = model.ByProcess
	s.sort = 1 // ACTIVE: who closes first
	s.desc = true
}

// rankings are the rankings the Closers screen offers: process, port,
// peer and netns always, pod, container and service when they have rows
// (a live run that resolves cgroups).
func (a *app) rankings() []model.By {
	var out []model.By
	for _, b := range model.Rankings() {
		if !b.Workload() || (a.snap != nil && len(a.snap.AllClosers[b]) > 0) || b == a.cl.by {
			out = append(out, b)
		}
	}
	return out
}

// nextRanking moves to the next ranking on offer, after the last the first.
func (a *app) nextRanking() {
	a.ensure()
	rs := a.rankings()
	for i, b := range rs {
		if b == a.cl.by {
			a.cl.by = rs[(i+1)%len(rs)]
			return
		}
	}
	a.cl.by = rs[0]
}

// closerRows are the rows of the current ranking in the current order,
// filtered; the selection follows its key.
func (a *app) closerRows() []model.Closer {
	s := &a.cl
	rows := a.snap.TopClosers(s.by, closerCols[s.sort].by, s.desc, 0)
	if f := strings.ToLower(s.filter); f != "" {
		kept := rows[:0]
		for _, r := range rows {
			if strings.Contains(strings.ToLower(r.Key), f) {
				kept = append(kept, r)
			}
		}
		rows = kept
	}
	s.rows = rows
	if s.selKey != "" {
		for i := range rows {
			if rows[i].Key == s.selKey {
				s.list.sel = i
				break
			}
		}
	}
	return rows
}

// selectCloser moves the selection and remembers the key it lands on.
func (a *app) selectCloser(k tcell.Key) {
	s := &a.cl
	if s.list.move(k, len(s.rows)) && s.list.sel < len(s.rows) {
		s.selKey = s.rows[s.list.sel].Key
	}
}

func (a *app) drawClosers(c canvas) {
	th := &a.th
	rows := a.closerRows()
	s := &a.cl

	// rankings: the current one highlighted
	x := c.text(0, 0, "Who closes first, by ", th.dim)
	for _, b := range a.rankings() {
		st := th.normal
		if b == s.by {
			st = th.tabOn
		}
		x = c.text(x, 0, " "+b.String()+" ", st)
	}
	c.text(x+1, 0, "(b)", th.dim)

	cols := make([]column, len(closerCols))
	for i, col := range closerCols {
		cols[i] = col.column
		if i == 0 {
			cols[i].max = 20
			for _, r := range rows {
				cols[i].max = max(cols[i].max, width(r.Key))
			}
		}
		if i == s.sort {
			if s.desc {
				cols[i].title += "▼"
			} else {
				cols[i].title += "▲"
			}
		}
	}
	ws := fitColumns(cols, c.w)
	a.tableHeader(c, 1, cols, ws, s.sort)

	body := c.sub(0, 2, c.w, c.h-2)
	if len(rows) == 0 {
		body.text(1, 0, noRows("no closes seen yet", "row", s.filter), th.dim)
		return
	}
	s.list.fit(len(rows), body.h)
	if s.list.sel < len(rows) {
		s.selKey = rows[s.list.sel].Key
	}
	for y := 0; y < body.h && s.list.top+y < len(rows); y++ {
		i := s.list.top + y
		r := &rows[i]
		st := th.normal
		if r.Key == "other" {
			st = th.dim
		}
		if i == s.list.sel {
			st = th.sel
		}
		share := ""
		if r.Total() > 0 {
			share = percent(r.ActiveShare())
		}
		cells := []cell{
			plain(printable(r.Key)),
			plain(count(r.Closes[model.SideActive])),
			plain(count(r.Closes[model.SidePassive])),
			plain(count(r.Closes[model.SideSimultaneous])),
			plain(count(r.Closes[model.SideReset])),
			plain(share),
			plain(count(r.TimewaitCreated)),
			plain(count(r.TimewaitOpen)),
		}
		body.tableRow(y, cols, ws, cells, st)
	}
}

// tableHeader draws a table's header row, the sorted column (sorted >= 0)
// marked.
func (a *app) tableHeader(c canvas, y int, cols []column, ws []int, sorted int) {
	c.fillRow(0, y, a.th.head)
	x := 0
	for i, col := range cols {
		if ws[i] == 0 {
			continue
		}
		if x > 0 {
			x = c.text(x, y, " ", a.th.head)
		}
		st := a.th.head
		if i == sorted {
			st = a.th.headSort
		}
		x = c.field(x, y, ws[i], col.title, st, col.right)
	}
}

// drillState is a closers row's events.
type drillState struct {
	row    model.Closer
	by     model.By
	filter string
	list   eventList
}

// enterDrill shows the selected closers row's events.
func (a *app) enterDrill() {
	a.ensure()
	if a.snap == nil {
		return
	}
	rows := a.cl.rows
	if rows == nil {
		rows = a.closerRows()
	}
	if len(rows) == 0 || a.cl.list.sel >= len(rows) {
		return
	}
	a.dr = drillState{row: rows[a.cl.list.sel], by: a.cl.by}
	a.dr.list.follow = true
	a.drill = true
}

// rowEvents are the recent events that concern a closers row: those of
// its process, service port, peer, namespace or workload (owned by one of
// the row's cgroups, see model.Snapshot.RowCgroups), and every event of
// the connections (tuples) those belong to, so that the TIME_WAIT sockets
// they left show too.
func rowEvents(row *model.Closer, by model.By, cgroups []uint64, evs []event.Event) []event.Event {
	if row.Key == "other" {
		return nil
	}
	var match func(e *event.Event) bool
	switch by {
	case model.ByPod, model.ByContainer, model.ByService:
		if len(cgroups) == 0 {
			return nil
		}
		match = func(e *event.Event) bool { return e.Owned() && slices.Contains(cgroups, e.Cgroup) }
	case model.ByProcess:
		if row.Pid == 0 {
			return nil
		}
		match = func(e *event.Event) bool {
			return e.Owned() && e.Pid == row.Pid && (row.Comm == "" || e.CommString() == row.Comm)
		}
	case model.ByPort:
		match = func(e *event.Event) bool { return e.Family != 0 && e.Netns == row.Netns && e.Src.Port() == row.Port }
	case model.ByPeer:
		peer, err := netip.ParseAddrPort(row.Peer)
		if err != nil {
			return nil
		}
		match = func(e *event.Event) bool { return e.Family != 0 && e.Dst == peer }
	case model.ByNetns:
		match = func(e *event.Event) bool { return e.Netns == row.Netns }
	default:
		return nil
	}
	type tuple struct {
		netns    uint32
		src, dst netip.AddrPort
	}
	tuples := map[tuple]bool{}
	for i := range evs {
		if e := &evs[i]; e.Family != 0 && match(e) {
			tuples[tuple{e.Netns, e.Src, e.Dst}] = true
		}
	}
	var out []event.Event
	for i := range evs {
		e := &evs[i]
		if match(e) || (e.Family != 0 && tuples[tuple{e.Netns, e.Src, e.Dst}]) {
			out = append(out, *e)
		}
	}
	return out
}

// openTimewait counts the TIME_WAIT sockets created among evs whose end is
// not among them.
func openTimewait(evs []event.Event) (created, open int) {
	ended := map[uint64]int{}
	for i := range evs {
		switch evs[i].Kind {
		case event.KindTWExpire, event.KindTWKill:
			ended[evs[i].Ptr] = i
		}
	}
	for i := range evs {
		if evs[i].Kind != event.KindTWCreate {
			continue
		}
		created++
		if j, ok := ended[evs[i].Ptr]; !ok || j < i {
			open++
		}
	}
	return created, open
}

func (a *app) drawDrill(c canvas) {
	th := &a.th
	d := &a.dr
	row := &d.row
	// the row as it is now, when it still is
	for _, r := range a.snap.AllClosers[d.by] {
		if r.Key == row.Key {
			*row = r
			break
		}
	}
	num := func(v uint64, what string) []seg {
		return []seg{{"  " + count(v), th.bold}, {" " + what, th.normal}}
	}
	top := []seg{{d.by.String() + " ", th.dim}, {printable(row.Key), th.bold}}
	top = append(top, num(row.Closes[model.SideActive], "active")...)
	top = append(top, num(row.Closes[model.SidePassive], "passive")...)
	top = append(top, num(row.Closes[model.SideSimultaneous], "simul")...)
	top = append(top, num(row.Closes[model.SideReset], "reset")...)
	c.segs(0, 0, top)

	evs := rowEvents(row, d.by, a.snap.RowCgroups(d.by, row), a.snap.Recent)
	made, open := openTimewait(evs)
	c.segs(0, 1, []seg{{"TIME_WAIT ", th.dim}, {count(row.TimewaitCreated), th.bold}, {" made, ", th.normal},
		{count(row.TimewaitOpen), th.spark.Bold(true)}, {" open", th.normal}})
	var info string
	switch {
	case row.Key == "other":
		info = "\"other\" sums the keys past the ranking's limit: no events to show"
	case d.by == model.ByProcess && row.Pid == 0:
		info = "no process was seen closing these connections: no events to show"
	default:
		info = fmt.Sprintf("Its events among the latest %d: %d, with %d TIME_WAIT made (%d still open)",
			len(a.snap.Recent), len(evs), made, open)
	}
	c.segs(0, 2, []seg{{info, th.dim}})
	a.drawEventTable(c.sub(0, 3, c.w, c.h-3), evs, &d.list, d.filter)
}
