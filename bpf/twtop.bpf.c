// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * twtop kernel programs: TCP state transitions and the life of TIME_WAIT
 * sockets, streamed to user space through a ring buffer per CPU (or one
 * shared ring buffer).
 *
 * Three attach tiers share this object; user space deletes the programs of
 * the tiers it does not use before loading (see tracer/tier.go):
 *   common      inet_sock_set_state (with connect()'s EADDRNOTAVAIL),
 *               bind() errors, the iter/tcp scan
 *   fentry      fentry/fexit on the timewait functions (exact)
 *   kprobe      kprobe/kretprobe twins of the fentry programs (exact)
 *   tracepoint  the timer tracepoints on the timewait timer and
 *               tcp_send_reset; ends' causes are inferred
 *
 * Everything that differs between kernels goes through CO-RE: field
 * offsets, enum values, the death row counter's name and whether the
 * per-netns death row is a pointer.
 *
 * Older kernels get the same records by other means, chosen in user space
 * before load: a perf event array where the BPF ring buffer is missing
 * (cfg.perf_buffer; below 5.8), classic tracepoints (the tp_* programs)
 * where tp_btf cannot attach (no kernel BTF), fexit programs that take the
 * return value as an argument (bpf_get_func_ret is 5.17+), and a scan over
 * sock_diag from user space where iter/tcp is missing (below 5.9).
 */
#include "../vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "twtop.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define EADDRINUSE 98
#define EADDRNOTAVAIL 99

/* tracepoint tier: how long after its SYN_SENT a connect() may still take
 * over a timewait tuple (the pick runs microseconds later; the bound only
 * retires a slot whose socket left SYN_SENT on another CPU) */
#define CONNECT_WINDOW_NS (100 * 1000 * 1000ULL)

/* Set by user space before load. */
const volatile struct config cfg = {};

/* Kernels before 5.5 have neither bpf_probe_read_kernel nor
 * bpf_probe_read_user (nor bpf_jiffies64): with cfg.old_helpers every read
 * goes through bpf_probe_read, which reads either on x86. The branch not
 * taken is removed by the verifier. The name is redirected below, so the
 * CO-RE read macros use this too. */
static __always_inline long probe_read_kernel(void *dst, __u32 size, const void *src)
{
	if (cfg.old_helpers)
		return bpf_probe_read(dst, size, src);
	return bpf_probe_read_kernel(dst, size, src);
}

static __always_inline long probe_read_user(void *dst, __u32 size, const void *src)
{
	if (cfg.old_helpers)
		return bpf_probe_read(dst, size, src);
	return bpf_probe_read_user(dst, size, src);
}

#define bpf_probe_read_kernel probe_read_kernel
#define bpf_probe_read_user probe_read_user

/* jiffies_64: with cfg.old_helpers, read at the address user space found
 * in /proc/kallsyms */
static __always_inline __u64 jiffies_now(void)
{
	__u64 j = 0;

	if (cfg.old_helpers) {
		bpf_probe_read(&j, sizeof(j), (const void *)cfg.jiffies_addr);
		return j;
	}
	return bpf_jiffies64();
}

/* Types for bpf2go -type. */
const struct event *unused_event __attribute__((unused));
const struct config *unused_config __attribute__((unused));

/* The shared ring buffer (without cfg.per_cpu_rings). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* resized by user space */
} events SEC(".maps");

/* With cfg.per_cpu_rings: a ring buffer per CPU, indexed by CPU number.
 * A CPU writing to its own ring takes no lock another CPU holds and moves
 * no cache line between CPUs. User space sizes the array to the possible
 * CPUs and puts the rings in before attaching. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1); /* resized by user space */
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_RINGBUF);
		__uint(max_entries, 1 << 20); /* resized by user space */
	});
} cpu_rings SEC(".maps");

/* Kernels without the ring buffer: the same records, per CPU
 * (cfg.perf_buffer). */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

/* Records that did not fit in the ring buffer, per CPU and per kind. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EV_KIND_MAX);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* Per-CPU sequence number: a gap in a CPU's sequence is a lost record. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} seqs SEC(".maps");

struct owner {
	__u64 cgroup;
	__u32 pid;
	__u32 tid;
	char comm[TWTOP_COMM_LEN];
};

/* The owner a CPU last wrote with EVF_OWNER_NEW (see emit()). */
struct owner_cache {
	struct owner o; /* same layout as struct event from cgroup on */
	__u32 valid;    /* o was written and user space has it */
	__u32 nest;     /* emit() calls under way on this CPU */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct owner_cache);
} owner_caches SEC(".maps");

/* With cfg.cgroup: the cgroup whose subtree the owners must be in. */
struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} cgroup_filter SEC(".maps");

/* The process that owns a socket, taken where a transition runs in its
 * context (connect, listen, close) and carried to later transitions; with
 * an owner filter (pid, cgroup), only the sockets of wanted owners. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct owner);
} owners SEC(".maps");

struct tuple {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 netns;
	__u16 sport;
	__u16 dport;
	__u8 family;
	__u8 pad[7];
};

/* With an owner filter (pid, cgroup): the tuples of the sockets wanted
 * owners closed, so that their timewait sockets (which have no owner)
 * pass the filter too. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tuple);
	__type(value, __u8);
} pid_tuples SEC(".maps");

/* bind() in progress: arguments kept from syscall entry, with the address
 * read from user memory there (process context). */
struct sys_args {
	__u8 addr[16];
	__u32 fd;
	__u16 port;   /* host byte order */
	__u16 family; /* 0 when the address was not AF_INET/AF_INET6 */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct sys_args);
} in_bind SEC(".maps");

/* tracepoint tier: the connect() this CPU is running, from its socket's
 * CLOSE -> SYN_SENT to its leaving SYN_SENT. tcp_v4_connect and
 * tcp_v6_connect set SYN_SENT before they pick the tuple, so a timewait
 * socket that the pick takes over is cancelled in between, on this CPU, by
 * this task. A per-CPU slot instead of a map keyed by task: no hash update
 * on every connect(). */
struct connecting {
	__u64 id; /* pid_tgid of the caller; 0: none */
	__u64 sk;
	__u64 ts_ns;
	__u8 daddr[16];
	__u32 netns;
	__u16 dport;
	__u8 family;
	__u8 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct connecting);
} connecting SEC(".maps");

