package tracer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/tracer/event"
)

// scanAll runs the iter/tcp scan in every configured network namespace and
// queues its records. Each namespace's records end with a KindScanEnd
// record.
func (t *Tracer) scanAll() error {
	if err := t.drainRing(); err != nil {
		return err
	}
	t.mu.Lock()
	nss := append([]string(nil), t.scanNetns...)
	t.mu.Unlock()
	if len(nss) == 0 {
		nss = []string{""}
	}
	seen := 0
	for _, ns := range nss {
		recs, err := t.scan(ns)
		seen += len(recs)
		if errors.Is(err, os.ErrNotExist) {
			// the namespace went away (its TIME_WAIT sockets were purged,
			// which the trace shows); stop scanning it
			t.RemoveScanNetns(ns)
			continue
		}
		if err != nil {
			return err
		}
		t.pending = append(t.pending, recs...)
	}
	t.next = time.Now().Add(scanInterval(t.opts.ScanInterval, seen))
	return nil
}

// drainRing queues the records already in the ring buffer ahead of the
// scan's: the reader may be up to pollEvery behind, and a TIME_WAIT socket
// created in that time must reach the stream before a scan shows it, or a
// namespace's first scan takes it for one that existed before tracing. It
// stops at the first record stamped after it began (records keep coming
// while it reads: a reader as fast as the kernel's writers would never
// find the ring empty), or when the ring is empty.
func (t *Tracer) drainRing() error {
	var buf []byte
	began := int64(monotonicNow())
	now := time.Now()
	if t.holdBack > 0 {
		// the merge holds records back: wait that out, so that
		// everything written before now is read
		now = now.Add(t.holdBack + 5*time.Millisecond)
	}
	t.reader.SetDeadline(now)
	t.deadline = time.Time{} // Next sets its own again
	for {
		r, err := t.reader.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			return err
		}
		buf = append(buf, r...)
		if stamp(r) > began {
			break
		}
	}
	for off := 0; off < len(buf); off += event.RecordSize {
		t.pending = append(t.pending, buf[off:off+event.RecordSize:off+event.RecordSize])
	}
	return nil
}

// scanPerInterval is how many TIME_WAIT sockets a scan reports before the
// next one is put off: re-reading a full table of 262,144 sockets every
// second would cost more than tracing the connections that fill it.
const scanPerInterval = 16384

// scanInterval is the time to the next scan after one that reported n
// records: the base interval per scanPerInterval sockets, at most 16 times
// the base. Reconciling missed events waits that much longer on a host
// holding that many TIME_WAIT sockets; events themselves are not delayed.
func scanInterval(base time.Duration, n int) time.Duration {
	k := min(1+n/scanPerInterval, 16)
	return base * time.Duration(k)
}

// AddScanNetns adds a network namespace (a path such as /proc/PID/ns/net or
// /run/netns/NAME) to the periodic TIME_WAIT scan. Namespaces that
// disappear are dropped from the scan.
func (t *Tracer) AddScanNetns(path string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !slices.Contains(t.scanNetns, path) {
		t.scanNetns = append(t.scanNetns, path)
	}
}

// RemoveScanNetns removes a namespace added by AddScanNetns or Options.
func (t *Tracer) RemoveScanNetns(path string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.scanNetns = slices.DeleteFunc(t.scanNetns, func(p string) bool { return p == path })
}

// scan lists the TIME_WAIT sockets of network namespace ns ("" for our
// own): with a BPF iterator, or over sock_diag where the kernel has none.
func (t *Tracer) scan(ns string) ([][]byte, error) {
	if t.fallbacks.SockDiag {
		inode, err := NetnsInode(ns)
		if err != nil {
			return nil, err
		}
		recs, err := diagScan(ns, inode, t.hz)
		return filterScan(recs, t.opts, t.closedByOwner), err
	}
	return t.iterScan(ns)
}

