package ui

import (
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/twtop/twtop/tracer/model"
)

// drawHeader draws the two header lines: where the events come from and
// how the pipeline is doing.
func (a *app) drawHeader(c canvas) {
	st, th := &a.st, &a.th
	left := []seg{{"twtop", th.brand}}
	add := func(s string) {
		if s != "" {
			left = append(left, seg{"  " + printable(s), th.normal})
		}
	}
	add(st.Host)
	add(st.Kernel)
	if st.Tier != "" {
		left = append(left, seg{"  tier ", th.dim}, seg{printable(st.Tier), th.bold})
		if st.Inferred {
			left = append(left, seg{" (ends inferred)", th.warn})
		}
	}
	c.leftRight(0, left, a.timewaitGauge())

	var mode []seg
	if st.Live {
		mode = append(mode, seg{"LIVE", th.live})
		if a.snap != nil {
			mode = append(mode, seg{"  " + seconds(a.snap.DurationSeconds()) + " traced", th.normal})
		}
	} else {
		mode = append(mode, seg{"REPLAY", th.replay}, seg{" " + printable(filepath.Base(st.File)), th.normal})
		pos := "  " + clock(st.Position)
		if st.Length > 0 {
			pos += "/" + clock(st.Length)
		}
		mode = append(mode, seg{pos, th.normal}, seg{"  " + speed(st.Speed), th.bold})
	}
	if st.Paused {
		mode = append(mode, seg{"  ", th.normal}, seg{" PAUSED ", th.paused})
	}
	if st.Done && !st.Live {
		mode = append(mode, seg{"  ", th.normal}, seg{" DONE ", th.done})
	}
	right := []seg{{rate(st.EventsPerSec) + " ev/s  ", th.normal}}
	if st.Lost > 0 {
		right = append(right, seg{" lost " + count(st.Lost) + " ", th.lost})
	} else {
		right = append(right, seg{"lost 0", th.dim})
	}
	c.leftRight(1, mode, right)
}

// timewaitGauge is "TIME_WAIT open/tcp_max_tw_buckets" for the fullest
// namespace whose limit is known, or the open count alone.
func (a *app) timewaitGauge() []seg {
	th := &a.th
	s := a.snap
	if s == nil {
		return nil
	}
	limits := map[uint32]int{}
	for _, st := range s.Settings {
		if st.MaxTwBuckets > 0 {
			limits[st.Netns] = st.MaxTwBuckets
		}
	}
	var best *model.NetnsStats
	bestRatio := -1.0
	for i := range s.Netns {
		n := &s.Netns[i]
		lim := limits[n.Netns]
		if lim == 0 {
			lim = int(n.MaxBuckets)
		}
		if lim == 0 {
			continue
		}
		if r := float64(n.Open) / float64(lim); r > bestRatio {
			best, bestRatio = n, r
		}
	}
	out := []seg{{"TIME_WAIT ", th.dim}}
	if best == nil {
		if len(s.Settings) == 1 && s.Settings[0].MaxTwBuckets > 0 {
			// one traced namespace that has seen no TIME_WAIT yet
			return append(out, seg{strconv.Itoa(s.OpenNow), th.bold}, seg{"/" + strconv.Itoa(s.Settings[0].MaxTwBuckets), th.normal})
		}
		return append(out, seg{strconv.Itoa(s.OpenNow), th.bold})
	}
	lim := limits[best.Netns]
	if lim == 0 {
		lim = int(best.MaxBuckets)
	}
	if len(s.Netns) == 1 {
		return append(out, seg{strconv.Itoa(s.OpenNow), th.level(bestRatio)}, seg{"/" + strconv.Itoa(lim), th.normal})
	}
	return append(out, seg{strconv.Itoa(s.OpenNow), th.bold},
		seg{fmt.Sprintf(" (netns %d: ", best.Netns), th.dim},
		seg{strconv.FormatInt(best.Open, 10), th.level(bestRatio)},
		seg{"/" + strconv.Itoa(lim) + ")", th.dim})
}

// drawTabs draws the screens' names, the current one highlighted, and
// what the current screen shows on the right.
func (a *app) drawTabs(c canvas) {
	th := &a.th
	x := 0
	for v := range numViews {
		st := th.tab
		if v == a.cur {
			st = th.tabOn
		}
		x = c.text(x, 0, fmt.Sprintf(" %d %s ", v+1, viewNames[v]), st)
		x = c.text(x, 0, " ", th.normal)
	}
	right := a.viewContext()
	if w := segsWidth(right); x+w+1 <= c.w {
		c.segs(c.w-w, 0, right)
	} else if x+10 < c.w {
		c.sub(x+1, 0, c.w-x-1, 1).segs(0, 0, right)
	}
}

// viewContext says what the current screen is showing: ranking, sort,
// filter, scroll.
func (a *app) viewContext() []seg {
	th := &a.th
	var out []seg
	filter := func(f string) {
		if f != "" && !a.editing {
			out = append(out, seg{"filter ", th.dim}, seg{printable(f), th.bold})
		}
	}
	sep := func() {
		if len(out) > 0 {
			out = append(out, seg{"  ", th.normal})
		}
	}
	switch a.cur {
	case viewClosers:
		if a.drill {
			filter(a.dr.filter)
			sep()
			out = append(out, seg{a.dr.list.state(), th.dim})
			break
		}
		filter(a.cl.filter)
	case viewPorts:
		filter(a.po.filter)
	case viewEvents:
		filter(a.ev.filter)
		sep()
		out = append(out, seg{a.ev.list.state(), th.dim})
	}
	return out
}

// drawFooter draws the keys that work on the current screen, or the
// filter being typed.
func (a *app) drawFooter(c canvas) {
	th := &a.th
	if a.editing {
		x := c.text(0, 0, "/", th.key)
		x = c.text(x, 0, printable(string(a.edit)), th.bold)
		x = c.text(x, 0, "█", th.normal)
		c.text(x+2, 0, "Enter apply  Esc cancel", th.dim)
		return
	}
	keys := [][2]string{{"q", "quit"}, {"?", "help"}}
	switch a.cur {
	case viewOverview:
		keys = append(keys, [2]string{"↑↓", "finding"}, [2]string{"Enter", "evidence"})
	case viewClosers:
		if a.drill {
			keys = append(keys, [2]string{"Esc", "back"}, [2]string{"/", "filter"}, [2]string{"↑↓", "scroll"}, [2]string{"End", "follow"})
		} else {
			keys = append(keys, [2]string{"Enter", "events"}, [2]string{"b", "ranking"}, [2]string{"<>", "sort"},
				[2]string{"r", "reverse"}, [2]string{"/", "filter"})
		}
	case viewPorts:
		keys = append(keys, [2]string{"↑↓", "select"}, [2]string{"/", "filter"})
	case viewEvents:
		keys = append(keys, [2]string{"↑↓", "scroll"}, [2]string{"End", "follow"}, [2]string{"/", "filter"})
	}
	keys = append(keys, [2]string{"p", "pause"})
	if !a.st.Live {
		keys = append(keys, [2]string{"+-", "speed"})
	}
	keys = append(keys, [2]string{"Tab", "screens"})
	x := 0
	for _, k := range keys {
		w := width(k[0]) + 1 + width(k[1]) + 2
		if x+w-2 > c.w {
			break
		}
		x = c.text(x, 0, k[0], th.key)
		x = c.text(x+1, 0, k[1], th.normal)
		x += 2
	}
}
