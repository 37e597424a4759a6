package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/twtop/twtop/internal/netns"
)

const (
	// firstPort and ports make the namespace's ip_local_port_range.
	firstPort = 40000
	ports     = 64
	// failedConnects is how many connects are tried, failedGap apart, once
	// every port holds a TIME_WAIT socket.
	failedConnects = 16
	failedGap      = 100 * time.Millisecond
	// reuseRounds rounds of ports connects each run with tcp_tw_reuse=1,
	// reuseGap apart: a TIME_WAIT socket must be over a second old (the
	// default net.ipv4.tcp_tw_reuse_delay from 6.14, fixed before) to be
	// taken over.
	reuseRounds = 2
	reuseGap    = 1500 * time.Millisecond
)

// portPressure is a client on proxyAddr making short connections, closed
// by the client first, to one destination, backendAddr:backendPort, with
// ip_local_port_range shrunk to 64 ports. With tcp_tw_reuse=0 the range
// fills with TIME_WAIT sockets and connect() fails with EADDRNOTAVAIL; with
// tcp_tw_reuse=1 (timestamps on) connect() takes the TIME_WAIT tuples
// over.
type portPressure struct {
	l    *lab
	ln   net.Listener
	conn sync.WaitGroup // the server's connection handlers
	done chan struct{}  // closed when the accept loop ends
}

func setupPortPressure(_ context.Context, l *lab) (workload, error) {
	// Set before twtop starts, so that the recording's settings show them.
	for _, kv := range [][2]string{
		{"net.ipv4.tcp_timestamps", "1"},
		{"net.ipv4.tcp_tw_reuse", "0"},
		{"net.ipv4.ip_local_port_range", fmt.Sprintf("%d %d", firstPort, firstPort+ports-1)},
	} {
		if err := l.ns.SetSysctl(kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	ln, err := l.listen(netip.AddrPortFrom(backendAddr, backendPort))
	if err != nil {
		return nil, err
	}
	w := &portPressure{l: l, ln: ln, done: make(chan struct{})}
	go w.serve()
	return w, nil
}

// serve reads every connection to its end and then closes it, after the
// client.
func (w *portPressure) serve() {
	defer close(w.done)
	for {
		c, err := w.ln.Accept()
		if err != nil {
			return
		}
		w.conn.Add(1)
		go func() {
			defer w.conn.Done()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		}()
	}
}

func (w *portPressure) Close() error {
	err := w.ln.Close()
	<-w.done
	w.conn.Wait()
	if err != nil {
		return fmt.Errorf("close listener: %w", err)
	}
	return nil
}

func (w *portPressure) Run(ctx context.Context) (string, error) {
	server := netip.AddrPortFrom(backendAddr, backendPort)
	inRange := func(s netns.Socket) bool {
		p := s.Src.Port()
		return s.Src.Addr() == proxyAddr && s.Dst == server && p >= firstPort && p < firstPort+ports
	}
	full := func(socks []netns.Socket) (bool, string) {
		n, open := timeWait(socks, inRange), busy(socks, func(s netns.Socket) bool { return s.Dst == server || s.Src == server })
		return n == ports && open == 0, fmt.Sprintf("%d of %d ports in TIME_WAIT towards %v, %d connections open or closing", n, ports, server, open)
	}

	// Fill the port range with TIME_WAIT sockets, tcp_tw_reuse=0.
	for i := 0; i < ports; i++ {
		if err := w.connect(server); err != nil {
			return "", fmt.Errorf("connect %d of %d with free ports left: %w", i+1, ports, err)
		}
	}
	if _, err := w.l.settle(ctx, 5*time.Second, full); err != nil {
		return "", err
	}
	failed := 0
	for i := 0; i < failedConnects; i++ {
		err := w.connect(server)
		if !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return "", fmt.Errorf("connect with every port in TIME_WAIT and tcp_tw_reuse=0: want EADDRNOTAVAIL, got %v", err)
		}
		failed++
		if err := sleep(ctx, failedGap); err != nil {
			return "", err
		}
	}

	// The same with tcp_tw_reuse=1: every connect must take a TIME_WAIT
	// tuple over, since no port is free.
	before, err := w.l.counters()
	if err != nil {
		return "", err
	}
	if err := w.l.ns.SetSysctl("net.ipv4.tcp_tw_reuse", "1"); err != nil {
		return "", err
	}
	reused := 0
	for r := 0; r < reuseRounds; r++ {
		if r > 0 {
			if err := sleep(ctx, reuseGap); err != nil {
				return "", err
			}
		}
		for i := 0; i < ports; i++ {
			if err := w.connect(server); err != nil {
				return "", fmt.Errorf("connect with tcp_tw_reuse=1 (round %d, connect %d): %w", r+1, i+1, err)
			}
			reused++
		}
		if _, err := w.l.settle(ctx, 5*time.Second, full); err != nil {
			return "", err
		}
	}
	after, err := w.l.counters()
	if err != nil {
		return "", err
	}
	recycled, err := delta(before, after, "TcpExt.TWRecycled")
	if err != nil {
		return "", err
	}
	if recycled != int64(reused) {
		return "", fmt.Errorf("%d connects with every port in TIME_WAIT and tcp_tw_reuse=1, but TcpExt.TWRecycled +%d", reused, recycled)
	}
	return fmt.Sprintf("%d ports towards %v all in TIME_WAIT; tcp_tw_reuse=0: %d connects failed with EADDRNOTAVAIL; tcp_tw_reuse=1: %d connects reused TIME_WAIT tuples (TcpExt.TWRecycled +%d)",
		ports, server, failed, reused, recycled), nil
}

// connect makes one connection from proxyAddr to server and closes it
// first.
func (w *portPressure) connect(server netip.AddrPort) error {
	c, err := w.l.dial(netip.AddrPortFrom(proxyAddr, 0), server)
	if err != nil {
		return err
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
}
