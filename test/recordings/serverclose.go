package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/twtop/twtop/internal/netns"
)

const (
	// serverClosesConns is the number of short HTTP requests, each on its
	// own connection.
	serverClosesConns = 600
	// serverClosesRate paces them (connections per second).
	serverClosesRate = 200
	// serverClosesClients is the number of concurrent clients.
	serverClosesClients = 4
	// clientFirstPort is the client port of the first connection; the
	// others follow. Left to the kernel, a port would come round again
	// while the server still holds a TIME_WAIT socket on its tuple, and the
	// new SYN would take that socket over.
	clientFirstPort = 20000
)

// serverCloses is an HTTP server with keep-alives disabled on the backend
// address: after each response it closes first, so every connection leaves
// its TIME_WAIT socket on the server, all towards the one client address.
type serverCloses struct {
	l   *lab
	srv *http.Server
	ln  net.Listener
	// done is closed when Serve returns.
	done chan struct{}
}

func setupServerCloses(_ context.Context, l *lab) (workload, error) {
	ln, err := l.listen(netip.AddrPortFrom(backendAddr, backendPort))
	if err != nil {
		return nil, err
	}
	w := &serverCloses{l: l, ln: ln, done: make(chan struct{})}
	w.srv = newHTTPServer()
	w.srv.SetKeepAlivesEnabled(false)
	go func() {
		defer close(w.done)
		_ = w.srv.Serve(ln)
	}()
	return w, nil
}

// newHTTPServer returns a server answering every request with a short
// body.
func newHTTPServer() *http.Server {
	return &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "hello from the backend\n")
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
}

func (w *serverCloses) Close() error {
	err := w.srv.Close()
	<-w.done
	if err != nil {
		return fmt.Errorf("close http server: %w", err)
	}
	return nil
}

func (w *serverCloses) Run(ctx context.Context) (string, error) {
	before, err := w.l.counters()
	if err != nil {
		return "", err
	}
	server := netip.AddrPortFrom(backendAddr, backendPort)
	tick := time.NewTicker(time.Second / serverClosesRate)
	defer tick.Stop()
	jobs := make(chan uint16)
	go func() {
		defer close(jobs)
		for i := 0; i < serverClosesConns; i++ {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
			jobs <- uint16(clientFirstPort + i)
		}
	}()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		done int
	)
	for i := 0; i < serverClosesClients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for port := range jobs {
				err := w.request(netip.AddrPortFrom(proxyAddr, port), server)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					done++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("interrupted: %w", err)
	}
	if len(errs) > 0 {
		return "", fmt.Errorf("%d of %d requests failed, first: %w", len(errs), serverClosesConns, errs[0])
	}

	isServer := func(s netns.Socket) bool { return s.Src == server && s.Dst.Addr() == proxyAddr }
	isClient := func(s netns.Socket) bool { return s.Dst == server }
	socks, tw, err := w.l.quiesce(ctx, "connections", func(s netns.Socket) bool { return isServer(s) || isClient(s) }, before)
	if err != nil {
		return "", err
	}
	serverTW := timeWait(socks, isServer)
	clientTW := timeWait(socks, isClient)
	if serverTW != done || clientTW != 0 || tw != int64(done) {
		return "", fmt.Errorf("after %d requests the kernel shows %d TIME_WAIT sockets on the server %v, %d on the client side, TcpExt.TW +%d: want %d, 0 and +%d",
			done, serverTW, server, clientTW, tw, done, done)
	}
	return fmt.Sprintf("%d requests from %v: TIME_WAIT on the server %v: %d, on the client: 0 (TcpExt.TW +%d)",
		done, proxyAddr, server, serverTW, tw), nil
}

// request sends one HTTP/1.1 request on a new connection from client and
// reads the answer up to the end of the stream: the client closes only
// after the server's FIN.
func (w *serverCloses) request(client, server netip.AddrPort) error {
	c, err := w.l.dial(client, server)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: backend\r\nUser-Agent: twtop-recordings\r\n\r\n"); err != nil {
		return fmt.Errorf("send request: %w", err)
	}
	resp, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if !strings.HasPrefix(string(resp), "HTTP/1.1 200 ") {
		line, _, _ := strings.Cut(string(resp), "\r\n")
		return fmt.Errorf("response %q, want 200", line)
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}
