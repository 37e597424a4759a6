// Package proc runs a helper process for the test harnesses (a tracer such
// as twtop or bpftrace): it starts it, keeps its standard error, waits
// until it says it is ready, and stops it with SIGINT, requiring exit
// status 0.
package proc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Buffer collects output written by one goroutine and read by another.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Options describes the process to start and how to tell it is ready.
type Options struct {
	// Name names the process in error messages: "start NAME: ...",
	// "signal NAME: ...", "NAME did not exit within ...".
	Name string
	Path string
	Args []string
	// StdoutFile, when set, is created to receive the standard output;
	// otherwise the standard output is kept with the standard error.
	StdoutFile string
	// The process is ready once a line of its standard error starts with
	// ReadyPrefix or, with ReadyMarker set, once StdoutFile holds a line
	// equal to ReadyMarker. One of them must be set.
	ReadyPrefix string
	ReadyMarker string
	// ReadyTimeout bounds how long Start waits for the process to be
	// ready; ExitTimeout how long Stop waits for it to exit after SIGINT.
	// Both must be positive.
	ReadyTimeout time.Duration
	ExitTimeout  time.Duration
	// Terminal, when set, is the process's standard input and output and
	// its controlling terminal, in a session of its own (a program that
	// draws on /dev/tty, such as twtop's UI).
	Terminal *os.File
	// Env, when set, is added to the environment.
	Env []string
	// Label, Until and Reach word the errors of a process that is not
	// ready: "LABEL exited before UNTIL (ERR):" and "LABEL did not REACH
	// within TIMEOUT:", each followed by its standard error. Label is Name
	// when empty, Until "it was ready" and Reach "get ready".
	Label, Until, Reach string
}

// ErrExited is what Stop returns when the process had exited before it
// was stopped.
var ErrExited = errors.New("process exited before it was stopped")

// Process is a started process.
type Process struct {
	name        string
	exitTimeout time.Duration
	cmd         *exec.Cmd
	stderr      *Buffer
	out         *os.File // StdoutFile, until closed
	exited      chan struct{}
	err         error // Wait's result, set before exited is closed

	ready   chan struct{}
	once    sync.Once
	execAt  time.Time // just before fork and exec
	readyAt time.Time // set before ready is closed
}

// Start starts the process described by o and returns once it is ready.
// A process that exits first, is not ready within o.ReadyTimeout or is
// still starting when ctx is done is killed, and Start fails.
func Start(ctx context.Context, o Options) (*Process, error) {
	switch {
	case o.ReadyPrefix == "" && o.ReadyMarker == "":
		return nil, fmt.Errorf("%s: neither a ready prefix nor a ready marker", o.Name)
	case o.ReadyMarker != "" && o.StdoutFile == "":
		return nil, fmt.Errorf("%s: a ready marker needs a standard output file", o.Name)
	case o.ReadyTimeout <= 0 || o.ExitTimeout <= 0:
		return nil, fmt.Errorf("%s: ready and exit timeouts must be positive", o.Name)
	}
	label, until, reach := o.Label, o.Until, o.Reach
	if label == "" {
		label = o.Name
	}
	if until == "" {
		until = "it was ready"
	}
	if reach == "" {
		reach = "get ready"
	}
	p := &Process{
		name:        o.Name,
		exitTimeout: o.ExitTimeout,
		stderr:      &Buffer{},
		exited:      make(chan struct{}),
		ready:       make(chan struct{}),
	}
	p.cmd = exec.Command(o.Path, o.Args...)
	if o.Env != nil {
		p.cmd.Env = append(os.Environ(), o.Env...)
	}
	switch {
	case o.Terminal != nil:
		p.cmd.Stdin, p.cmd.Stdout = o.Terminal, o.Terminal
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	case o.StdoutFile != "":
		f, err := os.Create(o.StdoutFile)
		if err != nil {
			return nil, fmt.Errorf("%s output: %w", o.Name, err)
		}
		p.out = f
		p.cmd.Stdout = f
	default:
		p.cmd.Stdout = p.stderr
	}
	pr, pw := io.Pipe()
	p.cmd.Stderr = pw
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.stderr, line)
			if o.ReadyPrefix != "" && strings.HasPrefix(line, o.ReadyPrefix) {
				p.setReady()
			}
		}
		_, _ = io.Copy(p.stderr, pr)
	}()
	p.execAt = time.Now()
	if err := p.cmd.Start(); err != nil {
		pw.Close()
		p.closeOut()
		return nil, fmt.Errorf("start %s: %w", o.Name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		pw.Close()
		close(p.exited)
	}()
	if o.ReadyMarker != "" {
		go watchFile(o.StdoutFile, o.ReadyMarker, p.setReady, p.exited)
	}
	timeout := time.NewTimer(o.ReadyTimeout)
	defer timeout.Stop()
	select {
	case <-p.ready:
		return p, nil
	case <-p.exited:
		p.closeOut()
		return nil, fmt.Errorf("%s exited before %s (%v):\n%s", label, until, p.err, p.stderr)
	case <-timeout.C:
		p.Kill()
		return nil, fmt.Errorf("%s did not %s within %v:\n%s", label, reach, o.ReadyTimeout, p.stderr)
	case <-ctx.Done():
		p.Kill()
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
}

// setReady notes the time the process said it is ready, the first time
// only.
func (p *Process) setReady() {
	p.once.Do(func() {
		p.readyAt = time.Now()
		close(p.ready)
	})
}

// watchFile polls path until it holds a line equal to marker, then calls
// ready. It gives up when done is closed.
func watchFile(path, marker string, ready func(), done <-chan struct{}) {
	want := []byte(marker + "\n")
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(path)
		if err == nil && (bytes.HasPrefix(b, want) || bytes.Contains(b, append([]byte("\n"), want...))) {
			ready()
			return
		}
		select {
		case <-tick.C:
		case <-done:
			return
		}
	}
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// ExecAt is the time just before the process was forked and executed.
func (p *Process) ExecAt() time.Time { return p.execAt }

// ReadyAt is when the process said it is ready.
func (p *Process) ReadyAt() time.Time { return p.readyAt }

// Stderr returns the standard error so far, with the standard output when
// that does not go to a file.
func (p *Process) Stderr() string { return p.stderr.String() }

// Exited is closed once the process has exited and been waited for.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is Wait's result once the process has exited, nil before.
func (p *Process) Err() error {
	select {
	case <-p.exited:
		return p.err
	default:
		return nil
	}
}

// State is the exited process's state (resource usage included), nil
// while it runs.
func (p *Process) State() *os.ProcessState {
	select {
	case <-p.exited:
		return p.cmd.ProcessState
	default:
		return nil
	}
}

// Stop sends SIGINT and waits for the process to exit with status 0. It
// kills the process when it does not exit within the exit timeout, and
// returns ErrExited, without signalling, when it had already exited: Err
// and Stderr then tell why. The standard output file is closed in every
// case.
func (p *Process) Stop() error {
	defer p.closeOut()
	select {
	case <-p.exited:
		return ErrExited
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		return fmt.Errorf("signal %s: %w", p.name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(p.exitTimeout):
		p.Kill()
		return fmt.Errorf("%s did not exit within %v of SIGINT:\n%s", p.name, p.exitTimeout, p.stderr)
	}
	if p.err != nil {
		return fmt.Errorf("%s: %w:\n%s", p.name, p.err, p.stderr)
	}
	return nil
}

// Kill ends the process if it still runs, waits for it and closes the
// standard output file.
func (p *Process) Kill() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.closeOut()
}

func (p *Process) closeOut() {
	if p.out != nil {
		p.out.Close()
		p.out = nil
	}
}