/* Timewait sockets whose end was reported (timer expiry or early kill): an
 * early kill that raced the timer and lost is not reported again, and the
 * destructor's safety net stays quiet. Cleared when the address is reused. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u8);
} tw_done SEC(".maps");

/* Full sockets that just received an RST: tcp_reset() traces
 * tcp_receive_reset, then tcp_done() moves the socket to CLOSE. The value
 * is the socket's ports (sport << 16 | dport): a mark left behind (its
 * CLOSE missed) does not flag the next socket at that address. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u32);
} rst_rx SEC(".maps");

/* How many marks rst_rx holds, about: the state change program looks in
 * rst_rx on a CLOSE only when some are (resets are rare, closes are not).
 * A mark the LRU evicted keeps it above zero, which only costs lookups. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} rst_marks SEC(".maps");

/* Why a timewait socket is about to be killed, set where the kernel shows
 * it (tcp_twsk_unique, tcp_timewait_state_process). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u8);
} tw_cause SEC(".maps");

/* A kill in progress: the record is built at entry, while the timewait
 * socket is certainly alive, and sent at exit if the timer did not win. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct event);
} kill_stash SEC(".maps");

/* Tasks inside inet_twsk_purge (network namespace teardown). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u8);
} in_purge SEC(".maps");

/* inet_twsk_alloc -> tcp_time_wait hand-over, keyed by the full socket. */
struct tw_birth {
	__u64 tw;
	struct owner owner;
	__u8 has_owner;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct tw_birth);
} births SEC(".maps");

/* kprobe tier: entry arguments kept for the return probe, per task. */
struct kargs {
	__u64 a0;
	__u64 a1;
	__u64 a2;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct kargs);
} kprobe_args SEC(".maps");

/* tracepoint tier: the last timewait timer armed on this CPU, to tell a
 * close that created a timewait socket from one that overflowed. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tuple);
} last_armed SEC(".maps");

/* tracepoint tier: the last timewait socket this CPU sent an RST for. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} last_rst_tw SEC(".maps");

/* Kernel layouts that changed over time. */
struct inet_timewait_death_row___old {
	atomic_t tw_count;
};

struct netns_ipv4___drptr {
	struct inet_timewait_death_row *tcp_death_row;
};

struct net___drptr {
	struct netns_ipv4___drptr ipv4;
};

/* the namespace reference count: net.count until 5.11, ns.count until
 * 6.17, ns.__ns_ref after */
struct ns_common___count {
	refcount_t count;
};

struct net___count {
	refcount_t count;
};

/* tcp_send_reset's event before 6.10 (class tcp_event_sk_skb) */
struct trace_event_raw_tcp_event_sk_skb___old {
	struct trace_entry ent;
	const void *skbaddr;
	const void *skaddr;
} __attribute__((preserve_access_index));

static const __u32 zero = 0;

/* ---- building records ---------------------------------------------------- */

/* An AF_INET record as written: the destination address moves next to the
 * source (saddr[4..7]), so that a record without an owner ends after
 * EVENT_SIZE_INET bytes. unpack_inet undoes it for a record built further. */
static __always_inline void pack_inet(struct event *e)
{
	if (e->family != AF_INET)
		return;
	((__u32 *)e->saddr)[1] = *(__u32 *)e->daddr;
	*(__u32 *)e->daddr = 0;
}

static __always_inline void unpack_inet(struct event *e)
{
	if (e->family != AF_INET)
		return;
	*(__u32 *)e->daddr = ((__u32 *)e->saddr)[1];
	((__u32 *)e->saddr)[1] = 0;
}

/* The owner travels once per CPU: a record with an owner (EVF_OWNER) whose
 * owner is the one this CPU last wrote leaves it out (EVF_OWNER_SAME, and
 * the size of a record without an owner); one with another owner writes it
 * and makes it the CPU's (EVF_OWNER_NEW). User space reads a CPU's records
 * in the order they were written and puts the owner back. An owner that
 * could not be written is forgotten, so the next record writes it again. A
 * program that runs while another is inside emit() on the same CPU (an
 * interrupt) writes its owner whole and leaves the CPU's alone: the two
 * records' order in the buffer is not the order of the cache's updates.
 * owner_cache_enter returns the cache to update after the write, if any. */
static __always_inline struct owner_cache *owner_cache_enter(struct event *e)
{
	struct owner_cache *oc;
	const __u64 *a, *b;

	if (!(e->flags & EVF_OWNER))
		return NULL;
	oc = bpf_map_lookup_elem(&owner_caches, &zero);
	if (!oc)
		return NULL;
	if (oc->nest++)
		return oc;
	a = (const void *)&oc->o;
	b = (const void *)&e->cgroup;
	if (oc->valid && a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3])
		e->flags = (e->flags & ~EVF_OWNER) | EVF_OWNER_SAME;
	else
		e->flags |= EVF_OWNER_NEW;
	return oc;
}

static __always_inline void owner_cache_leave(struct owner_cache *oc, const struct event *e, long err)
{
	if (!oc)
		return;
	if (e->flags & EVF_OWNER_NEW) {
		oc->valid = !err;
		__builtin_memcpy(&oc->o, &e->cgroup, sizeof(oc->o));
	}
	oc->nest--;
}

/* Stamp a fully built record (time, CPU, the CPU's sequence number) and
 * copy it into the ring buffer: one helper call, which reserves, copies
 * and commits the part of the record that holds something: EVENT_SIZE_*
 * bytes, the whole record where owner_cache_enter leaves the owner in.
 * With cfg.per_cpu_rings the ring is this CPU's own; a CPU without one, or
 * a full ring, counts the record as lost, by kind.
 *
 * Waking the reader for every record costs the traced host an interrupt
 * and a context switch per event, and asking the ring how much is unread
 * costs two cache lines the reader writes. So records go in silently, and
 * every (cfg.wakeup_mask + 1)th record of a CPU wakes the reader, which
 * also polls with a short timeout for the rest. wakeup_mask 0: the
 * kernel's default, a wakeup whenever the reader has caught up. With
 * cfg.perf_buffer the record goes to this CPU's perf buffer instead; the
 * branch not taken is removed by the verifier, so a kernel without one of
 * the two helpers loads the program. */
