// Package kubernetes holds twtop's Kubernetes manifests and the tests that
// validate them offline: each document decodes strictly into its typed API
// object, the DaemonSet keeps to least privilege, the alerts' PromQL
// parses and names only metrics twtop exports, and (as root) twtop traces
// with exactly the capabilities the DaemonSet grants and, with its mounts in
// a cgroup namespace of its own, names the pod that closes first.
package kubernetes
