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

// scanAll starts the scan of every configured network namespace: the
// records already in the ring buffer are queued first (drainRing), then
// each namespace's iter/tcp scan is read as Next hands its records out
// (scanStream), or, with the sock-diag fallback, its records are queued.
// Each namespace's records end with a KindScanEnd record, held back until
// the scans were read (finishScans).
func (t *Tracer) scanAll() error {
	t.releaseScanEnds(nil)
	if err := t.drainRing(); err != nil {
		return err
	}
	t.mu.Lock()
	nss := append([]string(nil), t.scanNetns...)
	t.mu.Unlock()
	if len(nss) == 0 {
		nss = []string{""}
	}
	t.scanSeen = 0
	for _, ns := range nss {
		if t.fallbacks.SockDiag {
			recs, err := t.diagScan(ns)
			if errors.Is(err, os.ErrNotExist) {
				t.RemoveScanNetns(ns)
				continue
			}
			if err != nil {
				return err
			}
			t.scanSeen += len(recs)
			if n := len(recs); n > 0 && event.RawKind(recs[n-1]) == event.KindScanEnd {
				t.scanEnds = append(t.scanEnds, recs[n-1])
				recs = recs[:n-1]
			}
			t.pending = append(t.pending, recs...)
			continue
		}
		st, err := t.openScan(ns)
		if errors.Is(err, os.ErrNotExist) {
			// the namespace went away (its TIME_WAIT sockets were purged,
			// which the trace shows); stop scanning it
			t.RemoveScanNetns(ns)
			continue
		}
		if err != nil {
			t.closeScans()
			return err
		}
		t.scans = append(t.scans, st)
	}
	if len(t.scans) == 0 {
		t.finishScans()
	}
	return nil
}

// finishScans ends the scans once their records were handed out (a ring
// record kept for after them, early, is queued first). Their
// end records are held until the reader has handed out the records the
// ring buffer got while they ran (releaseScanEnds), so that a TIME_WAIT
// socket a scan showed comes with its creation before its scan ends
// (without it, a namespace's first scan would take a socket created while
// it ran for one that existed before tracing). The next scan is due a scan
// interval later.
func (t *Tracer) finishScans() {
	t.queueEarly()
	t.endsAfter = int64(monotonicNow())
	t.next = time.Now().Add(scanInterval(t.opts.ScanInterval, t.scanSeen))
}

// releaseScanEnds queues the end records finishScans holds, when the
// reader returned r, the first record stamped after the scans finished, or
// found nothing to read (r nil) once the records stamped before that are
// past the merge's hold-back; r is queued after them. It reports whether
// it queued anything.
func (t *Tracer) releaseScanEnds(r []byte) bool {
	if len(t.scanEnds) == 0 {
		return false
	}
	if r != nil && stamp(r) <= t.endsAfter {
		return false
	}
	if r == nil && int64(monotonicNow()) <= t.endsAfter+int64(t.holdBack+5*time.Millisecond) {
		return false // a record of the scans' time may still be held back
	}
	t.pending = append(t.pending, t.scanEnds...)
	t.scanEnds = t.scanEnds[:0]
	if r != nil {
		t.pending = append(t.pending, r)
	}
	return true
}

// nextScanned returns the next record of the scans being read, or nil when
// they are all read; their end records are kept for finishScans.
func (t *Tracer) nextScanned() ([]byte, error) {
	for len(t.scans) > 0 {
		st := t.scans[0]
		r, err := st.next()
		if err == nil {
			if event.RawKind(r) == event.KindScanEnd {
				t.scanEnds = append(t.scanEnds, append([]byte(nil), r...))
				continue
			}
			return r, nil
		}
		t.scanSeen += st.n
		st.close()
		t.scans = t.scans[1:]
		if err != io.EOF {
			t.closeScans()
			return nil, err
		}
	}
	return nil, nil
}

// closeScans closes the scans still being read.
func (t *Tracer) closeScans() {
	for _, st := range t.scans {
		st.close()
	}
	t.scans = nil
	t.scanHead = nil
	t.queueEarly()
	t.scanEnds = t.scanEnds[:0]
}

// scanOverlap is how much older than the scan record at hand a ring record
// must be to be handed out before it. A socket the walk shows may have
// ended a little earlier: the walk takes a bucket's sockets, with a
// reference, before it runs the program on each, and an expiring socket
// leaves its bucket after its timer record. The scan record must come
// first then, so that the socket is open when it comes; like the merge's
// hold-back, this assumes that the kernel takes less than this from the
// one to the other.
const scanOverlap = holdBack

// ringEvery is how many scan records nextDuringScan hands out between two
// looks at the ring that found nothing to hand out before them.
const ringEvery = 64