static __always_inline void emit(void *ctx, struct event *e)
{
	__u32 *seq = bpf_map_lookup_elem(&seqs, &zero);
	__u32 cpu = bpf_get_smp_processor_id();
	__u32 s = 0, size = sizeof(*e);
	__u8 flags0 = e->flags;
	__u64 flags = 0;
	long err;

	if (seq) {
		s = *seq;
		*seq = s + 1;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->cpu = cpu;
	e->seq = s;
	pack_inet(e);
	struct owner_cache *oc = owner_cache_enter(e);
	if (!(e->flags & EVF_OWNER))
		size = e->family == AF_INET6 ? EVENT_SIZE_INET6 : EVENT_SIZE_INET;
	if (cfg.perf_buffer) {
		err = bpf_perf_event_output(ctx, &perf_events, BPF_F_CURRENT_CPU, e, size);
	} else {
		if (cfg.wakeup_mask)
			flags = (s & cfg.wakeup_mask) ? BPF_RB_NO_WAKEUP : BPF_RB_FORCE_WAKEUP;
		if (cfg.per_cpu_rings) {
			void *ring = bpf_map_lookup_elem(&cpu_rings, &cpu);

			err = ring ? bpf_ringbuf_output(ring, e, size, flags) : -1;
		} else {
			err = bpf_ringbuf_output(&events, e, size, flags);
		}
	}
	owner_cache_leave(oc, e, err);
	unpack_inet(e);
	e->flags = flags0;
	if (err) {
		__u32 k = e->kind;
		__u64 *n = bpf_map_lookup_elem(&lost, &k);
		if (n)
			*n += 1;
	}
}

static __always_inline void read_tuple(const struct sock_common *skc, struct event *e)
{
	e->family = BPF_CORE_READ(skc, skc_family);
	e->sport = BPF_CORE_READ(skc, skc_num);
	e->dport = bpf_ntohs(BPF_CORE_READ(skc, skc_dport));
	e->netns = BPF_CORE_READ(skc, skc_net.net, ns.inum);
	if (e->family == AF_INET) {
		bpf_core_read(e->saddr, 4, &skc->skc_rcv_saddr);
		bpf_core_read(e->daddr, 4, &skc->skc_daddr);
	} else {
		bpf_core_read(e->saddr, 16, &skc->skc_v6_rcv_saddr);
		bpf_core_read(e->daddr, 16, &skc->skc_v6_daddr);
	}
}

/* A full socket's tuple. Its local port comes from inet_sport, which,
 * unlike skc_num, survives unhashing in the transition to CLOSE. */
static __always_inline void read_sock_tuple(const struct sock *sk, struct event *e)
{
	read_tuple(&sk->__sk_common, e);
	e->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
}

static __always_inline void tuple_of(const struct event *e, struct tuple *t)
{
	__builtin_memset(t, 0, sizeof(*t));
	__builtin_memcpy(t->saddr, e->saddr, 16);
	__builtin_memcpy(t->daddr, e->daddr, 16);
	t->netns = e->netns;
	t->sport = e->sport;
	t->dport = e->dport;
	t->family = e->family;
}

static __always_inline bool tuple_eq(const struct tuple *a, const struct tuple *b)
{
	const __u64 *x = (const void *)a, *y = (const void *)b;

#pragma unroll
	for (int i = 0; i < sizeof(*a) / 8; i++) /* 48 bytes, no tail */
		if (x[i] != y[i])
			return false;
	return true;
}

static __always_inline bool addr_eq(const __u8 *a, const __u8 *b)
{
	const __u64 *x = (const void *)a, *y = (const void *)b;

	return x[0] == y[0] && x[1] == y[1];
}

/* Filters that depend only on the tuple. */
static __always_inline bool tuple_wanted(const struct event *e)
{
	if (cfg.family && e->family != cfg.family)
		return false;
	if (cfg.netns && e->netns != cfg.netns)
		return false;
	if (cfg.port && e->sport != cfg.port && e->dport != cfg.port)
		return false;
	return true;
}

/* Whether a filter on the socket's owner is set (--pid, a cgroup). */
static __always_inline bool owner_filter(void)
{
	return cfg.pid || cfg.cgroup;
}

/* Whether the current task, of tgid pid, passes the owner filters: that
 * process, and a cgroup in the subtree of the one in cgroup_filter (a pod,
 * a container, a service). */
static __always_inline bool current_wanted(__u32 pid)
{
	if (cfg.pid && pid != cfg.pid)
		return false;
	if (cfg.cgroup && bpf_current_task_under_cgroup(&cgroup_filter, 0) != 1)
		return false;
	return true;
}

/* Filters for timewait records, which have no owner of their own: with an
 * owner filter, the tuples of the sockets a wanted owner closed. */
static __always_inline bool tw_wanted(const struct event *e)
{
	if (!tuple_wanted(e))
		return false;
	if (owner_filter()) {
		struct tuple t;
		tuple_of(e, &t);
		if (!bpf_map_lookup_elem(&pid_tuples, &t))
			return false;
	}
	return true;
}

static __always_inline void current_owner(struct owner *o)
{
	__u64 id = bpf_get_current_pid_tgid();

	o->pid = id >> 32;
	o->tid = (__u32)id;
	o->cgroup = bpf_get_current_cgroup_id();
	bpf_get_current_comm(o->comm, sizeof(o->comm));
}

static __always_inline void set_owner(struct event *e, const struct owner *o)
{
	e->pid = o->pid;
	e->tid = o->tid;
	e->cgroup = o->cgroup;
	__builtin_memcpy(e->comm, o->comm, sizeof(e->comm));
	e->flags |= EVF_OWNER;
}

static __always_inline __u32 timer_left(const struct inet_timewait_sock *tw)
{
	__u64 expires = BPF_CORE_READ(tw, tw_timer.expires);
	__u64 now = jiffies_now();

	/* jiffies wrap at 32 bits on 32-bit kernels only; compare as signed */
	__s64 left = (__s64)(expires - now);
	return left > 0 ? (__u32)left : 0;
}

static __always_inline struct inet_timewait_sock *tw_of_timer(const struct timer_list *t)
{
	return (void *)t - bpf_core_field_offset(struct inet_timewait_sock, tw_timer);
}

/* Build a timewait record (tuple, substate, timer) into e. */
static __always_inline void tw_record(struct event *e, __u16 kind, const struct inet_timewait_sock *tw)
{
	e->kind = kind;
	e->ptr = (__u64)tw;
	read_tuple(&tw->__tw_common, e);
	e->newstate = BPF_CORE_READ(tw, tw_substate);
	e->aux = timer_left(tw);
}

/* Build and send a timewait record if it passes the filters. */
static __always_inline void tw_emit(void *ctx, __u16 kind, const struct inet_timewait_sock *tw)
{
	struct event e = {};

	tw_record(&e, kind, tw);
	if (!tw_wanted(&e))
		return;
	emit(ctx, &e);
}

/* The network namespace's timewait death row: count and limit. */
static __always_inline void death_row_of(const struct inet_timewait_death_row *dr, __u32 *count, __u32 *limit)
{
	if (bpf_core_field_exists(dr->tw_refcount))
		*count = BPF_CORE_READ(dr, tw_refcount.refs.counter) - 1; /* count + 1 since 5.19 */
	else
		*count = BPF_CORE_READ((struct inet_timewait_death_row___old *)dr, tw_count.counter);
	*limit = BPF_CORE_READ(dr, sysctl_max_tw_buckets);
}

static __always_inline const struct inet_timewait_death_row *net_death_row(const struct net *net)
{
	struct net *n = (struct net *)net;

	if (bpf_core_field_size(n->ipv4.tcp_death_row) == sizeof(void *))
		return BPF_CORE_READ((struct net___drptr *)n, ipv4.tcp_death_row);
	return (void *)n + bpf_core_field_offset(n->ipv4.tcp_death_row);
}

/* A network namespace being torn down has no references left; its timewait
 * sockets are then being purged. */
static __always_inline bool net_dying(const struct inet_timewait_sock *tw)
{
	struct net *net = BPF_CORE_READ(tw, __tw_common.skc_net.net);
	struct ns_common *ns = __builtin_preserve_access_index(&net->ns);
	int refs;

	if (bpf_core_field_exists(ns->__ns_ref))
		refs = BPF_CORE_READ(ns, __ns_ref.refs.counter);
	else if (bpf_core_field_exists(((struct ns_common___count *)ns)->count))
		refs = BPF_CORE_READ((struct ns_common___count *)ns, count.refs.counter);
	else
		refs = BPF_CORE_READ((struct net___count *)net, count.refs.counter);
	return refs == 0;
}

/* ---- state transitions (every tier) -------------------------------------- */

/* read_sock_tuple for tp_btf programs, whose socket argument the verifier
 * knows by its BTF type: plain loads (relocated by CO-RE, checked by the
 * verifier) cost a fraction of a bpf_probe_read_kernel() call each, and
 * this runs on every TCP state change of the host. The local port is
 * skc_num while the socket is hashed; in the change to CLOSE it may be
 * unhashed already, and inet_sport (beyond struct sock, so read with a
 * helper) still holds it. */
static __always_inline void read_sock_tuple_btf(const struct sock *sk, struct event *e, bool closing)
{
	const struct sock_common *skc = &sk->__sk_common;

	e->family = skc->skc_family;
	e->dport = bpf_ntohs(skc->skc_dport);
	e->netns = skc->skc_net.net->ns.inum;
	if (e->family == AF_INET) {
		*(__u32 *)e->saddr = skc->skc_rcv_saddr;
		*(__u32 *)e->daddr = skc->skc_daddr;
	} else {
		for (int i = 0; i < 4; i++) {
			((__u32 *)e->saddr)[i] = skc->skc_v6_rcv_saddr.in6_u.u6_addr32[i];
			((__u32 *)e->daddr)[i] = skc->skc_v6_daddr.in6_u.u6_addr32[i];
		}
	}
	if (closing)
		e->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	else
		e->sport = skc->skc_num;
}

/* tracepoint tier: keep this CPU's connecting slot (see struct connecting)
 * for the timer_cancel that a takeover of a timewait tuple shows. */
static __always_inline void track_connect(const struct sock *sk, const struct event *e)
{
	bool start = e->oldstate == TCP_CLOSE && e->newstate == TCP_SYN_SENT;

	if (!start && e->oldstate != TCP_SYN_SENT)
		return;
	struct connecting *c = bpf_map_lookup_elem(&connecting, &zero);
	if (!c)
		return;
	if (start) {
		c->id = bpf_get_current_pid_tgid();
		c->sk = (__u64)sk;
		c->ts_ns = bpf_ktime_get_ns();
		__builtin_memcpy(c->daddr, e->daddr, 16);
		c->netns = e->netns;
		c->dport = e->dport;
		c->family = e->family;
	} else if (c->sk == (__u64)sk) {
		c->id = 0;
		c->sk = 0;
	}
}

/* A TCP socket's state change, from the BTF tracepoint (btf: its socket
 * argument can be read with plain loads) or the classic one. */
static __always_inline int state_change(void *ctx, const struct sock *sk, int oldstate, int newstate, bool btf)
{
	struct event e = {};
	e.kind = EV_STATE;
	e.ptr = (__u64)sk;
	e.oldstate = oldstate;
	e.newstate = newstate;
	if (btf)
		read_sock_tuple_btf(sk, &e, newstate == TCP_CLOSE);
	else
		read_sock_tuple(sk, &e);
	if (!tuple_wanted(&e))
		return 0;

	__u64 key = (__u64)sk;
	struct owner o = {};
	/* connect() found no free tuple: tcp_v4_connect and tcp_v6_connect
	 * set SYN_SENT, fail to pick a tuple and set CLOSE again, inside the
	 * call, before any segment left. A connect() that is refused, times
	 * out, is closed or disconnected sent its SYN first. (The socket is
	 * unhashed by then in both cases: the tracepoint runs after
	 * tcp_set_state unhashed it.) Picking a tuple fails with
	 * EADDRNOTAVAIL; the rarer failures before the SYN (no memory for a
	 * port bucket or the SYN, a route change) look the same. */
	bool no_tuple = oldstate == TCP_SYN_SENT && newstate == TCP_CLOSE &&
			BPF_CORE_READ((struct tcp_sock *)sk, segs_out) == 0;
	bool in_ctx = (oldstate == TCP_CLOSE && (newstate == TCP_SYN_SENT || newstate == TCP_LISTEN)) ||
		      (oldstate == TCP_ESTABLISHED && newstate == TCP_FIN_WAIT1) ||
		      (oldstate == TCP_CLOSE_WAIT && newstate == TCP_LAST_ACK) || no_tuple;
	/* The owner goes on the transitions made in its context. User space
	 * follows sockets by address and carries it to the others; only the
	 * owner filters need it here, on every transition: the owners map
	 * holds the sockets of wanted owners. */
	bool wanted = true;
	if (in_ctx) {
		current_owner(&o);
		set_owner(&e, &o);
		if (owner_filter()) {
			wanted = current_wanted(o.pid);
			if (wanted)
				bpf_map_update_elem(&owners, &key, &o, BPF_ANY);
			else
				bpf_map_delete_elem(&owners, &key);
		}
	} else if (owner_filter()) {
		struct owner *known = bpf_map_lookup_elem(&owners, &key);
		wanted = known != NULL;
		if (known)
			set_owner(&e, known);
	}
	if (newstate == TCP_CLOSE) {
		if (owner_filter())
			bpf_map_delete_elem(&owners, &key);
		__u64 *marks = bpf_map_lookup_elem(&rst_marks, &zero);
		__u32 *ports = marks && *marks ? bpf_map_lookup_elem(&rst_rx, &key) : NULL;
		if (ports) {
			if (*ports == ((__u32)e.sport << 16 | e.dport))
				e.flags |= EVF_RST_RX;
			if (bpf_map_delete_elem(&rst_rx, &key) == 0)
				__sync_fetch_and_add(marks, -1);
		}
	}

	if (owner_filter()) {
		if (!wanted)
			return 0;
		if (newstate == TCP_FIN_WAIT1 || newstate == TCP_CLOSING || newstate == TCP_LAST_ACK) {
			struct tuple t;
			__u8 one = 1;
			tuple_of(&e, &t);
			bpf_map_update_elem(&pid_tuples, &t, &one, BPF_ANY);
		}
	}

	/* tracepoint tier: a close from FIN_WAIT2 or CLOSING that armed no
	 * timewait timer just before, on this CPU, while the death row is
	 * full, is a bucket overflow. */
	if (cfg.tp_tier && newstate == TCP_CLOSE && (oldstate == TCP_FIN_WAIT2 || oldstate == TCP_CLOSING)) {
		struct tuple t, *armed = bpf_map_lookup_elem(&last_armed, &zero);
		tuple_of(&e, &t);
		if (armed && tuple_eq(armed, &t)) {
			__builtin_memset(armed, 0, sizeof(*armed));
		} else {
			__u32 count = 0, limit = 0;
			death_row_of(net_death_row(BPF_CORE_READ(sk, __sk_common.skc_net.net)), &count, &limit);
			if (count >= limit) {
				struct event o2 = e;
				o2.kind = EV_TW_OVERFLOW;
				o2.aux = count;
				o2.aux2 = limit;
				o2.flags |= EVF_INFERRED;
				emit(ctx, &o2);
			}
		}
	}
	if (cfg.tp_tier)
		track_connect(sk, &e);
	emit(ctx, &e);
	if (no_tuple) {
		e.kind = EV_CONNECT_ERR;
		e.aux = EADDRNOTAVAIL;
		e.oldstate = 0;
		e.newstate = 0;
		e.flags &= EVF_OWNER;
		emit(ctx, &e);
	}
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_state, const struct sock *sk, const int oldstate, const int newstate)
{
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	return state_change(ctx, sk, oldstate, newstate, true);
}

/* Kernels without BTF for tp_btf: the classic tracepoint. */
SEC("tracepoint/sock/inet_sock_set_state")
int tp_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	return state_change(ctx, ctx->skaddr, ctx->oldstate, ctx->newstate, false);
}

