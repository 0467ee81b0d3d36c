// Package schemaexample makes an example document from a JSON Schema, so that a developer can
// fire an event of a type without writing its payload by hand (herald trigger TYPE).
//
// The example is the author's own where the schema gives one (examples, example, default, const,
// enum), and otherwise the plainest value of the declared type: objects get every property, the
// required ones first; arrays one item (or minItems); strings a value fit for their format.
// "$ref" to a place in the same document is followed. Recursion stops where the schema lets it
// (an optional property is left out, an array left empty, the first alternative of anyOf/oneOf
// that ends is taken), so a recursive schema gives a finite example.
//
// It is a best effort, not a solver: keywords such as pattern, multipleOf, uniqueItems, not or
// if/then/else are not read, and a schema that relies on them may get an example it refuses.
package schemaexample

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

const (
	// maxDepth bounds how deep objects and arrays nest in an example.
	maxDepth = 12
	// maxValues bounds how many values an example holds: with "$ref", a 64 KiB schema can
	// describe a document of astronomical size (each level referring twice to the next).
	maxValues = 5000
	// maxItems bounds how many items minItems can ask for.
	maxItems = 100
)

// formatExample is a fixed value of a string format, so that an example is the same each time.
func formatExample(format string) (string, bool) {
	switch format {
	case "date-time":
		return "2025-01-01T12:00:00Z", true
	case "date":
		return "2025-01-01", true
	case "time":
		return "12:00:00Z", true
	case "duration":
		return "P1D", true
	case "email", "idn-email":
		return "user@example.com", true
	case "hostname", "idn-hostname":
		return "example.com", true
	case "ipv4":
		return "192.0.2.1", true
	case "ipv6":
		return "2001:db8::1", true
	case "uri", "uri-reference", "iri", "iri-reference":
		return "https://example.com", true
	case "uri-template":
		return "https://example.com/{id}", true
	case "uuid":
		return "3fa85f64-5717-4562-b3fc-2c963f66afa6", true
	case "json-pointer":
		return "/example", true
	case "regex":
		return "^example$", true
	}
	return "", false
}

// ErrNoExample is returned for a schema no finite example can be made of here: one that accepts
// nothing (false), refers to what it cannot resolve, or requires itself all the way down.
var ErrNoExample = errors.New("no example can be made from this schema")

// Generate returns an example document of the schema doc, compact JSON.
func Generate(doc []byte) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber() // examples and bounds keep their exact digits
	var root any
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("schema is not JSON: %w", err)
	}
	g := &generator{root: root, onPath: map[string]bool{"#": true}}
	v, ok := g.value(root, 0)
	if !ok {
		if g.why != "" {
			return nil, fmt.Errorf("%w: %s", ErrNoExample, g.why)
		}
		return nil, ErrNoExample
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode example: %w", err)
	}
	return out, nil
}

type generator struct {
	root   any
	onPath map[string]bool // the $refs being expanded: one met again is a cycle
	values int
	why    string // the first reason a part could not be made, for the error
}

func (g *generator) fail(format string, args ...any) (any, bool) {
	if g.why == "" {
		g.why = fmt.Sprintf(format, args...)
	}
	return nil, false
}

// value makes an example of schema s at nesting depth; false when none can be made there (the
// caller leaves an optional property out, an array empty, or tries the next alternative).
func (g *generator) value(s any, depth int) (any, bool) {
	switch s := s.(type) {
	case bool:
		if !s {
			return g.fail("a part of the schema is false: it accepts nothing")
		}
		return object{}, true
	case map[string]any:
		return g.schema(s, depth)
	default:
		return g.fail("a part of the schema is neither an object nor a boolean")
	}
}

func (g *generator) schema(s map[string]any, depth int) (any, bool) {
	if depth > maxDepth {
		return g.fail("the example would nest deeper than %d levels", maxDepth)
	}
	if g.values++; g.values > maxValues {
		return g.fail("the example would hold more than %d values", maxValues)
	}
	if ex, ok := s["examples"].([]any); ok && len(ex) > 0 {
		return ex[0], true
	}
	for _, k := range []string{"example", "default", "const"} {
		if v, ok := s[k]; ok {
			return v, true
		}
	}
	if e, ok := s["enum"].([]any); ok && len(e) > 0 {
		return e[0], true
	}

	// The schema's own keywords, then what $ref, allOf and the first workable alternative of
	// anyOf and oneOf add: objects merge, property by property; otherwise the first value stands.
	var v any
	have := false
	if hasTypeHints(s) {
		tv, ok := g.typed(s, depth)
		if !ok {
			return nil, false
		}
		v, have = tv, true
	}
	if ref, ok := s["$ref"].(string); ok {
		rv, ok := g.ref(ref, depth)
		if !ok {
			return nil, false
		}
		v, have = combine(v, have, rv)
	}
	if all, ok := s["allOf"].([]any); ok {
		for _, part := range all {
			pv, ok := g.value(part, depth)
			if !ok {
				return nil, false
			}
			v, have = combine(v, have, pv)
		}
	}
	for _, k := range []string{"anyOf", "oneOf"} {
		alts, ok := s[k].([]any)
		if !ok || len(alts) == 0 {
			continue
		}
		av, ok := g.first(alts, depth)
		if !ok {
			return nil, false
		}
		v, have = combine(v, have, av)
	}
	if !have {
		return object{}, true // a schema that says nothing: the event data is an object
	}
	return v, true
}

