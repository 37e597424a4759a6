package ui

import (
	"strings"
	"unicode"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/uniseg"
)

// canvas is a rectangle of the screen to draw in; everything drawn is
// clipped to it.
type canvas struct {
	s          tcell.Screen
	x, y, w, h int
}

// sub is the part of c at (x, y) relative to c, w wide and h high, clipped.
func (c canvas) sub(x, y, w, h int) canvas {
	x, y = max(x, 0), max(y, 0)
	w, h = min(w, c.w-x), min(h, c.h-y)
	return canvas{c.s, c.x + x, c.y + y, max(w, 0), max(h, 0)}
}

// clear fills c with blanks of style st.
func (c canvas) clear(st tcell.Style) {
	for y := range c.h {
		for x := range c.w {
			c.s.SetContent(c.x+x, c.y+y, ' ', nil, st)
		}
	}
}

// fillRow paints row y from x to the right edge with blanks of style st.
func (c canvas) fillRow(x, y int, st tcell.Style) {
	if y < 0 || y >= c.h {
		return
	}
	for ; x < c.w; x++ {
		c.s.SetContent(c.x+x, c.y+y, ' ', nil, st)
	}
}

// text draws s at (x, y) and returns the column after it. What does not
// fit is cut off.
func (c canvas) text(x, y int, s string, st tcell.Style) int {
	if y < 0 || y >= c.h {
		return x
	}
	state := -1
	for s != "" && x < c.w {
		var g string
		var w int
		g, s, w, state = uniseg.FirstGraphemeClusterInString(s, state)
		if w == 0 {
			continue
		}
		if x+w > c.w {
			break
		}
		if x >= 0 {
			c.s.Put(c.x+x, c.y+y, g, st)
		}
		x += w
	}
	return x
}

// field draws s in a field of width w at (x, y): cut with an ellipsis when
// too long, padded with blanks of style st, on the right when right.
func (c canvas) field(x, y, w int, s string, st tcell.Style, right bool) int {
	if w <= 0 {
		return x
	}
	s = truncate(s, w)
	pad := w - width(s)
	if right {
		c.text(x, y, strings.Repeat(" ", pad), st)
		c.text(x+pad, y, s, st)
	} else {
		c.text(x, y, s, st)
		c.text(x+w-pad, y, strings.Repeat(" ", pad), st)
	}
	return x + w
}

// seg is a piece of text with its style.
type seg struct {
	text string
	st   tcell.Style
}

// segs draws pieces one after the other and returns the column after them;
// what does not fit is cut with an ellipsis.
func (c canvas) segs(x, y int, ss []seg) int {
	for _, s := range ss {
		if x+width(s.text) > c.w {
			return c.text(x, y, truncate(s.text, c.w-x), s.st)
		}
		x = c.text(x, y, s.text, s.st)
	}
	return x
}

// leftRight draws left at the start of row y and right against its end;
// right wins when both do not fit.
func (c canvas) leftRight(y int, left, right []seg) {
	rw := segsWidth(right)
	if rw > c.w {
		c.segs(0, y, right)
		return
	}
	lc := c.sub(0, 0, c.w-rw-1, c.h)
	if rw == 0 {
		lc = c
	}
	lc.segs(0, y, left)
	c.segs(c.w-rw, y, right)
}

func segsWidth(ss []seg) int {
	n := 0
	for _, s := range ss {
		n += width(s.text)
	}
	return n
}

// width is how many cells s takes.
func width(s string) int { return uniseg.StringWidth(s) }

// truncate cuts s to at most w cells, ending it with an ellipsis when cut.
func truncate(s string, w int) string {
	if width(s) <= w {
		return s
	}
	if w <= 0 {
		return ""
	}
	var b strings.Builder
	n, state := 0, -1
	for s != "" {
		var g string
		var gw int
		g, s, gw, state = uniseg.FirstGraphemeClusterInString(s, state)
		if n+gw > w-1 {
			break
		}
		b.WriteString(g)
		n += gw
	}
	b.WriteString("…")
	return b.String()
}

// cut splits s after at most w cells (at least one grapheme).
func cut(s string, w int) (string, string) {
	n, state, i := 0, -1, 0
	rest := s
	for rest != "" {
		g, r, gw, st := uniseg.FirstGraphemeClusterInString(rest, state)
		if n+gw > w && i > 0 {
			break
		}
		n += gw
		i += len(g)
		rest, state = r, st
	}
	return s[:i], rest
}

// printable replaces control characters (a process name is whatever the
// process set) so that nothing written can move the cursor.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	return strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s)
}

