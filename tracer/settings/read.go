package settings

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Files read on the thread that is in the wanted namespace. procfs resolves
// /proc/sys/net and /proc/thread-self/net by the namespace of the thread
// that opens them (/proc/self/net would follow the main thread instead).
const (
	sysctlDir   = "/proc/sys/net/ipv4/"
	nsSelf      = "/proc/thread-self/ns/net"
	netstatFile = "/proc/thread-self/net/netstat"
	snmpFile    = "/proc/thread-self/net/snmp"
)

// Read reads the settings and counters of the network namespace at path, a
// namespace file such as /proc/PID/ns/net or /run/netns/NAME. An empty path
// means the namespace of the calling thread, which is the process's own
// unless the caller locked its goroutine to a thread it moved elsewhere.
//
// For another namespace Read opens path, then moves a throwaway goroutine,
// locked to its OS thread, into the namespace with setns(2) and reads there.
// That goroutine ends without unlocking its thread, so the Go runtime ends
// the thread instead of running other goroutines in the wrong namespace. The
// calling goroutine and its thread are left alone. Entering another
// namespace needs CAP_SYS_ADMIN; without it the error wraps unix.EPERM.
func Read(path string) (Settings, Counters, error) {
	if path == "" {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		s, c, err := readHere(0)
		if err != nil {
			return Settings{}, nil, fmt.Errorf("settings: %w", err)
		}
		return s, c, nil
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Settings{}, nil, fmt.Errorf("settings: open namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Settings{}, nil, fmt.Errorf("settings: stat namespace %s: %w", path, err)
	}
	res := make(chan result, 1)
	go readIn(fd, uint32(st.Ino), res)
	r := <-res
	if r.err != nil {
		return Settings{}, nil, fmt.Errorf("settings: namespace %s: %w", path, r.err)
	}
	return r.s, r.c, nil
}

type result struct {
	s   Settings
	c   Counters
	err error
}

// readIn enters the namespace fd (whose inode is ino) on a locked thread,
// reads it and sends the result to res. It never unlocks the thread, so the
// thread exits with the goroutine.
func readIn(fd int, ino uint32, res chan<- result) {
	runtime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		// The main thread must stay in the process's namespace: /proc/self
		// follows it, and the runtime parks it rather than ending it. Hand
		// over to a new goroutine, which cannot run on this thread while it
		// is locked here, then let the thread go.
		inner := make(chan result, 1)
		go readIn(fd, ino, inner)
		r := <-inner
		runtime.UnlockOSThread()
		res <- r
		return
	}
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		res <- result{err: fmt.Errorf("enter: %w", err)}
		return
	}
	s, c, err := readHere(ino)
	res <- result{s: s, c: c, err: err}
}

// readHere reads the settings and counters of the current thread's
// namespace. The caller must have locked the goroutine to its thread. When
// want is not 0, it checks that the namespace's inode is want.
func readHere(want uint32) (Settings, Counters, error) {
	var st unix.Stat_t
	if err := unix.Stat(nsSelf, &st); err != nil {
		return Settings{}, nil, fmt.Errorf("stat %s: %w", nsSelf, err)
	}
	ino := uint32(st.Ino)
	if want != 0 && ino != want {
		return Settings{}, nil, fmt.Errorf("thread is in namespace %d, not %d", ino, want)
	}
	s, err := readSettings()
	if err != nil {
		return Settings{}, nil, err
	}
	s.Netns = ino
	c := make(Counters)
	for _, f := range []string{netstatFile, snmpFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			return Settings{}, nil, fmt.Errorf("read %s: %w", f, err)
		}
		if err := parseNetstat(bytes.NewReader(b), c); err != nil {
			return Settings{}, nil, fmt.Errorf("parse %s: %w", f, err)
		}
	}
	return s, c, nil
}

// readSettings reads the sysctls of the current thread's namespace.
func readSettings() (Settings, error) {
	var s Settings
	for _, v := range []struct {
		name string
		dst  *int
	}{
		{"tcp_tw_reuse", &s.TwReuse},
		{"tcp_max_tw_buckets", &s.MaxTwBuckets},
		{"tcp_fin_timeout", &s.FinTimeoutS},
		{"tcp_timestamps", &s.Timestamps},
	} {
		n, err := sysctlInt(v.name)
		if err != nil {
			return Settings{}, err
		}
		*v.dst = n
	}
	for _, v := range []struct {
		name string
		dst  **int
	}{
		{"tcp_tw_reuse_delay", &s.TwReuseDelayMs},
		{"tcp_tw_recycle", &s.Recycle},
	} {
		n, err := sysctlInt(v.name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Settings{}, err
		}
		*v.dst = &n
	}
	f, err := sysctlFields("ip_local_port_range", 2)
	if err != nil {
		return Settings{}, err
	}
	s.PortLow, s.PortHigh = f[0], f[1]
	return s, nil
}

// sysctlInt reads the integer sysctl net.ipv4.name.
func sysctlInt(name string) (int, error) {
	f, err := sysctlFields(name, 1)
	if err != nil {
		return 0, err
	}
	return f[0], nil
}

// sysctlFields reads net.ipv4.name, which must hold n integers.
func sysctlFields(name string, n int) ([]int, error) {
	b, err := os.ReadFile(sysctlDir + name)
	if err != nil {
		return nil, fmt.Errorf("read net.ipv4.%s: %w", name, err)
	}
	fields := strings.Fields(string(b))
	if len(fields) != n {
		return nil, fmt.Errorf("net.ipv4.%s: want %d values, got %q", name, n, strings.TrimSpace(string(b)))
	}
	out := make([]int, n)
	for i, f := range fields {
		v, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("net.ipv4.%s: %w", name, err)
		}
		out[i] = v
	}
	return out, nil
}
