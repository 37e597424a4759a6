package event

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testdata/records.hex holds raw records written by the kernel programs on
// Linux 6.18 (tracepoint tier) in a network namespace that already held two
// server-side TIME_WAIT sockets, during one client-closes-first connection,
// an SO_LINGER 0 abort and a bind() that failed with EADDRINUSE, one record
// per line. Their decoding is pinned in testdata/records.json.
func TestDecodeGolden(t *testing.T) {
	recs := readHexRecords(t, "testdata/records.hex")
	var out bytes.Buffer
	var e Event
	for i, r := range recs {
		if err := Decode(r, &e); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		out.Write(AppendJSON(nil, &e, 250))
		out.WriteByte('\n')
	}
	compareGolden(t, "testdata/records.json", out.Bytes())
}

func readHexRecords(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		b, err := hex.DecodeString(line)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, b)
	}
	if len(recs) == 0 {
		t.Fatalf("%s: no records", path)
	}
	return recs
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if gl[i] != wl[i] {
				t.Fatalf("%s line %d:\n got %s\nwant %s", path, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("%s: %d lines, want %d", path, len(gl), len(wl))
	}
}

func TestDecodeRejectsBadInput(t *testing.T) {
	var e Event
	good := readHexRecords(t, "testdata/records.hex")[0]
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
