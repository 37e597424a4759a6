package ui

// helpKeys lists every key, as the help overlay shows them.
var helpKeys = [][2]string{
	{"", "Anywhere"},
	{"q  Ctrl-C", "quit"},
	{"?  5", "this help (Esc or ? closes it)"},
	{"1 2 3 4", "Overview, Closers, Ports, Events"},
	{"Tab  Shift-Tab", "next / previous screen"},
	{"p  Space", "pause / resume (a replay stops its clock)"},
	{"+  -", "replay speed ×2 / ÷2: 1/16 … 1024, then max"},
	{"/", "filter the list (Enter applies, Esc cancels)"},
	{"Esc", "back from a row's events; clear the filter"},
	{"↑ ↓  j k", "move / scroll"},
	{"PgUp PgDn", "a page up / down (also Ctrl-B Ctrl-F)"},
	{"Home End  g G", "first / last (End follows new events)"},
	{"", "Overview"},
	{"Enter", "show or hide the selected finding's evidence"},
	{"", "Closers"},
	{"Enter", "the recent events of the selected row"},
	{"b", "next ranking (live: pod, container, service)"},
	{"<  >", "sort by the column left / right"},
	{"s", "sort by the next column"},
	{"r", "reverse the sort"},
	{"", "Events"},
	{"*", "after a kind: an inferred event"},
}

// drawHelp draws the help overlay centred on the screen.
func (a *app) drawHelp(c canvas) {
	th := &a.th
	sections := 0
	for _, k := range helpKeys {
		if k[0] == "" {
			sections++
		}
	}
	// blank lines around the text and between sections when they fit
	roomy := c.h >= len(helpKeys)+2+sections+1
	h := len(helpKeys) + 2
	if roomy {
		h += sections + 1
	}
	w := min(66, c.w)
	h = min(h, c.h)
	box := c.sub((c.w-w)/2, (c.h-h)/2, w, h)
	box.clear(th.normal)
	for x := 1; x < box.w-1; x++ {
		box.text(x, 0, "─", th.border)
		box.text(x, box.h-1, "─", th.border)
	}
	for y := 1; y < box.h-1; y++ {
		box.text(0, y, "│", th.border)
		box.text(box.w-1, y, "│", th.border)
	}
	box.text(0, 0, "┌", th.border)
	box.text(box.w-1, 0, "┐", th.border)
	box.text(0, box.h-1, "└", th.border)
	box.text(box.w-1, box.h-1, "┘", th.border)
	box.text(2, 0, " twtop keys ", th.bold)
	box.text(max(box.w-19, 2), box.h-1, " Esc or ? closes ", th.dim)

	in := box.sub(2, 1, box.w-4, box.h-2)
	y := 0
	if roomy {
		y = 1
	}
	for i, k := range helpKeys {
		if k[0] == "" {
			if roomy && i > 0 {
				y++
			}
			in.text(0, y, k[1], th.label)
			y++
			continue
		}
		in.field(1, y, 15, k[0], th.key, false)
		in.text(17, y, k[1], th.normal)
		y++
	}
}
