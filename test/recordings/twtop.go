package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// attachLine starts the line twtop prints on stderr once it traces.
	attachLine = "twtop: tracing on kernel"
	// attachTimeout bounds how long loading and attaching may take.
	attachTimeout = time.Minute
	// exitTimeout bounds how long twtop may take to exit after SIGINT.
	exitTimeout = 30 * time.Second
)

// twtop is a running twtop process.
type twtop struct {
	cmd    *exec.Cmd
	out    *os.File // standard output, or nil when it is discarded
	stderr *syncBuffer
	exited chan struct{}
	err    error // Wait's result, set before exited is closed
}

// syncBuffer collects output written by one goroutine and read by another.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startTwtop starts path with args and returns once twtop has printed its
// attach line. With stdoutToFile, twtop's standard output goes to file;
// otherwise twtop writes file itself (--record) and its standard output is
// kept with its standard error for error messages.
func startTwtop(ctx context.Context, path string, args []string, stdoutToFile bool, file string) (*twtop, error) {
	t := &twtop{stderr: &syncBuffer{}, exited: make(chan struct{})}
	t.cmd = exec.Command(path, args...)
	if stdoutToFile {
		f, err := os.Create(file)
		if err != nil {
			return nil, fmt.Errorf("twtop output: %w", err)
		}
		t.out = f
		t.cmd.Stdout = f
	} else {
		t.cmd.Stdout = t.stderr
	}
	pr, pw := io.Pipe()
	t.cmd.Stderr = pw
	attached := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(t.stderr, line)
			if strings.HasPrefix(line, attachLine) {
				once.Do(func() { close(attached) })
			}
		}
		_, _ = io.Copy(t.stderr, pr)
	}()
	if err := t.cmd.Start(); err != nil {
		pw.Close()
		t.closeOut()
		return nil, fmt.Errorf("start twtop: %w", err)
	}
	go func() {
		t.err = t.cmd.Wait()
		pw.Close()
		close(t.exited)
	}()
	select {
	case <-attached:
		return t, nil
	case <-t.exited:
		t.closeOut()
		return nil, fmt.Errorf("twtop %s exited before attaching (%v):\n%s", strings.Join(args, " "), t.err, t.stderr)
	case <-time.After(attachTimeout):
		t.kill()
		return nil, fmt.Errorf("twtop %s did not attach within %v:\n%s", strings.Join(args, " "), attachTimeout, t.stderr)
	case <-ctx.Done():
		t.kill()
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
}

// stop sends SIGINT and waits for twtop to exit with status 0.
func (t *twtop) stop() error {
	defer t.closeOut()
	select {
	case <-t.exited:
		return fmt.Errorf("twtop stopped before the workload ended (%v): raise the scenario's --duration bound:\n%s", t.err, t.stderr)
	default:
	}
	if err := t.cmd.Process.Signal(syscall.SIGINT); err != nil {
		return fmt.Errorf("signal twtop: %w", err)
	}
	select {
	case <-t.exited:
	case <-time.After(exitTimeout):
		t.kill()
		return fmt.Errorf("twtop did not exit within %v of SIGINT:\n%s", exitTimeout, t.stderr)
	}
	if t.err != nil {
		return fmt.Errorf("twtop: %w:\n%s", t.err, t.stderr)
	}
	return nil
}

// kill ends twtop if it still runs and waits for it.
func (t *twtop) kill() {
	select {
	case <-t.exited:
	default:
		_ = t.cmd.Process.Kill()
		<-t.exited
	}
	t.closeOut()
}

func (t *twtop) closeOut() {
	if t.out != nil {
		t.out.Close()
		t.out = nil
	}
}
