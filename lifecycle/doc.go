// Package lifecycle follows every TCP socket and TIME_WAIT socket through
// the decoded record stream (package event) and turns it into the events
// twtop reports. It is where TIME_WAIT ends are inferred (the tracepoint
// tier sees only timer records: an arm, a cancel, an expiry) and where the
// periodic scan of TIME_WAIT sockets is reconciled with the records (sockets
// that existed before tracing, creations and ends no record showed, the
// synthetic keys of a sock_diag scan). It also carries a socket's owner
// from the transitions made in the owner's context to those made in
// softirq context.
//
// It is pure Go and needs no privileges: its clock is the records'
// timestamps only, so live tracing and the replay of a recording give the
// same events. A Tracker and a Stream are used from one goroutine.
package lifecycle