/* ---- bind() errors (every tier) ------------------------------------------ */

SEC("tracepoint/syscalls/sys_enter_bind")
int on_enter_bind(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	void *uaddr = (void *)ctx->args[1];
	struct sys_args a = {.fd = (__u32)ctx->args[0]};
	__u16 port = 0;

	if (owner_filter() && !current_wanted(id >> 32))
		return 0;
	bpf_probe_read_user(&a.family, sizeof(a.family), uaddr);
	if (a.family == AF_INET) {
		bpf_probe_read_user(a.addr, 4, uaddr + 4);
	} else if (a.family == AF_INET6) {
		bpf_probe_read_user(a.addr, 16, uaddr + 8);
	} else {
		a.family = 0;
	}
	bpf_probe_read_user(&port, sizeof(port), uaddr + 2);
	a.port = bpf_ntohs(port);
	bpf_map_update_elem(&in_bind, &id, &a, BPF_ANY);
	return 0;
}

/* The socket behind a file descriptor of the current task. */
static __always_inline struct sock *fd_sock(__u32 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
	struct file *f = NULL;

	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return NULL;
	struct socket *sock = BPF_CORE_READ(f, private_data);
	return BPF_CORE_READ(sock, sk);
}

SEC("tracepoint/syscalls/sys_exit_bind")
int on_exit_bind(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sys_args *a = bpf_map_lookup_elem(&in_bind, &id);

	if (!a)
		return 0;
	struct sys_args args = *a;
	bpf_map_delete_elem(&in_bind, &id);
	if (ctx->ret != -EADDRINUSE)
		return 0;

	struct sock *sk = fd_sock(args.fd);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;

	struct event e = {};
	struct owner o = {};
	e.kind = EV_BIND_ERR;
	e.aux = EADDRINUSE;
	read_sock_tuple(sk, &e);
	/* the local address the caller asked for */
	if (args.family) {
		e.family = args.family;
		__builtin_memcpy(e.saddr, args.addr, 16);
		e.sport = args.port;
	}
	if (!tuple_wanted(&e))
		return 0;
	current_owner(&o);
	set_owner(&e, &o);
	e.ptr = (__u64)sk;
	emit(ctx, &e);
	return 0;
}

