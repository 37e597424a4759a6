package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/twtop/twtop/tracer"
)

// resolveNetns turns --netns NAME|PATH|INODE into the namespace's inode and
// a path that can be joined to scan it.
func resolveNetns(arg string) (uint32, string, error) {
	if inode, err := strconv.ParseUint(arg, 10, 32); err == nil {
		path, err := findNetnsPath(uint32(inode))
		if err != nil {
			return 0, "", err
		}
		return uint32(inode), path, nil
	}
	path := arg
	if !strings.Contains(arg, "/") {
		path = filepath.Join("/run/netns", arg)
	}
	inode, err := tracer.NetnsInode(path)
	if err != nil {
		return 0, "", fmt.Errorf("--netns %s: %w (give a name from 'ip netns list', a path such as /proc/PID/ns/net, or an inode)", arg, err)
	}
	return inode, path, nil
}

// findNetnsPath finds a process living in the namespace with this inode.
func findNetnsPath(inode uint32) (string, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return "", fmt.Errorf("list processes: %w", err)
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		p := filepath.Join("/proc", e.Name(), "ns", "net")
		if ino, err := tracer.NetnsInode(p); err == nil && ino == inode {
			return p, nil
		}
	}
	names, _ := filepath.Glob("/run/netns/*")
	for _, p := range names {
		if ino, err := tracer.NetnsInode(p); err == nil && ino == inode {
			return p, nil
		}
	}
	return "", fmt.Errorf("--netns %d: no process or /run/netns entry lives in that network namespace", inode)
}
