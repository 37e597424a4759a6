package workload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ErrNoRuntime is wrapped by FindCRISocket when none of the sockets exists.
var ErrNoRuntime = errors.New("no container runtime socket found")

// DefaultCRISockets are where containerd, CRI-O, cri-dockerd and k3s put
// their CRI socket.
var DefaultCRISockets = []string{
	"/run/containerd/containerd.sock",
	"/run/crio/crio.sock",
	"/var/run/cri-dockerd.sock",
	"/run/k3s/containerd/containerd.sock",
}

// FindCRISocket returns the first of paths that is a unix socket.
func FindCRISocket(paths []string) (string, error) {
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w (looked at %s)", ErrNoRuntime, strings.Join(paths, ", "))
}

// socketRuntime guesses the runtime behind a socket from its name.
func socketRuntime(socket string) Runtime {
	switch base := filepath.Base(socket); {
	case strings.Contains(base, "containerd"):
		return RuntimeContainerd
	case strings.Contains(base, "crio"):
		return RuntimeCRIO
	case strings.Contains(base, "docker"):
		return RuntimeDocker
	}
	return ""
}

// maxCRIMessage bounds a CRI answer, as crictl does.
const maxCRIMessage = 16 << 20

type podMeta struct {
	namespace, name, uid string
	ready                bool
	created              int64
}

// criClient names pods and containers through a runtime's CRI
// RuntimeService. Its lists are refreshed when an id is missing, at most
// once per refresh interval. It is used by one goroutine at a time.
type criClient struct {
	socket   string
	runtime  Runtime
	conn     *grpc.ClientConn
	rt       runtimeapi.RuntimeServiceClient
	timeout  time.Duration // per call
	interval time.Duration // least time between two list refreshes

	listed     time.Time
	pods       map[string]podMeta // by pod UID
	sandboxes  map[string]podMeta // by sandbox id
	containers map[string]ctrMeta // by container id
	netns      map[string]uint64  // sandbox id → netns inode, 0 for none
	calls      uint64
}

type ctrMeta struct {
	name, sandbox string
}

// dialCRI prepares a client for a unix socket; it connects on first use.
func dialCRI(socket string, timeout, interval time.Duration) (*criClient, error) {
	abs, err := filepath.Abs(socket)
	if err != nil {
		return nil, fmt.Errorf("cri socket %s: %w", socket, err)
	}
	bo := backoff.DefaultConfig
	bo.MaxDelay = 5 * time.Second
	conn, err := grpc.NewClient("unix://"+abs,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: timeout}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxCRIMessage)),
	)
	if err != nil {
		return nil, fmt.Errorf("cri socket %s: %w", socket, err)
	}
	return &criClient{
		socket:     socket,
		runtime:    socketRuntime(socket),
		conn:       conn,
		rt:         runtimeapi.NewRuntimeServiceClient(conn),
		timeout:    timeout,
		interval:   interval,
		pods:       map[string]podMeta{},
		sandboxes:  map[string]podMeta{},
		containers: map[string]ctrMeta{},
		netns:      map[string]uint64{},
	}, nil
}

func (c *criClient) close() error {
	return c.conn.Close()
}

// refresh lists the pod sandboxes and the containers.
func (c *criClient) refresh(ctx context.Context) error {
	c.listed = time.Now()
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	c.calls++
	sbs, err := c.rt.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("cri %s: list pod sandboxes: %w", c.socket, err)
	}
	cctx2, cancel2 := context.WithTimeout(ctx, c.timeout)
	defer cancel2()
	c.calls++
	ctrs, err := c.rt.ListContainers(cctx2, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return fmt.Errorf("cri %s: list containers: %w", c.socket, err)
	}
	pods := make(map[string]podMeta, len(sbs.GetItems()))
	sandboxes := make(map[string]podMeta, len(sbs.GetItems()))
	for _, sb := range sbs.GetItems() {
		md := sb.GetMetadata()
		m := podMeta{
			namespace: md.GetNamespace(),
			name:      md.GetName(),
			uid:       md.GetUid(),
			ready:     sb.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY,
			created:   sb.GetCreatedAt(),
		}
		sandboxes[sb.GetId()] = m
		// The ready sandbox, then the newest, speaks for the pod.
		if old, ok := pods[m.uid]; !ok || (m.ready && !old.ready) || (m.ready == old.ready && m.created > old.created) {
			pods[m.uid] = m
		}
	}
	containers := make(map[string]ctrMeta, len(ctrs.GetContainers()))
	for _, ct := range ctrs.GetContainers() {
		containers[ct.GetId()] = ctrMeta{name: ct.GetMetadata().GetName(), sandbox: ct.GetPodSandboxId()}
	}
	for id := range c.netns {
		if _, ok := sandboxes[id]; !ok {
			delete(c.netns, id)
		}
	}
	c.pods, c.sandboxes, c.containers = pods, sandboxes, containers
	return nil
}

