package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/twtop/twtop/internal/netns"
	"github.com/twtop/twtop/internal/proc"
)

//go:embed nginx.conf.tmpl
var nginxConf string

//go:embed pace.lua
var paceLua string

var nginxConfTmpl = template.Must(template.New("nginx.conf").Parse(nginxConf))

const (
	proxyPort = 80
	// wrk's load: connections, threads and duration. Each connection keeps
	// its connection to nginx open (HTTP/1.1 keep-alive) and pauses
	// between requests (pace.lua).
	wrkConns    = 4
	wrkThreads  = 2
	wrkDuration = 3 * time.Second
	// nginxStopTimeout bounds nginx's graceful shutdown.
	nginxStopTimeout = 5 * time.Second
)

// nginxProxy is Debian's nginx as a reverse proxy on proxyAddr:80, run from
// a temporary prefix inside the namespace, in front of a Go HTTP backend on
// backendAddr:8080 served from this process inside the same namespace;
// wrk is the load.
type nginxProxy struct {
	l       *lab
	dir     string
	wrk     string
	nginx   *exec.Cmd
	exited  chan struct{}
	waitErr error
	backend *http.Server
	ln      net.Listener
	served  chan struct{}
}

func setupNginxProxy(ctx context.Context, l *lab) (wl workload, err error) {
	nginx, err := apt.Need("nginx", "nginx-light")
	if err != nil {
		return nil, err
	}
	wrk, err := apt.Need("wrk", "wrk")
	if err != nil {
		return nil, err
	}
	w := &nginxProxy{l: l, wrk: wrk}
	defer func() {
		if err != nil {
			err = errors.Join(err, w.Close())
		}
	}()
	w.dir, err = os.MkdirTemp("", "twtop-nginx-proxy-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}

	w.ln, err = l.listen(netip.AddrPortFrom(backendAddr, backendPort))
	if err != nil {
		return nil, err
	}
	w.backend = newHTTPServer()
	w.served = make(chan struct{})
	go func() {
		defer close(w.served)
		_ = w.backend.Serve(w.ln)
	}()

	temps, err := nginxTempPaths(nginx)
	if err != nil {
		return nil, err
	}
	var conf bytes.Buffer
	err = nginxConfTmpl.Execute(&conf, map[string]any{
		"Dir":       w.dir,
		"Proxy":     netip.AddrPortFrom(proxyAddr, proxyPort),
		"ProxyAddr": proxyAddr,
		"Backend":   netip.AddrPortFrom(backendAddr, backendPort),
		"TempPaths": temps,
	})
	if err != nil {
		return nil, fmt.Errorf("nginx configuration: %w", err)
	}
	confFile := filepath.Join(w.dir, "nginx.conf")
	if err := os.WriteFile(confFile, conf.Bytes(), 0o644); err != nil {
		return nil, fmt.Errorf("nginx configuration: %w", err)
	}
	if err := os.WriteFile(filepath.Join(w.dir, "pace.lua"), []byte(paceLua), 0o644); err != nil {
		return nil, fmt.Errorf("wrk script: %w", err)
	}

	// -e: the error log nginx writes to before it has read its
	// configuration (otherwise the compiled-in /var/log/nginx/error.log).
	cmd := exec.Command(nginx, "-p", w.dir, "-c", confFile, "-e", filepath.Join(w.dir, "error.log"))
	var out proc.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so that a Ctrl-C meant for the harness does
	// not reach it before Close stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := l.start(cmd); err != nil {
		return nil, err
	}
	w.nginx = cmd
	w.exited = make(chan struct{})
	go func() {
		w.waitErr = cmd.Wait()
		close(w.exited)
	}()
	if err := w.ready(ctx, &out); err != nil {
		return nil, err
	}
	return w, nil
}

// nginxTempPaths lists the modules with a *_temp_path directive besides
// proxy and client_body that the nginx binary has, so that none of their
// compiled-in paths under /var/lib/nginx is used.
func nginxTempPaths(nginx string) ([]string, error) {
	out, err := exec.Command(nginx, "-V").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s -V: %w: %s", nginx, err, out)
	}
	var temps []string
	for _, m := range []string{"fastcgi", "uwsgi", "scgi"} {
		if !bytes.Contains(out, []byte("--without-http_"+m+"_module")) {
			temps = append(temps, m)
		}
	}
	return temps, nil
}

