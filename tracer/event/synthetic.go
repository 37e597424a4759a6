package event

// Go-only flags, set by the Tracker on the events it derives.
const (
	// FlagExisting: the timewait socket existed before tracing started; its
	// creation time is unknown.
	FlagExisting = 0x40
	// FlagReconciled: the scan found a timewait socket whose creation no
	// record showed, or lost one whose end no record showed.
	FlagReconciled = 0x80
)

// syntheticBits mark a synthetic ptr: bit 0, which no kernel object's
// address has (they are at least 8-byte aligned), and bit 63, so that small
// odd numbers, as tests use for addresses, are not taken for one.
const syntheticBits = 1<<63 | 1

// IsSyntheticPtr reports whether ptr, the Ptr of a timewait record, is a
// synthetic key (SyntheticPtr) rather than a kernel address. A scan through
// sock_diag (kernels without iter/tcp) sees no addresses and keys each
// timewait socket by its cookie instead.
func IsSyntheticPtr(ptr uint64) bool { return ptr&syntheticBits == syntheticBits }

// SyntheticPtr is the synthetic Ptr of the timewait socket with the given
// sock_diag cookie: stable for the socket across scans, never a kernel
// address. Cookies are counters far below 2^62.
func SyntheticPtr(cookie uint64) uint64 { return syntheticBits | cookie<<1 }
