package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/twtop/twtop/internal/ingest"
	"github.com/twtop/twtop/pipeline"
	"github.com/twtop/twtop/tracer/model"
	"github.com/twtop/twtop/tracer/record"
)

// badRecording is a recording twtop cannot read (exit status 2).
type badRecording struct{ err error }

func (e *badRecording) Error() string { return e.err.Error() }
func (e *badRecording) Unwrap() error { return e.err }

// replay reads a recording through the same decoder and model as live
// tracing.
func replay(cfg *config) error {
	if cfg.ui && !isTerminal(os.Stdout) {
		return &usageError{"the UI needs a terminal: give --report text|json, --events json or --check EXPR"}
	}
	in, size, err := openReplay(cfg.replay)
	if err != nil {
		return err
	}
	defer in.Close()
	rd, err := record.NewReader(in)
	if err != nil {
		return replayError(cfg.replay, err)
	}
	board := new(pipeline.Board)
	feed, err := startMetrics(cfg, board)
	if err != nil {
		return err
	}
	defer feed.close()
	h := rd.Header()
	feed.source(h.Kernel)
	fmt.Fprintf(os.Stderr, "twtop: replaying %s: recorded %s on %s, kernel %s, tier %s\n",
		cfg.replay, h.Started.Local().Format("2006-01-02 15:04:05"), h.Host, h.Kernel, h.Tier)
	if cfg.ui {
		if err := replayUI(cfg.replay, rd, board, feed != nil); err != nil {
			return replayError(cfg.replay, err)
		}
		if tr := rd.Truncated(); tr != nil {
			fmt.Fprintf(os.Stderr, "twtop: warning: %s\n", tr)
		}
		return nil
	}
	src := &replaySource{rd: rd, size: size, progress: isTerminal(os.Stderr), start: time.Now()}

	if cfg.events != "" {
		err = printEvents(src, h.HZ, bufio.NewWriterSize(os.Stdout, 64<<10), nil)
	} else {
		var stop <-chan os.Signal
		if feed != nil {
			var unnotify func()
			stop, unnotify = notifyStop()
			defer unnotify()
		}
		m := ingest.Model(rd)
		if err = pipeline.Feed(src, h.HZ, m); err == nil {
			src.done()
			board.Publish(m.Snapshot(), rd.TracerStats())
			err = replayReport(cfg, rd, board.Load())
		}
		if feed != nil && (err == nil || errors.As(err, new(*checksFailed))) {
			// the recording's final figures, until Ctrl-C or SIGTERM
			fmt.Fprintf(os.Stderr, "twtop: replayed; serving its figures until Ctrl-C\n")
			<-stop
		}
	}
	src.done()
	if err != nil {
		return replayError(cfg.replay, err)
	}
	return nil
}

// replayReport prints the report and evaluates the checks.
func replayReport(cfg *config, rd *record.Reader, p *pipeline.Published) error {
	meta := model.Meta{Tier: p.Snapshot.Tier.Name, Lost: p.Stats.Lost, RecursionMisses: p.Stats.RecursionMisses}
	if tr := rd.Truncated(); tr != nil {
		fmt.Fprintf(os.Stderr, "twtop: warning: %s; lost events are counted up to the last settings reading\n", tr)
	}
	r := p.Snapshot.Report(meta)
	if cfg.report != "" {
		if err := writeReport(r, cfg.report, os.Stdout); err != nil {
			return err
		}
	}
	if len(cfg.checks) > 0 {
		return runChecks(r, cfg.checks, os.Stdout)
	}
	return nil
}

// replayError names the file in a reading error; an unreadable recording
// exits with status 2.
func replayError(name string, err error) error {
	var fe *record.FormatError
	if errors.As(err, &fe) {
		return &badRecording{fmt.Errorf("%s: %w", name, err)}
	}
	var cf *checksFailed
	if errors.As(err, &cf) {
		return err
	}
	return fmt.Errorf("replay %s: %w", name, err)
}

// openReplay opens the recording ("-" is stdin) and returns its size when
// known (for the progress display). A file that cannot be opened, or a
// directory, is an unreadable recording.
func openReplay(path string) (io.ReadCloser, int64, error) {
	if path == "-" {
		return io.NopCloser(os.Stdin), 0, nil
	}
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is named below
		}
		return nil, 0, &badRecording{fmt.Errorf("--replay %s: %w", path, err)}
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, &badRecording{fmt.Errorf("--replay %s: %w", path, err)}
	}
	if fi.IsDir() {
		f.Close()
		return nil, 0, &badRecording{fmt.Errorf("--replay %s: a directory; give a recording file (twtop --record FILE makes one)", path)}
	}
	var size int64
	if fi.Mode().IsRegular() {
		size = fi.Size()
	}
	return f, size, nil
}

// replaySource is the recording as a raw record source, with a progress
// line on a terminal when the replay takes more than a second.
type replaySource struct {
	rd       *record.Reader
	size     int64
	progress bool
	start    time.Time
	n        uint64
	shown    bool
}

func (s *replaySource) Next() ([]byte, error) {
	s.n++
	if s.progress && s.n%(1<<16) == 0 && time.Since(s.start) > time.Second {
		if s.size > 0 {
			fmt.Fprintf(os.Stderr, "\r\033[Ktwtop: replaying: %s events, %.0f%%", grouped(s.n), 100*float64(s.rd.Offset())/float64(s.size))
		} else {
			fmt.Fprintf(os.Stderr, "\r\033[Ktwtop: replaying: %s events", grouped(s.n))
		}
		s.shown = true
	}
	return s.rd.Next()
}

// done ends the progress line.
func (s *replaySource) done() {
	if s.shown {
		fmt.Fprintln(os.Stderr)
		s.shown = false
	}
}
