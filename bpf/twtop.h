/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one event layout shared by the kernel programs and user space.
 *
 * Every ring buffer record and every record written by the TIME_WAIT scan
 * iterator is one struct event, or the head of one (EVENT_SIZE_*). The Go
 * side decodes these bytes by hand (tracer/event) and a test checks that
 * the bpf2go-generated type has the same size and offsets. Recordings
 * store whole records in this layout (format version 2); the layout of
 * version 1 is translated when such a file is read.
 */
#ifndef TWTOP_H
#define TWTOP_H

#define TWTOP_COMM_LEN 16

/* enum event_kind: what a record describes. Values are stable; they are
 * stored in recordings. */
enum event_kind {
	EV_STATE = 1,        /* sock:inet_sock_set_state for a TCP socket */
	EV_TW_CREATE = 2,    /* timewait socket created (tcp_time_wait) */
	EV_TW_ARM = 3,       /* timewait timer armed (timer:timer_start); creation or re-arm */
	EV_TW_CANCEL = 4,    /* timewait timer cancelled (timer:timer_cancel); kill or re-arm */
	EV_TW_EXPIRE = 5,    /* timewait timer fired: the socket ends normally */
	EV_TW_KILL = 6,      /* timewait socket descheduled early (inet_twsk_deschedule_put) */
	EV_TW_REUSE = 7,     /* connect() took over a timewait tuple (tcp_twsk_unique == 1) */
	EV_TW_RX = 8,        /* a segment hit a timewait socket: outcome in aux */
	EV_TW_OVERFLOW = 9,  /* no timewait socket: tcp_max_tw_buckets reached */
	EV_CONNECT_ERR = 10, /* connect() failed with EADDRNOTAVAIL */
	EV_BIND_ERR = 11,    /* bind() failed with EADDRINUSE */
	EV_SCAN_TW = 12,     /* scan: one timewait socket that exists now */
	EV_SCAN_END = 13,    /* scan: end marker; ptr = jiffies, aux = sockets seen */
	/* 14 is derived in user space (a substate change) */
	EV_KIND_MAX = 15,
};

/* enum tw_cause: why a timewait socket ended early (EV_TW_KILL, EV_TW_CANCEL). */
enum tw_cause {
	CAUSE_UNKNOWN = 0,
	CAUSE_CONNECT_REUSE = 1, /* connect() reused the tuple */
	CAUSE_SYN = 2,           /* a new SYN took the tuple over */
	CAUSE_RST_RECEIVED = 3,  /* an RST arrived */
	CAUSE_RST_SENT = 4,      /* we answered a segment with an RST and dropped it */
	CAUSE_PURGE = 5,         /* the network namespace went away */
};

/* enum tw_rx: outcome of tcp_timewait_state_process (EV_TW_RX aux).
 * Mapped from the kernel's enum tcp_tw_status with CO-RE. */
enum tw_rx {
	TWRX_SUCCESS = 0,
	TWRX_RST = 1,
	TWRX_ACK = 2,
	TWRX_SYN = 3,
	TWRX_ACK_OOW = 4,
	TWRX_RST_RECEIVED = 5,
};

/* event flags */
#define EVF_OWNER 0x01    /* pid/comm/cgroup describe the socket's owner */
#define EVF_INFERRED 0x02 /* the figure is inferred, not seen exactly */
#define EVF_IN_CONNECT 0x04 /* happened inside the owner's connect() */
#define EVF_RST_RX 0x08     /* EV_STATE to CLOSE: the socket received an RST */
/* The owner travels once per CPU while it stays the same (emit()). On the
 * wire only, never in a record user space passes on: */
#define EVF_OWNER_NEW 0x10  /* with EVF_OWNER: this CPU's owner from here on */
#define EVF_OWNER_SAME 0x20 /* without EVF_OWNER: the owner is this CPU's
			     * last EVF_OWNER_NEW one, and not written */

struct event {
	__u64 ts_ns;  /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
	__u64 ptr;    /* struct sock * or struct inet_timewait_sock *; EV_SCAN_END: jiffies */
	__u32 netns;  /* network namespace inode */
	__u32 seq;    /* per-CPU sequence number of emitted records */
	__u32 aux;    /* kind specific: timer jiffies left, errno, count, status */
	__u32 aux2;   /* kind specific: limit */
	__u16 kind;   /* enum event_kind */
	__u16 cpu;
	__u16 sport;  /* host byte order */
	__u16 dport;  /* host byte order */
	__u8 family;  /* AF_INET or AF_INET6 */
	__u8 oldstate;
	__u8 newstate; /* EV_STATE: new state; timewait kinds: substate */
	__u8 flags;    /* EVF_* */
	__u8 cause;    /* enum tw_cause */
	__u8 pad[3];
	/* AF_INET6: the addresses. AF_INET in a written record: the source
	 * address in saddr[0..3], the destination in saddr[4..7] (see
	 * EVENT_SIZE_INET); the programs build it with daddr[0..3] and
	 * emit() packs it. */
	__u8 saddr[16];
	__u8 daddr[16];
	/* the owner (EVF_OWNER only) */
	__u64 cgroup; /* cgroup v2 id of the owner */
	__u32 pid;    /* tgid of the owner */
	__u32 tid;
	char comm[TWTOP_COMM_LEN];
};

/* How much of a struct event a record written to the ring buffer or the
 * perf buffer holds: the whole of it with an owner written (EVF_OWNER), up
 * to the addresses otherwise (EVF_OWNER_SAME included); user space reads
 * the rest as zeros. The scan iterator writes whole records. */
#define EVENT_SIZE_INET 56  /* AF_INET (and no address), no owner */
#define EVENT_SIZE_INET6 80 /* AF_INET6, no owner */

/* struct config: set from user space before load (const volatile). */
struct config {
	__u64 tw_timer_fn; /* address of tw_timer_handler, for the timer tracepoints */
	__u32 netns;       /* only this netns inode, 0 = all */
	__u32 pid;         /* only sockets owned by this tgid, 0 = all */
	__u16 port;        /* only this local or remote port, 0 = all */
	__u8 family;       /* only AF_INET or AF_INET6, 0 = both */
	__u8 tp_tier;      /* tracepoint tier: infer overflow from close transitions */
	__u32 wakeup_mask;  /* wake the reader on a CPU's records whose seq & mask is 0; 0 = kernel default */
	__u8 perf_buffer;   /* records go to the perf event array (no ring buffer before 5.8) */
	__u8 old_helpers;   /* bpf_probe_read for kernel and user memory (before 5.5) */
	__u8 pad[2];
	__u64 jiffies_addr; /* with old_helpers: the address of jiffies_64 (no bpf_jiffies64) */
	__u8 cgroup;        /* only sockets owned by a process in the subtree of the cgroup in cgroup_filter */
	__u8 per_cpu_rings; /* records go to this CPU's ring buffer in cpu_rings, not the shared one */
	__u8 pad2[6];
};

#endif /* TWTOP_H */
