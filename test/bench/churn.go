package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twtop/twtop/internal/netns"
	"golang.org/x/sys/unix"
)

// Churn modes: which side closes first and how.
const (
	modeClientCloses = "client-closes"
	modeServerCloses = "server-closes"
	modeRST          = "rst"
	modePortPressure = "port-pressure"
)

var modes = []string{modeClientCloses, modeServerCloses, modeRST, modePortPressure, modeHTTP}

// basePort is the listening port of stream 0; stream i listens on
// basePort+i.
const basePort = 20000

// churnConfig describes one churn run.
type churnConfig struct {
	Mode     string        `json:"mode"`
	Duration time.Duration `json:"duration"`
	// Streams is the number of parallel connection streams; each one opens
	// and closes one connection at a time.
	Streams int `json:"streams"`
	// Dests is the number of loopback addresses (127.0.0.1 upwards) each
	// stream connects to in turn, to spread the client tuples over more
	// than one ephemeral port space.
	Dests int `json:"dests"`
	// PortRange is the size of ip_local_port_range in port-pressure mode.
	PortRange int `json:"port_range"`
	// ReuseDelayMs is tcp_tw_reuse_delay in port-pressure mode, when the
	// kernel has it (0: leave the kernel's default).
	ReuseDelayMs int `json:"reuse_delay_ms"`
	// Timewait, when set, makes the namespace keep that many TIME_WAIT
	// sockets: tcp_max_tw_buckets is set to it, tcp_tw_reuse to 0 and the
	// local ports to 1024-65535, so that every connection the churn closes
	// leaves a TIME_WAIT socket until the table is full.
	Timewait int `json:"timewait,omitempty"`
}

func (c churnConfig) validate() error {
	if !validMode(c.Mode) {
		return fmt.Errorf("unknown mode %q (have %s)", c.Mode, strings.Join(modes, ", "))
	}
	switch {
	case c.Duration <= 0 || c.Duration > 24*time.Hour:
		return fmt.Errorf("duration %v out of range (0, 24h]", c.Duration)
	case c.Streams < 1 || c.Streams > 1000:
		return fmt.Errorf("%d streams out of range [1, 1000]", c.Streams)
	case c.Dests < 1 || c.Dests > 250:
		return fmt.Errorf("%d destinations out of range [1, 250]", c.Dests)
	case c.Mode == modePortPressure && (c.PortRange < 16 || c.PortRange > 20000):
		return fmt.Errorf("port range of %d ports out of range [16, 20000]", c.PortRange)
	case c.Timewait < 0 || c.Timewait > 1<<22:
		return fmt.Errorf("%d TIME_WAIT sockets out of range [0, %d]", c.Timewait, 1<<22)
	case c.ReuseDelayMs < 0:
		return fmt.Errorf("negative tcp_tw_reuse_delay %d", c.ReuseDelayMs)
	}
	return nil
}

func validMode(m string) bool {
	for _, v := range modes {
		if m == v {
			return true
		}
	}
	return false
}

// dests is the number of destination addresses the mode uses: port
// pressure is about one destination's ports.
func (c churnConfig) dests() int {
	if c.Mode == modePortPressure {
		return 1
	}
	return c.Dests
}

// churnResult is what one churn run did.
type churnResult struct {
	Mode     string  `json:"mode"`
	Streams  int     `json:"streams"`
	Conns    uint64  `json:"conns"`
	ElapsedS float64 `json:"elapsed_s"`
	ConnPerS float64 `json:"conn_per_s"`
	// Errors counts failed system calls by call and errno, e.g.
	// "connect: EADDRNOTAVAIL".
	Errors map[string]uint64 `json:"errors,omitempty"`
	// CPU time of the generator process, in seconds.
	UserS float64 `json:"user_s"`
	SysS  float64 `json:"sys_s"`
}

func (r churnResult) errorCount() uint64 {
	var n uint64
	for _, v := range r.Errors {
		n += v
	}
	return n
}

