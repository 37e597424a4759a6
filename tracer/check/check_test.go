package check

import (
	"encoding/json"
	"strings"
	"testing"
)

const report = `{
  "tier": "fentry", "lost": 0, "events": 1200,
  "timewait": {"created": 40, "overflow": 3, "ended": {"expired": 30}},
  "lifetime_ms": {"p99": 60140.5},
  "top_closers": [
    {"by": "port", "key": "netns 1 :80", "port": 80, "active_share": 0.97},
    {"by": "port", "key": "netns 1 :443", "port": 443, "active_share": 0.2},
    {"by": "process", "key": "nginx[10]", "active_share": 0.6}
  ],
  "ports": [
    {"dst": "10.0.0.2:8080", "usage": 0.93, "exhaustion_s": 12},
    {"dst": "10.0.0.3:8080", "usage": 0.1}
  ],
  "findings": [{"id": "a", "severity": "critical"}, {"id": "b", "severity": "info"}],
  "empty": [],
  "flag": true
}`

func TestEval(t *testing.T) {
	var r any
	if err := json.Unmarshal([]byte(report), &r); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		expr   string
		pass   bool
		actual string
	}{
		{"timewait.overflow == 0", false, "3"},
		{"timewait.overflow <= 3", true, "3"},
		{"lost == 0", true, "0"},
		{"events > 1000", true, "1200"},
		{"timewait.ended.expired >= 30", true, "30"},
		{"lifetime_ms.p99 < 61000", true, "60140.5"},
		{"max(ports.usage) < 0.8", false, "0.93"},
		{"min(ports.usage) < 0.8", true, "0.1"},
		{"sum(timewait.created) == 40", true, "40"},
		{"ports.usage < 0.95", true, "all 2 values pass"},
		{"ports.usage < 0.5", false, "1 of 2 values fail: 0.93"},
		{"top_closers{by=port,port=80}.active_share < 0.5", false, "0.97"},
		{"top_closers{by=port, port=443}.active_share < 0.5", true, "0.2"},
		{"top_closers{by!=port}.active_share < 0.7", true, "0.6"},
		{"top_closers{by=port,port=8080}.active_share < 0.5", false, "nothing: no element matches"},
		{"max(top_closers{by=port,port=8080}.active_share) < 0.5", true, "0"},
		{"count(findings{severity=critical}) == 0", false, "1"},
		{"count(findings) == 2", true, "2"},
		{"count(empty) == 0", true, "0"},
		{"min(ports.exhaustion_s) > 60", false, "12"},
		{"flag == 1", true, "1"},
		{"timewait.nosuch == 0", false, "no key timewait.nosuch in the report"},
		{"tier == 1", false, "tier is not a number"},
	} {
		c, err := Parse(tc.expr)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.expr, err)
		}
		res := c.Eval(r)
		if res.Pass != tc.pass || res.Actual != tc.actual {
			t.Errorf("%s: pass %v actual %q, want %v %q", tc.expr, res.Pass, res.Actual, tc.pass, tc.actual)
		}
		want := "FAIL"
		if tc.pass {
			want = "PASS"
		}
		if line := res.String(); !strings.HasPrefix(line, want+"  "+c.Text) || strings.Contains(line, "\n") {
			t.Errorf("line %q", line)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{"lost", "no comparison"},
		{"lost == zero", "not a number"},
		{"avg(lost) == 0", "unknown function"},
		{"max(lost == 0", "missing )"},
		{" == 0", "no key"},
		{"a..b == 0", "not a key"},
		{"a. == 0", "ends with a dot"},
		{"a{b=1 == 0", "missing }"},
		{"a{b} == 0", "key=value"},
		{"a{b=1}c == 0", "unexpected"},
		{"a-b == 0", "not a key"},
	} {
		_, err := Parse(tc.expr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tc.expr, err, tc.want)
		}
	}
}
