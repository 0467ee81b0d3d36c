// Package redact hides the values of chosen JSON fields, by a tenant's setting, in what Herald
// stores about attempts and shows of payloads.
//
// A path is a dot-separated list of object keys ("card.number"). It matches wherever that sequence
// of keys occurs in a document, at any depth, and arrays are transparent: "card.number" matches
// data.card.number, data.payment.card.number and data.cards[2].card.number. Matching anywhere
// rather than from the root is deliberate: a receiver's answer may echo the whole envelope or only
// part of it, and a field named as sensitive stays hidden wherever it turns up.
package redact

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Marker replaces a redacted value.
const Marker = "[REDACTED]"

// Limits of a tenant's setting.
const (
	MaxPaths      = 100
	MaxPathLength = 200
)

// Check reports what is wrong with a path given by a user, or nil.
func Check(path string) error {
	switch {
	case path == "":
		return errors.New("must not be empty")
	case len(path) > MaxPathLength:
		return fmt.Errorf("at most %d characters", MaxPathLength)
	case strings.ContainsRune(path, 0):
		return errors.New("must not contain NUL characters")
	}
	for _, seg := range strings.Split(path, ".") {
		if seg == "" {
			return errors.New("keys separated by single dots, like card.number")
		}
	}
	return nil
}

// Paths is a compiled set of paths; the zero value redacts nothing.
type Paths struct {
	paths [][]string
}

// Compile makes Paths of the given paths; invalid ones (see Check) are ignored.
func Compile(paths []string) Paths {
	var p Paths
	for _, s := range paths {
		if Check(s) == nil {
			p.paths = append(p.paths, strings.Split(s, "."))
		}
	}
	return p
}

// Empty reports whether p redacts nothing.
func (p Paths) Empty() bool { return len(p.paths) == 0 }

// matches reports whether the keys leading to a value end with one of the paths.
func (p Paths) matches(keys []string) bool {
	for _, path := range p.paths {
		if len(path) > len(keys) {
			continue
		}
		tail := keys[len(keys)-len(path):]
		match := true
		for i := range path {
			if path[i] != tail[i] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// JSON returns doc with the value of every matching field replaced by Marker. doc may be JSON
// (one value or several, as in JSON lines) or the start of it, such as a response cut at 4 KiB:
// what follows a cut or a syntax error is dropped, since it cannot be searched. A document that
// does not start like JSON, or in which nothing matched, is returned as it is.
func (p Paths) JSON(doc []byte) []byte {
	if p.Empty() {
		return doc
	}
	trimmed := bytes.TrimLeft(doc, " \t\r\n")
	if len(trimmed) == 0 || (trimmed[0] != '{' && trimmed[0] != '[') {
		return doc
	}
	r := rewriter{p: p, dec: json.NewDecoder(bytes.NewReader(doc))}
	r.dec.UseNumber()
	r.run()
	if !r.changed {
		return doc
	}
	return r.out.Bytes()
}

// frame is one open object or array.
type frame struct {
	object bool
	n      int // members or elements written so far
}

// rewriter copies a token stream to out, replacing matching values.
type rewriter struct {
	p       Paths
	dec     *json.Decoder
	out     bytes.Buffer
	stack   []frame
	keys    []string // the keys of the open objects' current members
	changed bool
}

// run copies the top-level values, one a line, until the input ends or breaks.
func (r *rewriter) run() {
	for first := true; ; first = false {
		if !first {
			if !r.dec.More() {
				return
			}
			r.out.WriteByte('\n')
		}
		if !r.value() {
			return
		}
	}
}

// value copies one value, whose first token is next. It reports false if the input ended or
// broke first.
func (r *rewriter) value() bool {
	tok, err := r.dec.Token()
	if err != nil {
		return false
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{', '[':
			r.out.WriteByte(byte(t))
			r.stack = append(r.stack, frame{object: t == '{'})
			return r.container()
		default:
			return false // a closing token where a value belongs: not JSON
		}
	case string:
		r.writeString(t)
	case json.Number:
		r.out.WriteString(t.String())
	case bool:
		if t {
			r.out.WriteString("true")
		} else {
			r.out.WriteString("false")
		}
	case nil:
		r.out.WriteString("null")
	}
	return true
}

// container copies the members or elements of the container just opened, and its end.
func (r *rewriter) container() bool {
	top := len(r.stack) - 1
	for r.dec.More() {
		if r.stack[top].n > 0 {
			r.out.WriteByte(',')
		}
		r.stack[top].n++
		if !r.stack[top].object {
			if !r.value() {
				return false
			}
			continue
		}
		tok, err := r.dec.Token()
		if err != nil {
			return false
		}
		key, ok := tok.(string)
		if !ok {
			return false
		}
		r.writeString(key)
		r.out.WriteByte(':')
		r.keys = append(r.keys, key)
		if r.p.matches(r.keys) {
			r.writeString(Marker)
			r.changed = true
			ok = r.skip()
		} else {
			ok = r.value()
		}
		r.keys = r.keys[:len(r.keys)-1]
		if !ok {
			return false
		}
	}
	tok, err := r.dec.Token() // the closing delimiter
	if err != nil {
		return false
	}
	if d, ok := tok.(json.Delim); ok {
		r.out.WriteByte(byte(d))
	}
	r.stack = r.stack[:top]
	return true
}

// skip reads one value without copying it.
func (r *rewriter) skip() bool {
	depth := 0
	for {
		tok, err := r.dec.Token()
		if err != nil {
			return false
		}
		if d, ok := tok.(json.Delim); ok {
			if d == '{' || d == '[' {
				depth++
			} else {
				depth--
			}
		}
		if depth == 0 {
			return true
		}
	}
}

func (r *rewriter) writeString(s string) {
	enc := json.NewEncoder(&r.out)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	r.out.Truncate(r.out.Len() - 1)
}
