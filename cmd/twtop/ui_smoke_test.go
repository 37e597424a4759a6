package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/scenario"
)

// tmux drives the real binary in a real terminal.
type tmux struct {
	t    *testing.T
	name string
}

func newTmux(t *testing.T, width, height int, args ...string) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is missing (make test installs it)")
		}
		t.Skip("tmux is missing: apt-get install tmux")
	}
	m := &tmux{t: t, name: fmt.Sprintf("twtop-%d", time.Now().UnixNano())}
	cmd := append([]string{"new-session", "-d", "-s", m.name, "-x", fmt.Sprint(width), "-y", fmt.Sprint(height),
		"env", "TERM=xterm-256color"}, args...)
	if out, err := exec.Command("tmux", cmd...).CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("tmux", "kill-session", "-t", m.name).Run() })
	return m
}

func (m *tmux) keys(keys ...string) {
	m.t.Helper()
	if out, err := exec.Command("tmux", append([]string{"send-keys", "-t", m.name}, keys...)...).CombinedOutput(); err != nil {
		m.t.Fatalf("send-keys %q: %v: %s", keys, err, out)
	}
}

func (m *tmux) pane() string {
	out, _ := exec.Command("tmux", "capture-pane", "-p", "-t", m.name).Output()
	return string(out)
}

// waitFor polls the pane until it holds every one of want.
func (m *tmux) waitFor(what string, want ...string) string {
	m.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := m.pane()
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(p, w)
		}
		if ok {
			return p
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("%s: the screen never showed %q:\n%s", what, want, p)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitGone polls the pane until it no longer holds gone.
func (m *tmux) waitGone(what, gone string) {
	m.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Contains(m.pane(), gone) {
		if time.Now().After(deadline) {
			m.t.Fatalf("%s: the screen still shows %q:\n%s", what, gone, m.pane())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (m *tmux) alive() bool {
	return exec.Command("tmux", "has-session", "-t", m.name).Run() == nil
}

// The real binary in a real terminal (tmux): what a person sees after
// starting a replay in the UI, opening help, switching screens, filtering,
// and quitting — which must take under a second.
func TestUISmokeInTmux(t *testing.T) {
	bin := twtopBinary(t)
	rec, err := filepath.Abs("../../testdata/nginx-proxy.twrec")
	if err != nil {
		t.Fatal(err)
	}
	m := newTmux(t, 100, 30, bin, "--replay", rec)
	m.waitFor("start", "REPLAY nginx-proxy.twrec", "1 Overview", "Closes")
	m.waitFor("replay runs to its end", "DONE", "614 created")
	m.keys("?")
	m.waitFor("help", "twtop keys", "quit", "Esc or ? closes")
	m.keys("Escape")
	time.Sleep(300 * time.Millisecond) // a lone ESC, not the start of an escape sequence
	m.waitGone("help closed by Esc", "twtop keys")
	m.keys("Tab")
	p := m.waitFor("closers screen", "Who closes first", "ACTIVE", "nginx[")
	if !strings.Contains(p, "recordings[") {
		t.Errorf("closers screen lacks the backend's row:\n%s", p)
	}
	m.keys("/", "n", "g", "i", "n", "x")
	m.keys("Enter")
	m.waitGone("filter 'nginx' hides the backend's row", "recordings[")
	if p := m.pane(); !strings.Contains(p, "nginx[") || strings.Contains(p, "wrk[") {
		t.Errorf("filter 'nginx' shows the wrong rows:\n%s", p)
	}
	m.keys("4")
	m.waitFor("events screen", "KIND", "tw_create")
	start := time.Now()
	m.keys("q")
	for m.alive() {
		if time.Since(start) > time.Second {
			t.Fatalf("twtop still running 1 s after q:\n%s", m.pane())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The UI on the live tracer while a scenario runs in a namespace: the
// header's TIME_WAIT count is the namespace's.
func TestUILiveShowsTimewait(t *testing.T) {
	ns := netnstest.New(t)
	m := newTmux(t, 120, 30, twtopBinary(t), "--netns", ns.Path())
	m.waitFor("start", "LIVE", "TIME_WAIT 0/")
	r, err := scenario.ClientCloses(ns, 7, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m.waitFor("the scenario's TIME_WAIT sockets", "TIME_WAIT 7/", "7 created")
	m.keys("q")
	deadline := time.Now().Add(2 * time.Second)
	for m.alive() {
		if time.Now().After(deadline) {
			t.Fatalf("twtop still running 2 s after q:\n%s", m.pane())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