/* ---- the TIME_WAIT scan (every tier) -------------------------------------- */

SEC("iter/tcp")
int scan_tw(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct seq_file *seq = ctx->meta->seq;
	struct event e = {};

	e.ts_ns = bpf_ktime_get_ns();
	e.cpu = bpf_get_smp_processor_id();
	if (!skc) {
		e.kind = EV_SCAN_END;
		e.ptr = bpf_jiffies64();
		e.aux = ctx->meta->seq_num;
		bpf_seq_write(seq, &e, sizeof(e));
		return 0;
	}
	if (BPF_CORE_READ(skc, skc_state) != TCP_TIME_WAIT)
		return 0;
	/* The TCP iterator walks TCP's hash tables only, so a TIME_WAIT entry
	 * is a timewait socket. Not bpf_skc_to_tcp_timewait_sock(): it checks
	 * skc_prot == &tcp_prot, which the TIME_WAIT sockets of MPTCP subflows
	 * (the TCP side of Go's default listeners) fail. */
	const struct inet_timewait_sock *tw = (const void *)skc;
	tw_record(&e, EV_SCAN_TW, tw);
	if (!tw_wanted(&e)) /* with --pid: the process's closed sockets only */
		return 0;
	pack_inet(&e);
	bpf_seq_write(seq, &e, sizeof(e));
	return 0;
}

/* ---- shared bodies of the fentry and kprobe tiers ------------------------- */

static __always_inline void twsk_alloc_done(void *ctx, const struct sock *sk, const struct inet_timewait_death_row *dr,
					    const struct inet_timewait_sock *tw)
{
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return;
	__u64 key = (__u64)sk;
	if (!tw) {
		struct event e = {};
		e.kind = EV_TW_OVERFLOW;
		e.ptr = (__u64)sk;
		read_sock_tuple(sk, &e);
		e.oldstate = BPF_CORE_READ(sk, __sk_common.skc_state);
		struct owner *o = owner_filter() ? bpf_map_lookup_elem(&owners, &key) : NULL;
		if (o)
			set_owner(&e, o);
		if (!tw_wanted(&e))
			return;
		death_row_of(dr, &e.aux, &e.aux2);
		emit(ctx, &e);
		return;
	}
	struct tw_birth b = {.tw = (__u64)tw};
	struct owner *o = owner_filter() ? bpf_map_lookup_elem(&owners, &key) : NULL;
	if (o) {
		b.owner = *o;
		b.has_owner = 1;
	}
	bpf_map_update_elem(&births, &key, &b, BPF_ANY);
}

static __always_inline void time_wait_done(void *ctx, const struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct tw_birth *b = bpf_map_lookup_elem(&births, &key);
	if (!b)
		return; /* overflow, reported by twsk_alloc_done */
	struct tw_birth birth = *b;
	bpf_map_delete_elem(&births, &key);

	/* a new timewait socket at this address: forget the last one's fate,
	 * including a kill stashed by a deschedule_put whose exit was never
	 * traced (a missed kretprobe), which would otherwise silence this
	 * socket's end in the destructor */
	bpf_map_delete_elem(&tw_done, &birth.tw);
	bpf_map_delete_elem(&tw_cause, &birth.tw);
	bpf_map_delete_elem(&kill_stash, &birth.tw);

	struct event e = {};
	tw_record(&e, EV_TW_CREATE, (const struct inet_timewait_sock *)birth.tw);
	if (birth.has_owner)
		set_owner(&e, &birth.owner);
	if (!tw_wanted(&e))
		return;
	emit(ctx, &e);
}

static __always_inline void tw_timer_fired(void *ctx, const struct timer_list *t)
{
	const struct inet_timewait_sock *tw = tw_of_timer(t);
	__u64 key = (__u64)tw;
	__u8 one = 1;

	bpf_map_update_elem(&tw_done, &key, &one, BPF_ANY);
	tw_emit(ctx, EV_TW_EXPIRE, tw);
}

