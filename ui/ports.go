package ui

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/gdamore/tcell/v2"
	"github.com/twtop/twtop/tracer/model"
)

// portsState is the ports table's filter and selection.
type portsState struct {
	filter string
	list   list
	selKey string
	rows   []model.PortPressure
}

func portKey(p *model.PortPressure) string {
	return fmt.Sprintf("%d %s %s", p.Netns, p.Src, p.Dst)
}

func (a *app) portRows() []model.PortPressure {
	s := &a.po
	rows := a.snap.Ports
	if f := strings.ToLower(s.filter); f != "" {
		var kept []model.PortPressure
		for _, p := range rows {
			if strings.Contains(strings.ToLower(p.Src+" "+p.Dst+" "+p.PodName()), f) {
				kept = append(kept, p)
			}
		}
		rows = kept
	}
	s.rows = rows
	if s.selKey != "" {
		for i := range rows {
			if portKey(&rows[i]) == s.selKey {
				s.list.sel = i
				break
			}
		}
	}
	return rows
}

var portCols = []column{
	{title: "DESTINATION", w: 14, flex: true},
	{title: "SOURCE", w: 15, drop: 3},
	{title: "USAGE", w: 11},
	{title: "HELD", w: 6, right: true},
	{title: "CONNECT", w: 7, right: true, drop: 4},
	{title: "ESTAB", w: 6, right: true, drop: 4},
	{title: "CLOSING", w: 7, right: true, drop: 4},
	{title: "TW", w: 6, right: true},
	{title: "NEW/S", w: 6, right: true},
	{title: "STEADY", w: 7, right: true},
	{title: "GROWTH/S", w: 8, right: true, drop: 2},
	{title: "EXHAUST", w: 7, right: true},
	{title: "FAILED", w: 6, right: true, drop: 1},
	{title: "REUSE", w: 5},
}

// podCol is the column of the pod that holds a destination's ports, after
// SOURCE, shown when a pod is known for any destination. It is never
// dropped: at 80 columns FAILED makes room for it.
var podCol = column{title: "POD", w: 10, flex: true}

// drawPorts draws the local ports held per destination: how full each
// destination's port space is, how fast it fills, whether tcp_tw_reuse
// can help, and which pod holds them.
func (a *app) drawPorts(c canvas) {
	th := &a.th
	rows := a.portRows()
	s := &a.po
	c.text(0, 0, "Ports held per destination; STEADY = held once TIME_WAIT levels off at this rate", th.dim)
	cols := append([]column(nil), portCols...)
	usageCol := 2
	pods := slices.ContainsFunc(a.snap.Ports, func(p model.PortPressure) bool { return p.PodName() != "" })
	if pods {
		cols = slices.Insert(cols, 2, podCol)
		usageCol = 3
		for _, p := range rows {
			cols[2].max = max(cols[2].max, podCol.w, width(printable(p.PodName())))
		}
	}
	if c.w >= 140 { // room for a longer bar
		cols[usageCol].w = 21
	}
	cols[0].max = 16
	for _, p := range rows {
		cols[0].max = max(cols[0].max, width(p.Dst))
	}
	ws := fitColumns(cols, c.w)
	a.tableHeader(c, 1, cols, ws, -1)
	if len(rows) == 0 {
		c.text(1, 2, noRows("no client connections seen yet", "destination", s.filter), th.dim)
		return
	}
	// the table, then what the selected row means, when there is room
	s.list.clamp(len(rows))
	detail := a.portDetail(&rows[s.list.sel], c.w)
	if c.h-2-len(detail)-1 < min(len(rows), 3) {
		detail = nil
	}
	tableH := c.h - 2
	if detail != nil {
		tableH = min(len(rows), c.h-2-len(detail)-1)
	}
	body := c.sub(0, 2, c.w, tableH)
	s.list.fit(len(rows), body.h)
	s.selKey = portKey(&rows[s.list.sel])
	for y := 0; y < body.h && s.list.top+y < len(rows); y++ {
		i := s.list.top + y
		p := &rows[i]
		st := th.normal
		sel := i == s.list.sel
		if sel {
			st = th.sel
		}
		pick := func(own cell) cell {
			if sel {
				return plain(own.text)
			}
			return own
		}
		usage := plain("?") // the range is unknown
		if p.RangeSize > 0 {
			usage = plain("") // drawn by usageBar
		}
		exhaust := plain("-")
		if p.ExhaustionS != nil {
			e := *p.ExhaustionS
			switch {
			case e <= 0:
				exhaust = styled("NOW", th.crit)
			case e < 60:
				exhaust = styled(seconds(e), th.crit)
			case e < 600:
				exhaust = styled(seconds(e), th.warn)
			default:
				exhaust = plain(seconds(e))
			}
		}
		steady := plain(count(p.SteadyHeld))
		if p.RangeSize > 0 {
			steady = styled(count(p.SteadyHeld), th.level(float64(p.SteadyHeld)/float64(p.RangeSize)))
		}
		failed := plain(count(p.ConnectEAddrNotAvail))
		if p.ConnectEAddrNotAvail > 0 {
			failed = styled(count(p.ConnectEAddrNotAvail), th.crit)
		}
		reuse := plain("?")
		if p.ReuseApplies != nil {
			if *p.ReuseApplies {
				reuse = styled("yes", th.good)
			} else {
				reuse = plain("no")
			}
		}
		growth := strconv.FormatFloat(p.GrowthPerS, 'f', 1, 64)
		if p.GrowthPerS > 0 {
			growth = "+" + growth
		}
		cells := []cell{
			plain(printable(p.Dst)), plain(printable(p.Src)), usage, plain(count(p.Held)),
			plain(count(p.Connecting)), plain(count(p.Established)), plain(count(p.Closing)), plain(count(p.TimeWait)),
			plain(rate(p.NewPerSec)), pick(steady), plain(growth), pick(exhaust), pick(failed), pick(reuse),
		}
		if pods {
			pod := plain("-")
			if name := p.PodName(); name != "" {
				pod = plain(printable(name))
			}
			cells = slices.Insert(cells, 2, pod)
		}
		body.tableRow(y, cols, ws, cells, st)
		if p.RangeSize > 0 && ws[usageCol] > 0 {
			a.usageBar(body, y, ws, usageCol, p.Usage, sel)
		}
	}
	for i, l := range detail {
		c.segs(0, 2+tableH+1+i, l)
	}
}

