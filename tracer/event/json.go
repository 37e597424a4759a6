package event

import (
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends e as one JSON object (no newline): a "kind" field and
// the fields that kind carries, addresses as text and states as names. hz
// converts timer jiffies to milliseconds (0: leave them out).
func AppendJSON(b []byte, e *Event, hz uint32) []byte {
	b = append(b, `{"kind":"`...)
	b = append(b, e.Kind.String()...)
	b = append(b, `","time_ns":`...)
	b = strconv.AppendUint(b, e.Time, 10)
	b = appendUint(b, "cpu", uint64(e.CPU))
	if e.Kind != KindScanEnd {
		b = appendUint(b, "netns", uint64(e.Netns))
		if name := FamilyName(e.Family); name != "" {
			b = appendStr(b, "family", name)
			b = appendStr(b, "src", e.Src.String())
			b = appendStr(b, "dst", e.Dst.String())
		}
	}
	switch e.Kind {
	case KindState:
		b = appendHex(b, "sock", e.Ptr)
		b = appendStr(b, "old", e.OldState.String())
		b = appendStr(b, "new", e.NewState.String())
	case KindTWCreate, KindTWArm, KindScanTW, KindTWSubstate:
		b = appendTW(b, e, hz)
		if e.Flags&FlagExisting != 0 {
			b = append(b, `,"existing":true`...)
		}
	case KindTWExpire:
		b = appendTW(b, e, hz)
		b = appendStr(b, "cause", CauseExpired.String())
		b = appendLifetime(b, "lifetime_ms", e.Lifetime)
	case KindTWCancel, KindTWKill:
		b = appendTW(b, e, hz)
		b = appendStr(b, "cause", e.Cause.String())
		b = appendLifetime(b, "lifetime_ms", e.Lifetime)
	case KindTWReuse:
		b = appendTW(b, e, hz)
		b = appendLifetime(b, "age_ms", e.Lifetime)
	case KindTWRx:
		b = appendHex(b, "tw", e.Ptr)
		b = appendStr(b, "substate", e.NewState.String())
		b = appendStr(b, "outcome", e.RxOutcome().String())
	case KindTWOverflow:
		b = appendUint(b, "tw_count", uint64(e.Aux))
		b = appendUint(b, "tw_max", uint64(e.Aux2))
	case KindConnectErr, KindBindErr:
		b = appendStr(b, "error", errnoName(e.Errno()))
	case KindScanEnd:
		b = appendUint(b, "jiffies", e.Ptr)
	}
	if e.Owned() {
		b = appendUint(b, "pid", uint64(e.Pid))
		b = appendUint(b, "tid", uint64(e.Tid))
		b = appendStr(b, "comm", e.CommString())
		b = appendUint(b, "cgroup", e.Cgroup)
	}
	if e.Inferred() {
		b = append(b, `,"inferred":true`...)
	}
	if e.Flags&FlagReconciled != 0 {
		b = append(b, `,"reconciled":true`...)
	}
	if e.Flags&FlagInConnect != 0 {
		b = append(b, `,"in_connect":true`...)
	}
	if e.Flags&FlagRSTRx != 0 {
		b = append(b, `,"rst_received":true`...)
	}
	return append(b, '}')
}

func appendTW(b []byte, e *Event, hz uint32) []byte {
	b = appendHex(b, "tw", e.Ptr)
	b = appendStr(b, "substate", e.NewState.String())
	if hz > 0 && e.Kind != KindTWExpire && !(e.Kind == KindTWSubstate && e.Aux == 0) {
		b = appendUint(b, "timer_left_ms", uint64(e.Aux)*1000/uint64(hz))
	}
	return b
}

// appendLifetime writes a duration in milliseconds with microsecond
// precision, or nothing when unknown.
func appendLifetime(b []byte, key string, ns int64) []byte {
	if ns < 0 {
		return b
	}
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	return strconv.AppendFloat(b, float64(ns/1000)/1000, 'f', -1, 64)
}

func errnoName(n uint32) string {
	switch n {
	case 98:
		return "EADDRINUSE"
	case 99:
		return "EADDRNOTAVAIL"
	}
	return "errno" + strconv.FormatUint(uint64(n), 10)
}

func appendUint(b []byte, key string, v uint64) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	return strconv.AppendUint(b, v, 10)
}

func appendHex(b []byte, key string, v uint64) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":"0x`...)
	b = strconv.AppendUint(b, v, 16)
	return append(b, '"')
}

func appendStr(b []byte, key, v string) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	return appendQuoted(b, v)
}

// appendQuoted writes a JSON string; process names may hold any bytes.
func appendQuoted(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