static __always_inline void deschedule_enter(const struct inet_timewait_sock *tw)
{
	struct event e = {};
	__u64 key = (__u64)tw;

	tw_record(&e, EV_TW_KILL, tw);
	if (!tw_wanted(&e))
		return;
	if (net_dying(tw))
		e.cause = CAUSE_PURGE;
	bpf_map_update_elem(&kill_stash, &key, &e, BPF_ANY);
}

static __always_inline void deschedule_exit(void *ctx, __u64 tw)
{
	struct event *stashed = bpf_map_lookup_elem(&kill_stash, &tw);
	if (!stashed)
		return;
	struct event e = *stashed;
	bpf_map_delete_elem(&kill_stash, &tw);

	if (bpf_map_lookup_elem(&tw_done, &tw))
		return; /* the timer fired first and already ended it */
	__u8 *cause = bpf_map_lookup_elem(&tw_cause, &tw);
	__u64 id = bpf_get_current_pid_tgid();
	if (cause) {
		e.cause = *cause;
		bpf_map_delete_elem(&tw_cause, &tw);
	} else if (bpf_map_lookup_elem(&in_purge, &id)) {
		e.cause = CAUSE_PURGE;
	}
	emit(ctx, &e);
	__u8 one = 1;
	bpf_map_update_elem(&tw_done, &tw, &one, BPF_ANY);
}

/* Every timewait socket passes through tcp_twsk_destructor when it is
 * freed. One whose end no hook reported ended on a path where the kernel
 * inlined inet_twsk_deschedule_put (seen on 6.1: the namespace purge). */
static __always_inline void tw_destroyed(void *ctx, const struct inet_timewait_sock *tw)
{
	__u64 key = (__u64)tw;

	if (bpf_map_lookup_elem(&tw_done, &key)) {
		bpf_map_delete_elem(&tw_done, &key);
		return;
	}
	if (bpf_map_lookup_elem(&kill_stash, &key))
		return; /* inside inet_twsk_deschedule_put: its exit reports it */
	struct event e = {};
	__u64 id = bpf_get_current_pid_tgid();
	tw_record(&e, EV_TW_KILL, tw);
	if (!tw_wanted(&e))
		return;
	__u8 *cause = bpf_map_lookup_elem(&tw_cause, &key);
	if (cause) {
		e.cause = *cause;
		bpf_map_delete_elem(&tw_cause, &key);
	} else if (bpf_map_lookup_elem(&in_purge, &id) || net_dying(tw)) {
		e.cause = CAUSE_PURGE;
	}
	emit(ctx, &e);
}

static __always_inline void set_cause(__u64 tw, __u8 cause)
{
	bpf_map_update_elem(&tw_cause, &tw, &cause, BPF_ANY);
}

static __always_inline void twsk_unique_done(void *ctx, const struct sock *sk, const struct sock *sktw, int ret)
{
	if (ret != 1 || !sktw)
		return;
	const struct inet_timewait_sock *tw = (const void *)sktw;
	struct event e = {};
	struct owner o = {};

	set_cause((__u64)tw, CAUSE_CONNECT_REUSE);
	tw_record(&e, EV_TW_REUSE, tw);
	if (!tuple_wanted(&e))
		return;
	current_owner(&o);
	if (owner_filter() && !current_wanted(o.pid))
		return;
	set_owner(&e, &o);
	e.flags |= EVF_IN_CONNECT;
	emit(ctx, &e);
}

/* th->rst, read from the wire header rather than the kernel's bitfield */
static __always_inline bool th_rst(const struct tcphdr *th)
{
	__u8 flags = 0;

	bpf_probe_read_kernel(&flags, 1, (void *)th + 13);
	return flags & 0x04;
}

static __always_inline void tw_process_enter(const struct inet_timewait_sock *tw, const struct tcphdr *th)
{
	if (th_rst(th))
		set_cause((__u64)tw, CAUSE_RST_RECEIVED);
}

static __always_inline void tw_process_done(void *ctx, const struct inet_timewait_sock *tw, bool rst, int status)
{
	__u32 outcome;

	if (status == bpf_core_enum_value(enum tcp_tw_status, TCP_TW_SYN)) {
		outcome = TWRX_SYN;
		set_cause((__u64)tw, CAUSE_SYN);
	} else if (status == bpf_core_enum_value(enum tcp_tw_status, TCP_TW_RST)) {
		outcome = TWRX_RST;
		set_cause((__u64)tw, CAUSE_RST_SENT);
	} else if (status == bpf_core_enum_value(enum tcp_tw_status, TCP_TW_ACK)) {
		outcome = TWRX_ACK;
	} else if (bpf_core_enum_value_exists(enum tcp_tw_status, TCP_TW_ACK_OOW) &&
		   status == bpf_core_enum_value(enum tcp_tw_status, TCP_TW_ACK_OOW)) {
		outcome = TWRX_ACK_OOW;
	} else if (rst) {
		outcome = TWRX_RST_RECEIVED;
	} else {
		return;
	}
	struct event e = {};
	tw_record(&e, EV_TW_RX, tw);
	e.aux = outcome;
	if (!tw_wanted(&e))
		return;
	emit(ctx, &e);
}

static __always_inline void purge_mark(bool on)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u8 one = 1;

	if (on)
		bpf_map_update_elem(&in_purge, &id, &one, BPF_ANY);
	else
		bpf_map_delete_elem(&in_purge, &id);
}

/* ---- fentry tier ---------------------------------------------------------- */

/* fexit programs take the return value as the argument after the
 * function's own (bpf_get_func_ret would need 5.17); where the number of
 * arguments changed between kernels, user space loads the variant that
 * matches the function's BTF prototype. */

SEC("fexit/inet_twsk_alloc")
int BPF_PROG(fx_twsk_alloc, const struct sock *sk, struct inet_timewait_death_row *dr, int state,
	     struct inet_timewait_sock *ret)
{
	twsk_alloc_done(ctx, sk, dr, ret);
	return 0;
}

SEC("fexit/tcp_time_wait")
int BPF_PROG(fx_time_wait, struct sock *sk)
{
	time_wait_done(ctx, sk);
	return 0;
}

SEC("fentry/tw_timer_handler")
int BPF_PROG(fe_tw_timer, struct timer_list *t)
{
	tw_timer_fired(ctx, t);
	return 0;
}

SEC("fentry/inet_twsk_deschedule_put")
int BPF_PROG(fe_deschedule, struct inet_timewait_sock *tw)
{
	deschedule_enter(tw);
	return 0;
}

SEC("fexit/inet_twsk_deschedule_put")
int BPF_PROG(fx_deschedule, struct inet_timewait_sock *tw)
{
	deschedule_exit(ctx, (__u64)tw);
	return 0;
}

