// Package check evaluates the CI gates of `twtop --replay FILE --check
// EXPR`: comparisons of report keys with numbers.
//
// Syntax:
//
//	check    = operand op number
//	op       = "==" | "!=" | "<" | "<=" | ">" | ">="
//	operand  = path | fn "(" path ")"
//	fn       = "max" | "min" | "sum" | "count"
//	path     = segment { "." segment }
//	segment  = key [ "{" selector { "," selector } "}" ]
//	selector = key ( "=" | "!=" ) value
//
// A path names keys of the JSON report. Through a list (top_closers, ports,
// findings, …) a path reaches every element; selectors keep the elements
// whose key equals (or differs from) the value. A bare path that reaches
// several numbers passes only if every one passes, and fails when it
// reaches none; max, min and sum of no numbers are 0. Validate checks the
// keys against those the report's type can have (KeysOf), so that a
// misspelt key is caught before any evaluation.
//
//	timewait.overflow == 0
//	lost == 0
//	max(ports.usage) < 0.8
//	top_closers{by=port,port=80}.active_share < 0.5
//	count(findings{severity=critical}) == 0
package check

import (
	"fmt"
	"strconv"
	"strings"
)

// Check is one parsed expression.
type Check struct {
	Text string
	fn   string
	path []segment
	op   string
	want float64
}

type segment struct {
	key  string
	sels []selector
}

type selector struct {
	key, value string
	not        bool
}

var ops = []string{"==", "!=", "<=", ">=", "<", ">"} // two-character ones first

// Parse parses one expression.
func Parse(s string) (*Check, error) {
	text := strings.TrimSpace(s)
	c := &Check{Text: text}
	i, op := findOp(text)
	if i < 0 && strings.Count(text, "{") > strings.Count(text, "}") {
		return nil, fmt.Errorf("check %q: missing }", text)
	}
	if i < 0 {
		return nil, fmt.Errorf("check %q: no comparison (==, !=, <, <=, >, >=)", text)
	}
	left, right := strings.TrimSpace(text[:i]), strings.TrimSpace(text[i+len(op):])
	c.op = op
	want, err := strconv.ParseFloat(right, 64)
	if err != nil {
		return nil, fmt.Errorf("check %q: %q is not a number", text, right)
	}
	c.want = want
	if j := strings.IndexByte(left, '('); j >= 0 {
		if !strings.HasSuffix(left, ")") {
			return nil, fmt.Errorf("check %q: missing )", text)
		}
		c.fn = strings.TrimSpace(left[:j])
		switch c.fn {
		case "max", "min", "sum", "count":
		default:
			return nil, fmt.Errorf("check %q: unknown function %q (max, min, sum, count)", text, c.fn)
		}
		left = strings.TrimSpace(left[j+1 : len(left)-1])
	}
	if c.path, err = parsePath(left); err != nil {
		return nil, fmt.Errorf("check %q: %w", text, err)
	}
	return c, nil
}

// findOp finds the comparison outside selectors' braces.
func findOp(s string) (int, string) {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
		}
		if depth != 0 {
			continue
		}
		for _, o := range ops {
			if strings.HasPrefix(s[i:], o) {
				return i, o
			}
		}
	}
	return -1, ""
}

func parsePath(s string) ([]segment, error) {
	if s == "" {
		return nil, fmt.Errorf("no key before the comparison")
	}
	var out []segment
	for s != "" {
		end := strings.IndexAny(s, ".{")
		if end < 0 {
			end = len(s)
		}
		seg := segment{key: s[:end]}
		if !validKey(seg.key) {
			return nil, fmt.Errorf("%q is not a key", seg.key)
		}
		s = s[end:]
		if strings.HasPrefix(s, "{") {
			close := strings.IndexByte(s, '}')
			if close < 0 {
				return nil, fmt.Errorf("missing } after %s{", seg.key)
			}
			for _, part := range strings.Split(s[1:close], ",") {
				sel, err := parseSelector(strings.TrimSpace(part))
				if err != nil {
					return nil, err
				}
				seg.sels = append(seg.sels, sel)
			}
			s = s[close+1:]
		}
		out = append(out, seg)
		if s != "" {
			if s[0] != '.' {
				return nil, fmt.Errorf("unexpected %q after %s", s, seg.key)
			}
			s = s[1:]
			if s == "" {
				return nil, fmt.Errorf("path ends with a dot")
			}
		}
	}
	return out, nil
}

func parseSelector(s string) (selector, error) {
	var sel selector
	i := strings.IndexByte(s, '=')
	if i <= 0 {
		return sel, fmt.Errorf("selector %q: want key=value or key!=value", s)
	}
	sel.key, sel.value = strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:])
	if strings.HasSuffix(sel.key, "!") {
		sel.not = true
		sel.key = strings.TrimSpace(strings.TrimSuffix(sel.key, "!"))
	}
	if !validKey(sel.key) {
		return sel, fmt.Errorf("selector %q: %q is not a key", s, sel.key)
	}
	return sel, nil
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// Result is the outcome of one check.
type Result struct {
	Check  *Check
	Pass   bool
	Actual string // the value(s) compared, or why there is none
}

