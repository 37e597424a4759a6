package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twtop/twtop/internal/netns"
	"golang.org/x/sys/unix"
)

// lab is a fresh network namespace with loopback up, set up for one churn
// mode.
type lab struct {
	ns      *netns.NS
	sysctls []string
}

func newLab(c churnConfig) (*lab, error) {
	ns, err := netns.New()
	if err != nil {
		return nil, fmt.Errorf("create network namespace: %w", err)
	}
	set, err := setupNetns(ns, c)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("set up network namespace: %w", err), ns.Close())
	}
	return &lab{ns: ns, sysctls: set}, nil
}

// timewaitOpen is the number of TIME_WAIT sockets in the namespace (the
// "tw" of its /proc/net/sockstat).
func (l *lab) timewaitOpen() (int64, error) {
	var b []byte
	err := l.ns.Do(func() (err error) {
		b, err = os.ReadFile("/proc/thread-self/net/sockstat")
		return err
	})
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "TCP:") {
			continue
		}
		f := strings.Fields(line)
		for i := 1; i+1 < len(f); i += 2 {
			if f[i] == "tw" {
				return strconv.ParseInt(f[i+1], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no TCP tw in sockstat:\n%s", b)
}

// Close drops the namespace; the kernel then purges its TIME_WAIT sockets
// in the background.
func (l *lab) Close() error {
	if err := l.ns.Close(); err != nil {
		return fmt.Errorf("close network namespace: %w", err)
	}
	return nil
}

// start starts cmd from the namespace's thread, so that the process and
// every socket it creates live in the namespace, and checks that it does
// unless it has already exited.
func (l *lab) start(cmd *exec.Cmd) error {
	if err := l.ns.Do(func() error { return cmd.Start() }); err != nil {
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	var st unix.Stat_t
	path := fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)
	err := unix.Stat(path, &st)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err == nil && uint32(st.Ino) != l.ns.Inode() {
		err = fmt.Errorf("runs in network namespace %d, not %d", st.Ino, l.ns.Inode())
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("check namespace of %s: %w", cmd.Path, err)
	}
	return nil
}

// childSlack is how long a generator may run past its duration before it
// is killed.
const childSlack = 30 * time.Second

// churnProc is a generator process running in a lab.
type churnProc struct {
	cmd    *exec.Cmd
	out    strings.Builder
	errOut strings.Builder
	cfg    churnConfig
}

// startChurn starts this program's churn-child command in the lab.
func (l *lab) startChurn(c churnConfig) (*churnProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	arg, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode churn config: %w", err)
	}
	p := &churnProc{cfg: c}
	p.cmd = exec.Command(self, childCommand, string(arg))
	p.cmd.Stdout = &p.out
	p.cmd.Stderr = &p.errOut
	if err := l.start(p.cmd); err != nil {
		return nil, err
	}
	return p, nil
}

// wait waits for the generator and returns its result.
func (p *churnProc) wait(ctx context.Context) (churnResult, error) {
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(p.cfg.Duration + childSlack):
		_ = p.cmd.Process.Kill()
		<-done
		return churnResult{}, fmt.Errorf("churn did not end within %v of its duration", childSlack)
	case <-ctx.Done():
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		<-done
		return churnResult{}, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	if err != nil {
		return churnResult{}, fmt.Errorf("churn: %w: %s", err, strings.TrimSpace(p.errOut.String()))
	}
	var res churnResult
	if err := json.Unmarshal([]byte(strings.TrimSpace(p.out.String())), &res); err != nil {
		return churnResult{}, fmt.Errorf("churn result %q: %w", p.out.String(), err)
	}
	return res, nil
}

// runChurnIn runs one churn in the lab and waits for it.
func (l *lab) runChurnIn(ctx context.Context, c churnConfig) (churnResult, error) {
	p, err := l.startChurn(c)
	if err != nil {
		return churnResult{}, err
	}
	return p.wait(ctx)
}
