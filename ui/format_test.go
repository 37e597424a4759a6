package ui

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFormats(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{dur(420e3), "0.42ms"},
		{dur(812e6), "812ms"},
		{dur(1.514e9), "1.51s"},
		{dur(60e9), "60.0s"},
		{dur(125e9), "125s"},
		{dur(1800e9), "30m"},
		{dur(-1), "?"},
		{seconds(4.25), "4.2s"},
		{seconds(42), "42s"},
		{seconds(1800), "30m"},
		{seconds(28800), "8.0h"},
		{seconds(2e6), "23d"},
		{clock(5100 * time.Millisecond), "5.1s"},
		{clock(62 * time.Second), "1:02"},
		{clock(3723 * time.Second), "1:02:03"},
		{speed(4), "x4"},
		{speed(1), "x1"},
		{speed(0.0625), "x1/16"},
		{speed(0.3), "x0.30"},
		{speed(0), "max"},
		{rate(0), "0"},
		{rate(19.2), "19.2"},
		{rate(235.3), "235"},
		{rate(15230), "15.2k"},
		{percent(0.003), "0.3%"},
		{percent(0.5), "50%"},
		{count(uint64(1234)), "1234"},
		{count(uint64(2_500_000)), "2.5M"},
		{count(int64(-3)), "-3"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestSpeedSteps(t *testing.T) {
	s, ok := 1.0, true
	var up []float64
	for ok && len(up) < 20 {
		if s, ok = faster(s); ok {
			up = append(up, s)
		}
	}
	if want := []float64{2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 0}; !slices.Equal(up, want) {
		t.Errorf("+ from x1: %v, want %v", up, want)
	}
	s, ok = 0, true
	var down []float64
	for ok && len(down) < 20 {
		if s, ok = slower(s); ok {
			down = append(down, s)
		}
	}
	if len(down) != 15 || down[0] != 1024 || down[len(down)-1] != minSpeed {
		t.Errorf("- from max: %v", down)
	}
	// odd speeds land on the range
	if s, _ := faster(1000); s != 1024 {
		t.Errorf("faster(1000) = %v", s)
	}
	if s, _ := slower(0.1); s != minSpeed {
		t.Errorf("slower(0.1) = %v", s)
	}
}

func TestTextHelpers(t *testing.T) {
	if got := truncate("recordings[32010]", 9); got != "recordin…" {
		t.Errorf("truncate: %q", got)
	}
	if got := truncate("abc", 3); got != "abc" {
		t.Errorf("truncate kept: %q", got)
	}
	if got := printable("a\x1b[2Jb\n"); strings.ContainsAny(got, "\x1b\n") {
		t.Errorf("printable: %q", got)
	}
	lines := wrap("the server sends the first FIN, so every connection leaves a TIME_WAIT socket", 20)
	for _, l := range lines {
		if width(l) > 20 {
			t.Errorf("wrap: %q is wider than 20", l)
		}
	}
	if got := strings.Join(lines, " "); got != "the server sends the first FIN, so every connection leaves a TIME_WAIT socket" {
		t.Errorf("wrap lost words: %q", got)
	}
	if got := wrap("abcdefghij", 4); !slices.Equal(got, []string{"abcd", "efgh", "ij"}) {
		t.Errorf("wrap of a long word: %q", got)
	}
	// a flexible column takes what the others leave, up to its limit;
	// columns drop from the highest drop first when the width is short
	cols := []column{{w: 10, flex: true, max: 30}, {w: 5, drop: 1}, {w: 5, drop: 2}, {w: 5}}
	if got := fitColumns(cols, 100); !slices.Equal(got, []int{30, 5, 5, 5}) {
		t.Errorf("fitColumns(100) = %v", got)
	}
	if got := fitColumns(cols, 25); !slices.Equal(got, []int{13, 5, 0, 5}) {
		t.Errorf("fitColumns(25) = %v", got)
	}
	if got := fitColumns(cols, 10); !slices.Equal(got, []int{10, 0, 0, 5}) {
		t.Errorf("fitColumns(10) = %v", got)
	}
}