SEC("fexit/tcp_twsk_unique")
int BPF_PROG(fx_twsk_unique, struct sock *sk, struct sock *sktw, void *twp, int ret)
{
	twsk_unique_done(ctx, sk, sktw, ret);
	return 0;
}

SEC("fentry/tcp_timewait_state_process")
int BPF_PROG(fe_tw_process, struct inet_timewait_sock *tw, struct sk_buff *skb, const struct tcphdr *th)
{
	tw_process_enter(tw, th);
	return 0;
}

/* (tw, skb, th) up to 6.9; u32 *tw_isn from 6.10; enum skb_drop_reason *
 * from about 6.14 */
SEC("fexit/tcp_timewait_state_process")
int BPF_PROG(fx_tw_process3, struct inet_timewait_sock *tw, struct sk_buff *skb, const struct tcphdr *th, int ret)
{
	tw_process_done(ctx, tw, th_rst(th), ret);
	return 0;
}

SEC("fexit/tcp_timewait_state_process")
int BPF_PROG(fx_tw_process4, struct inet_timewait_sock *tw, struct sk_buff *skb, const struct tcphdr *th,
	     void *tw_isn, int ret)
{
	tw_process_done(ctx, tw, th_rst(th), ret);
	return 0;
}

SEC("fexit/tcp_timewait_state_process")
int BPF_PROG(fx_tw_process5, struct inet_timewait_sock *tw, struct sk_buff *skb, const struct tcphdr *th,
	     void *tw_isn, void *drop_reason, int ret)
{
	tw_process_done(ctx, tw, th_rst(th), ret);
	return 0;
}

SEC("fentry/tcp_twsk_destructor")
int BPF_PROG(fe_tw_destructor, struct sock *sk)
{
	tw_destroyed(ctx, (const void *)sk);
	return 0;
}

SEC("fentry/inet_twsk_purge")
int BPF_PROG(fe_purge)
{
	purge_mark(true);
	return 0;
}

SEC("fexit/inet_twsk_purge")
int BPF_PROG(fx_purge)
{
	purge_mark(false);
	return 0;
}

/* ---- kprobe tier ------------------------------------------------------------ */

static __always_inline void kargs_put(__u64 a0, __u64 a1, __u64 a2)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct kargs a = {.a0 = a0, .a1 = a1, .a2 = a2};

	bpf_map_update_elem(&kprobe_args, &id, &a, BPF_ANY);
}

static __always_inline bool kargs_take(struct kargs *out)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct kargs *a = bpf_map_lookup_elem(&kprobe_args, &id);

	if (!a)
		return false;
	*out = *a;
	bpf_map_delete_elem(&kprobe_args, &id);
	return true;
}

SEC("kprobe/inet_twsk_alloc")
int BPF_KPROBE(kp_twsk_alloc, const struct sock *sk, struct inet_timewait_death_row *dr)
{
	kargs_put((__u64)sk, (__u64)dr, 0);
	return 0;
}

SEC("kretprobe/inet_twsk_alloc")
int BPF_KRETPROBE(kr_twsk_alloc, struct inet_timewait_sock *tw)
{
	struct kargs a;

	if (kargs_take(&a))
		twsk_alloc_done(ctx, (void *)a.a0, (void *)a.a1, tw);
	return 0;
}

SEC("kprobe/tcp_time_wait")
int BPF_KPROBE(kp_time_wait, struct sock *sk)
{
	/* tcp_time_wait calls inet_twsk_alloc, which uses the same slot: keep
	 * this one under the socket in births instead (see kr_time_wait) */
	__u64 id = bpf_get_current_pid_tgid() ^ 0x8000000000000000ULL;
	struct kargs a = {.a0 = (__u64)sk};

	bpf_map_update_elem(&kprobe_args, &id, &a, BPF_ANY);
	return 0;
}

SEC("kretprobe/tcp_time_wait")
int BPF_KRETPROBE(kr_time_wait)
{
	__u64 id = bpf_get_current_pid_tgid() ^ 0x8000000000000000ULL;
	struct kargs *a = bpf_map_lookup_elem(&kprobe_args, &id);

	if (!a)
		return 0;
	__u64 sk = a->a0;
	bpf_map_delete_elem(&kprobe_args, &id);
	time_wait_done(ctx, (void *)sk);
	return 0;
}

SEC("kprobe/tw_timer_handler")
int BPF_KPROBE(kp_tw_timer, struct timer_list *t)
{
	tw_timer_fired(ctx, t);
	return 0;
}

SEC("kprobe/inet_twsk_deschedule_put")
int BPF_KPROBE(kp_deschedule, struct inet_timewait_sock *tw)
{
	deschedule_enter(tw);
	kargs_put((__u64)tw, 0, 0);
	return 0;
}

SEC("kretprobe/inet_twsk_deschedule_put")
int BPF_KRETPROBE(kr_deschedule)
{
	struct kargs a;

	if (kargs_take(&a))
		deschedule_exit(ctx, a.a0);
	return 0;
}

SEC("kprobe/tcp_twsk_unique")
int BPF_KPROBE(kp_twsk_unique, struct sock *sk, struct sock *sktw)
{
	kargs_put((__u64)sk, (__u64)sktw, 0);
	return 0;
}

SEC("kretprobe/tcp_twsk_unique")
int BPF_KRETPROBE(kr_twsk_unique, int ret)
{
	struct kargs a;

	if (kargs_take(&a))
		twsk_unique_done(ctx, (void *)a.a0, (void *)a.a1, ret);
	return 0;
}

SEC("kprobe/tcp_timewait_state_process")
int BPF_KPROBE(kp_tw_process, struct inet_timewait_sock *tw, struct sk_buff *skb, const struct tcphdr *th)
{
	bool rst = th_rst(th);

	if (rst)
		set_cause((__u64)tw, CAUSE_RST_RECEIVED);
	kargs_put((__u64)tw, rst, 0);
	return 0;
}

SEC("kretprobe/tcp_timewait_state_process")
int BPF_KRETPROBE(kr_tw_process, int ret)
{
	struct kargs a;

	if (kargs_take(&a))
		tw_process_done(ctx, (void *)a.a0, a.a1, ret);
	return 0;
}

SEC("kprobe/tcp_twsk_destructor")
int BPF_KPROBE(kp_tw_destructor, struct sock *sk)
{
	tw_destroyed(ctx, (const void *)sk);
	return 0;
}

SEC("kprobe/inet_twsk_purge")
int BPF_KPROBE(kp_purge)
{
	purge_mark(true);
	return 0;
}

SEC("kretprobe/inet_twsk_purge")
int BPF_KRETPROBE(kr_purge)
{
	purge_mark(false);
	return 0;
}

/* ---- tracepoint tier -------------------------------------------------------- */

/* The timewait socket of a timer whose callback is fn, NULL for any other
 * timer: these hooks run for every timer of the host. */
static __always_inline const struct inet_timewait_sock *tw_of_fn(const void *t, __u64 fn)
{
	if (!cfg.tw_timer_fn || fn != cfg.tw_timer_fn)
		return NULL;
	return tw_of_timer(t);
}

