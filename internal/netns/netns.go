// Package netns creates private network namespaces for tests and serves
// calls inside them.
//
// A namespace is owned by one goroutine locked to its OS thread: New
// unshares the thread's network namespace, brings "lo" up, and then runs the
// functions handed to Do on that thread. Sockets created inside Do belong to
// the namespace for their whole life and may be used from any goroutine
// afterwards. Everything is done with system calls (no ip, ss or sysctl
// binaries), so it works in a bare initramfs and with CGO_ENABLED=0.
//
// The thread is never unlocked: when Close ends the goroutine, the Go runtime
// terminates the thread and the kernel drops the namespace as soon as no
// socket or open namespace file refers to it any more.
package netns

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrClosed is returned by calls on a namespace after Close.
var ErrClosed = errors.New("netns: namespace closed")

// closeTimeout bounds how long Close waits for the thread to disappear.
const closeTimeout = 5 * time.Second

// NS is a private network namespace held by a locked OS thread.
type NS struct {
	reqs  chan request
	quit  chan struct{}
	done  chan struct{}
	pid   int
	tid   int
	inode uint32

	closeOnce sync.Once
	closeErr  error
}

type request struct {
	f   func() error
	res chan error
}

// New creates a fresh network namespace with "lo" up. It needs
// CAP_SYS_ADMIN; without it the error wraps unix.EPERM.
func New() (*NS, error) {
	n := &NS{
		reqs: make(chan request),
		quit: make(chan struct{}),
		done: make(chan struct{}),
		pid:  os.Getpid(),
	}
	ready := make(chan error, 1)
	go n.serve(ready)
	if err := <-ready; err != nil {
		<-n.done
		return nil, err
	}
	return n, nil
}

// serve runs on the namespace thread. It never calls runtime.UnlockOSThread,
// so the thread exits together with the goroutine.
func (n *NS) serve(ready chan<- error) {
	runtime.LockOSThread()
	if unix.Gettid() == os.Getpid() {
		// This is the main thread: it must stay in the process's namespace
		// (/proc/self/net follows it) and the runtime never ends it. Hand
		// over to a new goroutine, which cannot run on this thread while it
		// is locked here, and let the thread go once that one is settled.
		inner := make(chan error, 1)
		go n.serve(inner)
		err := <-inner
		runtime.UnlockOSThread()
		ready <- err
		return
	}
	defer close(n.done)
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		ready <- fmt.Errorf("netns: unshare network namespace: %w", err)
		return
	}
	n.tid = unix.Gettid()
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		ready <- fmt.Errorf("netns: stat namespace: %w", err)
		return
	}
	n.inode = uint32(st.Ino)
	if err := setLinkUp("lo", true); err != nil {
		ready <- err
		return
	}
	ready <- nil
	for {
		select {
		case r := <-n.reqs:
			r.res <- call(r.f)
		case <-n.quit:
			return
		}
	}
}

// call runs f and turns a panic into an error so that the namespace thread
// survives it.
func call(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("netns: panic in namespace function: %v", p)
		}
	}()
	return f()
}

// Do runs f on the namespace thread and returns its error. Calls are
// serialised. Do may be called from inside f; the nested call runs directly.
func (n *NS) Do(f func() error) error {
	if f == nil {
		return errors.New("netns: nil function")
	}
	if n.onThread() {
		return call(f)
	}
	res := make(chan error, 1)
	select {
	case n.reqs <- request{f: f, res: res}:
	case <-n.done:
		return ErrClosed
	}
	return <-res
}

// onThread reports whether the caller runs on the namespace thread. Only the
// serving goroutine can run there, because the thread is locked to it.
func (n *NS) onThread() bool {
	select {
	case <-n.done:
		return false
	default:
	}
	return unix.Gettid() == n.tid
}

// Inode returns the inode number of the namespace (as in "net:[INODE]").
func (n *NS) Inode() uint32 { return n.inode }

// Path returns /proc/PID/task/TID/ns/net for the namespace thread. It is
// valid until Close; other code may open it and setns(2) into it.
func (n *NS) Path() string {
	return fmt.Sprintf("/proc/%d/task/%d/ns/net", n.pid, n.tid)
}

