package workload

import (
	"container/list"
	"time"
)

// entry is a cached resolution.
type entry struct {
	key     uint64
	w       Workload
	expires time.Time // after this, served while it is resolved again
	used    time.Time // last lookup or store
}

// lru holds at most max entries, the least recently used dropped first. It
// is not safe for concurrent use.
type lru struct {
	max     int
	ll      *list.List // front: most recently used
	m       map[uint64]*list.Element
	evicted uint64 // dropped by the size cap
	expired uint64 // dropped unused
}

func newLRU(max int) *lru {
	return &lru{max: max, ll: list.New(), m: make(map[uint64]*list.Element)}
}

func (c *lru) len() int { return c.ll.Len() }

// get returns the entry for key and marks it used at now.
func (c *lru) get(key uint64, now time.Time) (*entry, bool) {
	el, ok := c.m[key]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(el)
	e := el.Value.(*entry)
	e.used = now
	return e, true
}

// peek returns the entry for key without marking it used.
func (c *lru) peek(key uint64) (*entry, bool) {
	el, ok := c.m[key]
	if !ok {
		return nil, false
	}
	return el.Value.(*entry), true
}

// put stores w for key, used at now, and drops the least recently used
// entries beyond the cap.
func (c *lru) put(key uint64, w Workload, expires, now time.Time) {
	if el, ok := c.m[key]; ok {
		e := el.Value.(*entry)
		e.w, e.expires, e.used = w, expires, now
		c.ll.MoveToFront(el)
		return
	}
	c.m[key] = c.ll.PushFront(&entry{key: key, w: w, expires: expires, used: now})
	for c.ll.Len() > c.max {
		el := c.ll.Back()
		c.ll.Remove(el)
		delete(c.m, el.Value.(*entry).key)
		c.evicted++
	}
}

// sweep drops the entries last used before cutoff.
func (c *lru) sweep(cutoff time.Time) {
	for el := c.ll.Back(); el != nil; el = c.ll.Back() {
		e := el.Value.(*entry)
		if !e.used.Before(cutoff) {
			return
		}
		c.ll.Remove(el)
		delete(c.m, e.key)
		c.expired++
	}
}
