package model

// seriesSeconds is how far back the open-TIME_WAIT series reaches.
const seriesSeconds = 600

// series samples a gauge once per second of event time: the value at the
// end of each second, for the last seriesSeconds seconds.
type series struct {
	vals    [seriesSeconds]int64
	lastSec uint64
	started bool
}

// set records the gauge's value at time now (ns); seconds without a call
// repeat the previous value.
func (s *series) set(now uint64, v int64) {
	sec := now / 1e9
	if !s.started {
		s.started, s.lastSec = true, sec
	}
	if sec > s.lastSec {
		prev := s.vals[s.lastSec%seriesSeconds]
		for t := s.lastSec + 1; t < sec && t <= s.lastSec+seriesSeconds; t++ {
			s.vals[t%seriesSeconds] = prev
		}
		s.lastSec = sec
	}
	if sec == s.lastSec {
		s.vals[sec%seriesSeconds] = v
	}
}

// last returns up to n seconds of values ending at the second of now,
// oldest first.
func (s *series) last(now uint64, n int) []int64 {
	if !s.started {
		return nil
	}
	s.set(now, s.vals[s.lastSec%seriesSeconds]) // carry the value to now
	n = min(n, seriesSeconds)
	out := make([]int64, 0, n)
	end := s.lastSec
	for i := n - 1; i >= 0; i-- {
		if uint64(i) > end {
			continue
		}
		out = append(out, s.vals[(end-uint64(i))%seriesSeconds])
	}
	return out
}
