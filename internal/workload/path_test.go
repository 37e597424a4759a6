package workload

import (
	"strings"
	"testing"
)

const (
	uid  = "0f3d9a52-6c1e-4b7a-9d2f-1a2b3c4d5e6f"
	uidU = "0f3d9a52_6c1e_4b7a_9d2f_1a2b3c4d5e6f" // systemd's spelling
	cid  = "4f1c6b2a9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b"
	cid2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	// a static pod's UID is the hash of its manifest
	staticUID = "e3b0c44298fc1c149afbf4c8996fb924"
)

func TestParsePath(t *testing.T) {
	pod := func(path, container string, rt Runtime) Workload {
		return Workload{Kind: KindPod, Path: path, PodUID: uid, ContainerID: container, Runtime: rt}
	}
	ctr := func(path, id string, rt Runtime) Workload {
		return Workload{Kind: KindContainer, Path: path, ContainerID: id, Runtime: rt}
	}
	svc := func(path, unit string) Workload {
		return Workload{Kind: KindService, Path: path, Service: unit}
	}
	other := func(path string) Workload {
		return Workload{Kind: KindOther, Path: path}
	}
	for _, tc := range []struct {
		name, path string
		want       Workload
	}{
		// kubelet, systemd driver
		{"systemd burstable containerd",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope",
			pod("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"+uidU+".slice/cri-containerd-"+cid+".scope", cid, RuntimeContainerd)},
		{"systemd besteffort crio",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/crio-" + cid + ".scope",
			pod("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"+uidU+".slice/crio-"+cid+".scope", cid, RuntimeCRIO)},
		{"systemd guaranteed docker",
			"/kubepods.slice/kubepods-pod" + uidU + ".slice/docker-" + cid + ".scope",
			pod("/kubepods.slice/kubepods-pod"+uidU+".slice/docker-"+cid+".scope", cid, RuntimeDocker)},
		{"systemd crio conmon",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/crio-conmon-" + cid + ".scope",
			pod("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"+uidU+".slice/crio-conmon-"+cid+".scope", cid, RuntimeCRIO)},
		{"systemd crio nested container cgroup",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/crio-" + cid + ".scope/container",
			pod("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"+uidU+".slice/crio-"+cid+".scope/container", cid, RuntimeCRIO)},
		{"systemd pod slice",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice",
			pod("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"+uidU+".slice", "", "")},
		{"systemd static pod",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + staticUID + ".slice/cri-containerd-" + cid + ".scope",
			Workload{Kind: KindPod, Path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + staticUID + ".slice/cri-containerd-" + cid + ".scope",
				PodUID: staticUID, ContainerID: cid, Runtime: RuntimeContainerd}},
		{"kind node in docker",
			"/system.slice/docker-" + cid2 + ".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope",
			pod("/system.slice/docker-"+cid2+".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod"+uidU+".slice/cri-containerd-"+cid+".scope", cid, RuntimeContainerd)},
		{"systemd qos slice", "/kubepods.slice/kubepods-burstable.slice", other("/kubepods.slice/kubepods-burstable.slice")},
		{"systemd kubepods slice", "/kubepods.slice", other("/kubepods.slice")},
		// kubelet, cgroupfs driver
		{"cgroupfs burstable", "/kubepods/burstable/pod" + uid + "/" + cid,
			pod("/kubepods/burstable/pod"+uid+"/"+cid, cid, "")},
		{"cgroupfs besteffort", "/kubepods/besteffort/pod" + uid + "/" + cid,
			pod("/kubepods/besteffort/pod"+uid+"/"+cid, cid, "")},
		{"cgroupfs guaranteed", "/kubepods/pod" + uid + "/" + cid,
			pod("/kubepods/pod"+uid+"/"+cid, cid, "")},
		{"cgroupfs crio", "/kubepods/burstable/pod" + uid + "/crio-" + cid,
			pod("/kubepods/burstable/pod"+uid+"/crio-"+cid, cid, RuntimeCRIO)},
		{"cgroupfs pod dir", "/kubepods/burstable/pod" + uid,
			pod("/kubepods/burstable/pod"+uid, "", "")},
		{"cgroupfs k3s under kubelet root", "/kubelet/kubepods/burstable/pod" + uid + "/" + cid,
			pod("/kubelet/kubepods/burstable/pod"+uid+"/"+cid, cid, "")},
		{"cgroupfs pod-like name outside kubepods", "/misc/pod" + uid, other("/misc/pod" + uid)},
		// Docker and Podman
		{"docker systemd", "/system.slice/docker-" + cid + ".scope", ctr("/system.slice/docker-"+cid+".scope", cid, RuntimeDocker)},
		{"docker cgroupfs", "/docker/" + cid, ctr("/docker/"+cid, cid, RuntimeDocker)},
		{"podman", "/machine.slice/libpod-" + cid + ".scope", ctr("/machine.slice/libpod-"+cid+".scope", cid, RuntimePodman)},
		{"podman nested container cgroup", "/machine.slice/libpod-" + cid + ".scope/container",
			ctr("/machine.slice/libpod-"+cid+".scope/container", cid, RuntimePodman)},
		{"podman conmon", "/machine.slice/libpod-conmon-" + cid + ".scope", ctr("/machine.slice/libpod-conmon-"+cid+".scope", cid, RuntimePodman)},
		{"podman pod", "/machine.slice/machine-libpod_pod_" + cid2 + ".slice/libpod-" + cid + ".scope",
			ctr("/machine.slice/machine-libpod_pod_"+cid2+".slice/libpod-"+cid+".scope", cid, RuntimePodman)},
		{"podman cgroupfs", "/libpod_parent/libpod-" + cid, ctr("/libpod_parent/libpod-"+cid, cid, RuntimePodman)},
		{"rootless podman", "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + cid + ".scope",
			ctr("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-"+cid+".scope", cid, RuntimePodman)},
		{"rootless docker", "/user.slice/user-1000.slice/user@1000.service/user.slice/docker-" + cid + ".scope",
			ctr("/user.slice/user-1000.slice/user@1000.service/user.slice/docker-"+cid+".scope", cid, RuntimeDocker)},
		{"docker in docker", "/system.slice/docker-" + cid2 + ".scope/docker/" + cid,
			ctr("/system.slice/docker-"+cid2+".scope/docker/"+cid, cid, RuntimeDocker)},
		{"nerdctl", "/system.slice/nerdctl-" + cid + ".scope", ctr("/system.slice/nerdctl-"+cid+".scope", cid, RuntimeContainerd)},
		// systemd services
		{"service", "/system.slice/nginx.service", svc("/system.slice/nginx.service", "nginx.service")},
		{"template service", "/system.slice/system-getty.slice/getty@tty1.service",
			svc("/system.slice/system-getty.slice/getty@tty1.service", "getty@tty1.service")},
		{"service sub-cgroup", "/system.slice/containerd.service/shim", svc("/system.slice/containerd.service/shim", "containerd.service")},
		{"user manager", "/user.slice/user-1000.slice/user@1000.service", svc("/user.slice/user-1000.slice/user@1000.service", "user@1000.service")},
		{"user service", "/user.slice/user-1000.slice/user@1000.service/app.slice/pipewire.service",
			svc("/user.slice/user-1000.slice/user@1000.service/app.slice/pipewire.service", "pipewire.service")},
		{"not a container id", "/system.slice/docker-compose@web.service", svc("/system.slice/docker-compose@web.service", "docker-compose@web.service")},
		// anything else
		{"root", "/", other("/")},
		{"init scope", "/init.scope", other("/init.scope")},
		{"session scope", "/user.slice/user-1000.slice/session-3.scope", other("/user.slice/user-1000.slice/session-3.scope")},
		{"short hex under docker", "/docker/abc", other("/docker/abc")},
		{"short pod uid", "/kubepods.slice/kubepods-pod12.slice", other("/kubepods.slice/kubepods-pod12.slice")},
		{"not a pod uid", "/kubepods/burstable/podxyzxyzxyz", other("/kubepods/burstable/podxyzxyzxyz")},
		{"uppercase container id", "/system.slice/docker-" + strings.ToUpper(cid) + ".scope", other("/system.slice/docker-" + strings.ToUpper(cid) + ".scope")},
		{"plain path", "/my/own/group", other("/my/own/group")},
		{"empty", "", other("")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ParsePath(tc.path); got != tc.want {
				t.Errorf("ParsePath(%q)\n got %+v\nwant %+v", tc.path, got, tc.want)
			}
		})
	}
}

