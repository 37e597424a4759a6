package event

import (
	"bytes"
	"flag"
	"strings"
	"testing"

	"github.com/twtop/twtop/internal/golden"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testdata/records.hex holds raw records written by the kernel programs on
// Linux 6.18 (tracepoint tier) in a network namespace that already held two
// server-side TIME_WAIT sockets, during one client-closes-first connection,
// an SO_LINGER 0 abort and a bind() that failed with EADDRINUSE, one record
// per line. Their decoding is pinned in testdata/records.json.
func TestDecodeGolden(t *testing.T) {
	recs := golden.HexRecords(t, "testdata/records.hex")
	var out bytes.Buffer
	var e Event
	for i, r := range recs {
		if err := Decode(r, &e); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		out.Write(AppendJSON(nil, &e, 250))
		out.WriteByte('\n')
	}
	golden.Compare(t, "testdata/records.json", out.Bytes(), *update)
}

func TestDecodeRejectsBadInput(t *testing.T) {
	var e Event
	good := golden.HexRecords(t, "testdata/records.hex")[0]
	if err := Decode(good[:RecordSize-1], &e); err == nil {
		t.Fatal("short record decoded")
	}
	bad := append([]byte(nil), good...)
	bad[offKind], bad[offKind+1] = 0xff, 0x7f
	if err := Decode(bad, &e); err == nil || !strings.Contains(err.Error(), "unknown kind") {
		t.Fatalf("unknown kind: err = %v", err)
	}
	bad = append([]byte(nil), good...)
	bad[offFamily] = 7
	if err := Decode(bad, &e); err == nil || !strings.Contains(err.Error(), "family") {
		t.Fatalf("bad family: err = %v", err)
	}
}

func TestAppendQuotedEscapes(t *testing.T) {
	got := string(appendQuoted(nil, "a\"b\\c\x01\xffé"))
	want := `"a\"b\\c\u0001\ufffdé"`
	if got != want {
		t.Fatalf("got %s want %s", got, want)
	}
}
