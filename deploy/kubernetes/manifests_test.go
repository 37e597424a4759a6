package kubernetes

import (
	"bytes"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/promql/parser"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/twtop/twtop/internal/workload"
	"github.com/twtop/twtop/metrics"
)

// documents splits every manifest into its YAML documents.
func documents(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(b, []byte("\n---\n")) {
			if len(bytes.TrimSpace(doc)) > 0 {
				out[f+"#"+string(rune('0'+i))] = doc
			}
		}
	}
	return out
}

// objects are the manifests decoded strictly into their API types: an
// unknown or misspelt field is an error.
type objects struct {
	namespaces      []corev1.Namespace
	serviceAccounts []corev1.ServiceAccount
	daemonSets      []appsv1.DaemonSet
	services        []corev1.Service
	podMonitors     []monitoringv1.PodMonitor
	rules           []monitoringv1.PrometheusRule
}

func decode(t *testing.T) *objects {
	t.Helper()
	var o objects
	for name, doc := range documents(t) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var err error
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 Namespace":
			err = strictAppend(doc, &o.namespaces)
		case "v1 ServiceAccount":
			err = strictAppend(doc, &o.serviceAccounts)
		case "apps/v1 DaemonSet":
			err = strictAppend(doc, &o.daemonSets)
		case "v1 Service":
			err = strictAppend(doc, &o.services)
		case "monitoring.coreos.com/v1 PodMonitor":
			err = strictAppend(doc, &o.podMonitors)
		case "monitoring.coreos.com/v1 PrometheusRule":
			err = strictAppend(doc, &o.rules)
		default:
			t.Fatalf("%s: unexpected %s %s", name, tm.APIVersion, tm.Kind)
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if len(o.daemonSets) != 1 || len(o.namespaces) != 1 || len(o.serviceAccounts) != 1 ||
		len(o.services) != 1 || len(o.podMonitors) != 1 || len(o.rules) != 1 {
		t.Fatalf("want one of each object, got %d namespaces, %d service accounts, %d daemon sets, %d services, %d pod monitors, %d rules",
			len(o.namespaces), len(o.serviceAccounts), len(o.daemonSets), len(o.services), len(o.podMonitors), len(o.rules))
	}
	return &o
}

func strictAppend[T any](doc []byte, list *[]T) error {
	var v T
	if err := yaml.UnmarshalStrict(doc, &v); err != nil {
		return err
	}
	*list = append(*list, v)
	return nil
}

func TestManifestsDecodeStrictly(t *testing.T) {
	o := decode(t)
	ns := o.namespaces[0].Name
	for _, m := range []metav1.ObjectMeta{o.serviceAccounts[0].ObjectMeta, o.daemonSets[0].ObjectMeta,
		o.services[0].ObjectMeta, o.podMonitors[0].ObjectMeta, o.rules[0].ObjectMeta} {
		if m.Namespace != ns {
			t.Errorf("%s is in namespace %q, not %q", m.Name, m.Namespace, ns)
		}
	}
	// a typo in a field is caught
	if err := strictAppend([]byte("apiVersion: v1\nkind: Service\nspec:\n  clusterAddress: None\n"), new([]corev1.Service)); err == nil {
		t.Error("an unknown field decoded without an error")
	}
}

// The container that runs twtop.
func twtopContainer(t *testing.T, ds *appsv1.DaemonSet) *corev1.Container {
	t.Helper()
	if len(ds.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(ds.Spec.Template.Spec.Containers))
	}
	return &ds.Spec.Template.Spec.Containers[0]
}

