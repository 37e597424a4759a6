package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twtop/twtop/internal/proc"
)

const (
	// attachLine starts the line twtop prints on stderr once it traces.
	attachLine = "twtop: tracing on kernel"
	// attachTimeout bounds how long loading and attaching may take.
	attachTimeout = time.Minute
	// exitTimeout bounds how long twtop may take to exit after SIGINT.
	exitTimeout = 30 * time.Second
)

// startTwtop starts path with args and returns once twtop has printed its
// attach line. With stdoutToFile, twtop's standard output goes to file;
// otherwise twtop writes file itself (--record) and its standard output is
// kept with its standard error for error messages.
func startTwtop(ctx context.Context, path string, args []string, stdoutToFile bool, file string) (*proc.Process, error) {
	o := proc.Options{
		Name:         "twtop",
		Path:         path,
		Args:         args,
		ReadyPrefix:  attachLine,
		ReadyTimeout: attachTimeout,
		ExitTimeout:  exitTimeout,
		Label:        "twtop " + strings.Join(args, " "),
		Until:        "attaching",
		Reach:        "attach",
	}
	if stdoutToFile {
		o.StdoutFile = file
	}
	return proc.Start(ctx, o)
}

// stopTwtop sends SIGINT and waits for twtop to exit with status 0.
func stopTwtop(tw *proc.Process) error {
	err := tw.Stop()
	if errors.Is(err, proc.ErrExited) {
		return fmt.Errorf("twtop stopped before the workload ended (%v): raise the scenario's --duration bound:\n%s", tw.Err(), tw.Stderr())
	}
	return err
}
