package ui

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/gdamore/tcell/v2"
	"github.com/twtop/twtop/tracer/model"
)

// overviewState is the findings list of the overview: which finding is
// selected and which show their evidence.
type overviewState struct {
	list     list
	expanded map[string]bool // by findingKey, where the user chose
	roomy    bool            // the last frame had room to show all the evidence
	// the selected finding's lines and the finding they were laid out
	// for, at the last frame
	selStart, selEnd int
	shown            int
}

// isExpanded says whether a finding shows its evidence: as the user chose,
// or when there is room.
func (s *overviewState) isExpanded(f *model.Finding) bool {
	if v, ok := s.expanded[findingKey(f)]; ok {
		return v
	}
	return s.roomy
}

func findingKey(f *model.Finding) string { return f.ID + "\x00" + f.Title }

// labelWidth is the width of the overview's section names.
const labelWidth = 11

// drawOverview draws the answers at a glance: who closes, how many
// TIME_WAIT sockets over time, how they live and end, reuse, errors, the
// kernel's own counters and the advisor's findings.
func (a *app) drawOverview(c canvas) {
	s, th := a.snap, &a.th
	inferred := &s.Counters.Inferred // the figures the tier could only infer
	y := 0
	line := func(label string, ss ...seg) {
		c.text(0, y, label, th.label)
		c.segs(labelWidth, y, ss)
		y++
	}
	num := func(v uint64, st tcell.Style) seg {
		if v == 0 {
			st = th.dim
		}
		return seg{count(v), st}
	}
	secs := s.DurationSeconds()
	perSec := func(v uint64) string { return rate(float64(v)/secs) + "/s" }
	lay := a.overviewLayout(c)

	// who closes first
	closed := s.ClosedSockets()
	var cl []seg
	sides := []struct {
		side model.Side
		name string
	}{{model.SideActive, "active"}, {model.SidePassive, "passive"}, {model.SideSimultaneous, "simultaneous"}, {model.SideReset, "reset"}}
	for i, sd := range sides {
		v := s.Counters.Closes[sd.side]
		if i > 0 {
			cl = append(cl, seg{"  ", th.normal})
		}
		cl = append(cl, num(v, th.sides[sd.side].Bold(true)), seg{" " + sd.name, th.normal})
		if closed > 0 && v > 0 {
			cl = append(cl, seg{" " + percent(float64(v)/float64(closed)), th.dim})
		}
		if sd.side == model.SideReset && v > 0 {
			cl = append(cl, seg{fmt.Sprintf(" (%d received)", s.Counters.ResetReceived), th.dim})
		}
	}
	if closed > 0 && secs > 0 {
		cl = append(cl, seg{"  (" + perSec(closed) + ")", th.dim})
	}
	line("Closes", cl...)
	if lay.bar {
		a.shareBar(c.sub(labelWidth, y, c.w-labelWidth, 1), s)
		y++
	}

	// TIME_WAIT now and over time
	c0 := &s.Counters
	tw := []seg{num(c0.Created, th.bold), seg{" created", th.normal}}
	if c0.Created > 0 && secs > 0 {
		tw = append(tw, seg{" (" + perSec(c0.Created) + ")", th.dim})
	}
	tw = append(tw, seg{"  ", th.normal}, seg{strconv.Itoa(s.OpenNow), th.spark.Bold(true)}, seg{" open", th.normal})
	if c0.Existing > 0 {
		tw = append(tw, seg{fmt.Sprintf("  %d at start", c0.Existing), th.normal})
	}
	if c0.CreatedFinWait2 > 0 {
		tw = append(tw, seg{fmt.Sprintf("  %d FIN_WAIT2 substate", c0.CreatedFinWait2), th.normal})
	}
	ov := th.normal
	if c0.Overflow > 0 {
		ov = th.crit
	}
	tw = append(tw, seg{"  ", th.normal}, seg{count(c0.Overflow) + " overflow", ov})
	if inferred.Overflow {
		tw = append(tw, seg{" (inferred)", th.dim})
	}
	line("TIME_WAIT", tw...)

	kernelRows, settingsRows, sparkRows := lay.kernel, lay.settings, lay.spark
	series := openSeries(s)
	spanLabel, stretch := sparkScale(len(series), c.w-labelWidth)
	peak := int64(0)
	for _, v := range series {
		peak = max(peak, v)
	}
	right := []seg{}
	if len(series) > 0 {
		right = append(right, seg{"now ", th.dim}, seg{strconv.FormatInt(series[len(series)-1], 10), th.normal},
			seg{"  peak ", th.dim}, seg{strconv.FormatInt(peak, 10), th.normal})
	}
	c.sub(labelWidth, y, c.w-labelWidth, 1).leftRight(0, []seg{{"open over " + spanLabel, th.dim}}, right)
	y++
	a.sparkline(c.sub(labelWidth, y, c.w-labelWidth, sparkRows), series, stretch, peak)
	y += sparkRows

	// lifetime and ends
	if l := s.LifetimeMS(); l.Count > 0 {
		ms := func(v float64) string { return dur(v * 1e6) }
		lt := []seg{{"p50 ", th.dim}, {ms(l.P50), th.bold}, {"  p90 ", th.dim}, {ms(l.P90), th.bold},
			{"  p99 ", th.dim}, {ms(l.P99), th.bold}, {"  max ", th.dim}, {ms(l.Max), th.bold},
			{fmt.Sprintf("  of %d ended", l.Count), th.normal}}
		if inferred.Ended {
			lt = append(lt, seg{" (inferred)", th.dim})
		}
		line("Lifetime", lt...)
	} else {
		line("Lifetime", seg{"no TIME_WAIT socket seen from creation to end yet", th.dim})
	}
	e := s.EndedCounts()
	ends := []seg{num(e.Expired, th.good), {" expired  ", th.normal}, num(e.Reused, th.bold), {" reused  ", th.normal},
		num(e.SynRecycled, th.bold), {" SYN  ", th.normal}, num(e.RST, th.bold), {" RST  ", th.normal},
		num(e.Purged, th.bold), {" purged  ", th.normal}, num(e.Unknown, th.bold), {" unknown", th.normal}}
	if inferred.Ended {
		ends = append(ends, seg{" (inferred)", th.dim})
	}
	line("Ended", ends...)

	// reuse and errors
	ru := s.ReuseFigures()
	reuse := []seg{num(ru.ConnectReuse, th.bold), {" by connect", th.normal}}
	var notes []string
	if ru.ConnectReuse > 0 {
		notes = append(notes, percent(ru.ConnectShare)+" of connects")
	}
	if inferred.Reuse {
		notes = append(notes, "inferred")
	}
	if len(notes) > 0 {
		reuse = append(reuse, seg{" (" + strings.Join(notes, ", ") + ")", th.dim})
	}
	reuse = append(reuse, seg{"  ", th.normal}, num(ru.SynRecycle, th.bold), seg{" by SYN", th.normal})
	if ru.AgeMS.Count > 0 {
		age := "p50 " + dur(ru.AgeMS.P50*1e6)
		if c.w >= 100 {
			age += "  max " + dur(ru.AgeMS.Max*1e6)
		}
		reuse = append(reuse, seg{"  age ", th.dim}, seg{age, th.normal})
	}
	line("Reuse", reuse...)
	line("Errors", num(c0.ConnectAddrNotAvail, th.crit), seg{" EADDRNOTAVAIL (connect)  ", th.normal},
		num(c0.BindAddrInUse, th.crit), seg{" EADDRINUSE (bind)", th.normal})

	// the kernel's view
	if len(s.Kernel) == 0 {
		line("Kernel", seg{"no TcpExt counters read", th.dim})
	}
	for i, k := range s.Kernel[:kernelRows] {
		label := ""
		if i == 0 {
			label = "Kernel"
		}
		delta := func(name string, v int64) []seg {
			return []seg{{"  " + name + " ", th.dim}, {fmt.Sprintf("%+d", v), th.normal}}
		}
		ks := []seg{{fmt.Sprintf("netns %d", k.Netns), th.normal}}
		ks = append(ks, delta("TW", k.TW)...)
		ks = append(ks, delta("TWKilled", k.TWKilled)...)
		ks = append(ks, delta("TWRecycled", k.TWRecycled)...)
		ks = append(ks, delta("Overflow", k.TimewaitOverflow)...)
		if i == kernelRows-1 && kernelRows < len(s.Kernel) {
			ks = append(ks, seg{fmt.Sprintf("  +%d more", len(s.Kernel)-kernelRows), th.dim})
		}
		line(label, ks...)
	}
	if settingsRows > 0 {
		for i, st := range s.Settings[:settingsRows] {
			label := ""
			if i == 0 {
				label = "Settings"
			}
			line(label, seg{fmt.Sprintf("netns %d", st.Netns), th.normal},
				seg{"  tcp_tw_reuse ", th.dim}, seg{strconv.Itoa(st.TwReuse), th.normal},
				seg{"  tcp_max_tw_buckets ", th.dim}, seg{strconv.Itoa(st.MaxTwBuckets), th.normal},
				seg{"  ip_local_port_range ", th.dim}, seg{fmt.Sprintf("%d-%d (%d)", st.PortLow, st.PortHigh, st.PortRangeSize()), th.normal},
				seg{"  tcp_fin_timeout ", th.dim}, seg{strconv.Itoa(st.FinTimeoutS) + "s", th.normal})
		}
	}

	// advice
	if lay.blank {
		y++
	}
	if y >= c.h {
		return
	}
	hint := []seg{{"↑↓ select  Enter evidence", th.dim}}
	if len(s.Findings) == 0 {
		hint = nil
	}
	c.sub(0, y, c.w, 1).leftRight(0, []seg{{"Findings", th.label}, {strings.Repeat(" ", labelWidth-8) + strconv.Itoa(len(s.Findings)), th.bold}}, hint)
	y++
	a.drawFindings(c.sub(0, y, c.w, c.h-y), s.Findings)
}

