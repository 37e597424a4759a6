package tracer

import (
	"fmt"
	"strings"
)

// Tier is a set of kernel hooks; see "Kernels and attach tiers" in the
// README.
type Tier int

// Tiers, best first. Auto picks the best one the kernel allows.
const (
	Auto Tier = iota
	Fentry
	Kprobe
	Tracepoint
)

var tierNames = map[Tier]string{Auto: "auto", Fentry: "fentry", Kprobe: "kprobe", Tracepoint: "tracepoint"}

func (t Tier) String() string {
	if s, ok := tierNames[t]; ok {
		return s
	}
	return fmt.Sprintf("tier%d", int(t))
}

// ParseTier parses auto, fentry, kprobe or tracepoint.
func ParseTier(s string) (Tier, error) {
	for t, name := range tierNames {
		if strings.EqualFold(s, name) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown attach tier %q: want auto, fentry, kprobe or tracepoint", s)
}

// Exact reports whether the tier sees TIME_WAIT ends and their causes
// directly; the tracepoint tier infers them.
func (t Tier) Exact() bool { return t == Fentry || t == Kprobe }

// hook is one kernel program and where it attaches.
type hook struct {
	prog   string // program name in the object
	kind   hookKind
	target string // function, "group/name" tracepoint, or tp_btf name
	// optional hooks are skipped where the kernel lacks the function
	// (inlined or renamed) instead of failing the tier
	optional bool
	// nargs, when set, makes this a variant for a function with that many
	// parameters: only the variant matching the kernel's prototype loads
	nargs int
	// classic is the classic tracepoint program ("prog group/name") that
	// stands in for a tp_btf hook where tp_btf cannot attach
	classic string
}

// asClassic returns the classic tracepoint twin of a tp_btf hook.
func (h hook) asClassic() hook {
	prog, target, _ := strings.Cut(h.classic, " ")
	return hook{prog: prog, kind: hookTracepoint, target: target, optional: h.optional}
}

type hookKind int

const (
	hookTracing    hookKind = iota // fentry, fexit, tp_btf
	hookTracepoint                 // classic tracepoint
	hookKprobe
	hookKretprobe
)

// hookLoss says what is missing when an optional hook cannot be attached.
var hookLoss = map[string]string{
	"tcp_twsk_destructor": "TIME_WAIT ends that only it sees show up later as vanished from the scan",
	"tcp_receive_reset":   "resets received are not told apart from resets this host sent",
}

// HookLoss says what twtop cannot see when the optional hook on the kernel
// function fn is missing.
func HookLoss(fn string) string {
	if s, ok := hookLoss[fn]; ok {
		return s
	}
	return "what only it shows is missing"
}

// Hooks of every tier. The iter/tcp scan is attached separately.
var commonHooks = []hook{
	{prog: "on_state", kind: hookTracing, target: "inet_sock_set_state", classic: "tp_state sock/inet_sock_set_state"},
	{prog: "on_receive_reset", kind: hookTracing, target: "tcp_receive_reset", optional: true, classic: "tp_receive_reset tcp/tcp_receive_reset"},
	{prog: "on_enter_bind", kind: hookTracepoint, target: "syscalls/sys_enter_bind"},
	{prog: "on_exit_bind", kind: hookTracepoint, target: "syscalls/sys_exit_bind"},
}

var tierHooks = map[Tier][]hook{
	Fentry: {
		{prog: "fx_twsk_alloc", kind: hookTracing, target: "inet_twsk_alloc", nargs: 3},
		{prog: "fx_time_wait", kind: hookTracing, target: "tcp_time_wait"},
		{prog: "fe_tw_timer", kind: hookTracing, target: "tw_timer_handler"},
		{prog: "fe_deschedule", kind: hookTracing, target: "inet_twsk_deschedule_put"},
		{prog: "fx_deschedule", kind: hookTracing, target: "inet_twsk_deschedule_put"},
		{prog: "fx_twsk_unique", kind: hookTracing, target: "tcp_twsk_unique", nargs: 3},
		{prog: "fe_tw_process", kind: hookTracing, target: "tcp_timewait_state_process"},
		{prog: "fx_tw_process3", kind: hookTracing, target: "tcp_timewait_state_process", nargs: 3},
		{prog: "fx_tw_process4", kind: hookTracing, target: "tcp_timewait_state_process", nargs: 4},
		{prog: "fx_tw_process5", kind: hookTracing, target: "tcp_timewait_state_process", nargs: 5},
		{prog: "fe_purge", kind: hookTracing, target: "inet_twsk_purge"},
		{prog: "fx_purge", kind: hookTracing, target: "inet_twsk_purge"},
		{prog: "fe_tw_destructor", kind: hookTracing, target: "tcp_twsk_destructor", optional: true},
	},
	Kprobe: {
		{prog: "kp_twsk_alloc", kind: hookKprobe, target: "inet_twsk_alloc"},
		{prog: "kr_twsk_alloc", kind: hookKretprobe, target: "inet_twsk_alloc"},
		{prog: "kp_time_wait", kind: hookKprobe, target: "tcp_time_wait"},
		{prog: "kr_time_wait", kind: hookKretprobe, target: "tcp_time_wait"},
		{prog: "kp_tw_timer", kind: hookKprobe, target: "tw_timer_handler"},
		{prog: "kp_deschedule", kind: hookKprobe, target: "inet_twsk_deschedule_put"},
		{prog: "kr_deschedule", kind: hookKretprobe, target: "inet_twsk_deschedule_put"},
		{prog: "kp_twsk_unique", kind: hookKprobe, target: "tcp_twsk_unique"},
		{prog: "kr_twsk_unique", kind: hookKretprobe, target: "tcp_twsk_unique"},
		{prog: "kp_tw_process", kind: hookKprobe, target: "tcp_timewait_state_process"},
		{prog: "kr_tw_process", kind: hookKretprobe, target: "tcp_timewait_state_process"},
		{prog: "kp_purge", kind: hookKprobe, target: "inet_twsk_purge"},
		{prog: "kr_purge", kind: hookKretprobe, target: "inet_twsk_purge"},
		{prog: "kp_tw_destructor", kind: hookKprobe, target: "tcp_twsk_destructor", optional: true},
	},
	Tracepoint: {
		{prog: "on_timer_start", kind: hookTracing, target: "timer_start", classic: "tp_timer_start timer/timer_start"},
		{prog: "on_timer_cancel", kind: hookTracing, target: "timer_cancel", classic: "tp_timer_cancel timer/timer_cancel"},
		{prog: "on_timer_expire", kind: hookTracing, target: "timer_expire_entry", classic: "tp_timer_expire timer/timer_expire_entry"},
		{prog: "on_send_reset", kind: hookTracing, target: "tcp_send_reset", classic: "tp_send_reset tcp/tcp_send_reset"},
	},
}

const scanProg = "scan_tw"

// hooksFor lists the hooks that a tier attaches, common ones first: with
// classic, the classic tracepoints stand in for the tp_btf ones.
func hooksFor(t Tier, classic bool) []hook {
	hs := append([]hook(nil), commonHooks...)
	hs = append(hs, tierHooks[t]...)
	if classic {
		for i, h := range hs {
			if h.classic != "" {
				hs[i] = h.asClassic()
			}
		}
	}
	return hs
}

// TracepointTierHooks lists where the tracepoint tier attaches, common
// hooks included: BTF tracepoints by name, classic tracepoints as
// "group/name". The iter/tcp scan is not a hook.
func TracepointTierHooks() (btf, classic []string) {
	for _, h := range hooksFor(Tracepoint, false) {
		switch h.kind {
		case hookTracing:
			btf = append(btf, h.target)
		case hookTracepoint:
			classic = append(classic, h.target)
		}
	}
	return btf, classic
}

// keepPrograms is the set of program names that hooks load, plus the
// iter/tcp scan unless the scan goes over sock_diag.
func keepPrograms(hooks []hook, iterScan bool) map[string]bool {
	keep := map[string]bool{scanProg: iterScan}
	for _, h := range hooks {
		keep[h.prog] = true
	}
	return keep
}
