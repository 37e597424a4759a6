package ui

import (
	"github.com/gdamore/tcell/v2"
	"github.com/twtop/twtop/tracer/event"
)

// theme is every style the UI draws with. Colours are the basic ones an
// 8-colour terminal has; without colour (NO_COLOR) only attributes remain:
// bold, underline, reverse, dim.
type theme struct {
	normal   tcell.Style
	dim      tcell.Style
	bold     tcell.Style
	brand    tcell.Style // "twtop" in the header
	label    tcell.Style // section names of the overview
	tab      tcell.Style // a screen's name in the tab bar
	tabOn    tcell.Style // the current screen's
	head     tcell.Style // table header
	headSort tcell.Style // the sorted column's header
	sel      tcell.Style // the selected row
	key      tcell.Style // a key in the footer and the help
	crit     tcell.Style
	warn     tcell.Style
	info     tcell.Style
	good     tcell.Style
	live     tcell.Style
	replay   tcell.Style
	paused   tcell.Style
	done     tcell.Style
	lost     tcell.Style // lost events, when there are some
	spark    tcell.Style // the open TIME_WAIT sparkline
	barEmpty tcell.Style
	border   tcell.Style
	// sides of a close, for the share bar of the overview
	sides [5]tcell.Style
	// event kinds, for the events tail
	kinds map[event.Kind]tcell.Style
}

func newTheme(noColor bool) theme {
	d := tcell.StyleDefault
	t := theme{
		normal:   d,
		dim:      d.Dim(true),
		bold:     d.Bold(true),
		brand:    d.Bold(true),
		label:    d.Bold(true),
		tab:      d,
		tabOn:    d.Reverse(true).Bold(true),
		head:     d.Bold(true).Underline(true),
		headSort: d.Bold(true).Underline(true).Reverse(true),
		sel:      d.Reverse(true),
		key:      d.Bold(true),
		crit:     d.Bold(true).Reverse(true),
		warn:     d.Bold(true),
		info:     d,
		good:     d,
		live:     d.Bold(true),
		replay:   d.Bold(true),
		paused:   d.Reverse(true).Bold(true),
		done:     d.Reverse(true),
		lost:     d.Reverse(true).Bold(true),
		spark:    d,
		barEmpty: d.Dim(true),
		border:   d,
		kinds:    map[event.Kind]tcell.Style{},
	}
	for i := range t.sides {
		t.sides[i] = d
	}
	if noColor {
		for _, k := range []event.Kind{event.KindTWOverflow, event.KindConnectErr, event.KindBindErr} {
			t.kinds[k] = d.Bold(true)
		}
		return t
	}
	fg := func(c tcell.Color) tcell.Style { return d.Foreground(c) }
	t.brand = fg(tcell.ColorTeal).Bold(true)
	t.label = fg(tcell.ColorTeal).Bold(true)
	t.tabOn = d.Background(tcell.ColorTeal).Foreground(tcell.ColorBlack).Bold(true)
	t.head = d.Background(tcell.ColorGreen).Foreground(tcell.ColorBlack)
	t.headSort = d.Background(tcell.ColorTeal).Foreground(tcell.ColorBlack).Bold(true)
	t.sel = d.Background(tcell.ColorTeal).Foreground(tcell.ColorBlack)
	t.key = fg(tcell.ColorTeal).Bold(true)
	t.crit = fg(tcell.ColorRed).Bold(true)
	t.warn = fg(tcell.ColorYellow).Bold(true)
	t.info = fg(tcell.ColorTeal)
	t.good = fg(tcell.ColorGreen)
	t.live = fg(tcell.ColorGreen).Bold(true)
	t.replay = fg(tcell.ColorTeal).Bold(true)
	t.paused = d.Background(tcell.ColorYellow).Foreground(tcell.ColorBlack).Bold(true)
	t.done = d.Background(tcell.ColorGreen).Foreground(tcell.ColorBlack)
	t.lost = d.Background(tcell.ColorRed).Foreground(tcell.ColorWhite).Bold(true)
	t.spark = fg(tcell.ColorYellow)
	t.border = fg(tcell.ColorTeal)
	t.sides[1] = fg(tcell.ColorYellow) // active: this side keeps the TIME_WAIT
	t.sides[2] = fg(tcell.ColorGreen)  // passive
	t.sides[3] = fg(tcell.ColorTeal)   // simultaneous
	t.sides[4] = fg(tcell.ColorRed)    // reset
	t.kinds[event.KindTWCreate] = fg(tcell.ColorYellow)
	t.kinds[event.KindTWSubstate] = fg(tcell.ColorYellow)
	t.kinds[event.KindTWExpire] = fg(tcell.ColorGreen)
	t.kinds[event.KindTWKill] = fg(tcell.ColorPurple)
	t.kinds[event.KindTWReuse] = fg(tcell.ColorTeal)
	t.kinds[event.KindTWRx] = fg(tcell.ColorTeal)
	for _, k := range []event.Kind{event.KindTWOverflow, event.KindConnectErr, event.KindBindErr} {
		t.kinds[k] = fg(tcell.ColorRed).Bold(true)
	}
	return t
}

// severity is the style and the badge of a finding's severity.
func (t *theme) severity(s string) (tcell.Style, string) {
	switch s {
	case "critical":
		return t.crit, "CRIT"
	case "warning":
		return t.warn, "WARN"
	}
	return t.info, "INFO"
}

// level styles a fill ratio: fine below half, a warning below 85%, then
// critical (the advisor's port thresholds).
func (t *theme) level(ratio float64) tcell.Style {
	switch {
	case ratio >= 0.85:
		return t.crit
	case ratio >= 0.5:
		return t.warn
	}
	return t.good
}
