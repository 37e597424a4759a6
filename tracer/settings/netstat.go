package settings

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Counters are a namespace's SNMP counters from /proc/net/netstat and
// /proc/net/snmp, keyed "Section.Field": "TcpExt.TW", "TcpExt.TWRecycled",
// "TcpExt.TWKilled", "TcpExt.TCPTimeWaitOverflow", "Tcp.ActiveOpens" and
// every other field the kernel prints. Values are as printed; most are
// monotonic counters, a few are gauges (Tcp.CurrEstab) or constants
// (Tcp.MaxConn is -1).
type Counters map[string]int64

// maxLine bounds one line of input. The kernel's longest, the TcpExt header,
// is a few kilobytes.
const maxLine = 1 << 20

// ParseNetstat parses the format of /proc/net/netstat and /proc/net/snmp:
// pairs of lines, the first naming a section's fields and the second giving
// their values, both starting with the section name and a colon:
//
//	TcpExt: SyncookiesSent SyncookiesRecv ...
//	TcpExt: 0 0 ...
//
// Blank lines are ignored. It fails, naming the line, on a header without
// values, on lines whose sections or field counts differ, and on values that
// are not 64-bit integers.
func ParseNetstat(r io.Reader) (Counters, error) {
	c := make(Counters)
	if err := parseNetstat(r, c); err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	return c, nil
}

// parseNetstat adds the counters in r to c.
func parseNetstat(r io.Reader, c Counters) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 8192), maxLine)
	var (
		header  []string
		hdrLine int
		line    int
	)
	for sc.Scan() {
		line++
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if !strings.HasSuffix(fields[0], ":") || len(fields[0]) < 2 {
			return fmt.Errorf("line %d: want \"Section:\" first, got %q", line, truncate(fields[0]))
		}
		if header == nil {
			header, hdrLine = fields, line
			continue
		}
		section := strings.TrimSuffix(header[0], ":")
		if fields[0] != header[0] {
			return fmt.Errorf("line %d: values of section %q follow the header of %q on line %d",
				line, strings.TrimSuffix(fields[0], ":"), section, hdrLine)
		}
		if len(fields) != len(header) {
			return fmt.Errorf("line %d: section %s has %d fields on line %d but %d values",
				line, section, len(header)-1, hdrLine, len(fields)-1)
		}
		for i := 1; i < len(fields); i++ {
			v, err := strconv.ParseInt(fields[i], 10, 64)
			if err != nil {
				return fmt.Errorf("line %d: %s.%s: %w", line, section, header[i], err)
			}
			c[section+"."+header[i]] = v
		}
		header = nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line %d: %w", line+1, err)
	}
	if header != nil {
		return fmt.Errorf("line %d: header of section %s without values", hdrLine, strings.TrimSuffix(header[0], ":"))
	}
	return nil
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const n = 40
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
