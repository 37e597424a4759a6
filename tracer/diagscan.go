package tracer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/internal/netns"
	"github.com/twtop/twtop/tracer/event"
)

// errNoSockDiag: sock_diag has no TCP dump (no inet_diag/tcp_diag).
var errNoSockDiag = errors.New("sock_diag cannot dump TCP sockets (inet_diag and tcp_diag missing)")

// diagScan is the TIME_WAIT scan of kernels without iter/tcp (before 5.9).
// It dumps the timewait sockets of network namespace ns ("" for our own)
// through sock_diag and returns the records scan_tw would write: one
// KindScanTW per socket, then a KindScanEnd with netns inode, the number of
// sockets and the kernel's jiffies. sock_diag shows no socket addresses, so
// each socket's Ptr is event.SyntheticPtr of its cookie, which the
// lifecycle.Tracker matches to the kernel's records by tuple. hz, the kernel's
// HZ, converts the time left on the timers to jiffies. The records are not
// filtered (see filterScan). An error matching os.ErrNotExist means the
// namespace is gone.
func diagScan(ns string, inode uint32, hz uint32) ([][]byte, error) {
	start := monotonicNow()
	socks, err := timewaitSocketsIn(ns)
	if err != nil {
		return nil, err
	}
	jiffies, err := readJiffies()
	if err != nil {
		return nil, err
	}
	now := monotonicNow()

	buf := make([]byte, (len(socks)+1)*event.RecordSize)
	recs := make([][]byte, 0, len(socks)+1)
	put := func(e *event.Event) {
		off := len(recs) * event.RecordSize
		r := buf[off : off+event.RecordSize : off+event.RecordSize]
		event.Encode(e, r)
		recs = append(recs, r)
	}
	for _, s := range socks {
		put(&event.Event{
			Kind:     event.KindScanTW,
			Time:     now,
			Ptr:      event.SyntheticPtr(s.Cookie),
			Netns:    inode,
			Family:   uint8(s.Family),
			Src:      s.Src,
			Dst:      s.Dst,
			NewState: event.State(s.State), // a timewait socket shows its substate
			Aux:      timerJiffies(s.Expires, hz),
		})
	}
	put(&event.Event{Kind: event.KindScanEnd, Time: now, Ptr: jiffies, Netns: inode, Aux: uint32(len(socks))})
	event.SetRawScanStart(recs[len(recs)-1], start)
	return recs, nil
}

// filterScan applies o's filters to a scan's records as scan_tw does in
// the kernel (tw_wanted): the tuple filters (Family, Netns, Port), and with
// an owner filter (Pid, Cgroup), owned says whether a wanted owner closed
// the socket. diagScan lists
// every timewait socket of the namespace. The end record's count becomes
// the number kept. recs is filtered in place.
func filterScan(recs [][]byte, o Options, owned func(*event.Event) bool) [][]byte {
	if o.Family == 0 && o.Netns == 0 && o.Port == 0 && !o.ownerFilter() {
		return recs
	}
	out := recs[:0]
	var e event.Event
	for _, r := range recs {
		switch event.RawKind(r) {
		case event.KindScanTW:
			if event.Decode(r, &e) == nil && (!tupleWanted(&e, o) || (o.ownerFilter() && !owned(&e))) {
				continue
			}
		case event.KindScanEnd:
			if event.Decode(r, &e) == nil {
				e.Aux = uint32(len(out))
				event.Encode(&e, r)
			}
		}
		out = append(out, r)
	}
	return out
}

// pidTuple is the kernel's struct tuple, the key of pid_tuples.
type pidTuple struct {
	Saddr, Daddr [16]byte
	Netns        uint32
	Sport, Dport uint16
	Family       uint8
	_            [7]byte
}

