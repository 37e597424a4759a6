package workload

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNoCgroup2 is wrapped by FindCgroup2 when no cgroup2 file system is
// mounted.
var ErrNoCgroup2 = errors.New("no cgroup2 mount")

// Mount is a cgroup2 mount: Dir is where it is mounted and Root the cgroup
// path that Dir shows ("/" for the whole hierarchy, in the reader's cgroup
// namespace).
type Mount struct {
	Dir  string
	Root string
}

// FindCgroup2 finds the cgroup2 mount in procRoot/self/mountinfo,
// preferring the whole hierarchy and then /sys/fs/cgroup over a hybrid
// host's /sys/fs/cgroup/unified over anywhere else.
func FindCgroup2(procRoot string) (Mount, error) {
	name := filepath.Join(procRoot, "self", "mountinfo")
	f, err := os.Open(name)
	if err != nil {
		return Mount{}, fmt.Errorf("find cgroup2: %w", err)
	}
	defer f.Close()
	mounts, err := parseMountinfo(f)
	if err != nil {
		return Mount{}, fmt.Errorf("find cgroup2: %s: %w", name, err)
	}
	best, score := Mount{}, -1
	for _, m := range mounts {
		s := 0
		switch m.Dir {
		case "/sys/fs/cgroup":
			s = 2
		case "/sys/fs/cgroup/unified":
			s = 1
		}
		if m.Root == "/" {
			s += 10
		}
		if s > score {
			best, score = m, s
		}
	}
	if score < 0 {
		return Mount{}, fmt.Errorf("find cgroup2: %w in %s", ErrNoCgroup2, name)
	}
	return best, nil
}

// parseMountinfo returns the cgroup2 mounts in a mountinfo file (proc(5)).
func parseMountinfo(r io.Reader) ([]Mount, error) {
	var mounts []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(fields) || fields[sep+1] != "cgroup2" {
			continue
		}
		mounts = append(mounts, Mount{Dir: unescapeMount(fields[4]), Root: unescapeMount(fields[3])})
	}
	return mounts, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ReadProcCgroup returns a process's cgroup v2 path, the "0::PATH" line of
// procRoot/PID/cgroup.
func ReadProcCgroup(procRoot string, pid int) (string, error) {
	name := filepath.Join(procRoot, strconv.Itoa(pid), "cgroup")
	data, err := os.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("cgroup of pid %d: %w", pid, err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok && strings.HasPrefix(p, "/") {
			return p, nil
		}
	}
	return "", fmt.Errorf("cgroup of pid %d: no cgroup v2 line in %s", pid, name)
}

// inode returns the inode number of a file.
func inode(name string) (uint64, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return 0, err
	}
	return inodeOf(fi)
}

func inodeOf(fi fs.FileInfo) (uint64, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("%s: no inode", fi.Name())
	}
	return st.Ino, nil
}

// index maps cgroup ids (directory inodes) to cgroup paths under one
// mount. It is used by one goroutine at a time.
type index struct {
	mount    Mount
	interval time.Duration // least time between two walks
	paths    map[uint64]string
	walked   time.Time
	walks    uint64
}

func newIndex(m Mount, interval time.Duration) *index {
	return &index{mount: m, interval: interval, paths: map[uint64]string{}}
}

// lookup returns the path of a cgroup id as of the last walk.
func (x *index) lookup(id uint64) (string, bool) {
	p, ok := x.paths[id]
	return p, ok
}

// nextWalk is when the next walk is allowed.
func (x *index) nextWalk() time.Time {
	if x.walks == 0 {
		return time.Time{}
	}
	return x.walked.Add(x.interval)
}

// walk rebuilds the index from the hierarchy; directories that vanish or
// cannot be read during the walk are left out.
func (x *index) walk() error {
	paths := make(map[uint64]string, len(x.paths))
	root := x.mount.Dir
	err := filepath.WalkDir(root, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			if name == root {
				return err
			}
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		ino, err := inodeOf(fi)
		if err != nil {
			return nil
		}
		rel, err := filepath.Rel(root, name)
		if err != nil {
			return nil
		}
		paths[ino] = x.cgroupPath(filepath.ToSlash(rel))
		return nil
	})
	x.walked = time.Now()
	x.walks++
	if err != nil {
		return fmt.Errorf("walk cgroup2 at %s: %w", root, err)
	}
	x.paths = paths
	return nil
}

// cgroupPath turns a path relative to the mount into a cgroup path.
func (x *index) cgroupPath(rel string) string {
	return path.Join("/", x.mount.Root, rel)
}

// fsPath turns a cgroup path into a file name under the mount; false when
// the mount does not show it.
func (x *index) fsPath(cgPath string) (string, bool) {
	root := path.Clean("/" + x.mount.Root)
	p := path.Clean("/" + cgPath)
	if root != "/" {
		rest, ok := strings.CutPrefix(p, root)
		if !ok || (rest != "" && rest[0] != '/') {
			return "", false
		}
		p = rest
	}
	return filepath.Join(x.mount.Dir, filepath.FromSlash(p)), true
}

// verify checks that cgPath (from /proc/PID/cgroup) is cgroup id and adds
// it to the index.
func (x *index) verify(id uint64, cgPath string) bool {
	name, ok := x.fsPath(cgPath)
	if !ok {
		return false
	}
	ino, err := inode(name)
	if err != nil || ino != id {
		return false
	}
	x.paths[id] = path.Clean(cgPath)
	return true
}