func TestManifestLeastPrivilege(t *testing.T) {
	o := decode(t)
	ds := &o.daemonSets[0]
	pod := &ds.Spec.Template.Spec
	c := twtopContainer(t, ds)
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("no securityContext with capabilities")
	}
	check := func(what string, ok bool) {
		t.Helper()
		if !ok {
			t.Error(what)
		}
	}
	check("privileged must be false", sc.Privileged != nil && !*sc.Privileged)
	check("allowPrivilegeEscalation must be false", sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation)
	check("readOnlyRootFilesystem must be true", sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem)
	check("capabilities must drop ALL", slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}))
	check("seccompProfile must be RuntimeDefault", sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault)
	// uid 0: Kubernetes grants added capabilities to root only
	check("runAsUser must be 0", sc.RunAsUser != nil && *sc.RunAsUser == 0)
	allowed := []corev1.Capability{"BPF", "PERFMON", "SYSLOG", "SYS_RESOURCE"}
	for _, c := range sc.Capabilities.Add {
		check("capability "+string(c)+" is more than tracing needs", slices.Contains(allowed, c))
	}
	check("BPF and PERFMON must be added", slices.Contains(sc.Capabilities.Add, "BPF") && slices.Contains(sc.Capabilities.Add, "PERFMON"))
	check("hostPID must be off: closes are attributed by cgroup id, namespaces through the runtime, never through /proc/PID", !pod.HostPID)
	check("hostIPC must be off", !pod.HostIPC)
	check("hostNetwork must be on: the scan and the sysctls are read in twtop's namespace", pod.HostNetwork)
	check("no service account token", pod.AutomountServiceAccountToken != nil && !*pod.AutomountServiceAccountToken)
	check("resource limits must be set", c.Resources.Limits.Cpu() != nil && !c.Resources.Limits.Cpu().IsZero() && !c.Resources.Limits.Memory().IsZero())
	checkHostMounts(t, pod, c)
	args := strings.Join(c.Args, " ")
	check("args must run headless with --metrics on the node's address", strings.Contains(args, "--no-ui") &&
		strings.Contains(args, "--metrics=$(HOST_IP):9273"))
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		check("liveness and readiness probes must get /healthz on the metrics port", p != nil && p.HTTPGet != nil &&
			p.HTTPGet.Path == "/healthz" && p.HTTPGet.Port.StrVal == "metrics")
	}
	check("the container must name its port metrics", len(c.Ports) == 1 && c.Ports[0].Name == "metrics" && c.Ports[0].ContainerPort == 9273)

	svc := o.services[0]
	check("the service must select the pods", mapsEqual(svc.Spec.Selector, ds.Spec.Template.Labels))
	check("the service must target the metrics port", len(svc.Spec.Ports) == 1 && svc.Spec.Ports[0].TargetPort.StrVal == "metrics")
	pm := o.podMonitors[0]
	check("the pod monitor must select the pods", mapsEqual(pm.Spec.Selector.MatchLabels, ds.Spec.Template.Labels))
	check("the pod monitor must scrape /metrics on the metrics port", len(pm.Spec.PodMetricsEndpoints) == 1 &&
		pm.Spec.PodMetricsEndpoints[0].Port != nil && *pm.Spec.PodMetricsEndpoints[0].Port == "metrics" && pm.Spec.PodMetricsEndpoints[0].Path == "/metrics")
}

// hostMount is a host path the DaemonSet may mount, where, and how.
type hostMount struct {
	mountPath string
	typ       corev1.HostPathType
	// recursive: the mount must be recursively read-only where the runtime
	// can, as the host path may hold other mounts
	recursive bool
	// fromHost: mounts made on the host under the path must show in the
	// container (HostToContainer); no other propagation is allowed
	fromHost bool
}

