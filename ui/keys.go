package ui

import (
	"github.com/gdamore/tcell/v2"
	"github.com/twtop/twtop/tracer/model"
)

// handleKey acts on one key. Every key goes through here, in the event
// loop; the frame drawn after it shows the result.
func (a *app) handleKey(ev *tcell.EventKey) {
	if ev.Key() == tcell.KeyCtrlC {
		a.quit = true
		return
	}
	if a.editing {
		a.editKey(ev)
		return
	}
	if a.help {
		switch {
		case ev.Key() == tcell.KeyEsc, ev.Key() == tcell.KeyRune && (ev.Rune() == '?' || ev.Rune() == '5'):
			a.setHelp(false)
		case ev.Key() == tcell.KeyRune && ev.Rune() == 'q':
			a.quit = true
		}
		return
	}
	switch ev.Key() {
	case tcell.KeyTab:
		a.setView(a.cur + 1)
	case tcell.KeyBacktab:
		a.setView(a.cur - 1)
	case tcell.KeyEnter:
		a.enter()
	case tcell.KeyEsc:
		a.escape()
	case tcell.KeyUp, tcell.KeyDown, tcell.KeyPgUp, tcell.KeyPgDn, tcell.KeyHome, tcell.KeyEnd:
		a.navigate(ev.Key())
	case tcell.KeyCtrlF:
		a.navigate(tcell.KeyPgDn)
	case tcell.KeyCtrlB:
		a.navigate(tcell.KeyPgUp)
	case tcell.KeyRune:
		a.rune(ev.Rune())
	}
}

func (a *app) rune(r rune) {
	switch r {
	case 'q':
		a.quit = true
	case '?', '5':
		a.setHelp(true)
	case '1', '2', '3', '4':
		a.setView(view(r - '1'))
	case 'p', ' ':
		a.src.SetPaused(!a.src.Status().Paused)
	case '+', '=':
		if st := a.src.Status(); !st.Live {
			if s, ok := faster(st.Speed); ok {
				a.src.SetSpeed(s)
			}
		}
	case '-', '_':
		if st := a.src.Status(); !st.Live {
			if s, ok := slower(st.Speed); ok {
				a.src.SetSpeed(s)
			}
		}
	case '/':
		if f := a.filter(); f != nil {
			a.editing, a.edit, a.editPrev = true, []rune(*f), *f
		}
	case 'j':
		a.navigate(tcell.KeyDown)
	case 'k':
		a.navigate(tcell.KeyUp)
	case 'g':
		a.navigate(tcell.KeyHome)
	case 'G':
		a.navigate(tcell.KeyEnd)
	}
	if a.cur != viewClosers || a.drill {
		return
	}
	cl := &a.cl
	switch r {
	case 'b':
		a.nextRanking()
		cl.selKey, cl.list = "", list{}
	case '<', ',':
		a.sortBy(max(cl.sort-1, 0))
	case '>', '.':
		a.sortBy(min(cl.sort+1, len(closerCols)-1))
	case 's':
		a.sortBy((cl.sort + 1) % len(closerCols))
	case 'r':
		cl.desc = !cl.desc
	}
}

// sortBy sorts the closers by column i: keys A to Z, figures largest first.
func (a *app) sortBy(i int) {
	if i == a.cl.sort {
		return
	}
	a.cl.sort = i
	a.cl.desc = closerCols[i].by != model.ColumnKey
}

// filter is the current screen's filter, nil where there is none.
func (a *app) filter() *string {
	switch a.cur {
	case viewClosers:
		if a.drill {
			return &a.dr.filter
		}
		return &a.cl.filter
	case viewPorts:
		return &a.po.filter
	case viewEvents:
		return &a.ev.filter
	}
	return nil
}

// setFilter applies a filter to the current screen's list; a list of
// events goes back to following the newest.
func (a *app) setFilter(f string) {
	p := a.filter()
	if p == nil || *p == f {
		return
	}
	*p = f
	switch {
	case a.cur == viewEvents:
		a.ev.list.follow = true
	case a.cur == viewClosers && a.drill:
		a.dr.list.follow = true
	}
}

// editKey edits the filter being typed; it applies as it is typed, Enter
// keeps it and Esc puts the previous one back.
func (a *app) editKey(ev *tcell.EventKey) {
	switch ev.Key() {
	case tcell.KeyEnter:
		a.editing = false
		return
	case tcell.KeyEsc:
		a.editing = false
		a.setFilter(a.editPrev)
		return
	case tcell.KeyBackspace, tcell.KeyBackspace2:
		if len(a.edit) > 0 {
			a.edit = a.edit[:len(a.edit)-1]
		}
	case tcell.KeyCtrlU:
		a.edit = a.edit[:0]
	case tcell.KeyCtrlW:
		n := len(a.edit)
		for n > 0 && a.edit[n-1] == ' ' {
			n--
		}
		for n > 0 && a.edit[n-1] != ' ' {
			n--
		}
		a.edit = a.edit[:n]
	case tcell.KeyRune:
		if len(a.edit) < 128 {
			a.edit = append(a.edit, ev.Rune())
		}
	default:
		return
	}
	a.setFilter(string(a.edit))
}

// enter: a finding's evidence on the overview, a row's events on the
// closers.
func (a *app) enter() {
	switch a.cur {
	case viewOverview:
		a.ensure()
		if a.snap == nil || len(a.snap.Findings) == 0 {
			return
		}
		i := min(max(a.ov.list.sel, 0), len(a.snap.Findings)-1)
		f := &a.snap.Findings[i]
		a.ov.expanded[findingKey(f)] = !a.ov.isExpanded(f)
		a.ov.shown = -1 // bring what it shows into view
	case viewClosers:
		if !a.drill {
			a.enterDrill()
		}
	}
}

// escape goes back from a row's events, or clears the filter.
func (a *app) escape() {
	if a.cur == viewClosers && a.drill {
		a.drill = false
		return
	}
	a.setFilter("")
}

// navigate moves the current screen's selection or scroll position.
func (a *app) navigate(k tcell.Key) {
	a.ensure()
	switch a.cur {
	case viewOverview:
		if a.snap == nil {
			return
		}
		// within a finding's evidence taller than the view, scroll first
		o := &a.ov
		switch {
		case k == tcell.KeyDown && o.shown == o.list.sel && o.selEnd > o.list.top+o.list.rows:
			o.list.top++
		case k == tcell.KeyUp && o.shown == o.list.sel && o.selStart < o.list.top:
			o.list.top--
		default:
			o.list.move(k, len(a.snap.Findings))
		}
	case viewClosers:
		if a.drill {
			a.dr.list.scroll(k)
			return
		}
		if a.cl.rows == nil && a.snap != nil {
			a.closerRows()
		}
		a.selectCloser(k)
	case viewPorts:
		if a.po.rows == nil && a.snap != nil {
			a.portRows()
		}
		if a.po.list.move(k, len(a.po.rows)) && a.po.list.sel < len(a.po.rows) {
			a.po.selKey = portKey(&a.po.rows[a.po.list.sel])
		}
	case viewEvents:
		a.ev.list.scroll(k)
	}
}
