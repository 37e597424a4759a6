package tracer

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/cilium/ebpf"
)

// LoadError is a program the kernel refused. Its message is one line: the
// program, what the kernel lacks (as far as the verifier says) and what
// to do. The verifier's whole log is printed with %+v (--verbose, and in
// test failures).
type LoadError struct {
	Tier    Tier
	Program string // "" when the error does not name one
	Reason  string // what the kernel lacks or refused, in a few words
	Err     error  // the loader's error, with the verifier log
}

func (e *LoadError) Error() string {
	prog := "the programs"
	if e.Program != "" {
		prog = "program " + e.Program
	}
	return fmt.Sprintf("kernel %s refused %s: %s (--verbose prints the verifier log)", kernelRelease(), prog, e.Reason)
}

func (e *LoadError) Unwrap() error { return e.Err }

// Format prints the verifier log after the message for %+v.
func (e *LoadError) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('+') {
		var verr *ebpf.VerifierError
		if errors.As(e.Err, &verr) {
			fmt.Fprintf(f, "%s\nverifier log of %s:\n%+v", e.Error(), e.Program, verr)
			return
		}
		fmt.Fprintf(f, "%s: %v", e.Error(), e.Err)
		return
	}
	fmt.Fprint(f, e.Error())
}

var progPrefix = regexp.MustCompile(`^program ([A-Za-z0-9_]+): `)

// poisonedCall is the helper number cilium/ebpf writes where a CO-RE
// relocation found nothing to relocate to (0xbad2310).
const poisonedCall = "195896080"

func newLoadError(tier Tier, err error) *LoadError {
	e := &LoadError{Tier: tier, Err: err}
	if m := progPrefix.FindStringSubmatch(err.Error()); m != nil {
		e.Program = m[1]
	}
	var verr *ebpf.VerifierError
	if !errors.As(err, &verr) || len(verr.Log) == 0 {
		e.Reason = err.Error()
		if e.Program != "" {
			e.Reason = strings.TrimPrefix(e.Reason, "program "+e.Program+": ")
		}
		return e
	}
	last := verr.Log[len(verr.Log)-1]
	for i := len(verr.Log) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(verr.Log[i]); l != "" && !strings.HasPrefix(l, "processed ") {
			last = l
			break
		}
	}
	switch {
	case strings.Contains(last, "unknown#"+poisonedCall):
		e.Reason = "a kernel structure or field it reads does not exist on this kernel (CO-RE relocation failed)"
	case strings.Contains(last, "invalid func") || strings.Contains(last, "unknown func"):
		e.Reason = "it calls a BPF helper this kernel lacks (" + last + ")"
	default:
		e.Reason = last
	}
	e.Reason += "; try another tier (--attach kprobe or tracepoint), or --btf FILE if the kernel's BTF is incomplete"
	return e
}
