// Package record writes and reads twtop recordings: the raw records as the
// kernel sent them, each widened to a whole struct event (see
// event.Widen), plus the context needed to read them again (kernel, attach
// tier, timer frequency, settings and counters). A replay decodes the same
// bytes with the same decoder as the live tracer.
//
// # File layout
//
// A recording is a 12-byte preamble followed by blocks:
//
//	preamble  "\x89TWTOP\r\n" (8 bytes), format version (uint32)
//	block     type (uint32), payload length (uint32), CRC-32C of the
//	          type and length (uint32), payload, CRC-32C of the payload
//	          (uint32)
//
// Integers are little-endian. The head has its own checksum so that a
// damaged length is told apart from a file cut short. The first block is the header; then come
// state blocks (settings and counters, at start and periodically), event
// blocks (batches of raw records), workloads blocks (the pods, containers
// and services of the owners' cgroups, as they are resolved) and, when the
// recording ended cleanly, a trailer with the totals. Header, state,
// workloads and trailer payloads are JSON
// objects, so fields are added without breaking older readers; readers
// skip block types they do not know.
//
// An event block's payload is a record count (uint32), the record size
// (uint16), the encoding (uint8, see "Event block encodings"), a reserved
// byte, then the encoded records. Transposing groups byte i of every record
// together, so slowly changing fields (timestamps, addresses, pointers)
// compress well. Split blocks (encSplitS2, split.go) also leave out the
// zeros that widening added.
//
// A writer flushes a block at least every second, so a recording cut short
// (kill -9, a full disk) loses at most its last second: the reader replays
// every whole block and reports where and how much was cut. A damaged or
// foreign file gives a FormatError naming the offset; no length field makes
// the reader allocate more than a few megabytes.
package record

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Version is the format version this package writes and the newest it
// reads. Version 1 is read too: its records have the first layout of
// struct event, which the reader turns into the current one
// (event.FromLayout1); the blocks are the same.
const Version = 2

// magic starts every recording. The high first byte and the CR LF catch
// transfers that mangle binary files.
var magic = [8]byte{0x89, 'T', 'W', 'T', 'O', 'P', '\r', '\n'}

const preambleSize = len(magic) + 4

// Block types.
const (
	blockHeader  = 1
	blockState   = 2
	blockEvents  = 3
	blockTrailer = 4
	// the workloads (pods, containers, services) of the records' owners,
	// resolved while recording; older readers skip the block
	blockWorkloads = 5
)

func blockName(t uint32) string {
	switch t {
	case blockHeader:
		return "header"
	case blockState:
		return "state"
	case blockEvents:
		return "events"
	case blockTrailer:
		return "trailer"
	case blockWorkloads:
		return "workloads"
	}
	return fmt.Sprintf("type-%d", t)
}

// Bounds. A block never exceeds maxBlock bytes, a batch never decodes to
// more than maxBatchBytes, so neither a damaged length nor a hostile file
// makes the reader allocate more.
const (
	blockHeadSize = 12
	blockTailSize = 4
	maxBlock      = 4 << 20
	maxMetaBlock  = 1 << 20 // header, state and trailer JSON
	maxRecordSize = 4096
	maxBatchBytes = 8 << 20
	// batchRecords is how many records the writer gathers at most before
	// it writes a block (it also writes one at every Flush).
	batchRecords = 8192
)

// Event block encodings.
const (
	// the records byte-transposed (all first bytes, then all second
	// bytes, ...), then zstd
	encTransposedZstd = 1
	// as encTransposedZstd, after replacing each record's first 8 bytes
	// (its little-endian time in ns) by the difference from the previous
	// record's: times that differ by microseconds leave 5 to 6 byte
	// planes of zeros, which compress to almost nothing
	encDeltaTransposedZstd = 2
	// as encDeltaTransposedZstd with S2 (a Snappy extension) instead of
	// zstd: written since this encoding exists. Every S2 level decodes
	// alike. Live, compressing is most of twtop's own CPU per event: the
	// writer uses S2's default level, under half the time of its
	// "better" level (itself a third to a half of zstd's fastest level's
	// time) for about 10% more bytes than "better"
	encDeltaTransposedS2 = 3
	// as encDeltaTransposedS2 for whole records (event.RecordSize),
	// leaving out the zeros beyond each record's wire size (split.go):
	// written since this encoding exists, for every block whose records
	// have nothing but zeros there
	encSplitS2 = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

var le = binary.LittleEndian

// FormatError is a recording that cannot be read: damaged, foreign or from
// a newer twtop. Offset is the byte offset of the problem.
type FormatError struct {
	Offset int64
	Reason string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("recording is unreadable at offset %d: %s", e.Offset, e.Reason)
}

// Truncation describes a recording that ends early: killed, or cut by a
// full disk. Everything before Offset was replayed.
type Truncation struct {
	// Offset is where the incomplete block starts (the file's size when
	// only the trailer is missing).
	Offset int64
	// Partial is how many bytes of the incomplete block are present.
	Partial int64
	// NoTrailer is set when the trailer with the totals is missing.
	NoTrailer bool
}

func (t *Truncation) String() string {
	if t.Partial == 0 {
		return fmt.Sprintf("recording has no trailer (it was not ended cleanly); replayed all %d bytes", t.Offset)
	}
	return fmt.Sprintf("recording is cut short at offset %d: ignored an incomplete block of %d bytes (at most the last second of events) and there is no trailer",
		t.Offset, t.Partial)
}