// wrap breaks s into lines of at most w cells, at spaces where it can.
func wrap(s string, w int) []string {
	if w <= 0 {
		return nil
	}
	var lines []string
	var cur strings.Builder
	cw := 0
	for _, word := range strings.Fields(s) {
		ww := width(word)
		for ww > w { // a word longer than a line: cut it
			if cw > 0 {
				lines = append(lines, cur.String())
				cur.Reset()
				cw = 0
			}
			head, rest := cut(word, w)
			lines = append(lines, head)
			word = rest
			ww = width(word)
		}
		if ww == 0 {
			continue
		}
		if cw > 0 && cw+1+ww > w {
			lines = append(lines, cur.String())
			cur.Reset()
			cw = 0
		}
		if cw > 0 {
			cur.WriteByte(' ')
			cw++
		}
		cur.WriteString(word)
		cw += ww
	}
	if cw > 0 {
		lines = append(lines, cur.String())
	}
	return lines
}

// column is a table column.
type column struct {
	title string
	w     int  // width; the minimum width of a flexible column
	flex  bool // takes the width the others leave, up to max
	max   int  // the widest a flexible column grows (0: no limit)
	right bool
	drop  int // columns are dropped from the highest drop upwards when the table is too narrow; 0 never
}

// fitColumns gives each column its width within total (0: dropped), one
// blank between columns.
func fitColumns(cols []column, total int) []int {
	ws := make([]int, len(cols))
	on := make([]bool, len(cols))
	for i := range cols {
		on[i] = true
	}
	need := func() int {
		n, k := 0, 0
		for i, c := range cols {
			if on[i] {
				n += c.w
				k++
			}
		}
		return n + max(k-1, 0)
	}
	for need() > total {
		worst := -1
		for i, c := range cols {
			if on[i] && c.drop > 0 && (worst < 0 || c.drop > cols[worst].drop) {
				worst = i
			}
		}
		if worst < 0 {
			break
		}
		on[worst] = false
	}
	spare := max(total-need(), 0)
	for i, c := range cols {
		if !on[i] {
			continue
		}
		ws[i] = c.w
		if c.flex {
			grow := spare
			if c.max > 0 {
				grow = min(grow, max(c.max-c.w, 0))
			}
			ws[i] += grow
			spare -= grow
		}
	}
	return ws
}

// tableRow draws one row of cells in the given column widths; a cell's
// style, when set, overrides the row's.
func (c canvas) tableRow(y int, cols []column, ws []int, cells []cell, st tcell.Style) {
	c.fillRow(0, y, st)
	x := 0
	for i, col := range cols {
		if ws[i] == 0 {
			continue
		}
		if x > 0 {
			x++
		}
		cs := st
		if i < len(cells) && cells[i].set {
			cs = cells[i].st
		}
		text := ""
		if i < len(cells) {
			text = cells[i].text
		}
		x = c.field(x, y, ws[i], text, cs, col.right)
	}
}

// cell is a table cell: its text and, when set, its own style.
type cell struct {
	text string
	st   tcell.Style
	set  bool
}

func plain(s string) cell                  { return cell{text: s} }
func styled(s string, st tcell.Style) cell { return cell{text: s, st: st, set: true} }

// list is the selection and scroll position of a list of rows.
type list struct {
	sel, top int
	rows     int // rows visible at the last draw
}

// clamp keeps the selection within n rows (on the first when there are
// none).
func (l *list) clamp(n int) { l.sel = min(max(l.sel, 0), max(n-1, 0)) }

// fit clamps the selection to n rows and scrolls it into view in h rows.
func (l *list) fit(n, h int) {
	l.rows = h
	l.clamp(n)
	if l.sel < l.top {
		l.top = l.sel
	}
	if h > 0 && l.sel >= l.top+h {
		l.top = l.sel - h + 1
	}
	l.top = min(max(l.top, 0), max(n-h, 0))
}

// move moves the selection by a navigation key, within n rows.
func (l *list) move(k tcell.Key, n int) bool {
	sel, ok := navigate(k, l.sel, max(l.rows-1, 1), n-1)
	if !ok {
		return false
	}
	l.sel = sel
	l.clamp(n)
	return true
}

// navigate is where a navigation key moves position pos, by one, by page,
// or to 0 or last (not clamped); false when k is not one.
func navigate(k tcell.Key, pos, page, last int) (int, bool) {
	switch k {
	case tcell.KeyUp:
		return pos - 1, true
	case tcell.KeyDown:
		return pos + 1, true
	case tcell.KeyPgUp:
		return pos - page, true
	case tcell.KeyPgDn:
		return pos + page, true
	case tcell.KeyHome:
		return 0, true
	case tcell.KeyEnd:
		return last, true
	}
	return pos, false
}
