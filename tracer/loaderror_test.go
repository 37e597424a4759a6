package tracer

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// A refused program is one line that names it and says what the kernel
// lacks; the verifier's log only comes with %+v.
func TestLoadErrorIsOneLine(t *testing.T) {
	log := func(last string) *ebpf.VerifierError {
		return &ebpf.VerifierError{Cause: unix.EINVAL, Log: []string{
			"0: R1=ctx() R10=fp0", "; struct net *net = BPF_CORE_READ(tw, __tw_common.skc_net.net);",
			"229: (85) call unknown#195896080", last, "processed 217 insns (limit 1000000)",
		}}
	}
	for _, tc := range []struct {
		last, reason string
	}{
		{"invalid func unknown#195896080", "does not exist on this kernel (CO-RE relocation failed)"},
		{"invalid func unknown#184", "calls a BPF helper this kernel lacks (invalid func unknown#184)"},
		{"R1 invalid mem access 'scalar'", "R1 invalid mem access 'scalar'"},
	} {
		verr := log(tc.last)
		err := newLoadError(Kprobe, fmt.Errorf("program kp_deschedule: load program: %w", verr))
		msg := err.Error()
		if strings.Contains(msg, "\n") {
			t.Errorf("message has more than one line: %q", msg)
		}
		for _, want := range []string{"program kp_deschedule", tc.reason, "--verbose"} {
			if !strings.Contains(msg, want) {
				t.Errorf("message %q lacks %q", msg, want)
			}
		}
		if strings.Contains(msg, "processed 217") {
			t.Errorf("message carries the verifier log: %q", msg)
		}
		full := fmt.Sprintf("%+v", err)
		if !strings.Contains(full, "229: (85) call unknown#195896080") || !strings.HasPrefix(full, msg) {
			t.Errorf("%%+v lacks the verifier log:\n%s", full)
		}
		if got := fmt.Sprintf("%v", err); got != msg {
			t.Errorf("%%v = %q, want the one line %q", got, msg)
		}
		var le *LoadError
		if !errors.As(err, &le) || !errors.Is(err, unix.EINVAL) {
			t.Errorf("the error does not unwrap to the loader's: %v", err)
		}
	}
	// an error without a verifier log keeps its text
	err := newLoadError(Fentry, fmt.Errorf("program fx_purge: %w", unix.E2BIG))
	if err.Program != "fx_purge" || !strings.Contains(err.Error(), unix.E2BIG.Error()) {
		t.Errorf("plain error: %q (program %q)", err.Error(), err.Program)
	}
}