func TestPodDir(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice"},
		{"/kubepods/pod" + uid + "/" + cid, "/kubepods/pod" + uid},
		{"/kubepods/pod" + uid, "/kubepods/pod" + uid},
		{"/system.slice/docker-" + cid + ".scope", ""},
	} {
		if got := podDir(tc.path); got != tc.want {
			t.Errorf("podDir(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

func TestWorkloadString(t *testing.T) {
	for _, tc := range []struct {
		w    Workload
		want string
	}{
		{Workload{Kind: KindPod, PodUID: uid, ContainerID: cid, Namespace: "shop", Pod: "web-7d9f", Container: "nginx"}, "shop/web-7d9f/nginx"},
		{Workload{Kind: KindPod, PodUID: uid, Namespace: "shop", Pod: "web-7d9f"}, "shop/web-7d9f"},
		{Workload{Kind: KindPod, PodUID: uid, ContainerID: cid}, "pod " + uid + " " + cid[:12]},
		{Workload{Kind: KindContainer, ContainerID: cid, Runtime: RuntimeDocker}, "docker " + cid[:12]},
		{Workload{Kind: KindService, Service: "nginx.service"}, "nginx.service"},
		{Workload{Kind: KindOther, Path: "/init.scope"}, "/init.scope"},
		{Workload{Kind: KindOther, CgroupID: 4242}, "cgroup 4242"},
	} {
		if got := tc.w.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.w, got, tc.want)
		}
	}
}

// FuzzParsePath checks that any path parses to a consistent workload.
func FuzzParsePath(f *testing.F) {
	f.Add("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope")
	f.Add("/kubepods/pod" + uid + "/" + cid)
	f.Add("/system.slice/docker-" + cid + ".scope")
	f.Add("/system.slice/nginx.service")
	f.Fuzz(func(t *testing.T, path string) {
		w := ParsePath(path)
		if w.Path != path {
			t.Fatalf("path %q became %q", path, w.Path)
		}
		switch w.Kind {
		case KindPod:
			if w.PodUID == "" || !strings.Contains(strings.ReplaceAll(path, "_", "-"), w.PodUID) {
				t.Fatalf("pod %+v", w)
			}
		case KindContainer:
			if w.ContainerID == "" || !strings.Contains(path, w.ContainerID) {
				t.Fatalf("container %+v", w)
			}
		case KindService:
			if !strings.HasSuffix(w.Service, ".service") {
				t.Fatalf("service %+v", w)
			}
		case KindOther:
			if w.PodUID != "" || w.ContainerID != "" || w.Service != "" {
				t.Fatalf("other %+v", w)
			}
		default:
			t.Fatalf("kind %q", w.Kind)
		}
	})
}