// combine adds part to the value made so far: the members of both when both are objects.
func combine(v any, have bool, part any) (any, bool) {
	if !have {
		return part, true
	}
	if vo, ok := asObject(v); ok {
		if po, ok := asObject(part); ok {
			return vo.with(po), true
		}
	}
	return v, true
}

// ref follows a "$ref" to a place in the document ("#", "#/$defs/x", "#/definitions/x", any JSON
// pointer); one already being expanded is a cycle and makes nothing here.
func (g *generator) ref(ref string, depth int) (any, bool) {
	if g.onPath[ref] {
		return g.fail("%s refers to itself with no way out", ref)
	}
	target, ok := resolve(g.root, ref)
	if !ok {
		return g.fail("cannot follow $ref %q: only references into the schema itself (#/...) are followed", ref)
	}
	g.onPath[ref] = true
	defer delete(g.onPath, ref)
	return g.value(target, depth)
}

// first makes the first alternative that can be made: a recursive schema usually offers a way
// out (anyOf: [{$ref: node}, {type: null}]) after the way in.
func (g *generator) first(alts []any, depth int) (any, bool) {
	for _, alt := range alts {
		if v, ok := g.value(alt, depth); ok {
			return v, true
		}
	}
	return nil, false
}

// typed makes the plainest value of the schema's type, or of the type its keywords imply
// (properties: object, items: array, …).
func (g *generator) typed(s map[string]any, depth int) (any, bool) {
	switch typeOf(s) {
	case "null":
		return nil, true
	case "boolean":
		return true, true
	case "integer":
		return least(s, true), true
	case "number":
		return least(s, false), true
	case "string":
		return str(s), true
	case "array":
		return g.array(s, depth)
	default:
		return g.object(s, depth)
	}
}

func hasTypeHints(s map[string]any) bool {
	return typeOf(s) != ""
}

// typeOf is the schema's type, the one its keywords imply without one, or "".
func typeOf(s map[string]any) string {
	switch t := s["type"].(type) {
	case string:
		return t
	case []any:
		// ["string", "null"]: the non-null type shows more.
		null := false
		for _, x := range t {
			if name, ok := x.(string); ok {
				if name != "null" {
					return name
				}
				null = true
			}
		}
		if null {
			return "null"
		}
	}
	switch {
	case hasObjectKeywords(s):
		return "object"
	case has(s, "items", "prefixItems", "minItems", "maxItems", "contains"):
		return "array"
	case has(s, "minLength", "maxLength", "pattern", "format"):
		return "string"
	case has(s, "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"):
		return "number"
	}
	return ""
}

func hasObjectKeywords(s map[string]any) bool {
	return has(s, "properties", "required", "additionalProperties", "patternProperties", "minProperties", "maxProperties")
}

func has(s map[string]any, keys ...string) bool {
	for _, k := range keys {
		if _, ok := s[k]; ok {
			return true
		}
	}
	return false
}

// object makes every property, the required ones first in the order required lists them, then
// the others by name. An optional property that cannot be made (a cycle, too deep) is left out;
// a required one that cannot be made leaves the object unmade.
func (g *generator) object(s map[string]any, depth int) (any, bool) {
	props, _ := s["properties"].(map[string]any)
	var names []string
	seen := map[string]bool{}
	required := map[string]bool{}
	if req, ok := s["required"].([]any); ok {
		for _, r := range req {
			if name, ok := r.(string); ok && !seen[name] {
				names = append(names, name)
				seen[name], required[name] = true, true
			}
		}
	}
	var optional []string
	for name := range props {
		if !seen[name] {
			optional = append(optional, name)
		}
	}
	slices.Sort(optional)
	names = append(names, optional...)

	o := object{}
	for _, name := range names {
		ps, ok := props[name]
		if !ok {
			// Required but not described: whatever additionalProperties allows.
			ps = true
			if ap, isSchema := s["additionalProperties"]; isSchema {
				ps = ap
			}
		}
		v, ok := g.value(ps, depth+1)
		if !ok {
			if required[name] {
				return nil, false
			}
			continue
		}
		o = append(o, member{name: name, value: v})
	}
	return o, true
}