// overviewLayout is how the overview's lines fit its height.
type overviewLayout struct {
	bar, blank       bool // the share bar of closes, a blank line before the findings
	spark            int  // rows of the sparkline
	kernel, settings int  // rows of kernel counters and of settings
}

// overviewLayout gives the findings the lines they need, then the
// sparkline its second row, the share bar, a blank line, and the
// sparkline more rows while a few lines stay free for evidence.
func (a *app) overviewLayout(c canvas) overviewLayout {
	s := a.snap
	a.ov.roomy = c.h >= 40
	var l overviewLayout
	l.kernel = len(s.Kernel)
	if c.h < 30 {
		l.kernel = min(l.kernel, 2)
	}
	if c.h >= 24 {
		l.settings = len(s.Settings)
		if c.h < 40 {
			l.settings = min(l.settings, 2)
		}
	}
	// closes, TIME_WAIT, the sparkline's label and first row, lifetime,
	// ends, reuse, errors, kernel, settings, the findings' title
	base := 1 + 1 + 2 + 4 + max(l.kernel, 1) + l.settings + 1
	flines, _, _ := a.findingLines(s.Findings, c.w)
	free := c.h - base - max(len(flines), 1)
	take := func() bool {
		if free > 0 {
			free--
			return true
		}
		return false
	}
	l.spark = 1
	if take() {
		l.spark++
	}
	l.bar = take()
	l.blank = take()
	for l.spark < 6 && free > 4 {
		l.spark++
		free--
	}
	return l
}

