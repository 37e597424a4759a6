package ui

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/twtop/twtop/tracer/event"
)

// count formats a counter; past a million it is shortened (1.2M).
func count[T ~uint64 | ~int64 | ~int | ~uint32](v T) string {
	f := float64(v)
	switch a := math.Abs(f); {
	case a >= 1e9:
		return strconv.FormatFloat(f/1e9, 'f', 1, 64) + "G"
	case a >= 1e6:
		return strconv.FormatFloat(f/1e6, 'f', 1, 64) + "M"
	}
	return strconv.FormatInt(int64(v), 10)
}

// rate formats a per-second figure.
func rate(f float64) string {
	switch a := math.Abs(f); {
	case a == 0:
		return "0"
	case a >= 1e6:
		return strconv.FormatFloat(f/1e6, 'f', 1, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(f/1e3, 'f', 1, 64) + "k"
	case a >= 100:
		return strconv.FormatFloat(f, 'f', 0, 64)
	}
	return strconv.FormatFloat(f, 'f', 1, 64)
}

// percent formats a share (0..1).
func percent(f float64) string {
	p := 100 * f
	if p > 0 && p < 1 {
		return strconv.FormatFloat(p, 'f', 1, 64) + "%"
	}
	return strconv.FormatFloat(p, 'f', 0, 64) + "%"
}

// dur formats a duration given in nanoseconds for a person: 812ms, 1.51s,
// 60.0s, 12m.
func dur(ns float64) string {
	switch {
	case ns < 0:
		return "?"
	case ns < 1e6:
		return strconv.FormatFloat(ns/1e6, 'f', 2, 64) + "ms"
	case ns < 1e9:
		return strconv.FormatFloat(ns/1e6, 'f', 0, 64) + "ms"
	case ns < 10e9:
		return strconv.FormatFloat(ns/1e9, 'f', 2, 64) + "s"
	case ns < 100e9:
		return strconv.FormatFloat(ns/1e9, 'f', 1, 64) + "s"
	case ns < 1000e9:
		return strconv.FormatFloat(ns/1e9, 'f', 0, 64) + "s"
	case ns < 3600e9*10:
		return strconv.FormatFloat(ns/60e9, 'f', 0, 64) + "m"
	}
	return strconv.FormatFloat(ns/3600e9, 'f', 0, 64) + "h"
}

// seconds formats a span in seconds: 42s, 12m, 3.1h.
func seconds(s float64) string {
	switch {
	case s < 10:
		return strconv.FormatFloat(s, 'f', 1, 64) + "s"
	case s < 600:
		return strconv.FormatFloat(s, 'f', 0, 64) + "s"
	case s < 3600:
		return strconv.FormatFloat(s/60, 'f', 0, 64) + "m"
	case s < 86400*10:
		return strconv.FormatFloat(s/3600, 'f', 1, 64) + "h"
	}
	return strconv.FormatFloat(s/86400, 'f', 0, 64) + "d"
}

// clock formats a position in a recording: 5.1s, 1:02, 1:02:03.
func clock(d time.Duration) string {
	if d < time.Minute {
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	}
	s := int64(d / time.Second)
	if s < 3600 {
		return fmt.Sprintf("%d:%02d", s/60, s%60)
	}
	return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
}

// speed formats a replay speed: x4, x1/2, max.
func speed(s float64) string {
	switch {
	case s <= 0:
		return "max"
	case s >= 1:
		return "x" + strconv.FormatFloat(s, 'f', -1, 64)
	}
	if inv := 1 / s; inv == math.Trunc(inv) {
		return "x1/" + strconv.FormatFloat(inv, 'f', 0, 64)
	}
	return "x" + strconv.FormatFloat(s, 'f', 2, 64)
}

// Replay speeds the + and - keys step through: powers of two from 1/16 to
// 1024, then as fast as possible (0).
const (
	minSpeed = 1.0 / 16
	maxSpeed = 1024
)

// faster is the speed after + (ok false: no change).
func faster(s float64) (float64, bool) {
	switch {
	case s <= 0:
		return 0, false
	case s >= maxSpeed:
		return 0, true
	}
	return min(max(s*2, minSpeed), maxSpeed), true
}

// slower is the speed after - (ok false: no change).
func slower(s float64) (float64, bool) {
	switch {
	case s <= 0:
		return maxSpeed, true
	case s <= minSpeed:
		return 0, false
	}
	return min(max(s/2, minSpeed), maxSpeed), true
}

// shortState abbreviates the longest state names for the events tail.
func shortState(s event.State) string {
	switch s {
	case event.Established:
		return "ESTAB"
	case event.NewSynRecv:
		return "NEW_SYN_RECV"
	}
	return s.String()
}

// evLine is one event as the tail shows it.
type evLine struct {
	time, kind, flow, detail, proc string
}

// text is the line as a filter sees it.
func (l *evLine) text() string {
	return strings.Join([]string{l.time, l.kind, l.flow, l.detail, l.proc}, " ")
}

// formatEvent describes an event in a few words; first is the event time
// that "+0.000s" stands for.
func formatEvent(e *event.Event, first uint64) evLine {
	l := evLine{
		time: fmt.Sprintf("%+.3fs", float64(int64(e.Time-first))/1e9),
		kind: e.Kind.String(),
	}
	if e.Inferred() {
		l.kind += "*"
	}
	if e.Family != 0 {
		l.flow = e.Src.String() + " → " + e.Dst.String()
	}
	life := func() string {
		if e.Lifetime < 0 {
			return ""
		}
		return " " + dur(float64(e.Lifetime))
	}
	switch e.Kind {
	case event.KindState:
		l.detail = shortState(e.OldState) + "→" + shortState(e.NewState)
		if e.Flags&event.FlagRSTRx != 0 {
			l.detail += " rst_rx"
		}
	case event.KindTWCreate:
		l.detail = e.NewState.String()
		if e.Flags&event.FlagExisting != 0 {
			l.detail += " existing"
		}
	case event.KindTWSubstate:
		l.detail = "FIN_WAIT2→" + e.NewState.String()
	case event.KindTWExpire:
		l.detail = "expired" + life()
	case event.KindTWKill:
		l.detail = e.Cause.String() + life()
	case event.KindTWReuse:
		l.detail = "reused"
		if e.Lifetime >= 0 {
			l.detail += " at " + dur(float64(e.Lifetime))
		}
	case event.KindTWRx:
		l.detail = "rx " + e.RxOutcome().String()
	case event.KindTWOverflow:
		l.detail = fmt.Sprintf("full %d/%d", e.Aux, e.Aux2)
	case event.KindConnectErr:
		l.detail = "EADDRNOTAVAIL"
	case event.KindBindErr:
		l.detail = "EADDRINUSE"
	}
	if e.Owned() {
		l.proc = fmt.Sprintf("%s[%d]", printable(e.CommString()), e.Pid)
	}
	return l
}

// noRows is what an empty table says: none when nothing was seen yet, or
// that no row (what) matches the filter.
func noRows(none, what, filter string) string {
	if filter == "" {
		return none
	}
	return fmt.Sprintf("no %s matches %q", what, filter)
}