/* tp_btf: a plain load of the BTF-typed argument, no helper call */
static __always_inline const struct inet_timewait_sock *tw_timer(const struct timer_list *t)
{
	return tw_of_fn(t, (__u64)t->function);
}

static __always_inline void timer_started(void *ctx, const struct inet_timewait_sock *tw)
{
	struct event e = {};
	tw_record(&e, EV_TW_ARM, tw);
	/* remember it for the close that follows on this CPU (overflow test) */
	struct tuple *armed = bpf_map_lookup_elem(&last_armed, &zero);
	if (armed)
		tuple_of(&e, armed);
	if (!tw_wanted(&e))
		return;
	emit(ctx, &e);
}

static __always_inline void timer_cancelled(void *ctx, const struct inet_timewait_sock *tw)
{
	__u64 *rst = bpf_map_lookup_elem(&last_rst_tw, &zero);
	struct connecting *conn = bpf_map_lookup_elem(&connecting, &zero);
	struct event e = {};

	tw_record(&e, EV_TW_CANCEL, tw);
	if (!tw_wanted(&e))
		return;
	e.flags = EVF_INFERRED;
	/* inside connect() to the timewait socket's peer, on the CPU and in
	 * the task that set SYN_SENT moments ago: the connect reuses its
	 * tuple. (On loopback a SYN is delivered inside the sender's
	 * connect() too, but it takes over a timewait socket whose *local*
	 * end is the destination.) */
	if (conn && conn->id && conn->id == bpf_get_current_pid_tgid() &&
	    bpf_ktime_get_ns() - conn->ts_ns < CONNECT_WINDOW_NS &&
	    conn->dport == e.dport && conn->family == e.family && conn->netns == e.netns &&
	    addr_eq(conn->daddr, e.daddr)) {
		struct owner o = {};
		current_owner(&o);
		set_owner(&e, &o);
		e.cause = CAUSE_CONNECT_REUSE;
		e.flags |= EVF_IN_CONNECT;
	} else if (rst && *rst == (__u64)tw) {
		e.cause = CAUSE_RST_SENT;
		*rst = 0;
	} else if (net_dying(tw)) {
		e.cause = CAUSE_PURGE;
	}
	emit(ctx, &e);
}

SEC("tp_btf/timer_start")
int BPF_PROG(on_timer_start, struct timer_list *t)
{
	const struct inet_timewait_sock *tw = tw_timer(t);
	if (tw)
		timer_started(ctx, tw);
	return 0;
}

SEC("tp_btf/timer_cancel")
int BPF_PROG(on_timer_cancel, struct timer_list *t)
{
	const struct inet_timewait_sock *tw = tw_timer(t);
	if (tw)
		timer_cancelled(ctx, tw);
	return 0;
}

SEC("tp_btf/timer_expire_entry")
int BPF_PROG(on_timer_expire, struct timer_list *t)
{
	const struct inet_timewait_sock *tw = tw_timer(t);
	if (tw)
		tw_emit(ctx, EV_TW_EXPIRE, tw);
	return 0;
}

/* An RST received by a full socket: marks its coming CLOSE, so a reset
 * received is told apart from one this host sent (SO_LINGER 0, tcp_abort,
 * a timeout). */
static __always_inline void reset_received(const struct sock *sk)
{
	struct event e = {};

	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return;
	/* a socket the filters drop has its CLOSE dropped too, which would
	 * never clear the mark */
	read_sock_tuple(sk, &e);
	if (!tuple_wanted(&e))
		return;
	__u64 key = (__u64)sk;
	__u32 ports = (__u32)e.sport << 16 | e.dport;
	if (bpf_map_update_elem(&rst_rx, &key, &ports, BPF_NOEXIST) == 0) {
		__u64 *marks = bpf_map_lookup_elem(&rst_marks, &zero);
		if (marks)
			__sync_fetch_and_add(marks, 1);
		return;
	}
	bpf_map_update_elem(&rst_rx, &key, &ports, BPF_ANY);
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(on_receive_reset, const struct sock *sk)
{
	reset_received(sk);
	return 0;
}

/* From 6.10 on, the RST a timewait socket answers with is traced with the
 * timewait socket; before, only full sockets show up here. */
static __always_inline void reset_sent(void *ctx, const struct sock *sk)
{
	if (!sk || BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_TIME_WAIT)
		return;
	const struct inet_timewait_sock *tw = (const void *)sk;
	__u64 *rst = bpf_map_lookup_elem(&last_rst_tw, &zero);
	if (rst)
		*rst = (__u64)tw;

	struct event e = {};
	tw_record(&e, EV_TW_RX, tw);
	e.aux = TWRX_RST;
	if (!tw_wanted(&e))
		return;
	emit(ctx, &e);
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(on_send_reset, const struct sock *sk)
{
	reset_sent(ctx, sk);
	return 0;
}

/* ---- classic tracepoints, for kernels where tp_btf cannot attach --------- */

SEC("tracepoint/timer/timer_start")
int tp_timer_start(struct trace_event_raw_timer_start *ctx)
{
	const struct inet_timewait_sock *tw = tw_of_fn(ctx->timer, (__u64)ctx->function);
	if (tw)
		timer_started(ctx, tw);
	return 0;
}

SEC("tracepoint/timer/timer_cancel")
int tp_timer_cancel(struct trace_event_raw_timer_class *ctx)
{
	const struct timer_list *t = ctx->timer;
	const struct inet_timewait_sock *tw = tw_of_fn(t, (__u64)BPF_CORE_READ(t, function));
	if (tw)
		timer_cancelled(ctx, tw);
	return 0;
}

SEC("tracepoint/timer/timer_expire_entry")
int tp_timer_expire(struct trace_event_raw_timer_expire_entry *ctx)
{
	const struct inet_timewait_sock *tw = tw_of_fn(ctx->timer, (__u64)ctx->function);
	if (tw)
		tw_emit(ctx, EV_TW_EXPIRE, tw);
	return 0;
}

SEC("tracepoint/tcp/tcp_receive_reset")
int tp_receive_reset(struct trace_event_raw_tcp_event_sk *ctx)
{
	reset_received(ctx->skaddr);
	return 0;
}

/* tcp_send_reset has its own event class from 6.10 (with the timewait
 * socket and a reason); before, it shared tcp_event_sk_skb */
SEC("tracepoint/tcp/tcp_send_reset")
int tp_send_reset(void *ctx)
{
	const struct sock *sk;

	/* read through a helper: the verifier refuses a context load whose
	 * offset clang computed in the two branches */
	if (bpf_core_type_exists(struct trace_event_raw_tcp_send_reset))
		sk = BPF_CORE_READ((struct trace_event_raw_tcp_send_reset *)ctx, skaddr);
	else
		sk = BPF_CORE_READ((struct trace_event_raw_tcp_event_sk_skb___old *)ctx, skaddr);
	reset_sent(ctx, sk);
	return 0;
}
