package model

import (
	"cmp"
	"fmt"
	"slices"
)

// CloserColumn is a column of a "who closes" ranking, to sort rows by.
type CloserColumn int

// Columns. Their String is the column's name in reports (the CloserRow
// JSON key where there is one) and a label a CLI or UI can show and parse
// back (ParseCloserColumn).
const (
	ColumnKey             CloserColumn = iota // the row's key, as text
	ColumnActive                              // closes where the row's side sent the first FIN
	ColumnPassive                             // closes where it received the first FIN
	ColumnSimultaneous                        // closes where both FINs crossed
	ColumnReset                               // connections ended by a reset
	ColumnTotal                               // all closes
	ColumnActiveShare                         // active / total
	ColumnTimewaitCreated                     // TIME_WAIT sockets created
	ColumnTimewaitOpen                        // TIME_WAIT sockets open now
	ColumnConnectErrors                       // connect() failures with EADDRNOTAVAIL
	ColumnBindErrors                          // bind() failures with EADDRINUSE
	closerColumns
)

var columnNames = [closerColumns]string{
	"key", "active", "passive", "simultaneous", "reset", "total", "active_share",
	"timewait_created", "timewait_open", "connect_eaddrnotavail", "bind_eaddrinuse",
}

func (c CloserColumn) String() string {
	if c < 0 || c >= closerColumns {
		return fmt.Sprintf("CloserColumn(%d)", int(c))
	}
	return columnNames[c]
}

// ParseCloserColumn returns the column a name (as CloserColumn.String
// gives it) stands for.
func ParseCloserColumn(name string) (CloserColumn, error) {
	for c, n := range columnNames {
		if n == name {
			return CloserColumn(c), nil
		}
	}
	return 0, fmt.Errorf("unknown column %q", name)
}

// CloserColumns lists every column, in table order.
func CloserColumns() []CloserColumn {
	out := make([]CloserColumn, closerColumns)
	for i := range out {
		out[i] = CloserColumn(i)
	}
	return out
}

// compareColumn compares two rows on one column, ascending. An unknown
// column compares by key.
func compareColumn(x, y *Closer, col CloserColumn) int {
	switch col {
	case ColumnActive:
		return cmp.Compare(x.Closes[SideActive], y.Closes[SideActive])
	case ColumnPassive:
		return cmp.Compare(x.Closes[SidePassive], y.Closes[SidePassive])
	case ColumnSimultaneous:
		return cmp.Compare(x.Closes[SideSimultaneous], y.Closes[SideSimultaneous])
	case ColumnReset:
		return cmp.Compare(x.Closes[SideReset], y.Closes[SideReset])
	case ColumnTotal:
		return cmp.Compare(x.Total(), y.Total())
	case ColumnActiveShare:
		return cmp.Compare(x.ActiveShare(), y.ActiveShare())
	case ColumnTimewaitCreated:
		return cmp.Compare(x.TimewaitCreated, y.TimewaitCreated)
	case ColumnTimewaitOpen:
		return cmp.Compare(x.TimewaitOpen, y.TimewaitOpen)
	case ColumnConnectErrors:
		return cmp.Compare(x.ConnectErrors, y.ConnectErrors)
	case ColumnBindErrors:
		return cmp.Compare(x.BindErrors, y.BindErrors)
	}
	return cmp.Compare(x.Key, y.Key)
}

// SortClosers sorts rows by one column, descending when desc. Ties go by
// key (then ranking) ascending, so the order never depends on the input's.
// "other" rows stay last: they sum many keys and rank with none of them.
func SortClosers(rows []Closer, col CloserColumn, desc bool) {
	slices.SortStableFunc(rows, func(x, y Closer) int {
		if xo, yo := x.Key == otherKey, y.Key == otherKey; xo != yo {
			if xo {
				return 1
			}
			return -1
		}
		c := compareColumn(&x, &y, col)
		if desc {
			c = -c
		}
		if c != 0 {
			return c
		}
		if c := cmp.Compare(x.Key, y.Key); c != 0 {
			return c
		}
		return cmp.Compare(x.By, y.By)
	})
}
