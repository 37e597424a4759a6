package metrics

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

func TestMetricsListenAddr(t *testing.T) {
	for in, want := range map[string]string{
		":9273":          "127.0.0.1:9273",
		"9273":           "127.0.0.1:9273",
		":0":             "127.0.0.1:0",
		"0.0.0.0:9273":   "0.0.0.0:9273",
		"[::]:9273":      "[::]:9273",
		"[::1]:9273":     "[::1]:9273",
		"localhost:9273": "localhost:9273",
		"10.1.2.3:80":    "10.1.2.3:80",
	} {
		got, err := ListenAddr(in)
		if err != nil || got != want {
			t.Errorf("ListenAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", ":http", ":65536", ":-1", "a:b:c", "host", ":", "[::1", "a b:80", ":09273"} {
		if got, err := ListenAddr(in); err == nil {
			t.Errorf("ListenAddr(%q) = %q, want an error", in, got)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("ListenAddr(%q): error is not one line: %q", in, err)
		}
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestMetricsServerHealthAndShutdown(t *testing.T) {
	var ready atomic.Bool
	h, err := NewHandler(NewCollector(func() *Reading { return nil }, Options{}), ready.Load)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Listen(":0", h)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") || strings.HasSuffix(srv.URL(), ":0/metrics") {
		t.Fatalf("URL %s: want loopback and the port bound", srv.URL())
	}
	base := strings.TrimSuffix(srv.URL(), "/metrics")
	if code, _ := get(t, base+"/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("healthz before the first snapshot: %d, want 503", code)
	}
	ready.Store(true)
	if code, body := get(t, base+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("healthz: %d %q", code, body)
	}
	if code, body := get(t, srv.URL()); code != http.StatusOK || !strings.Contains(body, "twtop_info") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("metrics: %d\n%s", code, body)
	}
	if code, _ := get(t, base+"/nothing"); code != http.StatusNotFound {
		t.Errorf("/nothing: %d, want 404", code)
	}

	// a busy port: one line that says what to do
	host := strings.TrimPrefix(base, "http://")
	if _, err := Listen(host, h); err == nil || !strings.Contains(err.Error(), "--metrics") || strings.Contains(err.Error(), "\n") {
		t.Errorf("listen on a busy port: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", host); err == nil {
		c.Close()
		t.Error("the port still accepts connections after Close")
	}
}