// hostMounts are the host paths twtop needs, each mounted read-only (none
// needs writing: a unix socket is connected to on a read-only mount too).
var hostMounts = map[string]hostMount{
	// tracepoint tier
	"/sys/kernel/tracing": {mountPath: "/sys/kernel/tracing", typ: corev1.HostPathDirectory},
	// cgroup id → pod UID and container id: the node's whole hierarchy, over
	// the container's namespaced /sys/fs/cgroup, where twtop looks for it
	"/sys/fs/cgroup": {mountPath: "/sys/fs/cgroup", typ: corev1.HostPathDirectory, recursive: true},
	// pod and container names: the runtime's socket where twtop looks for
	// it. No type: a node runs one of the two runtimes, and an absent
	// socket must neither keep the pod from starting ("Socket") nor have
	// the runtime's directory created ("DirectoryOrCreate").
	"/run/containerd/containerd.sock": {mountPath: "/run/containerd/containerd.sock", typ: corev1.HostPathUnset},
	"/run/crio/crio.sock":             {mountPath: "/run/crio/crio.sock", typ: corev1.HostPathUnset},
	// network namespace → pod: the namespace files the runtimes' sandbox
	// status names, at the path it names them by; pods' namespaces come
	// after twtop starts, and a new node has no directory yet
	"/var/run/netns": {mountPath: "/var/run/netns", typ: corev1.HostPathDirectoryOrCreate, fromHost: true},
}

// checkHostMounts checks that the pod mounts exactly hostMounts, each
// read-only where twtop looks for it, and nothing else.
func checkHostMounts(t *testing.T, pod *corev1.PodSpec, c *corev1.Container) {
	t.Helper()
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
		if !m.ReadOnly {
			t.Errorf("volume %s must be mounted read-only", m.Name)
		}
		if m.SubPath != "" || m.SubPathExpr != "" {
			t.Errorf("volume %s: a subPath is created on the host when missing", m.Name)
		}
	}
	seen := map[string]bool{}
	for _, v := range pod.Volumes {
		if v.HostPath == nil {
			t.Errorf("volume %s is not a host path: twtop needs no other", v.Name)
			continue
		}
		want, ok := hostMounts[v.HostPath.Path]
		if !ok {
			t.Errorf("hostPath %s is not one twtop needs", v.HostPath.Path)
			continue
		}
		seen[v.HostPath.Path] = true
		typ := corev1.HostPathUnset
		if v.HostPath.Type != nil {
			typ = *v.HostPath.Type
		}
		if typ != want.typ {
			t.Errorf("hostPath %s: type %q, want %q", v.HostPath.Path, typ, want.typ)
		}
		m, ok := mounts[v.Name]
		if !ok {
			t.Errorf("volume %s (%s) is not mounted", v.Name, v.HostPath.Path)
			continue
		}
		delete(mounts, v.Name)
		if m.MountPath != want.mountPath {
			t.Errorf("hostPath %s is mounted at %s, want %s", v.HostPath.Path, m.MountPath, want.mountPath)
		}
		if rro := m.RecursiveReadOnly; want.recursive && (rro == nil || *rro != corev1.RecursiveReadOnlyIfPossible) {
			t.Errorf("hostPath %s must be recursively read-only if possible", v.HostPath.Path)
		}
		prop := corev1.MountPropagationNone
		if m.MountPropagation != nil {
			prop = *m.MountPropagation
		}
		wantProp := corev1.MountPropagationNone
		if want.fromHost {
			wantProp = corev1.MountPropagationHostToContainer
		}
		if prop != wantProp {
			t.Errorf("hostPath %s: mount propagation %s, want %s", v.HostPath.Path, prop, wantProp)
		}
	}
	for p := range hostMounts {
		if !seen[p] {
			t.Errorf("hostPath %s is not mounted", p)
		}
	}
	for name := range mounts {
		t.Errorf("volume mount %s has no volume", name)
	}
}

// The runtime sockets are mounted where twtop looks for one by default,
// and it is not told another.
func TestManifestRuntimeSockets(t *testing.T) {
	c := twtopContainer(t, &decode(t).daemonSets[0])
	var sockets []string
	for _, m := range c.VolumeMounts {
		if strings.HasSuffix(m.MountPath, ".sock") {
			sockets = append(sockets, m.MountPath)
			if !slices.Contains(workload.DefaultCRISockets, m.MountPath) {
				t.Errorf("runtime socket mounted at %s, where twtop does not look (%v)", m.MountPath, workload.DefaultCRISockets)
			}
		}
	}
	for _, want := range []string{"/run/containerd/containerd.sock", "/run/crio/crio.sock"} {
		if !slices.Contains(sockets, want) {
			t.Errorf("no runtime socket mounted at %s", want)
		}
	}
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--cri-socket") {
			t.Errorf("args set %s: twtop finds the mounted socket itself", a)
		}
	}
}