// usageBar draws the usage column (col) of row y: a bar of the range
// held and the share.
func (a *app) usageBar(c canvas, y int, ws []int, col int, usage float64, sel bool) {
	x := 0
	for i := 0; i < col; i++ {
		if ws[i] > 0 {
			x += ws[i] + 1
		}
	}
	pct := fmt.Sprintf("%4s", percent(usage))
	n := ws[col] - len(pct) - 1
	filled := min(int(usage*float64(n)+0.5), n)
	if usage > 0 && filled == 0 {
		filled = 1
	}
	st := a.th.level(usage)
	empty := a.th.barEmpty
	if sel {
		empty = a.th.sel
	}
	x = c.text(x, y, strings.Repeat("█", filled), st)
	x = c.text(x, y, strings.Repeat("░", n-filled), empty)
	pst := st
	if sel {
		pst = a.th.sel
	}
	c.text(x+1, y, pct, pst)
}

// portDetail explains the selected destination in sentences, wrapped to
// w columns.
func (a *app) portDetail(p *model.PortPressure, w int) [][]seg {
	th := &a.th
	out := [][]seg{{{"▸ ", th.dim}, {printable(p.Src) + " → " + printable(p.Dst), th.bold},
		{fmt.Sprintf("  netns %d  %d connections", p.Netns, p.Connections), th.dim}}}
	para := func(text string, st tcell.Style) {
		for _, l := range wrap(text, w-2) {
			out = append(out, []seg{{"  " + l, st}})
		}
	}
	if name := p.PodName(); name != "" {
		para(fmt.Sprintf("Held by pod %s: netns %d is its network namespace.", printable(name), p.Netns), th.bold)
	}
	held := fmt.Sprintf("%d connecting, %d established, %d closing, %d in TIME_WAIT", p.Connecting, p.Established, p.Closing, p.TimeWait)
	reuse := p.ReuseApplies != nil && *p.ReuseApplies
	if p.RangeSize > 0 {
		para(fmt.Sprintf("%d of %d local ports held: %s.", p.Held, p.RangeSize, held), th.normal)
	} else {
		para(fmt.Sprintf("%d local ports held: %s; the size of ip_local_port_range is not known.", p.Held, held), th.normal)
	}
	l := fmt.Sprintf("%s new connections/s and %s new TIME_WAIT sockets/s over the last %s",
		rate(p.NewPerSec), rate(p.TimewaitPerS), seconds(p.RateWindowS))
	if reuse {
		l += fmt.Sprintf("; connect() can take over those in TIME_WAIT, so %d held outside TIME_WAIT is what counts", p.SteadyHeld)
	} else {
		l += fmt.Sprintf("; TIME_WAIT lasts 60 s, so at this rate the ports held level off at about %d", p.SteadyHeld)
		if p.RangeSize > 0 {
			l += fmt.Sprintf(" (%s of the range)", percent(float64(p.SteadyHeld)/float64(p.RangeSize)))
		}
	}
	para(l+".", th.normal)
	if p.ReuseApplies != nil {
		word, st := "cannot", th.normal
		if *p.ReuseApplies {
			word, st = "can", th.good
		}
		note := fmt.Sprintf("tcp_tw_reuse %s apply: %s.", word, printable(p.ReuseNote))
		if p.ConnectReuse > 0 {
			note += fmt.Sprintf(" connect() took over %d TIME_WAIT tuples towards it.", p.ConnectReuse)
		}
		para(note, st)
	}
	if p.ConnectEAddrNotAvail > 0 {
		para(fmt.Sprintf("%d connect() calls towards it failed with EADDRNOTAVAIL.", p.ConnectEAddrNotAvail), th.crit)
	}
	switch {
	case p.ExhaustionS == nil && p.RangeSize > 0 && reuse:
		para("Only the ports held outside TIME_WAIT can run the range out, and they stay within it.", th.normal)
	case p.ExhaustionS == nil && p.RangeSize > 0:
		para("At the current rate the ports held stay within the range.", th.normal)
	case p.ExhaustionS == nil:
	case *p.ExhaustionS <= 0:
		para("The range is full: connect() fails with EADDRNOTAVAIL unless it can take over a TIME_WAIT tuple.", th.crit)
	default:
		para(fmt.Sprintf("At the current rate the range runs out in %s, as the TIME_WAIT sockets held now expire and more replace them.", seconds(*p.ExhaustionS)), th.crit)
	}
	return out
}