func (r Result) String() string {
	verdict := "FAIL"
	if r.Pass {
		verdict = "PASS"
	}
	return fmt.Sprintf("%s  %s  (actual %s)", verdict, r.Check.Text, r.Actual)
}

// Eval evaluates c on a report decoded from JSON into maps, lists,
// float64, strings and bools.
func (c *Check) Eval(report any) Result {
	set, err := resolve(report, c.path)
	if err != nil {
		return Result{Check: c, Actual: err.Error()}
	}
	if c.fn == "count" {
		n := float64(len(set))
		return Result{Check: c, Pass: compare(n, c.op, c.want), Actual: num(n)}
	}
	vals, err := numbers(set, c.path)
	if err != nil {
		return Result{Check: c, Actual: err.Error()}
	}
	if c.fn != "" {
		v := aggregate(c.fn, vals)
		return Result{Check: c, Pass: compare(v, c.op, c.want), Actual: num(v)}
	}
	if len(vals) == 0 {
		return Result{Check: c, Actual: "nothing: no element matches"}
	}
	var failed []string
	for _, v := range vals {
		if !compare(v, c.op, c.want) {
			failed = append(failed, num(v))
		}
	}
	switch {
	case len(vals) == 1:
		return Result{Check: c, Pass: len(failed) == 0, Actual: num(vals[0])}
	case len(failed) == 0:
		return Result{Check: c, Pass: true, Actual: fmt.Sprintf("all %d values pass", len(vals))}
	}
	if len(failed) > 5 {
		failed = append(failed[:5], "…")
	}
	return Result{Check: c, Actual: fmt.Sprintf("%d of %d values fail: %s", len(failed), len(vals), strings.Join(failed, ", "))}
}

// resolve walks path through v and returns the values it reaches.
func resolve(v any, path []segment) ([]any, error) {
	set := []any{v}
	underList := false
	for i, seg := range path {
		var next []any
		found := false
		for _, x := range set {
			m, ok := x.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s is not an object", pathString(path[:i]))
			}
			child, ok := m[seg.key]
			if !ok {
				continue // absent (omitted when empty) in this element
			}
			found = true
			if list, ok := child.([]any); ok {
				next = append(next, list...)
				underList = true
			} else {
				next = append(next, child)
			}
		}
		if !found && !underList {
			return nil, fmt.Errorf("no key %s in the report", pathString(path[:i+1]))
		}
		if len(seg.sels) > 0 {
			next = filter(next, seg.sels)
		}
		set = next
	}
	return set, nil
}

// numbers converts the values a path reached to numbers.
func numbers(set []any, path []segment) ([]float64, error) {
	out := make([]float64, 0, len(set))
	for _, x := range set {
		switch t := x.(type) {
		case float64:
			out = append(out, t)
		case bool:
			out = append(out, map[bool]float64{false: 0, true: 1}[t])
		case nil:
			// a figure the report could not give (null)
		default:
			return nil, fmt.Errorf("%s is not a number", pathString(path))
		}
	}
	return out, nil
}

func filter(xs []any, sels []selector) []any {
	var out []any
	for _, x := range xs {
		m, ok := x.(map[string]any)
		if !ok {
			continue
		}
		keep := true
		for _, s := range sels {
			v, ok := m[s.key]
			eq := ok && scalar(v) == s.value
			if eq == s.not {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, x)
		}
	}
	return out
}

func scalar(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case float64:
		return num(t)
	case bool:
		return strconv.FormatBool(t)
	}
	return fmt.Sprint(v)
}

func pathString(p []segment) string {
	var b strings.Builder
	for i, s := range p {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.key)
		if len(s.sels) > 0 {
			b.WriteByte('{')
			for j, sel := range s.sels {
				if j > 0 {
					b.WriteByte(',')
				}
				b.WriteString(sel.key)
				if sel.not {
					b.WriteByte('!')
				}
				b.WriteByte('=')
				b.WriteString(sel.value)
			}
			b.WriteByte('}')
		}
	}
	return b.String()
}

func aggregate(fn string, vals []float64) float64 {
	if len(vals) == 0 {
		return 0
	}
	acc := vals[0]
	for _, v := range vals[1:] {
		switch fn {
		case "max":
			acc = max(acc, v)
		case "min":
			acc = min(acc, v)
		case "sum":
			acc += v
		}
	}
	return acc
}

func compare(v float64, op string, want float64) bool {
	switch op {
	case "==":
		return v == want
	case "!=":
		return v != want
	case "<":
		return v < want
	case "<=":
		return v <= want
	case ">":
		return v > want
	case ">=":
		return v >= want
	}
	return false
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
