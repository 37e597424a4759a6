package workload

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Selector names one workload's cgroup, for twtop's --cgroup, --container
// and --pod filters: exactly one of Path, Container and Pod is set.
type Selector struct {
	// Path is a cgroup path as /proc/PID/cgroup shows it
	// ("/system.slice/nginx.service") or a directory in the cgroup2 mount
	// ("/sys/fs/cgroup/system.slice/nginx.service").
	Path string
	// Container is a container id, or a prefix of one that only one
	// container has (Docker's 12-character form).
	Container string
	// Pod is a pod's UID, or NAMESPACE/NAME, which the runtime's CRI API
	// turns into a UID (CRISocket, or the first of DefaultCRISockets).
	Pod       string
	CRISocket string
}

// Given reports whether sel names a workload.
func (sel Selector) Given() bool { return sel.Path != "" || sel.Container != "" || sel.Pod != "" }

// Select returns the cgroup directory sel names, under the cgroup2 mount
// seen in procRoot (normally "/proc").
func Select(procRoot string, sel Selector) (string, error) {
	m, err := FindCgroup2(procRoot)
	if err != nil {
		return "", err
	}
	switch {
	case sel.Path != "":
		return selectPath(m, sel.Path)
	case sel.Container != "":
		return selectContainer(m, sel.Container)
	case sel.Pod != "":
		uid := sel.Pod
		if ns, name, ok := strings.Cut(sel.Pod, "/"); ok {
			if uid, err = podUID(sel.CRISocket, ns, name); err != nil {
				return "", err
			}
		} else if !isUID(uid) {
			return "", fmt.Errorf("pod %q: give NAMESPACE/NAME or the pod's UID", sel.Pod)
		}
		return selectPod(m, uid)
	}
	return "", errors.New("no cgroup, container or pod given")
}

// selectPath finds a cgroup by its path or its directory.
func selectPath(m Mount, p string) (string, error) {
	dir := p
	if !under(m.Dir, p) {
		cg := path.Clean("/" + p)
		root := path.Clean(m.Root)
		if root != "/" {
			if cg != root && !strings.HasPrefix(cg, root+"/") {
				return "", fmt.Errorf("cgroup %s is outside the part of the hierarchy mounted at %s (%s)", p, m.Dir, m.Root)
			}
			cg = strings.TrimPrefix(cg, root)
		}
		dir = filepath.Join(m.Dir, filepath.FromSlash(cg))
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("cgroup %s: no such cgroup in %s", p, m.Dir)
	}
	if err != nil {
		return "", fmt.Errorf("cgroup %s: %w", p, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("cgroup %s: %s is not a cgroup directory", p, dir)
	}
	return dir, nil
}

// under reports whether p is dir or a path below it.
func under(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && filepath.IsAbs(p) && rel != ".." && !strings.HasPrefix(rel, "../")
}

// minContainerPrefix is the shortest container id prefix accepted.
const minContainerPrefix = 4

// selectContainer finds the cgroup of the one container whose id starts
// with id: the outermost directory naming it (a runtime's own sub-cgroups
// below it are part of its subtree).
func selectContainer(m Mount, id string) (string, error) {
	id = strings.ToLower(id)
	if len(id) < minContainerPrefix || len(id) > 64 || strings.IndexFunc(id, func(r rune) bool { return !isHex(r) }) >= 0 {
		return "", fmt.Errorf("container %q: give a container id, or at least its first %d hex digits", id, minContainerPrefix)
	}
	found := map[string]string{} // container id → directory
	err := walkWorkloads(m, func(dir string, w Workload) bool {
		if w.ContainerID == "" || !strings.HasPrefix(w.ContainerID, id) {
			return false
		}
		if _, ok := found[w.ContainerID]; !ok {
			found[w.ContainerID] = dir
		}
		return true
	})
	if err != nil {
		return "", err
	}
	return only(found, "container "+id, m)
}

// selectPod finds the cgroup of the pod with UID uid: the pod's own
// directory, above its containers'.
func selectPod(m Mount, uid string) (string, error) {
	found := map[string]string{}
	err := walkWorkloads(m, func(dir string, w Workload) bool {
		if w.Kind != KindPod || w.PodUID != uid {
			return false
		}
		if w.ContainerID == "" {
			found[uid] = dir
		}
		return true
	})
	if err != nil {
		return "", err
	}
	return only(found, "pod "+uid, m)
}

// walkWorkloads calls fn for every cgroup directory under m with the
// workload its path names, outermost first; fn returns true to skip the
// directory's subtree.
func walkWorkloads(m Mount, fn func(dir string, w Workload) bool) error {
	err := filepath.WalkDir(m.Dir, func(dir string, d fs.DirEntry, err error) error {
		if err != nil {
			if dir == m.Dir {
				return err
			}
			return nil // a cgroup removed meanwhile
		}
		if !d.IsDir() || dir == m.Dir {
			return nil
		}
		rel, err := filepath.Rel(m.Dir, dir)
		if err != nil {
			return nil
		}
		if fn(dir, ParsePath(path.Join(m.Root, filepath.ToSlash(rel)))) {
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("walk the cgroup hierarchy at %s: %w", m.Dir, err)
	}
	return nil
}

// only returns the one directory of found, or says why not.
func only(found map[string]string, what string, m Mount) (string, error) {
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%s: no cgroup names it under %s", what, m.Dir)
	case 1:
		for _, dir := range found {
			return dir, nil
		}
	}
	ids := make([]string, 0, len(found))
	for id := range found {
		ids = append(ids, shortID(id))
	}
	sort.Strings(ids)
	return "", fmt.Errorf("%s is ambiguous: %s (give more of the id)", what, strings.Join(ids, ", "))
}

// podUID asks the runtime for the UID of the pod namespace/name; of
// several sandboxes of that name (a pod recreated), the ready one.
func podUID(socket, namespace, name string) (string, error) {
	if socket == "" {
		var err error
		if socket, err = FindCRISocket(DefaultCRISockets); err != nil {
			return "", fmt.Errorf("pod %s/%s: the pod's UID works without a runtime: %w", namespace, name, err)
		}
	}
	c, err := dialCRI(socket, 5*time.Second, 0)
	if err != nil {
		return "", err
	}
	defer c.close()
	if err := c.refresh(context.Background()); err != nil {
		return "", fmt.Errorf("pod %s/%s: %w", namespace, name, err)
	}
	uid := ""
	for u, p := range c.pods {
		if p.namespace == namespace && p.name == name && (uid == "" || p.ready) {
			uid = u
		}
	}
	if uid == "" {
		return "", fmt.Errorf("pod %s/%s: the runtime at %s has no such pod", namespace, name, socket)
	}
	return uid, nil
}