// array makes one item (minItems of them, every prefixItems place), none when the schema does
// not describe its items; it stops early where an item cannot be made and minItems allows.
func (g *generator) array(s map[string]any, depth int) (any, bool) {
	minItems, _ := intOf(s["minItems"])
	prefix, _ := s["prefixItems"].([]any)
	items, hasItems := s["items"]
	if tuple, ok := items.([]any); ok { // drafts 4 to 7 describe a tuple with an array of items
		prefix, items, hasItems = tuple, nil, false
	}
	out := []any{}
	if !hasItems && len(prefix) == 0 && minItems == 0 {
		return out, true
	}
	want := max(1, minItems, int64(len(prefix)))
	if m, ok := intOf(s["maxItems"]); ok && m < want {
		want = max(m, 0)
	}
	want = min(want, maxItems)
	for i := range int(want) {
		var is any = true
		switch {
		case i < len(prefix):
			is = prefix[i]
		case hasItems:
			is = items
		}
		v, ok := g.value(is, depth+1)
		if !ok {
			if int64(len(out)) >= minItems {
				return out, true
			}
			return nil, false
		}
		out = append(out, v)
	}
	return out, true
}

func str(s map[string]any) string {
	v := "string"
	if f, ok := s["format"].(string); ok {
		if fv, known := formatExample(f); known {
			v = fv
		}
	}
	if m, ok := intOf(s["maxLength"]); ok && m >= 0 && int64(len([]rune(v))) > m {
		v = string([]rune(v)[:m])
	}
	if m, ok := intOf(s["minLength"]); ok && m > int64(len([]rune(v))) {
		v += strings.Repeat("x", int(min(m, 1<<16))-len([]rune(v)))
	}
	return v
}

// least is the number nearest 0 that the bounds allow, rounded up to multipleOf; an integer when
// integer is set.
func least(s map[string]any, integer bool) json.Number {
	up := func(f float64) float64 { // the least allowed value at or above f
		if integer {
			return math.Ceil(f)
		}
		return f
	}
	above := func(f float64) float64 { // the least allowed value above f
		if integer {
			return math.Floor(f) + 1
		}
		return f + 1
	}
	v := 0.0
	lo, hasLo := floatOf(s["minimum"])
	if hasLo {
		v = up(lo)
	}
	switch ex := s["exclusiveMinimum"].(type) {
	case json.Number: // 2019-09 and later: the bound itself
		if f, ok := floatOf(ex); ok && v <= f {
			v, hasLo = above(f), true
		}
	case bool: // draft 4: a flag on minimum
		if ex && hasLo && v <= lo {
			v = above(lo)
		}
	}
	if !hasLo {
		if hi, ok := floatOf(s["maximum"]); ok && v > hi {
			v = hi
			if integer {
				v = math.Floor(hi)
			}
		}
		if hi, ok := floatOf(s["exclusiveMaximum"]); ok && v >= hi {
			v = hi - 1
			if integer {
				v = math.Ceil(hi) - 1
			}
		}
	}
	if m, ok := floatOf(s["multipleOf"]); ok && m > 0 {
		v = math.Ceil(v/m) * m
	}
	return json.Number(strconv.FormatFloat(v, 'f', -1, 64))
}

func floatOf(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil
}

func intOf(v any) (int64, bool) {
	f, ok := floatOf(v)
	if !ok || f != math.Trunc(f) {
		return 0, false
	}
	return int64(f), true
}

// resolve finds the place a local "$ref" names: "#" or "#" and a JSON pointer.
func resolve(root any, ref string) (any, bool) {
	ptr, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil, false
	}
	ptr, err := url.PathUnescape(ptr) // a fragment may escape characters: #/$defs/a%20b
	if err != nil {
		return nil, false
	}
	if ptr == "" {
		return root, true
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil, false // a named anchor
	}
	cur := root
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			if cur, ok = c[tok]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// object is a JSON object that keeps its members in the order they were made, so that required
// properties come first in the example.
type object []member

type member struct {
	name  string
	value any
}

// asObject reads v as an object: one made here, or one a schema gave (examples, default).
func asObject(v any) (object, bool) {
	switch v := v.(type) {
	case object:
		return v, true
	case map[string]any:
		names := slices.Sorted(maps.Keys(v))
		o := make(object, 0, len(names))
		for _, n := range names {
			o = append(o, member{name: n, value: v[n]})
		}
		return o, true
	}
	return nil, false
}

// with returns o and the members of other that o lacks.
func (o object) with(other object) object {
	o = slices.Clip(o) // append below must not write into a caller's array
	for _, m := range other {
		if !slices.ContainsFunc(o, func(x member) bool { return x.name == m.name }) {
			o = append(o, m)
		}
	}
	return o
}

// MarshalJSON writes the members in order.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(m.name)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(m.value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