// ready waits until nginx listens on the proxy address, watching the
// kernel's socket table rather than connecting, which would leave a
// TIME_WAIT socket before the recording starts.
func (w *nginxProxy) ready(ctx context.Context, out *proc.Buffer) error {
	front := netip.AddrPortFrom(proxyAddr, proxyPort)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-w.exited:
			return fmt.Errorf("nginx exited (%v): %s%s", w.waitErr, out, w.errorLog())
		default:
		}
		socks, err := w.l.sockets()
		if err != nil {
			return err
		}
		for _, s := range socks {
			if s.State == netns.Listen && s.Src == front {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginx not listening on %v after 10s: %s%s", front, out, w.errorLog())
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

func (w *nginxProxy) errorLog() string {
	b, err := os.ReadFile(filepath.Join(w.dir, "error.log"))
	if err != nil || len(b) == 0 {
		return ""
	}
	return "\nnginx error.log:\n" + string(b)
}

// Close stops nginx (SIGQUIT, then SIGKILL to its process group), the
// backend, and removes the temporary prefix.
func (w *nginxProxy) Close() error {
	var errs []error
	if w.nginx != nil {
		pid := w.nginx.Process.Pid
		_ = syscall.Kill(pid, syscall.SIGQUIT)
		select {
		case <-w.exited:
		case <-time.After(nginxStopTimeout):
			// The master leads the process group its workers are in.
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-w.exited
			errs = append(errs, fmt.Errorf("nginx did not stop within %v of SIGQUIT, killed its process group", nginxStopTimeout))
		}
		w.nginx = nil
	}
	if w.backend != nil {
		if err := w.backend.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close backend: %w", err))
		}
		<-w.served
		w.backend = nil
	}
	if w.dir != "" {
		if err := os.RemoveAll(w.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove nginx prefix: %w", err))
		}
		w.dir = ""
	}
	return errors.Join(errs...)
}

var (
	wrkRequests = regexp.MustCompile(`(?m)^\s*(\d+) requests in `)
	wrkErrors   = regexp.MustCompile(`(?m)^\s*(Non-2xx or 3xx responses|Socket errors):.*$`)
)

func (w *nginxProxy) Run(ctx context.Context) (string, error) {
	before, err := w.l.counters()
	if err != nil {
		return "", err
	}
	url := fmt.Sprintf("http://%v/", netip.AddrPortFrom(proxyAddr, proxyPort))
	out, err := w.l.output(ctx, w.wrk,
		"-c", strconv.Itoa(wrkConns), "-t", strconv.Itoa(wrkThreads), "-d", wrkDuration.String(),
		"-s", filepath.Join(w.dir, "pace.lua"), url)
	if ctx.Err() != nil {
		return "", fmt.Errorf("interrupted: %w", ctx.Err())
	}
	if err != nil {
		return "", fmt.Errorf("wrk: %w: %s", err, out)
	}
	if m := wrkErrors.Find(out); m != nil {
		return "", fmt.Errorf("wrk: %s:\n%s%s", strings.TrimSpace(string(m)), out, w.errorLog())
	}
	m := wrkRequests.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("wrk: no request count in its output:\n%s", out)
	}
	requests, _ := strconv.Atoi(string(m[1]))
	if requests < 100 {
		return "", fmt.Errorf("wrk made only %d requests:\n%s", requests, out)
	}

	backend := netip.AddrPortFrom(backendAddr, backendPort)
	upstream := func(s netns.Socket) bool { return s.Src == backend || s.Dst == backend }
	socks, tw, err := w.l.quiesce(ctx, "upstream connections", upstream, before)
	if err != nil {
		return "", err
	}
	// An upstream connection whose TIME_WAIT socket is on the backend only
	// was closed by the backend first, on nginx's side only by nginx first,
	// on both sides by both at once (FINs crossing).
	backendTW := make(map[netip.AddrPort]bool) // by the proxy's end
	proxyTW := make(map[netip.AddrPort]bool)
	for _, s := range socks {
		switch {
		case !s.IsTimewaitSock() || s.State != netns.TimeWait:
		case s.Src == backend:
			backendTW[s.Dst] = true
		case s.Dst == backend:
			proxyTW[s.Src] = true
		}
	}
	both := 0
	for p := range backendTW {
		if proxyTW[p] {
			both++
		}
	}
	conns := len(backendTW) + len(proxyTW) - both
	// Each upstream connection leaves at least one TIME_WAIT socket; wrk
	// does not count the requests still under way when it stops.
	if conns < requests || tw < int64(requests) {
		return "", fmt.Errorf("%d requests through nginx but the kernel shows TIME_WAIT sockets of only %d upstream connections (%d on the backend %v, %d on nginx's side; TcpExt.TW +%d)",
			requests, conns, len(backendTW), backend, len(proxyTW), tw)
	}
	pct := func(n int) float64 { return 100 * float64(n) / float64(conns) }
	return fmt.Sprintf("%d requests, %d upstream connections closed first by the backend %v: %d (%.0f%%), by nginx: %d (%.0f%%), by both at once: %d (%.0f%%); upstream TIME_WAIT on the backend %d, on nginx's side %d (TcpExt.TW +%d)",
		requests, conns, backend, len(backendTW)-both, pct(len(backendTW)-both), len(proxyTW)-both, pct(len(proxyTW)-both), both, pct(both),
		len(backendTW), len(proxyTW), tw), nil
}
