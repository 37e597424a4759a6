package event

import "strconv"

// Kind says what a record describes (enum event_kind in bpf/twtop.h).
type Kind uint16

// Kinds written by the kernel programs.
const (
	KindState      Kind = 1  // a TCP state transition of a full socket
	KindTWCreate   Kind = 2  // a timewait socket was created
	KindTWArm      Kind = 3  // a timewait timer was armed (tracepoint tier, raw)
	KindTWCancel   Kind = 4  // a timewait timer was cancelled (tracepoint tier, raw)
	KindTWExpire   Kind = 5  // a timewait socket's timer fired: it ended normally
	KindTWKill     Kind = 6  // a timewait socket was removed before its timer fired
	KindTWReuse    Kind = 7  // connect() took over a timewait tuple (tcp_tw_reuse)
	KindTWRx       Kind = 8  // a segment hit a timewait socket
	KindTWOverflow Kind = 9  // no timewait socket: tcp_max_tw_buckets reached
	KindConnectErr Kind = 10 // connect() failed with EADDRNOTAVAIL
	KindBindErr    Kind = 11 // bind() failed with EADDRINUSE
	KindScanTW     Kind = 12 // a timewait socket seen by the periodic scan
	KindScanEnd    Kind = 13 // end of one scan
	// KindTWSubstate is derived by the Tracker: a timewait socket created in
	// the FIN_WAIT2 substate (an orphaned half-closed socket) received the
	// peer's FIN and moved to TIME_WAIT, restarting its timer.
	KindTWSubstate Kind = 14
	kindMax        Kind = 15
)

var kindNames = [...]string{
	KindState:      "state",
	KindTWCreate:   "tw_create",
	KindTWArm:      "tw_arm",
	KindTWCancel:   "tw_cancel",
	KindTWExpire:   "tw_expire",
	KindTWKill:     "tw_kill",
	KindTWReuse:    "tw_reuse",
	KindTWRx:       "tw_rx",
	KindTWOverflow: "tw_overflow",
	KindConnectErr: "connect_error",
	KindBindErr:    "bind_error",
	KindScanTW:     "scan_tw",
	KindScanEnd:    "scan_end",
	KindTWSubstate: "tw_substate",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "kind" + strconv.Itoa(int(k))
}

// Kinds lists every kind, for per-kind statistics.
func Kinds() []Kind {
	ks := make([]Kind, 0, kindMax-1)
	for k := KindState; k < kindMax; k++ {
		ks = append(ks, k)
	}
	return ks
}

// NumKinds bounds Kind values, for arrays indexed by kind.
const NumKinds = int(kindMax)

// State is a TCP state as the kernel numbers it (include/net/tcp_states.h,
// the same numbers inet_diag and /proc/net/tcp expose).
type State uint8

// TCP states.
const (
	Established State = 1
	SynSent     State = 2
	SynRecv     State = 3
	FinWait1    State = 4
	FinWait2    State = 5
	TimeWait    State = 6
	Close       State = 7
	CloseWait   State = 8
	LastAck     State = 9
	Listen      State = 10
	Closing     State = 11
	NewSynRecv  State = 12
	// BoundInactive: a bound socket that is neither listening nor
	// connected (sock_diag only, 6.8+).
	BoundInactive State = 13
)

var stateNames = [...]string{
	Established:   "ESTABLISHED",
	SynSent:       "SYN_SENT",
	SynRecv:       "SYN_RECV",
	FinWait1:      "FIN_WAIT1",
	FinWait2:      "FIN_WAIT2",
	TimeWait:      "TIME_WAIT",
	Close:         "CLOSE",
	CloseWait:     "CLOSE_WAIT",
	LastAck:       "LAST_ACK",
	Listen:        "LISTEN",
	Closing:       "CLOSING",
	NewSynRecv:    "NEW_SYN_RECV",
	BoundInactive: "BOUND_INACTIVE",
}

func (s State) String() string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return "STATE" + strconv.Itoa(int(s))
}

// Cause says why a timewait socket ended (enum tw_cause in bpf/twtop.h).
type Cause uint8

// Causes. The kernel programs report the first six; Expired and Vanished are
// set by the Tracker.
const (
	CauseUnknown      Cause = 0
	CauseConnectReuse Cause = 1 // connect() reused the tuple (tcp_tw_reuse)
	CauseSYN          Cause = 2 // a new SYN took the tuple over
	CauseRSTReceived  Cause = 3 // an RST arrived
	CauseRSTSent      Cause = 4 // a segment was answered with an RST
	CausePurge        Cause = 5 // the network namespace went away
	CauseExpired      Cause = 6 // the timer fired
	CauseVanished     Cause = 7 // the scan no longer found it, end not seen
)

var causeNames = [...]string{
	CauseUnknown:      "unknown",
	CauseConnectReuse: "connect_reuse",
	CauseSYN:          "syn",
	CauseRSTReceived:  "rst_received",
	CauseRSTSent:      "rst_sent",
	CausePurge:        "purge",
	CauseExpired:      "expired",
	CauseVanished:     "vanished",
}

func (c Cause) String() string {
	if int(c) < len(causeNames) {
		return causeNames[c]
	}
	return "cause" + strconv.Itoa(int(c))
}

// Rx is the outcome of a segment that reached a timewait socket (enum
// tw_rx in bpf/twtop.h).
type Rx uint32

// Outcomes.
const (
	RxSuccess     Rx = 0
	RxRST         Rx = 1 // answered with an RST
	RxACK         Rx = 2 // answered with an ACK
	RxSYN         Rx = 3 // a SYN may take the tuple over
	RxACKOOW      Rx = 4 // out-of-window ACK
	RxRSTReceived Rx = 5 // an RST arrived
)

var rxNames = [...]string{
	RxSuccess:     "success",
	RxRST:         "rst",
	RxACK:         "ack",
	RxSYN:         "syn",
	RxACKOOW:      "ack_oow",
	RxRSTReceived: "rst_received",
}

func (r Rx) String() string {
	if int(r) < len(rxNames) {
		return rxNames[r]
	}
	return "rx" + strconv.Itoa(int(r))
}

// FamilyName is "ipv4", "ipv6" or "" for other values.
func FamilyName(f uint8) string {
	switch f {
	case AFInet:
		return "ipv4"
	case AFInet6:
		return "ipv6"
	}
	return ""
}
