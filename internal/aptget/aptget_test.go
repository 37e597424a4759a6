package aptget

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSbin makes two empty directories searched after PATH, and an empty
// PATH.
func fakeSbin(t *testing.T) (usrSbin, sbin string) {
	t.Helper()
	usrSbin, sbin = t.TempDir(), t.TempDir()
	old := sbinDirs
	sbinDirs = []string{usrSbin, sbin}
	t.Cleanup(func() { sbinDirs = old })
	t.Setenv("PATH", t.TempDir())
	return usrSbin, sbin
}

func write(t *testing.T, path, text string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
}

func TestLookPathInPATH(t *testing.T) {
	p, err := LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(p) || filepath.Base(p) != "sh" {
		t.Errorf("LookPath(sh) = %q", p)
	}
}

func TestLookPathSbin(t *testing.T) {
	usrSbin, sbin := fakeSbin(t)
	write(t, filepath.Join(sbin, "tool"), "#!/bin/sh\n", 0o755)
	write(t, filepath.Join(usrSbin, "plain"), "", 0o644)
	write(t, filepath.Join(sbin, "plain"), "", 0o644)
	if err := os.Mkdir(filepath.Join(usrSbin, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if p, err := LookPath("tool"); err != nil || p != filepath.Join(sbin, "tool") {
		t.Errorf("LookPath(tool) = %q, %v; want %s", p, err, filepath.Join(sbin, "tool"))
	}
	for _, name := range []string{"plain", "dir", "missing"} {
		p, err := LookPath(name)
		want := name + " not found in PATH, " + usrSbin + " or " + sbin
		if err == nil || err.Error() != want {
			t.Errorf("LookPath(%s) = %q, %v; want error %q", name, p, err, want)
		}
	}
}

func TestNeedPresent(t *testing.T) {
	var log bytes.Buffer
	p, err := Installer{Prog: "test", Log: &log}.Need("sh", "dash")
	if err != nil || filepath.Base(p) != "sh" {
		t.Errorf("Need(sh) = %q, %v", p, err)
	}
	if log.Len() != 0 {
		t.Errorf("printed %q for a command that is there", log.String())
	}
}

// fakeAptGet installs a script as apt-get that logs its arguments and
// DEBIAN_FRONTEND to a file and runs body (with the system's PATH, since
// the tests empty it).
func fakeAptGet(t *testing.T, body string) (calls string) {
	t.Helper()
	dir := t.TempDir()
	calls = filepath.Join(dir, "calls")
	script := filepath.Join(dir, "apt-get")
	write(t, script, "#!/bin/sh\nPATH=/usr/bin:/bin\necho \"$DEBIAN_FRONTEND $*\" >> "+calls+"\n"+body, 0o755)
	t.Setenv("DEBIAN_FRONTEND", "")
	old := aptGet
	aptGet = script
	t.Cleanup(func() { aptGet = old })
	return calls
}

func readCalls(t *testing.T, calls string) string {
	t.Helper()
	b, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNeedInstalls(t *testing.T) {
	_, sbin := fakeSbin(t)
	tool := filepath.Join(sbin, "tool")
	calls := fakeAptGet(t, `[ "$1" = install ] && printf '#!/bin/sh\n' > `+tool+` && chmod +x `+tool+"\n")
	var log bytes.Buffer
	p, err := Installer{Prog: "test", Log: &log}.Need("tool", "pkg-a", "pkg-b")
	if err != nil || p != tool {
		t.Fatalf("Need = %q, %v; want %s", p, err, tool)
	}
	if want := "test: tool missing, installing pkg-a pkg-b with apt-get\n"; log.String() != want {
		t.Errorf("printed %q, want %q", log.String(), want)
	}
	if got, want := readCalls(t, calls), "noninteractive install -y --no-install-recommends pkg-a pkg-b\n"; got != want {
		t.Errorf("apt-get calls %q, want %q", got, want)
	}
}

func TestNeedUpdatesAndRetries(t *testing.T) {
	_, sbin := fakeSbin(t)
	tool := filepath.Join(sbin, "tool")
	// install fails until update has run
	updated := filepath.Join(t.TempDir(), "updated")
	calls := fakeAptGet(t, `case $1 in
update) touch `+updated+`;;
install) [ -e `+updated+` ] || exit 100; printf '#!/bin/sh\n' > `+tool+`; chmod +x `+tool+`;;
esac
`)
	p, err := Installer{Prog: "test", Log: &bytes.Buffer{}}.Need("tool", "pkg")
	if err != nil || p != tool {
		t.Fatalf("Need = %q, %v; want %s", p, err, tool)
	}
	want := "noninteractive install -y --no-install-recommends pkg\n" +
		" update\n" +
		"noninteractive install -y --no-install-recommends pkg\n"
	if got := readCalls(t, calls); got != want {
		t.Errorf("apt-get calls %q, want %q", got, want)
	}
}

func TestNeedFails(t *testing.T) {
	for _, c := range []struct {
		name, body, want string
	}{
		{"update fails", "exit 100\n", "apt-get update: exit status 100"},
		{"install fails", `[ "$1" = update ] || exit 100` + "\n", "apt-get install pkg: exit status 100"},
		{"nothing installed", "exit 0\n", "after installing pkg: tool not found in PATH, "},
	} {
		t.Run(c.name, func(t *testing.T) {
			fakeSbin(t)
			fakeAptGet(t, c.body)
			_, err := Installer{Prog: "test", Log: &bytes.Buffer{}}.Need("tool", "pkg")
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("Need: %v, want %q...", err, c.want)
			}
		})
	}
}