// Close ends the namespace thread and waits until the kernel has reaped
// it, which releases the thread's reference to the namespace. Sockets
// created in the namespace must be closed before, or they keep it alive.
// The kernel then tears the namespace down asynchronously, purging any
// TIME_WAIT sockets left in it. Close is idempotent.
func (n *NS) Close() error {
	if n.onThread() {
		return errors.New("netns: Close called from inside Do")
	}
	n.closeOnce.Do(func() {
		close(n.quit)
		<-n.done
		task := fmt.Sprintf("/proc/%d/task/%d", n.pid, n.tid)
		deadline := time.Now().Add(closeTimeout)
		for {
			var st unix.Stat_t
			err := unix.Stat(task, &st)
			if errors.Is(err, unix.ENOENT) {
				return
			}
			if time.Now().After(deadline) {
				n.closeErr = fmt.Errorf("netns: thread %d still present after %v", n.tid, closeTimeout)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	return n.closeErr
}

// sysctlPath maps "net.ipv4.tcp_tw_reuse" (or "net/ipv4/tcp_tw_reuse") to
// its file under /proc/sys. Only keys under net are accepted, since only
// those are per namespace.
func sysctlPath(key string) (string, error) {
	var parts []string
	if strings.Contains(key, "/") {
		parts = strings.Split(key, "/")
	} else {
		parts = strings.Split(key, ".")
	}
	if len(parts) < 2 || parts[0] != "net" {
		return "", fmt.Errorf("netns: sysctl key %q: not under net", key)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return "", fmt.Errorf("netns: sysctl key %q: bad component %q", key, p)
		}
	}
	return "/proc/sys/" + strings.Join(parts, "/"), nil
}

// SetSysctl writes value to the namespace's sysctl key, e.g.
// SetSysctl("net.ipv4.tcp_tw_reuse", "1").
func (n *NS) SetSysctl(key, value string) error {
	path, err := sysctlPath(key)
	if err != nil {
		return err
	}
	return n.Do(func() error {
		if err := writeFile(path, value+"\n"); err != nil {
			return fmt.Errorf("netns: set %s=%q: %w", key, value, err)
		}
		return nil
	})
}

// Sysctl reads the namespace's sysctl key. Surrounding white space is
// trimmed; inner white space is kept as the kernel prints it (for example
// "40000\t40001" for net.ipv4.ip_local_port_range).
func (n *NS) Sysctl(key string) (string, error) {
	path, err := sysctlPath(key)
	if err != nil {
		return "", err
	}
	var out string
	err = n.Do(func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("netns: read %s: %w", key, err)
		}
		out = strings.TrimSpace(string(b))
		return nil
	})
	return out, err
}

// HasSysctl reports whether the namespace has the sysctl key (some, like
// net.ipv4.tcp_tw_reuse_delay, only exist on newer kernels).
func (n *NS) HasSysctl(key string) bool {
	path, err := sysctlPath(key)
	if err != nil {
		return false
	}
	var ok bool
	_ = n.Do(func() error {
		var st unix.Stat_t
		ok = unix.Stat(path, &st) == nil
		return nil
	})
	return ok
}

// Netstat returns the namespace's SNMP counters from
// /proc/thread-self/net/netstat and /proc/thread-self/net/snmp as
// "Section.Name" keys: "TcpExt.TW", "TcpExt.TWRecycled", "TcpExt.TWKilled",
// "TcpExt.TCPTimeWaitOverflow", "Tcp.CurrEstab", "Tcp.OutRsts" and so on.
//
// The kernel (checked on 6.1, 6.12 and 6.18) counts TcpExt.TW and
// TcpExt.TWKilled when a timewait socket is first armed, not when it
// expires: TW if its timeout is over 4 s, TWKilled otherwise (an
// orphaned FIN_WAIT2 with tcp_fin_timeout <= 4). Re-arming, as when a
// FIN_WAIT2 timewait socket receives the peer's FIN, counts nothing.
func (n *NS) Netstat() (map[string]int64, error) {
	out := make(map[string]int64)
	err := n.Do(func() error {
		for _, f := range []string{"/proc/thread-self/net/netstat", "/proc/thread-self/net/snmp"} {
			b, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("netns: read %s: %w", f, err)
			}
			if err := parseNetstat(b, out); err != nil {
				return fmt.Errorf("netns: parse %s: %w", f, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// parseNetstat parses the "Section: names" / "Section: values" line pairs
// of /proc/net/netstat and /proc/net/snmp into out.
func parseNetstat(b []byte, out map[string]int64) error {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines)%2 != 0 {
		return fmt.Errorf("odd number of lines (%d)", len(lines))
	}
	for i := 0; i < len(lines); i += 2 {
		names := strings.Fields(lines[i])
		values := strings.Fields(lines[i+1])
		if len(names) == 0 || len(names) != len(values) || names[0] != values[0] || !strings.HasSuffix(names[0], ":") {
			return fmt.Errorf("malformed section at line %d", i+1)
		}
		section := strings.TrimSuffix(names[0], ":")
		for j := 1; j < len(names); j++ {
			var v int64
			if _, err := fmt.Sscan(values[j], &v); err != nil {
				return fmt.Errorf("%s.%s: value %q: %w", section, names[j], values[j], err)
			}
			out[section+"."+names[j]] = v
		}
	}
	return nil
}

// SetLinkUp sets or clears IFF_UP on the namespace's interface name.
func (n *NS) SetLinkUp(name string, up bool) error {
	return n.Do(func() error { return setLinkUp(name, up) })
}

// LinkUp reports whether IFF_UP is set on the namespace's interface name.
func (n *NS) LinkUp(name string) (bool, error) {
	var up bool
	err := n.Do(func() error {
		flags, err := linkFlags(name)
		up = flags&unix.IFF_UP != 0
		return err
	})
	return up, err
}

func linkFlags(name string) (uint16, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, fmt.Errorf("netns: interface %q: %w", name, err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("netns: ioctl socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return 0, fmt.Errorf("netns: get flags of %s: %w", name, err)
	}
	return ifr.Uint16(), nil
}

// setLinkUp must run on the namespace thread.
func setLinkUp(name string, up bool) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("netns: interface %q: %w", name, err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("netns: ioctl socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("netns: get flags of %s: %w", name, err)
	}
	flags := ifr.Uint16()
	if up {
		flags |= unix.IFF_UP
	} else {
		flags &^= unix.IFF_UP
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("netns: set %s up=%v: %w", name, up, err)
	}
	return nil
}

func writeFile(path, data string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for {
		_, err = unix.Write(fd, []byte(data))
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
