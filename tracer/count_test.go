package tracer

import (
	"errors"
	"testing"
	"time"

	"github.com/twtop/twtop/tracer/event"
)

// Stats counts the records Next hands out by kind: at most countEvery of
// them late while records keep coming, and every one once Next has waited
// for records (or returned an error).
func TestNextCounts(t *testing.T) {
	const n = countEvery + 10
	var recs [][]byte
	for i := range n {
		kind := event.KindState
		if i%3 == 0 {
			kind = event.KindTWCreate
		}
		b := make([]byte, event.RecordSize)
		event.Encode(&event.Event{Kind: kind, Ptr: uint64(1 + i), Time: uint64(1 + i)}, b)
		recs = append(recs, b)
	}
	errIdle := errors.New("idle")
	tr := &Tracer{reader: &sliceReader{recs: recs}, next: time.Now().Add(time.Hour), final: &Stats{}}
	tr.OnIdle(func() error { return errIdle })
	total := func() uint64 {
		s, err := tr.Stats()
		if err != nil {
			t.Fatal(err)
		}
		return s.TotalEvents()
	}
	for i := range n {
		if _, err := tr.Next(); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if got, lag := total(), uint64(i+1); got > lag || lag-got >= countEvery {
			t.Fatalf("after %d records Stats counts %d: more, or %d or more late", lag, got, countEvery)
		}
	}
	if _, err := tr.Next(); !errors.Is(err, errIdle) {
		t.Fatalf("Next with no record left: %v, want the idle callback's error", err)
	}
	s, _ := tr.Stats()
	want := [event.NumKinds]uint64{event.KindTWCreate: (n + 2) / 3, event.KindState: n - (n+2)/3}
	if s.Events != want {
		t.Fatalf("after the wait Stats counts %v, want %v", s.Events, want)
	}
}
