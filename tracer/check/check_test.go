package check

import (
	"encoding/json"
	"reflect"
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

type testReport struct {
	Tier     string `json:"tier"`
	Lost     uint64 `json:"lost"`
	Timewait struct {
		Created uint64 `json:"created"`
		Ended   struct {
			Expired uint64 `json:"expired"`
		} `json:"ended"`
	} `json:"timewait"`
	TopClosers []struct {
		By          string  `json:"by"`
		Port        uint16  `json:"port,omitempty"`
		ActiveShare float64 `json:"active_share"`
	} `json:"top_closers"`
	Ports []struct {
		Usage        float64  `json:"usage,omitempty"`
		ExhaustionS  *float64 `json:"exhaustion_s,omitempty"`
		ReuseApplies *bool    `json:"reuse_applies,omitempty"`
		Range        [2]int   `json:"range"`
	} `json:"ports"`
	Inferred []string       `json:"inferred"`
	Extra    map[string]any `json:"extra"`
	Hidden   int            `json:"-"`
}

// Validate knows the keys from the report's type: a misspelt key is an
// error naming the key meant, before any report exists.
func TestValidate(t *testing.T) {
	keys := KeysOf(reflect.TypeFor[testReport]())
	for _, expr := range []string{
		"lost == 0", "timewait.created > 1", "timewait.ended.expired >= 0",
		"top_closers{by=port,port=80}.active_share < 0.5", "count(top_closers{by!=port}) == 0",
		"max(ports.usage) < 0.8", "min(ports.exhaustion_s) > 60", "ports.reuse_applies == 1",
		"max(ports.range) > 0", "count(inferred) == 0", "count(ports) == 0",
		"extra.anything.below == 1", // a map: any key
	} {
		c, err := Parse(expr)
		if err != nil {
			t.Fatalf("Parse(%q): %v", expr, err)
		}
		if err := c.Validate(keys); err != nil {
			t.Errorf("Validate(%q): %v", expr, err)
		}
	}
	for _, tc := range []struct{ expr, want string }{
		{"timewait.craeted == 0", "no key timewait.craeted in the report; did you mean timewait.created?"},
		{"lots == 0", "no key lots in the report; did you mean lost?"},
		{"created == 0", "no key created in the report; did you mean timewait.created?"},
		{"expired == 0", "did you mean timewait.ended.expired?"},
		{"timewait.expired == 0", "no key timewait.expired in the report; did you mean timewait.ended.expired?"},
		{"top_closers{by=port}.activeshare < 1", "no key top_closers{by=port}.activeshare in the report; did you mean top_closers{by=port}.active_share?"},
		{"top_closers{bye=port}.active_share < 1", "no key bye in top_closers; did you mean by?"},
		{"max(ports.usgae) < 1", "did you mean ports.usage?"},
		{"nothing == 0", "its keys: tier, lost, timewait, top_closers, ports, inferred, extra"},
		{"hidden == 0", "no key hidden"},
		{"timewait == 0", "timewait is not a number; name one of its keys: created, ended"},
		{"max(top_closers.by) > 0", "top_closers.by is text, not a number"},
		{"tier.x == 0", "tier has no keys"},
		{"inferred{a=b}.x == 0", "inferred has no keys to select on"},
	} {
		c, err := Parse(tc.expr)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.expr, err)
		}
		err = c.Validate(keys)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "check ") {
			t.Errorf("Validate(%q) = %v, want an error containing %q", tc.expr, err, tc.want)
		}
	}
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"created", "created", 0}, {"craeted", "created", 1}, {"creatd", "created", 1}, {"crated", "created", 1}, {"lost", "lots", 1}, {"", "ab", 2}, {"abc", "xyz", 3}} {
		if d := distance(tc.a, tc.b); d != tc.d {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, d, tc.d)
		}
	}
}