// name fills w's Namespace, Pod and Container (and Runtime when the path
// did not say). It reports whether w has every name it can have: the pod
// is known, and so is its container unless the id is the pod's sandbox.
func (c *criClient) name(ctx context.Context, w *Workload) (bool, error) {
	complete := c.fill(w)
	if !complete && time.Since(c.listed) >= c.interval {
		if err := c.refresh(ctx); err != nil {
			return false, err
		}
		complete = c.fill(w)
	}
	return complete, nil
}

func (c *criClient) fill(w *Workload) bool {
	pm, podOK := c.pods[w.PodUID]
	ctrOK := w.ContainerID == ""
	if w.ContainerID != "" {
		if ct, ok := c.containers[w.ContainerID]; ok {
			w.Container, ctrOK = ct.name, true
			if !podOK {
				pm, podOK = c.sandboxes[ct.sandbox]
			}
		} else if sb, ok := c.sandboxes[w.ContainerID]; ok {
			ctrOK = true
			if !podOK {
				pm, podOK = sb, true
			}
		}
		if ctrOK && w.Runtime == "" {
			w.Runtime = c.runtime
		}
	}
	if podOK {
		w.Namespace, w.Pod = pm.namespace, pm.name
		if w.PodUID == "" {
			w.PodUID = pm.uid
		}
	}
	return podOK && ctrOK
}

// sandboxInfo is the part of a verbose PodSandboxStatus's "info" entry
// (containerd's and CRI-O's) that locates the sandbox's network namespace.
type sandboxInfo struct {
	Pid         int `json:"pid"`
	RuntimeSpec struct {
		Linux struct {
			Namespaces []struct {
				Type string `json:"type"`
				Path string `json:"path"`
			} `json:"namespaces"`
		} `json:"linux"`
	} `json:"runtimeSpec"`
}

// sandboxNetns returns the network namespace inode of every ready sandbox,
// asking PodSandboxStatus once per sandbox; host-network sandboxes and those
// whose namespace cannot be found map to 0.
func (c *criClient) sandboxNetns(ctx context.Context, procRoot string) (map[string]uint64, error) {
	for id, m := range c.sandboxes {
		if _, ok := c.netns[id]; ok || !m.ready {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, c.timeout)
		c.calls++
		st, err := c.rt.PodSandboxStatus(cctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
		cancel()
		if err != nil {
			return c.netns, fmt.Errorf("cri %s: pod sandbox status %s: %w", c.socket, id, err)
		}
		c.netns[id] = statusNetns(st, procRoot)
	}
	return c.netns, nil
}

// statusNetns finds a sandbox's network namespace inode from its status:
// through the sandbox process's /proc entry, else the namespace's path in the
// runtime spec. 0 for host network or none found.
func statusNetns(st *runtimeapi.PodSandboxStatusResponse, procRoot string) uint64 {
	if st.GetStatus().GetLinux().GetNamespaces().GetOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE {
		return 0
	}
	var info sandboxInfo
	if err := json.Unmarshal([]byte(st.GetInfo()["info"]), &info); err != nil {
		return 0
	}
	if info.Pid > 0 {
		if ino, err := nsInode(filepath.Join(procRoot, strconv.Itoa(info.Pid), "ns", "net")); err == nil {
			return ino
		}
	}
	for _, ns := range info.RuntimeSpec.Linux.Namespaces {
		if ns.Type == "network" && ns.Path != "" {
			if ino, err := nsInode(ns.Path); err == nil {
				return ino
			}
		}
	}
	return 0
}
