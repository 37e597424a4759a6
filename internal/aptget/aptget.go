// Package aptget finds the commands the test harnesses run and installs
// the Debian packages that hold them, with apt-get, when they are missing.
package aptget

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// aptGet is the apt-get command.
var aptGet = "apt-get"

// sbinDirs are searched after PATH: a non-login root shell may not have
// them in PATH.
var sbinDirs = []string{"/usr/sbin", "/sbin"}

// Installer installs missing commands for one program.
type Installer struct {
	// Prog starts the line printed before an installation ("PROG: NAME
	// missing, installing PKGS with apt-get").
	Prog string
	// Log receives that line; apt-get's own output goes to the standard
	// error.
	Log io.Writer
}

// Need returns the path of the command name, installing the Debian
// packages pkgs with apt-get when it is missing. When the installation
// fails it runs apt-get update and tries once more.
func (in Installer) Need(name string, pkgs ...string) (string, error) {
	if p, err := LookPath(name); err == nil {
		return p, nil
	}
	list := strings.Join(pkgs, " ")
	fmt.Fprintf(in.Log, "%s: %s missing, installing %s with apt-get\n", in.Prog, name, list)
	install := func() error {
		args := append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)
		cmd := exec.Command(aptGet, args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd.Run()
	}
	if err := install(); err != nil {
		update := exec.Command(aptGet, "update")
		update.Stdout, update.Stderr = os.Stderr, os.Stderr
		if err := update.Run(); err != nil {
			return "", fmt.Errorf("apt-get update: %w", err)
		}
		if err := install(); err != nil {
			return "", fmt.Errorf("apt-get install %s: %w", list, err)
		}
	}
	p, err := LookPath(name)
	if err != nil {
		return "", fmt.Errorf("after installing %s: %w", list, err)
	}
	return p, nil
}

// LookPath finds name in PATH or in /usr/sbin and /sbin.
func LookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range sbinDirs {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH, %s", name, dirList())
}

// dirList names sbinDirs as in "/usr/sbin or /sbin".
func dirList() string {
	last := len(sbinDirs) - 1
	if last == 0 {
		return sbinDirs[0]
	}
	return strings.Join(sbinDirs[:last], ", ") + " or " + sbinDirs[last]
}