// closedByOwner reports whether a wanted owner (--pid, a cgroup) closed
// the socket whose timewait socket e is (tw_wanted in bpf/twtop.bpf.c).
func (t *Tracer) closedByOwner(e *event.Event) bool {
	k := pidTuple{Netns: e.Netns, Sport: e.Src.Port(), Dport: e.Dst.Port(), Family: e.Family}
	src, dst := e.Src.Addr().AsSlice(), e.Dst.Addr().AsSlice()
	copy(k.Saddr[:], src)
	copy(k.Daddr[:], dst)
	var v uint8
	t.mu.Lock() // Close may release the maps meanwhile
	defer t.mu.Unlock()
	return t.coll != nil && t.coll.Maps["pid_tuples"].Lookup(&k, &v) == nil
}

// tupleWanted is tuple_wanted in bpf/twtop.bpf.c.
func tupleWanted(e *event.Event, o Options) bool {
	return (o.Family == 0 || e.Family == o.Family) &&
		(o.Netns == 0 || e.Netns == o.Netns) &&
		(o.Port == 0 || e.Src.Port() == o.Port || e.Dst.Port() == o.Port)
}

// monotonicNow is CLOCK_MONOTONIC in nanoseconds, the clock of bpf_ktime_get_ns
// and so of every record's Time. Go's monotonic clock is CLOCK_MONOTONIC
// too, read without a system call: monotonicNow is its reading since
// monoStart plus CLOCK_MONOTONIC at monoStart.
func monotonicNow() uint64 {
	return monoBase + uint64(time.Since(monoStart))
}

var monoBase, monoStart = func() (base uint64, start time.Time) {
	clock := func() uint64 {
		var ts unix.Timespec
		// fails only for an unknown clock or a bad address
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		return uint64(ts.Nano())
	}
	// the pair of readings least apart, of a few: the thread may be
	// preempted between them
	gap := uint64(math.MaxUint64)
	for range 5 {
		a := clock()
		now := time.Now()
		if b := clock(); b-a < gap {
			base, start, gap = a+(b-a)/2, now, b-a
		}
	}
	return base, start
}()

// timerJiffies converts the time left on a timer as sock_diag shows it back
// to jiffies. The kernel rounds jiffies up to whole milliseconds, so
// rounding down gives its exact figure for any HZ up to 1000.
func timerJiffies(left time.Duration, hz uint32) uint32 {
	ms := uint64(left / time.Millisecond)
	return uint32(ms * uint64(hz) / 1000)
}

// timewaitSocketsIn dumps the timewait sockets of namespace ns ("" for our
// own), joined as inNetns does.
func timewaitSocketsIn(ns string) ([]netns.Socket, error) {
	dump := func() ([]netns.Socket, error) {
		socks, err := netns.TimewaitSockets()
		if errors.Is(err, unix.ENOENT) {
			// not a namespace gone: the kernel has no TCP dump
			return nil, fmt.Errorf("dump TIME_WAIT sockets: %w", errNoSockDiag)
		}
		if err != nil {
			return nil, fmt.Errorf("dump TIME_WAIT sockets: %w", err)
		}
		return socks, nil
	}
	return inNetns(ns, dump)
}

// timerList has the kernel's jiffies; only root may read it.
const timerList = "/proc/timer_list"

// readJiffies reads the kernel's jiffies from /proc/timer_list: on a 64-bit
// kernel the number bpf_jiffies64 returns.
func readJiffies() (uint64, error) {
	f, err := os.Open(timerList)
	if err != nil {
		return 0, fmt.Errorf("read jiffies: %w", err)
	}
	defer f.Close()
	j, err := parseJiffies(f)
	if err != nil {
		return 0, fmt.Errorf("read jiffies from %s: %w", timerList, err)
	}
	return j, nil
}

// parseJiffies returns the number on the first "jiffies: N" line of a
// /proc/timer_list, reading no further.
func parseJiffies(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("jiffies:")); ok {
			j, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse jiffies: %w", err)
			}
			return j, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no jiffies line")
}