// errorSummary lists the errors, most frequent first.
func (r churnResult) errorSummary() string {
	if len(r.Errors) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if r.Errors[keys[i]] != r.Errors[keys[j]] {
			return r.Errors[keys[i]] > r.Errors[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s x%d", k, r.Errors[k]))
	}
	return strings.Join(parts, ", ")
}

// setupNetns sets the sysctls the mode needs in a fresh namespace and
// returns them as "key=value" for the output.
func setupNetns(ns *netns.NS, c churnConfig) ([]string, error) {
	var set []string
	apply := func(key, value string) error {
		if err := ns.SetSysctl(key, value); err != nil {
			return err
		}
		set = append(set, key+"="+value)
		return nil
	}
	if c.Timewait > 0 {
		for _, kv := range [][2]string{
			{"net.ipv4.tcp_max_tw_buckets", fmt.Sprint(c.Timewait)},
			{"net.ipv4.tcp_tw_reuse", "0"},
			{"net.ipv4.ip_local_port_range", "1024 65535"},
		} {
			if err := apply(kv[0], kv[1]); err != nil {
				return nil, err
			}
		}
	}
	if c.Mode == modePortPressure {
		lo := 40000
		if err := apply("net.ipv4.ip_local_port_range", fmt.Sprintf("%d %d", lo, lo+c.PortRange-1)); err != nil {
			return nil, err
		}
		if err := apply("net.ipv4.tcp_tw_reuse", "1"); err != nil {
			return nil, err
		}
		if c.ReuseDelayMs > 0 && ns.HasSysctl("net.ipv4.tcp_tw_reuse_delay") {
			if err := apply("net.ipv4.tcp_tw_reuse_delay", fmt.Sprint(c.ReuseDelayMs)); err != nil {
				return nil, err
			}
		}
	}
	return set, nil
}

// runChurn drives the connection churn from the calling process, which
// must already be inside the target network namespace: every socket it
// creates belongs to the namespace of the thread that creates it.
func runChurn(c churnConfig) (churnResult, error) {
	if err := c.validate(); err != nil {
		return churnResult{}, err
	}
	lns := make([]int, c.Streams)
	defer func() {
		for _, fd := range lns {
			if fd > 0 {
				unix.Close(fd)
			}
		}
	}()
	for i := range lns {
		if c.Mode == modeHTTP {
			stop, err := serveHTTP(basePort + i)
			if err != nil {
				return churnResult{}, err
			}
			defer stop()
			continue
		}
		fd, err := listen(basePort + i)
		if err != nil {
			return churnResult{}, err
		}
		lns[i] = fd
	}
	var (
		wg      sync.WaitGroup
		results = make([]streamResult, c.Streams)
	)
	var before unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &before); err != nil {
		return churnResult{}, fmt.Errorf("getrusage: %w", err)
	}
	start := time.Now()
	deadline := start.Add(c.Duration)
	for i := range c.Streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.Mode == modeHTTP {
				results[i] = httpStream(c, basePort+i, deadline)
				return
			}
			results[i] = stream(c, lns[i], basePort+i, deadline)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var after unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &after); err != nil {
		return churnResult{}, fmt.Errorf("getrusage: %w", err)
	}
	res := churnResult{
		Mode:     c.Mode,
		Streams:  c.Streams,
		ElapsedS: elapsed.Seconds(),
		UserS:    tvSeconds(after.Utime) - tvSeconds(before.Utime),
		SysS:     tvSeconds(after.Stime) - tvSeconds(before.Stime),
	}
	for _, r := range results {
		if r.fatal != nil {
			return churnResult{}, r.fatal
		}
		res.Conns += r.conns
		for k, v := range r.errors {
			if res.Errors == nil {
				res.Errors = make(map[string]uint64)
			}
			res.Errors[k] += v
		}
	}
	res.ConnPerS = float64(res.Conns) / elapsed.Seconds()
	return res, nil
}

