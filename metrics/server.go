package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ListenAddr completes a --metrics address: a port alone (":9273" or
// "9273") binds to loopback, 127.0.0.1; any interface only when asked for
// with "0.0.0.0:9273" or "[::]:9273". Port 0 picks a free port.
func ListenAddr(addr string) (string, error) {
	if addr == "" {
		return "", errors.New("empty address: give HOST:PORT or :PORT (e.g. :9273)")
	}
	if !strings.Contains(addr, ":") {
		addr = ":" + addr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%s: want HOST:PORT or :PORT (e.g. :9273, 0.0.0.0:9273): %w", addr, err)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || port != strconv.FormatUint(n, 10) {
		return "", fmt.Errorf("%s: port %q is not a number from 0 to 65535", addr, port)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if strings.ContainsAny(host, " /") {
		return "", fmt.Errorf("%s: %q is not a host name or address", addr, host)
	}
	return net.JoinHostPort(host, port), nil
}

// NewHandler serves the collector at /metrics, from a registry of its own
// with the Go runtime's and the process's collectors, and /healthz, which
// answers 200 once ready() is true (nil: at once) and 503 before.
func NewHandler(c *Collector, ready func() bool) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	for _, col := range []prometheus.Collector{c, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if ready != nil && !ready() {
			http.Error(w, "no snapshot yet", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "twtop: metrics at /metrics, health at /healthz\n")
	})
	return mux, nil
}

// Server is a running metrics endpoint.
type Server struct {
	srv  *http.Server
	addr net.Addr
	done chan error
}

// Listen binds addr (as ListenAddr completes it) and serves h there.
func Listen(addr string, h http.Handler) (*Server, error) {
	full, err := ListenAddr(addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", full)
	if err != nil {
		return nil, fmt.Errorf("metrics on %s: %w (choose another port with --metrics, or :0 for any free one)", full, err)
	}
	s := &Server{
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute},
		addr: ln.Addr(),
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// URL is where the metrics are, with the port actually bound.
func (s *Server) URL() string { return "http://" + s.addr.String() + "/metrics" }

// Close stops accepting scrapes and waits up to 5 s for those under way.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("stop metrics server: %w", err)
	}
	return nil
}
