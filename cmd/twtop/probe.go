package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/twtop/twtop/tracer"
)

// probe prints what the running kernel offers twtop and what twtop would
// use there. As root it loads and attaches the programs (then releases
// them), so its answer is what `sudo twtop` would do; otherwise it says
// what the kernel's files suggest.
func probe(cfg *config, w io.Writer) error {
	f := tracer.ProbeFeatures()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("kernel", f.Release)
	if f.KernelBTF {
		row("kernel BTF", "yes (/sys/kernel/btf/vmlinux)")
	} else {
		row("kernel BTF", "no: pass --btf FILE; fentry, tp_btf and iter/tcp need it, so kprobe or tracepoint tier with classic tracepoints and a sock_diag scan")
	}
	row("ring buffer", yesNo(f.RingBuf, "yes", "no: per-CPU perf buffers instead (below 5.8)"))
	if f.RingBuf != nil && *f.RingBuf {
		row("ring buffer per CPU", yesNo(f.RingInMap, "yes", "no: one ring buffer all CPUs share"))
	}
	row("bpf_probe_read_kernel", yesNo(f.ProbeReadKernel, "yes", "no: bpf_probe_read, jiffies from jiffies_64 (below 5.5)"))
	row("kprobes", yesNo(&f.Kprobes, "yes", "no (CONFIG_KPROBES off): fentry or tracepoint tier"))
	row("iter/tcp", yesNo(&f.IterTCP, "yes", "no: the TIME_WAIT scan goes over sock_diag (below 5.9, or no kernel BTF)"))
	if f.KernelBTF {
		if len(f.Missing) == 0 {
			row("timewait functions", "all in the kernel's BTF")
		} else {
			row("timewait functions", "missing (inlined?): "+strings.Join(f.Missing, ", "))
		}
	}
	needed := f.Needed().With(cfg.fallbacks)
	if s := needed.String(); s != "" {
		row("fallbacks", s)
	} else {
		row("fallbacks", "none needed")
	}
	if os.Geteuid() != 0 {
		row("tier", "run as root to load the programs and see which tier twtop picks")
		return tw.Flush()
	}
	opts := traceOptions(cfg)
	tr, err := tracer.Open(opts)
	if err != nil {
		row("tier", "none")
		tw.Flush()
		return fmt.Errorf("no attach tier works on this kernel: %w", err)
	}
	defer tr.Close()
	row("tier", fmt.Sprintf("%s (loaded and attached; --attach %s)", tr.Tier(), opts.Tier)+inferredNote(tr.Tier()))
	for _, why := range tr.Rejected() {
		row("not using", why)
	}
	for _, fn := range tr.SkippedHooks() {
		row("not hooked", fn+": "+tracer.HookLoss(fn))
	}
	if s := tr.Fallbacks().String(); s != "" {
		row("fallbacks used", s)
	}
	return tw.Flush()
}

func yesNo(b *bool, yes, no string) string {
	switch {
	case b == nil:
		return "unknown (probing it needs root)"
	case *b:
		return yes
	}
	return no
}
