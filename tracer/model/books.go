package model

// twBooks is what open TIME_WAIT sockets are charged to, shared by all
// those with the same: their namespace, the aggregates of the socket whose
// close created them (zero when none was seen), and whether they are a
// connection's client side (which holds its local port towards the
// destination until it ends).
//
// Its fields leave no padding, so that Model.books hashes and compares it
// as one block of memory.
type twBooks struct {
	closer closerKeys
	netns  uint32
	client uint32 // 1 for the client side
}
