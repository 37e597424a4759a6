package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/record"
)

// replayReport is the part of `twtop --replay FILE --report json` the
// harness reads.
type replayReport struct {
	Tier            string  `json:"tier"`
	DurationS       float64 `json:"duration_s"`
	Events          uint64  `json:"events"`
	Lost            uint64  `json:"lost"`
	RecursionMisses uint64  `json:"recursion_misses"`
	Closes          struct {
		Active  uint64 `json:"active"`
		Passive uint64 `json:"passive"`
		Reset   uint64 `json:"reset"`
	} `json:"closes"`
	Timewait struct {
		Created  uint64 `json:"created"`
		Overflow uint64 `json:"overflow"`
	} `json:"timewait"`
	Reuse struct {
		ConnectReuse uint64 `json:"connect_reuse"`
	} `json:"reuse"`
}

// replay runs twtop's replay of file and decodes its JSON report.
func replay(bin, file string) (replayReport, error) {
	cmd := exec.Command(bin, "--replay", file, "--report", "json")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return replayReport{}, fmt.Errorf("twtop --replay %s: %w: %s", file, err, strings.TrimSpace(errOut.String()))
	}
	var r replayReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return replayReport{}, fmt.Errorf("report of %s: %w", file, err)
	}
	return r, nil
}

// firstEvents returns the Unix times of the earliest record of the
// recording and of its earliest record that a kernel hook wrote (not the
// periodic TIME_WAIT scan). A zero time means there was none.
func firstEvents(file string) (first, firstHooked time.Time, err error) {
	f, err := os.Open(file)
	if err != nil {
		return first, firstHooked, fmt.Errorf("open recording: %w", err)
	}
	defer f.Close()
	rd, err := record.NewReader(f)
	if err != nil {
		return first, firstHooked, fmt.Errorf("read recording %s: %w", file, err)
	}
	off := rd.Header().WallOffsetNs
	minAny, minHooked := uint64(math.MaxUint64), uint64(math.MaxUint64)
	var e event.Event
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return first, firstHooked, fmt.Errorf("read recording %s: %w", file, err)
		}
		if err := event.Decode(rec, &e); err != nil {
			continue
		}
		minAny = min(minAny, e.Time)
		if e.Kind != event.KindScanTW && e.Kind != event.KindScanEnd {
			minHooked = min(minHooked, e.Time)
		}
	}
	toWall := func(t uint64) time.Time {
		if t == math.MaxUint64 {
			return time.Time{}
		}
		return time.Unix(0, int64(t)+off)
	}
	return toWall(minAny), toWall(minHooked), nil
}