// twtop finds the node's cgroup2 hierarchy where the DaemonSet mounts it,
// as the container sees it: the hostPath mount's root is shown relative to
// the container's cgroup namespace ("/../../.."), and the runtime's own
// /sys/fs/cgroup, which shows that namespace only, is still there unless
// the hostPath mount replaces it.
func TestManifestCgroupMount(t *testing.T) {
	ds := &decode(t).daemonSets[0]
	c := twtopContainer(t, ds)
	var dir string
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.HostPath == nil || v.HostPath.Path != "/sys/fs/cgroup" {
			continue
		}
		for _, m := range c.VolumeMounts {
			if m.Name == v.Name {
				dir = m.MountPath
			}
		}
	}
	if dir == "" {
		t.Fatal("the node's cgroup hierarchy is not mounted")
	}
	var (
		rootfs  = "600 500 0:50 / / ro,relatime master:1 - overlay overlay rw\n"
		runtime = "610 600 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw\n"
		node    = "620 600 0:30 /../../.. " + dir + " ro,nosuid,nodev,noexec,relatime master:9 - cgroup2 cgroup2 rw\n"
	)
	views := map[string]string{"the runtime's /sys/fs/cgroup kept": rootfs + runtime + node}
	if dir == "/sys/fs/cgroup" {
		views["the runtime's /sys/fs/cgroup replaced"] = rootfs + node
	}
	for name, mountinfo := range views {
		proc := t.TempDir()
		if err := os.MkdirAll(filepath.Join(proc, "self"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, "self", "mountinfo"), []byte(mountinfo), 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := workload.FindCgroup2(proc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// the mount read (a directory shows the top mount on it), and paths
		// under it read as the node's cgroup paths
		if m.Dir != dir || path.Join("/", m.Root, "kubepods.slice") != "/kubepods.slice" {
			t.Errorf("%s: twtop reads cgroups at %+v, not the node's hierarchy at %s", name, m, dir)
		}
	}
	// The Go runtime looks for the CPU limit in the container's own cgroup,
	// which the node's hierarchy hides.
	var gomaxprocs bool
	for _, e := range c.Env {
		if e.Name == "GOMAXPROCS" && e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil &&
			e.ValueFrom.ResourceFieldRef.Resource == "limits.cpu" {
			gomaxprocs = true
		}
	}
	if !gomaxprocs {
		t.Error("GOMAXPROCS must come from limits.cpu")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) || len(a) == 0 {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Every alert parses as PromQL and names only metrics twtop exports.
func TestManifestAlertsUseExportedMetrics(t *testing.T) {
	o := decode(t)
	exported := map[string]bool{}
	for _, n := range metrics.Names() {
		exported[n] = true
	}
	var alerts []string
	for _, g := range o.rules[0].Spec.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			expr, err := parser.ParseExpr(r.Expr.String())
			if err != nil {
				t.Errorf("alert %s: %v", r.Alert, err)
				continue
			}
			var names []string
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok {
					names = append(names, vs.Name)
				}
				return nil
			})
			if len(names) == 0 {
				t.Errorf("alert %s uses no metric", r.Alert)
			}
			for _, n := range names {
				if !exported[n] {
					t.Errorf("alert %s uses %s, which twtop does not export", r.Alert, n)
				}
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %s: want a severity label and a summary", r.Alert)
			}
		}
	}
	for _, want := range []string{"TwtopEphemeralPortsRunningOut", "TwtopTimewaitOverflow"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s (port pressure and overflow must be covered)", want)
		}
	}
}
