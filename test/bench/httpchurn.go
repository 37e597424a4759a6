package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// modeHTTP is a churn of whole HTTP/1.1 exchanges with Go's net/http: a
// client without keep-alive sends GET /, the server answers a few bytes
// and, as asked by "Connection: close", closes first. Each connection runs
// through the netpoller, goroutines and the HTTP code on both sides, so it
// costs the host several times what the raw modes' connections do: it is
// the shape of a busy HTTP service rather than the kernel's fastest path.
const modeHTTP = "http"

// httpStream runs GETs one at a time against the server on port, over
// each loopback destination in turn, until deadline.
func httpStream(c churnConfig, port int, deadline time.Time) streamResult {
	var r streamResult
	tr := &http.Transport{DisableKeepAlives: true, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	urls := make([]string, c.dests())
	for i := range urls {
		urls[i] = fmt.Sprintf("http://127.0.0.%d:%d/", 1+i, port)
	}
	streak := 0
	for n := 0; time.Now().Before(deadline); n++ {
		if streak > 1000 {
			r.fatal = fmt.Errorf("http stream on port %d: %d failures in a row (%s)", port, streak, errorNames(r.errors))
			return r
		}
		resp, err := client.Get(urls[n%len(urls)])
		if err != nil {
			r.fail("get", err)
			streak++
			continue
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			r.fail("read", err)
			streak++
			continue
		}
		r.conns++
		streak = 0
	}
	return r
}

// serveHTTP serves a tiny answer on port until the returned stop is called.
// The listener is plain TCP, never MPTCP, like the raw modes'.
func serveHTTP(port int) (stop func(), err error) {
	lc := net.ListenConfig{}
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		return nil, fmt.Errorf("http listener on port %d: %w", port, err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "ok\n")
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	srv.SetKeepAlivesEnabled(false)
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, nil
}