// nextDuringScan returns the next record while the scans are read: the
// scans' next record, or before it a ring record at least scanOverlap older.
// A walk of a full table takes a few hundred milliseconds (262,144
// sockets), and the ring would fill if it were read only after the walk.
// A ring record read that the scan records have not reached (early) waits
// until they have. nil once the scans are all read.
func (t *Tracer) nextDuringScan() ([]byte, error) {
	if t.scanHead == nil {
		r, err := t.nextScanned()
		if r == nil || err != nil {
			return nil, err
		}
		t.scanHead = r
	}
	bound := stamp(t.scanHead) - int64(scanOverlap)
	if t.early != nil {
		if stamp(t.early) < bound {
			r := t.early
			t.early = nil
			return r, nil
		}
	} else if t.ringTry <= 0 {
		r, err := t.readDue()
		if err != nil {
			t.closeScans() // the scans' iterators are not left open
			return nil, err
		}
		if r != nil && stamp(r) < bound {
			return r, nil // and look again at the next call
		}
		if r != nil {
			t.early = append(t.earlyBuf[:0], r...)
		}
		t.ringTry = ringEvery
	}
	t.ringTry--
	r := t.scanHead
	t.scanHead = nil
	return r, nil
}

// readDue returns a record of the ring that is due now, or nil, without
// waiting.
func (t *Tracer) readDue() ([]byte, error) {
	t.reader.SetDeadline(time.Now())
	t.deadline = time.Time{} // Next sets its own again
	r, err := t.reader.Read()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, nil
	}
	return r, err
}

// queueEarly queues the ring record kept during the scans, once no scan
// record is left to come before it.
func (t *Tracer) queueEarly() {
	if t.early != nil {
		t.pending = append(t.pending, append([]byte(nil), t.early...))
		t.early = nil
	}
}

// drainRing queues the records already in the ring buffer ahead of a
// scan's: the reader may be up to pollEvery behind, and a socket's records
// from before the scan are best read before the scan shows it (its
// substate, for one). It stops at the first record stamped after it began
// (records keep coming while it reads: a reader as fast as the kernel's
// writers would never find the ring empty), or when the ring is empty.
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
		// copied into slabs that are never regrown: a drain of tens
		// of thousands of records copies each once
		if len(buf)+len(r) > cap(buf) {
			buf = make([]byte, 0, drainSlab*event.RecordSize)
		}
		off := len(buf)
		buf = append(buf, r...)
		t.pending = append(t.pending, buf[off:len(buf):len(buf)])
		if stamp(r) > began {
			break
		}
	}
	return nil
}

// drainSlab is how many records drainRing copies into one allocation.
const drainSlab = 512

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
func (t *Tracer) diagScan(ns string) ([][]byte, error) {
	inode, err := NetnsInode(ns)
	if err != nil {
		return nil, err
	}
	recs, err := diagScan(ns, inode, t.hz)
	return filterScan(recs, t.opts, t.closedByOwner), err
}

// scanChunk is how much of an iter/tcp scan is read at a time: some 585
// records.
const scanChunk = 64 << 10

// scanStream is one iter/tcp scan, created in a network namespace (an
// iter/tcp iterator sees only the namespace of the thread that creates
// it), read a chunk at a time as its records are handed out: the records
// of a full table of 262,144 TIME_WAIT sockets (28 MiB) are never all in
// memory at once.
type scanStream struct {
	rd    io.ReadCloser
	inode uint32 // the namespace's, for the end record
	start uint64 // monotonic time the scan began, for the end record
	chunk []byte // what is read into
	buf   []byte // read and not yet returned from off on
	off   int
	n     int // records returned
	eof   bool
}

func (t *Tracer) openScan(ns string) (*scanStream, error) {
	inode, err := NetnsInode(ns)
	if err != nil {
		return nil, err
	}
	start := monotonicNow()
	rd, err := t.openIter(ns)
	if err != nil {
		return nil, err
	}
	st := &scanStream{rd: rd, inode: inode, start: start, chunk: make([]byte, scanChunk)}
	// the walk begins now, not when Next comes to its records
	if err := st.read(); err != nil {
		st.close()
		return nil, err
	}
	return st, nil
}

// next returns the scan's next record, valid until the next call, reading
// the iterator as needed; io.EOF after the last.
func (s *scanStream) next() ([]byte, error) {
	for s.off+event.RecordSize > len(s.buf) {
		if s.eof {
			if s.off != len(s.buf) {
				return nil, fmt.Errorf("TIME_WAIT scan ended %d bytes into a record", len(s.buf)-s.off)
			}
			return nil, io.EOF
		}
		if err := s.read(); err != nil {
			return nil, err
		}
	}
	r := s.buf[s.off : s.off+event.RecordSize : s.off+event.RecordSize]
	s.off += event.RecordSize
	s.n++
	if event.RawKind(r) == event.KindScanEnd {
		// the end record names the namespace it closes, and when the
		// walk began
		event.SetRawNetns(r, s.inode)
		event.SetRawScanStart(r, s.start)
	}
	return r, nil
}

// read reads the next chunk of the iterator, keeping the first part of a
// record split between two reads.
func (s *scanStream) read() error {
	part := copy(s.chunk, s.buf[s.off:])
	n, err := s.rd.Read(s.chunk[part:])
	s.buf, s.off = s.chunk[:part+n], 0
	if err == io.EOF || (err == nil && n == 0) {
		s.eof = true
	} else if err != nil {
		return fmt.Errorf("read TIME_WAIT scan: %w", err)
	}
	return nil
}