func tvSeconds(tv unix.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

// listen opens a plain TCP listener on 0.0.0.0:port (so that every
// loopback address reaches it). Raw sockets are never MPTCP.
func listen(port int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, fmt.Errorf("listener socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listener SO_REUSEADDR: %w", err)
	}
	// accept never waits for long: the connection it takes was made by
	// the same stream just before
	tv := unix.NsecToTimeval(time.Second.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listener SO_RCVTIMEO: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind listener to port %d: %w", port, err)
	}
	if err := unix.Listen(fd, 1024); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen on port %d: %w", port, err)
	}
	return fd, nil
}

type streamResult struct {
	conns  uint64
	errors map[string]uint64
	fatal  error
}

func (r *streamResult) fail(call string, err error) {
	if r.errors == nil {
		r.errors = make(map[string]uint64)
	}
	name := err.Error()
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if n := unix.ErrnoName(errno); n != "" {
			name = n
		}
	}
	r.errors[call+": "+name]++
}

// maxErrorStreak stops a stream whose calls keep failing without a single
// connection in between, e.g. a namespace without loopback.
const maxErrorStreak = 1 << 20

// stream opens and closes one connection at a time from the client side to
// its own listener ln, with blocking system calls. On loopback the kernel
// runs the handshake and the close sequence inside the calls that start
// them, so the calls rarely wait.
func stream(c churnConfig, ln, port int, deadline time.Time) streamResult {
	var (
		r      streamResult
		buf    [64]byte
		streak int
	)
	dests := make([]unix.SockaddrInet4, c.dests())
	for i := range dests {
		dests[i] = unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, byte(1 + i)}, Port: port}
	}
	linger := &unix.Linger{Onoff: 1, Linger: 0}
	for n := 0; ; n++ {
		// time.Now is a vDSO call: cheap next to the dozen system calls
		// of a connection
		if !time.Now().Before(deadline) {
			return r
		}
		if streak > maxErrorStreak {
			r.fatal = fmt.Errorf("stream on port %d: %d failures in a row (%s)", port, streak, errorNames(r.errors))
			return r
		}
		cfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
		if err != nil {
			r.fail("socket", err)
			streak++
			// out of file descriptors or memory: give the kernel a moment
			time.Sleep(time.Millisecond)
			continue
		}
		if c.Mode == modeRST {
			if err := unix.SetsockoptLinger(cfd, unix.SOL_SOCKET, unix.SO_LINGER, linger); err != nil {
				r.fail("setsockopt SO_LINGER", err)
				unix.Close(cfd)
				streak++
				continue
			}
		}
		if err := unix.Connect(cfd, &dests[n%len(dests)]); err != nil {
			r.fail("connect", err)
			unix.Close(cfd)
			streak++
			continue
		}
		sfd, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
		if err != nil {
			r.fail("accept", err)
			unix.Close(cfd)
			streak++
			continue
		}
		var first, second int // closed first, then drains and closes
		switch c.Mode {
		case modeServerCloses:
			first, second = sfd, cfd
		default:
			first, second = cfd, sfd
		}
		if err := unix.Close(first); err != nil {
			r.fail("close", err)
		}
		// wait for the FIN (or the RST) of the first close, so that the
		// second close never races it
		_, err = unix.Read(second, buf[:])
		if err != nil && !(c.Mode == modeRST && errors.Is(err, unix.ECONNRESET)) {
			r.fail("read", err)
		}
		if err := unix.Close(second); err != nil {
			r.fail("close", err)
		}
		r.conns++
		streak = 0
	}
}

// errorNames lists the kinds of failure seen, sorted.
func errorNames(m map[string]uint64) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

// churnChild is the entry point of the generator process that the harness
// starts inside a namespace: it runs the churn and prints its result as
// one JSON line on standard output.
func churnChild(c churnConfig) error {
	res, err := runChurn(c)
	if err != nil {
		return err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	fmt.Println(string(b))
	return nil
}
