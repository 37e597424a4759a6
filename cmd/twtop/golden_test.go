package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden reports of testdata/*.twrec")

// The recordings checked in under testdata/ (made by `make recordings`
// from real workloads) replay, without privileges, to their golden
// reports: the same recording always gives the same report.
func TestRecordingsGoldenReports(t *testing.T) {
	files, err := filepath.Glob("../../testdata/*.twrec")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found %d recordings in testdata/, want the 3 of `make recordings`", len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".twrec")
		for _, format := range []string{"json", "text"} {
			t.Run(name+"/"+format, func(t *testing.T) {
				out, stderr, code := replayBinary(t, f, "--report", format)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, stderr)
				}
				golden := strings.TrimSuffix(f, ".twrec") + ".report." + format
				if *update {
					if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test ./cmd/twtop -run Golden -update)", err)
				}
				if out != string(want) {
					t.Errorf("replay of %s differs from %s:\n%s", f, golden, out)
				}
			})
		}
	}
}

// What each recording shows, as CI gates would check it; the figures are
// those the kernel showed while recording (see test/recordings).
func TestRecordingsChecks(t *testing.T) {
	for _, tc := range []struct {
		file   string
		checks []string
	}{
		{"server-closes", []string{
			"timewait.created == 600", "closes.active == 600", "lost == 0",
			"top_closers{by=port,port=8080}.active_share == 1", "kernel.tw == 600",
			"count(findings{id=server_closes_first}) == 1",
		}},
		{"port-pressure", []string{
			"reuse.connect_reuse == 128", "kernel.tw_recycled == 128", "errors.connect_eaddrnotavail == 16",
			"max(ports.usage) == 1", "count(findings{id=ephemeral_ports,severity=critical}) == 1",
		}},
		{"nginx-proxy", []string{ // the backend and nginx race to close first
			"timewait.created > 500", "top_closers{by=port,port=8080}.active_share > 0.5",
			"top_closers{by=process,comm=nginx}.timewait_created > 0", "count(findings{id=server_closes_first}) == 1",
		}},
	} {
		args := []string{}
		for _, c := range tc.checks {
			args = append(args, "--check", c)
		}
		out, stderr, code := replayBinary(t, "../../testdata/"+tc.file+".twrec", args...)
		if code != 0 || strings.Count(out, "PASS") != len(tc.checks) {
			t.Errorf("%s: exit %d\n%s%s", tc.file, code, out, stderr)
		}
	}
}