// iterScan reads one iterator instance created in network namespace ns:
// an iter/tcp iterator sees only the namespace of the thread that creates
// it.
func (t *Tracer) iterScan(ns string) ([][]byte, error) {
	start := monotonicNow()
	rd, err := t.openIter(ns)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	// A new buffer each scan: the records handed out below point into it
	// until Next has returned them all.
	t.scanBuf = make([]byte, 0, max(64<<10, 2*len(t.scanBuf)))
	buf := make([]byte, 64<<10)
	for {
		n, err := rd.Read(buf)
		t.scanBuf = append(t.scanBuf, buf[:n]...)
		if err == io.EOF || (err == nil && n == 0) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read TIME_WAIT scan: %w", err)
		}
	}
	if len(t.scanBuf)%event.RecordSize != 0 {
		return nil, fmt.Errorf("TIME_WAIT scan returned %d bytes, not a whole number of records", len(t.scanBuf))
	}
	inode, err := NetnsInode(ns)
	if err != nil {
		return nil, err
	}
	recs := make([][]byte, 0, len(t.scanBuf)/event.RecordSize)
	for off := 0; off < len(t.scanBuf); off += event.RecordSize {
		r := t.scanBuf[off : off+event.RecordSize : off+event.RecordSize]
		if event.RawKind(r) == event.KindScanEnd {
			// the end record names the namespace it closes, and when
			// the walk began
			event.SetRawNetns(r, inode)
			event.SetRawScanStart(r, start)
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// NetnsInode is the inode of a network namespace path such as
// /proc/PID/ns/net or /run/netns/NAME ("" for our own): the number events
// carry in their netns field.
func NetnsInode(ns string) (uint32, error) {
	if ns == "" {
		ns = "/proc/self/ns/net"
	}
	var st unix.Stat_t
	if err := unix.Stat(ns, &st); err != nil {
		return 0, fmt.Errorf("network namespace %s: %w", ns, err)
	}
	return uint32(st.Ino), nil
}

func (t *Tracer) openIter(ns string) (io.ReadCloser, error) {
	// Close may run concurrently (signal path): hold the lock while the
	// iterator is used; an open iterator keeps working after Close.
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() || t.iter == nil {
		return nil, ErrClosed
	}
	it := t.iter
	return inNetns(ns, it.Open)
}

// inNetns runs f in network namespace ns ("" for our own). Another
// namespace is joined by a throwaway thread: it runs f and dies with the
// namespace still set, so no other goroutine ever runs there.
func inNetns[T any](ns string, f func() (T, error)) (T, error) {
	var zero T
	if ns == "" {
		return f()
	}
	target, err := os.Open(ns)
	if err != nil {
		return zero, fmt.Errorf("open network namespace %s: %w", ns, err)
	}
	defer target.Close()

	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{zero, fmt.Errorf("join network namespace %s: %w", ns, err)}
			return
		}
		v, err := f()
		done <- result{v, err}
	}()
	r := <-done
	return r.v, r.err
}

// Known kernel HZ values (CONFIG_HZ).
var knownHZ = []uint32{100, 250, 300, 1000}

// calibrate runs the start-up scan twice, 100 ms apart, and derives HZ from
// the jiffies and nanoseconds in their end records. The first scan's
// records are kept: they are the TIME_WAIT sockets that existed at start.
// A sock_diag scan needs HZ before it can report timers in jiffies: there
// the kernel's jiffies are read twice instead.
func (t *Tracer) calibrate() error {
	if t.fallbacks.SockDiag {
		return t.calibrateJiffies()
	}
	if err := t.scanAll(); err != nil {
		return err
	}
	first := lastScanEnd(t.pending)
	time.Sleep(100 * time.Millisecond)
	recs, err := t.scan("")
	if err != nil {
		return err
	}
	second := lastScanEnd(recs)
	if first == nil || second == nil {
		return fmt.Errorf("TIME_WAIT scan returned no end record")
	}
	t.hz = estimateHZ(first, second)
	return nil
}

func lastScanEnd(recs [][]byte) []byte {
	for i := len(recs) - 1; i >= 0; i-- {
		if event.RawKind(recs[i]) == event.KindScanEnd {
			return recs[i]
		}
	}
	return nil
}

// estimateHZ picks the known HZ closest to the jiffies/second between two
// scan end records.
func estimateHZ(a, b []byte) uint32 {
	var ea, eb event.Event
	if event.Decode(a, &ea) != nil || event.Decode(b, &eb) != nil {
		return 250
	}
	dj := float64(eb.Ptr - ea.Ptr) // scan end records carry jiffies in ptr
	dt := float64(eb.Time-ea.Time) / 1e9
	if dt <= 0 {
		return 250
	}
	rate := dj / dt
	best := knownHZ[0]
	for _, hz := range knownHZ {
		if abs(float64(hz)-rate) < abs(float64(best)-rate) {
			best = hz
		}
	}
	return best
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// calibrateJiffies derives HZ from the kernel's jiffies read 100 ms apart,
// then runs the start-up scan.
func (t *Tracer) calibrateJiffies() error {
	var ends [2][]byte
	for i := range ends {
		if i > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		j, err := readJiffies()
		if err != nil {
			return err
		}
		ends[i] = make([]byte, event.RecordSize)
		event.Encode(&event.Event{Kind: event.KindScanEnd, Time: monotonicNow(), Ptr: j}, ends[i])
	}
	t.hz = estimateHZ(ends[0], ends[1])
	return t.scanAll()
}