// fline is a line of the findings list.
type fline struct {
	segs  []seg
	of    int  // the finding it belongs to
	title bool // the finding's first line
}

// findingLines lays the findings out in w columns: a line each, followed
// by advice and evidence when expanded; selStart and selEnd delimit the
// selected finding's lines.
func (a *app) findingLines(fs []model.Finding, w int) (lines []fline, selStart, selEnd int) {
	th := &a.th
	sel := a.ov.list.sel
	w = min(w, 120) // long lines are hard to read
	for i := range fs {
		f := &fs[i]
		st, badge := th.severity(f.Severity)
		open := a.ov.isExpanded(f)
		mark := "▸ "
		if open {
			mark = "▾ "
		}
		if i == sel {
			selStart = len(lines)
		}
		lines = append(lines, fline{segs: []seg{{" " + mark, th.dim}, {fmt.Sprintf("%-4s", badge), st}, {"  " + printable(f.Title), th.normal}}, of: i, title: true})
		if open {
			for _, l := range wrap(printable(f.Advice), w-9) {
				lines = append(lines, fline{segs: []seg{{strings.Repeat(" ", 9) + l, th.dim}}, of: i})
			}
			for _, ev := range f.Evidence {
				for j, l := range wrap(printable(ev), w-11) {
					lead := "         • "
					if j > 0 {
						lead = strings.Repeat(" ", 11)
					}
					lines = append(lines, fline{segs: []seg{{lead + l, th.normal}}, of: i})
				}
			}
		}
		if i == sel {
			selEnd = len(lines)
		}
	}
	return lines, selStart, selEnd
}

