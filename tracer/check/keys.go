package check

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Keys is the shape of a JSON document as a Go type encodes it: which keys
// each object has, and which values are numbers. Validate checks an
// expression against it, so that a misspelt key is a usage error rather
// than a failed check.
type Keys struct {
	kind  valueKind
	keys  map[string]*Keys // kindObject
	order []string         // keys in the type's order, for messages
	elem  *Keys            // kindList
}

type valueKind int

const (
	kindAny valueKind = iota // anything: an interface, a custom encoding, a map
	kindObject
	kindList
	kindNumber // numbers and bools (true counts 1)
	kindString
)

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// KeysOf describes the JSON encoding of values of type t (exported fields,
// named by their json tags).
func KeysOf(t reflect.Type) *Keys {
	return keysOf(t, map[reflect.Type]*Keys{})
}

func keysOf(t reflect.Type, seen map[reflect.Type]*Keys) *Keys {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if k, ok := seen[t]; ok {
		return k
	}
	if t.Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(jsonMarshaler) {
		return &Keys{kind: kindAny}
	}
	if t.Implements(textMarshaler) || reflect.PointerTo(t).Implements(textMarshaler) {
		return &Keys{kind: kindString}
	}
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return &Keys{kind: kindNumber}
	case reflect.String:
		return &Keys{kind: kindString}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && t.Kind() == reflect.Slice {
			return &Keys{kind: kindString} // base64
		}
		k := &Keys{kind: kindList}
		seen[t] = k
		k.elem = keysOf(t.Elem(), seen)
		return k
	case reflect.Struct:
		k := &Keys{kind: kindObject, keys: map[string]*Keys{}}
		seen[t] = k
		addFields(k, t, seen)
		return k
	}
	return &Keys{kind: kindAny}
}

// addFields adds the JSON keys of struct type t's fields to k, with the
// fields of embedded structs as encoding/json promotes them.
func addFields(k *Keys, t reflect.Type, seen map[reflect.Type]*Keys) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "-" || !f.IsExported() && !f.Anonymous {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && tag == "" && ft.Kind() == reflect.Struct {
			addFields(k, ft, seen)
			continue
		}
		if !f.IsExported() {
			continue
		}
		name := tag
		if name == "" {
			name = f.Name
		}
		if _, dup := k.keys[name]; !dup {
			k.order = append(k.order, name)
		}
		k.keys[name] = keysOf(f.Type, seen)
	}
}

// Validate reports an expression that names a key the document cannot
// have (with the key meant, when one is close), selects on one, or
// compares something that is not a number.
func (c *Check) Validate(k *Keys) error {
	if k == nil {
		return nil
	}
	cur := k
	for i, seg := range c.path {
		if cur.kind == kindAny {
			return nil
		}
		if cur.kind != kindObject {
			return fmt.Errorf("check %q: %s has no keys", c.Text, pathString(c.path[:i]))
		}
		child, ok := cur.keys[seg.key]
		if !ok {
			return fmt.Errorf("check %q: no key %s in the report%s", c.Text,
				pathString(append(c.path[:i:i], segment{key: seg.key})), cur.suggest(seg.key, k, c.path[:i]))
		}
		for child.kind == kindList {
			child = child.elem
		}
		for _, sel := range seg.sels {
			if child.kind == kindAny {
				break
			}
			if child.kind != kindObject {
				return fmt.Errorf("check %q: %s has no keys to select on", c.Text, pathString(append(c.path[:i:i], segment{key: seg.key})))
			}
			if _, ok := child.keys[sel.key]; !ok {
				return fmt.Errorf("check %q: no key %s in %s%s", c.Text, sel.key, seg.key, child.suggest(sel.key, nil, nil))
			}
		}
		cur = child
	}
	if c.fn == "count" || cur.kind == kindNumber || cur.kind == kindAny {
		return nil
	}
	what := pathString(c.path)
	if cur.kind == kindObject {
		return fmt.Errorf("check %q: %s is not a number; name one of its keys: %s", c.Text, what, strings.Join(cur.order, ", "))
	}
	return fmt.Errorf("check %q: %s is text, not a number", c.Text, what)
}

// suggest words the key meant instead of key in object k: a key of k close
// to it, or else the same key elsewhere in root. Empty when none.
func (k *Keys) suggest(key string, root *Keys, at []segment) string {
	best, bestD := "", 3
	for _, cand := range k.order {
		if d := distance(key, cand); d < bestD && d <= max(1, len(key)/3) {
			best, bestD = cand, d
		}
	}
	if best != "" {
		return "; did you mean " + pathString(append(at[:len(at):len(at)], segment{key: best})) + "?"
	}
	if root != nil {
		if paths := root.find(key, ""); len(paths) > 0 {
			return "; did you mean " + strings.Join(paths, " or ") + "?"
		}
	}
	return "; its keys: " + strings.Join(k.order, ", ")
}

// find lists the dotted paths under k that end with key.
func (k *Keys) find(key, prefix string) []string {
	for k != nil && k.kind == kindList {
		k = k.elem
	}
	if k == nil || k.kind != kindObject {
		return nil
	}
	var out []string
	for _, name := range k.order {
		p := prefix + name
		if name == key && prefix != "" {
			out = append(out, p)
		}
		out = append(out, k.keys[name].find(key, p+".")...)
	}
	return slices.Compact(out)
}

// distance is the edit distance of a and b with transpositions of
// adjacent letters counted as one edit (optimal string alignment).
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range rb {
		d[0][j+1] = j + 1
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
