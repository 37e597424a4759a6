package main

import (
	"encoding/binary"
	"os"
	"testing"
)

// The record floor's reader counts the committed records, skips the
// discarded ones, rounds every record up to 8 bytes, and stops at the
// first one still being written.
func TestFloorRingConsume(t *testing.T) {
	page := os.Getpagesize()
	r := &floorRing{cons: make([]byte, page), prod: make([]byte, page+floorRingSize)}
	data := r.prod[page:]
	le := binary.LittleEndian
	at := 0
	put := func(hdr uint32, size int) {
		le.PutUint32(data[at:], hdr)
		at += (ringHdrSize + size + 7) &^ 7
	}
	put(56, 56)
	put(56|ringDiscard, 56)
	put(81, 81) // ends 4 bytes short of a multiple of 8
	put(64, 64)
	busyAt := at
	put(56|ringBusy, 56)
	le.PutUint64(r.prod, uint64(at))

	if n := r.consume(); n != 3 {
		t.Fatalf("read %d records, want 3 (the discarded one and the busy one not)", n)
	}
	if got := le.Uint64(r.cons); got != uint64(busyAt) {
		t.Fatalf("consumer position %d, want %d (at the record still being written)", got, busyAt)
	}
	le.PutUint32(data[busyAt:], 56) // committed now
	if n := r.consume(); n != 1 || le.Uint64(r.cons) != uint64(at) {
		t.Fatalf("then read %d records up to %d, want 1 up to %d", n, le.Uint64(r.cons), at)
	}
	if n := r.consume(); n != 0 {
		t.Fatalf("read %d records from an empty ring", n)
	}
}