// drawFindings draws the findings. The list scrolls to keep the selected
// finding and as much of its evidence as fits in view.
func (a *app) drawFindings(c canvas, fs []model.Finding) {
	th := &a.th
	if len(fs) == 0 {
		c.text(1, 0, "none: nothing in the events calls for advice", th.dim)
		return
	}
	l := &a.ov.list
	l.clamp(len(fs))
	lines, selStart, selEnd := a.findingLines(fs, c.w)
	if a.ov.shown != l.sel || selEnd <= l.top || selStart >= l.top+c.h {
		// a newly selected finding: its title and as much as fits after it
		if selStart < l.top {
			l.top = selStart
		}
		if selEnd > l.top+c.h {
			l.top = min(selStart, selEnd-c.h)
		}
	}
	l.top = min(max(l.top, 0), max(len(lines)-c.h, 0))
	l.rows = c.h
	a.ov.selStart, a.ov.selEnd, a.ov.shown = selStart, selEnd, l.sel
	for y := 0; y < c.h && l.top+y < len(lines); y++ {
		ln := lines[l.top+y]
		if ln.title && ln.of == l.sel {
			c.fillRow(0, y, th.sel)
			ss := make([]seg, len(ln.segs))
			for i, s := range ln.segs {
				ss[i] = seg{s.text, th.sel}
			}
			c.segs(0, y, ss)
			continue
		}
		c.segs(0, y, ln.segs)
	}
	if l.top > 0 {
		c.text(c.w-1, 0, "↑", th.dim)
	}
	if l.top+c.h < len(lines) {
		c.text(c.w-1, c.h-1, "↓", th.dim)
	}
}

// shareBar draws the closes by side as one bar: who closes first, at a
// glance.
func (a *app) shareBar(c canvas, s *model.Snapshot) {
	th := &a.th
	total := s.ClosedSockets()
	if total == 0 || c.w <= 0 {
		return
	}
	fills := [5]string{"", "█", "▓", "▒", "░"}
	x := 0
	var acc uint64
	for side := model.SideActive; side <= model.SideReset; side++ {
		acc += s.Counters.Closes[side]
		end := int(math.Round(float64(acc) / float64(total) * float64(c.w)))
		if s.Counters.Closes[side] > 0 && end == x && x < c.w {
			end = x + 1 // every side that closed something shows
		}
		for ; x < end && x < c.w; x++ {
			c.text(x, 0, fills[side], th.sides[side])
		}
	}
}

// openSeries is the part of the snapshot's open TIME_WAIT series that the
// trace covers: the series reaches back 600 seconds whether or not events
// were seen then.
func openSeries(s *model.Snapshot) []int64 {
	ser := s.OpenSeries
	if s.First == 0 || s.Now < s.First {
		return ser
	}
	n := int(s.Now/1e9-s.First/1e9) + 1
	if n < len(ser) {
		ser = ser[len(ser)-n:]
	}
	return ser
}

// sparkScale says how n seconds fit in w columns: the span's label and
// how many columns a second takes (negative: how many seconds a column
// takes).
func sparkScale(n, w int) (string, int) {
	label := fmt.Sprintf("the last %d s", n)
	if n == 0 || w <= 0 {
		return "time", 1
	}
	if n <= w {
		return label, w / n
	}
	per := (n + w - 1) / w
	return fmt.Sprintf("%s, %d s a column", label, per), -per
}

const blocks = " ▁▂▃▄▅▆▇█"

// sparkline draws series (oldest first) scaled to peak over c's rows,
// newest against the right edge; stretch is sparkScale's.
func (a *app) sparkline(c canvas, series []int64, stretch int, peak int64) {
	if len(series) == 0 || c.w <= 0 || c.h <= 0 {
		return
	}
	var cols []int64
	if stretch > 0 {
		for _, v := range series {
			for range stretch {
				cols = append(cols, v)
			}
		}
	} else {
		per := -stretch
		// buckets end at the newest second; a column shows its bucket's peak
		for end := len(series); end > 0; end -= per {
			m := int64(0)
			for _, v := range series[max(end-per, 0):end] {
				m = max(m, v)
			}
			cols = append([]int64{m}, cols...)
		}
	}
	if len(cols) > c.w {
		cols = cols[len(cols)-c.w:]
	}
	x0 := c.w - len(cols)
	levels := c.h * 8
	for i, v := range cols {
		lv := 0
		if peak > 0 && v > 0 {
			lv = max(int(math.Ceil(float64(v)/float64(peak)*float64(levels))), 1)
		}
		for row := range c.h {
			f := min(max(lv-row*8, 0), 8)
			ch := string([]rune(blocks)[f])
			if f == 0 && row == 0 {
				ch = "_" // a zero still shows on the baseline
				c.text(x0+i, c.h-1-row, ch, a.th.dim)
				continue
			}
			c.text(x0+i, c.h-1-row, ch, a.th.spark)
		}
	}
}
