package workload

import "strings"

// scopePrefixes are the unit or directory name prefixes that runtimes give a
// container's cgroup, longest first where one extends another.
var scopePrefixes = []struct {
	prefix  string
	runtime Runtime
}{
	{"cri-containerd-", RuntimeContainerd},
	{"crio-conmon-", RuntimeCRIO},
	{"crio-", RuntimeCRIO},
	{"docker-", RuntimeDocker},
	{"libpod-conmon-", RuntimePodman},
	{"libpod-", RuntimePodman},
	{"nerdctl-", RuntimeContainerd},
}

// ParsePath names the workload of a cgroup v2 path. Recognised, anywhere in
// the path (a node may itself run in a container):
//
//   - kubelet's systemd driver: .../kubepods[-QOS]-pod<UID>.slice[/<runtime>-<ID>.scope]
//     (QOS burstable or besteffort; guaranteed pods sit right under
//     kubepods.slice; the UID has "_" for "-"; runtime cri-containerd, crio,
//     crio-conmon or docker);
//   - kubelet's cgroupfs driver: .../kubepods[/QOS]/pod<UID>[/[<runtime>-]<ID>];
//   - containers outside Kubernetes: docker-<ID>.scope, libpod-<ID>.scope,
//     libpod-conmon-<ID>.scope, cri-containerd-<ID>.scope, crio-<ID>.scope,
//     nerdctl-<ID>.scope (also rootless, under user@UID.service), and
//     cgroupfs's /docker/<ID> and /libpod_parent/libpod-<ID>;
//   - systemd services: the deepest "<unit>.service" component, such as
//     /system.slice/nginx.service or
//     /system.slice/system-getty.slice/getty@tty1.service.
//
// A pod wins over a container, and a container over a service; components
// below the one that names the workload (a runtime's own sub-cgroups) are
// ignored. Anything else is KindOther with the path.
func ParsePath(path string) Workload {
	w := Workload{Kind: KindOther, Path: path}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if i, uid := findPod(parts); i >= 0 {
		w.Kind, w.PodUID = KindPod, uid
		if i+1 < len(parts) {
			w.ContainerID, w.Runtime, _ = containerComponent(parts[i+1], true)
		}
		return w
	}
	for i := len(parts) - 1; i >= 0; i-- {
		id, rt, ok := containerComponent(parts[i], false)
		if !ok && i > 0 && parts[i-1] == "docker" && isHexID(parts[i]) {
			id, rt, ok = parts[i], RuntimeDocker, true
		}
		if ok {
			w.Kind, w.ContainerID, w.Runtime = KindContainer, id, rt
			return w
		}
	}
	for i := len(parts) - 1; i >= 0; i-- {
		if strings.HasSuffix(parts[i], ".service") && len(parts[i]) > len(".service") {
			w.Kind, w.Service = KindService, parts[i]
			return w
		}
	}
	return w
}

// findPod returns the index of the component naming a Kubernetes pod and the
// pod's UID, or -1.
func findPod(parts []string) (int, string) {
	for i, c := range parts {
		if uid, ok := podComponent(c, parts[:i]); ok {
			return i, uid
		}
	}
	return -1, ""
}

// podComponent recognises a pod's cgroup name: systemd's
// "kubepods-burstable-pod<UID_>.slice" (any prefix containing "kubepods")
// or cgroupfs's "pod<UID>" below a "kubepods" directory.
func podComponent(c string, parents []string) (string, bool) {
	if name, ok := strings.CutSuffix(c, ".slice"); ok {
		i := strings.LastIndex(name, "-pod")
		if i < 0 || !strings.Contains(name[:i], "kubepods") {
			return "", false
		}
		uid := strings.ReplaceAll(name[i+len("-pod"):], "_", "-")
		return uid, isUID(uid)
	}
	uid, ok := strings.CutPrefix(c, "pod")
	if !ok || !isUID(uid) {
		return "", false
	}
	for _, p := range parents {
		if p == "kubepods" {
			return uid, true
		}
	}
	return "", false
}

// containerComponent recognises a container's cgroup name: a runtime prefix
// and a hex id, with or without ".scope"; bare, a hex id alone when the
// name is in a pod.
func containerComponent(c string, bare bool) (string, Runtime, bool) {
	name := trimScope(c)
	for _, p := range scopePrefixes {
		if id, ok := strings.CutPrefix(name, p.prefix); ok && isHexID(id) {
			return id, p.runtime, true
		}
	}
	if bare && isHexID(name) {
		return name, "", true
	}
	return "", "", false
}

// isUID accepts a pod UID: a UUID, or the 32 hex digits of a static pod's
// hash.
func isUID(s string) bool {
	if len(s) < 8 {
		return false
	}
	for _, r := range s {
		if !isHex(r) && r != '-' {
			return false
		}
	}
	return true
}

// isHexID accepts a runtime's container id: lowercase hex, 12 to 64 digits.
func isHexID(s string) bool {
	if len(s) < 12 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !isHex(r) || (r >= 'A' && r <= 'F') {
			return false
		}
	}
	return true
}

func isHex(r rune) bool {
	return (r >= '0' && r <= '9') || (r >= 'a' && r <= 'f') || (r >= 'A' && r <= 'F')
}

// podDir returns the path of the pod's own cgroup for a path inside a pod,
// or "".
func podDir(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	i, _ := findPod(parts)
	if i < 0 {
		return ""
	}
	return "/" + strings.Join(parts[:i+1], "/")
}
