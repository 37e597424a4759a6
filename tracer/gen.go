package tracer

// The kernel programs are compiled by bpf2go and the output (.go and .o) is
// committed, so building twtop needs only Go. `make generate` reruns this
// (clang, llvm-strip and libbpf-dev are needed then); `make check-generated`
// fails when the committed output is stale.
//
//go:generate go tool bpf2go -cc clang -strip llvm-strip -no-global-types -target amd64 -type event -type config twtop ../bpf/twtop.bpf.c -- -I../bpf -Wall -Werror
