module github.com/twtop/twtop

go 1.26.8

require (
	github.com/cilium/ebpf v0.22.0
	golang.org/x/sys v0.49.0
)

require github.com/klauspost/compress v1.20.3 // indirect

tool github.com/cilium/ebpf/cmd/bpf2go
