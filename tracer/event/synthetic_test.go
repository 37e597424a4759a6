package event

import "testing"

func TestSyntheticPtr(t *testing.T) {
	for _, c := range []uint64{0, 1, 2, 12345, 1 << 40, 1<<62 - 1} {
		p := SyntheticPtr(c)
		if !IsSyntheticPtr(p) {
			t.Errorf("SyntheticPtr(%d) = %#x not synthetic", c, p)
		}
		if p&7 == 0 {
			t.Errorf("SyntheticPtr(%d) = %#x is 8-byte aligned", c, p)
		}
	}
	if SyntheticPtr(1) == SyntheticPtr(2) {
		t.Error("cookies 1 and 2 share a ptr")
	}
	// kernel addresses (aligned) and the small numbers tests use
	for _, p := range []uint64{0, 1, 3, 0xa, 0x1001, 0xffff888012345678, 0xffffffff81000000} {
		if IsSyntheticPtr(p) {
			t.Errorf("IsSyntheticPtr(%#x) = true", p)
		}
	}
}
