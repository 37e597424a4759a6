// Package critest provides a container runtime for tests: a CRI
// RuntimeService that speaks the real gRPC API (k8s.io/cri-api runtime v1)
// on a unix socket, as containerd and CRI-O do, and answers ListPodSandbox,
// ListContainers and PodSandboxStatus from the pods and containers it is
// given. Every other method is unimplemented.
package critest

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Server is a fake runtime. Its methods are safe for concurrent use.
type Server struct {
	runtimeapi.UnimplementedRuntimeServiceServer

	mu         sync.Mutex
	sandboxes  map[string]*runtimeapi.PodSandbox
	containers map[string]*runtimeapi.Container
	info       map[string]string // sandbox id → verbose status "info"
	hostNet    map[string]bool   // sandbox id → host network
	hang       chan struct{}     // while non-nil, calls wait for it to close

	calls   atomic.Int64
	entered chan struct{} // a call started (buffered, never blocks)
}

// New returns a runtime with no pods.
func New() *Server {
	return &Server{
		sandboxes:  map[string]*runtimeapi.PodSandbox{},
		containers: map[string]*runtimeapi.Container{},
		info:       map[string]string{},
		hostNet:    map[string]bool{},
		entered:    make(chan struct{}, 1),
	}
}

// Serve serves s on a unix socket named name (containerd.sock, crio.sock:
// the name tells the client which runtime it is) in a temporary directory
// of tb, until tb ends, and returns the socket's path.
func (s *Server) Serve(tb testing.TB, name string) string {
	tb.Helper()
	sock := filepath.Join(tb.TempDir(), name)
	lis, err := net.Listen("unix", sock)
	if err != nil {
		tb.Fatalf("critest: %v", err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, s)
	go srv.Serve(lis)
	tb.Cleanup(srv.Stop)
	tb.Cleanup(func() { s.SetHang(false) }) // runs first: releases hung calls
	return sock
}

// Calls is the number of calls answered or in progress.
func (s *Server) Calls() int64 {
	return s.calls.Load()
}

// Entered receives when a call starts (at most one call is remembered).
func (s *Server) Entered() <-chan struct{} {
	return s.entered
}

// SetHang makes every call wait until SetHang(false) or the caller's
// deadline, as a runtime that stopped answering does.
func (s *Server) SetHang(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on && s.hang == nil {
		s.hang = make(chan struct{})
	}
	if !on && s.hang != nil {
		close(s.hang)
		s.hang = nil
	}
}

// call counts a call and, while hung, waits for release or the caller.
func (s *Server) call(ctx context.Context) error {
	s.calls.Add(1)
	select {
	case s.entered <- struct{}{}:
	default:
	}
	s.mu.Lock()
	hang := s.hang
	s.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// AddPod adds a ready pod sandbox.
func (s *Server) AddPod(uid, namespace, name, sandboxID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sandboxes[sandboxID] = &runtimeapi.PodSandbox{
		Id:        sandboxID,
		Metadata:  &runtimeapi.PodSandboxMetadata{Name: name, Uid: uid, Namespace: namespace},
		State:     runtimeapi.PodSandboxState_SANDBOX_READY,
		CreatedAt: time.Now().UnixNano(),
	}
}

// AddContainer adds a running container to a pod sandbox.
func (s *Server) AddContainer(id, sandboxID, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.containers[id] = &runtimeapi.Container{
		Id:           id,
		PodSandboxId: sandboxID,
		Metadata:     &runtimeapi.ContainerMetadata{Name: name},
		State:        runtimeapi.ContainerState_CONTAINER_RUNNING,
	}
}

// RemovePod removes a pod sandbox and its containers.
func (s *Server) RemovePod(sandboxID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sandboxes, sandboxID)
	delete(s.info, sandboxID)
	delete(s.hostNet, sandboxID)
	for id, c := range s.containers {
		if c.PodSandboxId == sandboxID {
			delete(s.containers, id)
		}
	}
}

// SetHostNetwork makes a sandbox's status say it uses the node's network.
func (s *Server) SetHostNetwork(sandboxID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hostNet[sandboxID] = true
}

// statusInfo is the part of the "info" entry of a verbose PodSandboxStatus
// that containerd and CRI-O write and that locates the sandbox's network
// namespace: the sandbox process, and the OCI runtime spec's namespaces.
type statusInfo struct {
	Pid         int `json:"pid"`
	RuntimeSpec struct {
		Linux struct {
			Namespaces []specNamespace `json:"namespaces"`
		} `json:"linux"`
	} `json:"runtimeSpec"`
}

type specNamespace struct {
	Type string `json:"type"`
	Path string `json:"path,omitempty"`
}

// SetSandboxProcess gives a sandbox's verbose status its process id and,
// when netnsPath is not empty, its network namespace's path (as
// /var/run/netns/cni-… is in containerd's spec).
func (s *Server) SetSandboxProcess(sandboxID string, pid int, netnsPath string) {
	var info statusInfo
	info.Pid = pid
	info.RuntimeSpec.Linux.Namespaces = []specNamespace{{Type: "pid"}, {Type: "ipc"}, {Type: "uts"}}
	if netnsPath != "" {
		info.RuntimeSpec.Linux.Namespaces = append(info.RuntimeSpec.Linux.Namespaces, specNamespace{Type: "network", Path: netnsPath})
	}
	data, err := json.Marshal(info)
	if err != nil {
		panic(err) // plain structs always marshal
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.info[sandboxID] = string(data)
}

// ListPodSandbox lists every sandbox; the request's filter is ignored.
func (s *Server) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	if err := s.call(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &runtimeapi.ListPodSandboxResponse{}
	for _, sb := range s.sandboxes {
		resp.Items = append(resp.Items, sb)
	}
	return resp, nil
}

// ListContainers lists every container; the request's filter is ignored.
func (s *Server) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	if err := s.call(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &runtimeapi.ListContainersResponse{}
	for _, c := range s.containers {
		resp.Containers = append(resp.Containers, c)
	}
	return resp, nil
}

// PodSandboxStatus answers a sandbox's status, with its "info" entry when
// verbose; NotFound for an unknown sandbox, as the runtimes answer.
func (s *Server) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	if err := s.call(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sb, ok := s.sandboxes[req.GetPodSandboxId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "an error occurred when try to find sandbox %q: not found", req.GetPodSandboxId())
	}
	mode := runtimeapi.NamespaceMode_POD
	if s.hostNet[sb.Id] {
		mode = runtimeapi.NamespaceMode_NODE
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: &runtimeapi.PodSandboxStatus{
		Id:        sb.Id,
		Metadata:  sb.Metadata,
		State:     sb.State,
		CreatedAt: sb.CreatedAt,
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{
			Options: &runtimeapi.NamespaceOption{Network: mode},
		}},
	}}
	if req.GetVerbose() && s.info[sb.Id] != "" {
		resp.Info = map[string]string{"info": s.info[sb.Id]}
	}
	return resp, nil
}
