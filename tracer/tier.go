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
	{"on_state", hookTracing, "inet_sock_set_state", false},
	{"on_receive_reset", hookTracing, "tcp_receive_reset", true},
	{"on_enter_bind", hookTracepoint, "syscalls/sys_enter_bind", false},
	{"on_exit_bind", hookTracepoint, "syscalls/sys_exit_bind", false},
}

var tierHooks = map[Tier][]hook{
	Fentry: {
		{"fx_twsk_alloc", hookTracing, "inet_twsk_alloc", false},
		{"fx_time_wait", hookTracing, "tcp_time_wait", false},
		{"fe_tw_timer", hookTracing, "tw_timer_handler", false},
		{"fe_deschedule", hookTracing, "inet_twsk_deschedule_put", false},
		{"fx_deschedule", hookTracing, "inet_twsk_deschedule_put", false},
		{"fx_twsk_unique", hookTracing, "tcp_twsk_unique", false},
		{"fe_tw_process", hookTracing, "tcp_timewait_state_process", false},
		{"fx_tw_process", hookTracing, "tcp_timewait_state_process", false},
		{"fe_purge", hookTracing, "inet_twsk_purge", false},
		{"fx_purge", hookTracing, "inet_twsk_purge", false},
		{"fe_tw_destructor", hookTracing, "tcp_twsk_destructor", true},
	},
	Kprobe: {
		{"kp_twsk_alloc", hookKprobe, "inet_twsk_alloc", false},
		{"kr_twsk_alloc", hookKretprobe, "inet_twsk_alloc", false},
		{"kp_time_wait", hookKprobe, "tcp_time_wait", false},
		{"kr_time_wait", hookKretprobe, "tcp_time_wait", false},
		{"kp_tw_timer", hookKprobe, "tw_timer_handler", false},
		{"kp_deschedule", hookKprobe, "inet_twsk_deschedule_put", false},
		{"kr_deschedule", hookKretprobe, "inet_twsk_deschedule_put", false},
		{"kp_twsk_unique", hookKprobe, "tcp_twsk_unique", false},
		{"kr_twsk_unique", hookKretprobe, "tcp_twsk_unique", false},
		{"kp_tw_process", hookKprobe, "tcp_timewait_state_process", false},
		{"kr_tw_process", hookKretprobe, "tcp_timewait_state_process", false},
		{"kp_purge", hookKprobe, "inet_twsk_purge", false},
		{"kr_purge", hookKretprobe, "inet_twsk_purge", false},
		{"kp_tw_destructor", hookKprobe, "tcp_twsk_destructor", true},
	},
	Tracepoint: {
		{"on_timer_start", hookTracing, "timer_start", false},
		{"on_timer_cancel", hookTracing, "timer_cancel", false},
		{"on_timer_expire", hookTracing, "timer_expire_entry", false},
		{"on_send_reset", hookTracing, "tcp_send_reset", false},
	},
}

const scanProg = "scan_tw"

// hooksFor lists the hooks that a tier attaches, common ones first.
func hooksFor(t Tier) []hook {
	hs := append([]hook(nil), commonHooks...)
	return append(hs, tierHooks[t]...)
}

// TracepointTierHooks lists where the tracepoint tier attaches, common
// hooks included: BTF tracepoints by name, classic tracepoints as
// "group/name". The iter/tcp scan is not a hook.
func TracepointTierHooks() (btf, classic []string) {
	for _, h := range hooksFor(Tracepoint) {
		switch h.kind {
		case hookTracing:
			btf = append(btf, h.target)
		case hookTracepoint:
			classic = append(classic, h.target)
		}
	}
	return btf, classic
}

// keepPrograms is the set of program names a tier loads.
func keepPrograms(t Tier) map[string]bool {
	keep := map[string]bool{scanProg: true}
	for _, h := range hooksFor(t) {
		keep[h.prog] = true
	}
	return keep
}