func (s *scanStream) close() {
	if s.rd != nil {
		s.rd.Close()
		s.rd = nil
	}
}

// scanEnd runs a scan of our own network namespace through and returns a
// copy of its end record.
func (t *Tracer) scanEnd() ([]byte, error) {
	st, err := t.openScan("")
	if err != nil {
		return nil, err
	}
	defer st.close()
	var end []byte
	for {
		r, err := st.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if event.RawKind(r) == event.KindScanEnd {
			end = append(end[:0], r...)
		}
	}
	if end == nil {
		return nil, fmt.Errorf("TIME_WAIT scan returned no end record")
	}
	return end, nil
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

// calibrate derives HZ from the jiffies and nanoseconds in the end records
// of scans (calibrateHZ), and then starts the start-up scan, whose records
// are the TIME_WAIT sockets that existed at start. A sock_diag scan needs
// HZ before it can report timers in jiffies: there the kernel's jiffies
// are read instead.
func (t *Tracer) calibrate() error {
	if t.fallbacks.SockDiag {
		return t.calibrateJiffies()
	}
	hz, err := calibrateHZ(func() (uint64, uint64, error) {
		r, err := t.scanEnd()
		if err != nil {
			return 0, 0, err
		}
		var e event.Event
		if err := event.Decode(r, &e); err != nil {
			return 0, 0, fmt.Errorf("TIME_WAIT scan end record: %w", err)
		}
		return e.Ptr, e.Time, nil // scan end records carry jiffies in ptr
	})
	if err != nil {
		return err
	}
	t.hz = hz
	if err := t.scanAll(); err != nil {
		return err
	}
	// The start-up scan is read whole now: the sockets it shows are the
	// ones that existed at start, and a caller may be slow to come to
	// them (a later scan is read as Next hands its records out, Next
	// being called all along).
	var all []byte
	for {
		r, err := t.nextScanned()
		if err != nil {
			return err
		}
		if r == nil {
			break
		}
		all = append(all, r...)
	}
	for off := 0; off < len(all); off += event.RecordSize {
		t.pending = append(t.pending, all[off:off+event.RecordSize:off+event.RecordSize])
	}
	t.finishScans()
	return nil
}

// Calibration of HZ: samples hzStep apart, until the rate is within
// hzWithin (relative) of a known HZ, for at most hzSettle.
const (
	hzStep   = 100 * time.Millisecond
	hzWithin = 0.03
	hzSettle = time.Second
)

// calibrateHZ derives HZ from samples of the kernel's jiffies and their
// CLOCK_MONOTONIC time (sample): a first one, then one every hzStep until
// the rate since the first is within hzWithin of a known HZ, or hzSettle
// passed (then the nearest is taken). One step is enough on a quiet host.
// Where the sampler or the kernel's tick is held up (an emulated machine
// under load), 100 ms of 250 HZ can read as 300; over a longer span the
// same delay counts for less.
func calibrateHZ(sample func() (jiffies, ns uint64, err error)) (uint32, error) {
	j0, t0, err := sample()
	if err != nil {
		return 0, err
	}
	for span := hzStep; ; span += hzStep {
		time.Sleep(hzStep)
		j, ts, err := sample()
		if err != nil {
			return 0, err
		}
		hz, off := nearestHZ(j-j0, int64(ts-t0))
		if off <= hzWithin || span >= hzSettle {
			return hz, nil
		}
	}
}

// nearestHZ is the known HZ nearest to dj jiffies in dt nanoseconds, and
// how far the rate is from it, relative to it (250 and 1 without time).
func nearestHZ(dj uint64, dt int64) (uint32, float64) {
	if dt <= 0 {
		return 250, 1
	}
	rate := float64(dj) / (float64(dt) / 1e9)
	best := knownHZ[0]
	for _, hz := range knownHZ {
		if abs(float64(hz)-rate) < abs(float64(best)-rate) {
			best = hz
		}
	}
	return best, abs(rate-float64(best)) / float64(best)
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// calibrateJiffies derives HZ from the kernel's jiffies (calibrateHZ,
// sampleJiffies), then runs the start-up scan.
func (t *Tracer) calibrateJiffies() error {
	hz, err := calibrateHZ(sampleJiffies)
	if err != nil {
		return err
	}
	t.hz = hz
	return t.scanAll()
}

// sampleJiffies reads the kernel's jiffies and the time of the read: the
// middle of it, read again (up to 5 times) while a read takes longer than
// jiffyReadMax, in which the reader was held up and the time is vague.
func sampleJiffies() (jiffies, ns uint64, err error) {
	for try := 1; ; try++ {
		before := monotonicNow()
		j, err := readJiffies()
		if err != nil {
			return 0, 0, err
		}
		after := monotonicNow()
		if after-before <= uint64(jiffyReadMax) || try == 5 {
			return j, before + (after-before)/2, nil
		}
	}
}

// jiffyReadMax is how long a read of the kernel's jiffies may take for
// its time to count as known.
const jiffyReadMax = 2 * time.Millisecond
