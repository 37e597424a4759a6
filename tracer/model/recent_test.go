package model

import (
	"testing"

	"github.com/twtop/twtop/tracer/event"
)

func TestRecentKeepsTheLatestShownEvents(t *testing.T) {
	m := New(Config{})
	for i := range recentMaxEvents + 10 {
		m.Apply(&event.Event{Kind: event.KindTWCreate, Time: uint64(i + 1), Ptr: uint64(i + 1), Lifetime: -1})
		m.Apply(&event.Event{Kind: event.KindScanEnd, Time: uint64(i + 1)}) // bookkeeping: not shown
	}
	got := m.Snapshot().Recent
	if len(got) != recentMaxEvents {
		t.Fatalf("%d recent events, want %d", len(got), recentMaxEvents)
	}
	for i, e := range got {
		if e.Kind != event.KindTWCreate || e.Time != uint64(11+i) {
			t.Fatalf("recent[%d] = %s at %d, want tw_create at %d (oldest first)", i, e.Kind, e.Time, 11+i)
		}
	}
}
