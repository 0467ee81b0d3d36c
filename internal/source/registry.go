package source

import (
	"errors"
	"fmt"
	"io"
	"slices"
)

// Registry is the broker source types a node offers, by name.
type Registry struct {
	types map[string]Type
}

// NewRegistry makes a registry of types; two with one name are refused.
func NewRegistry(types ...Type) (*Registry, error) {
	r := &Registry{types: map[string]Type{}}
	for _, t := range types {
		if _, ok := r.types[t.Name()]; ok {
			return nil, fmt.Errorf("broker source type %q registered twice", t.Name())
		}
		r.types[t.Name()] = t
	}
	return r, nil
}

// Get finds a type by name.
func (r *Registry) Get(name string) (Type, bool) {
	if r == nil {
		return nil, false
	}
	t, ok := r.types[name]
	return t, ok
}

// Names lists the types' names, sorted.
func (r *Registry) Names() []string {
	if r == nil {
		return nil
	}
	out := make([]string, 0, len(r.types))
	for n := range r.types {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Types is the registry as the Manager takes it.
func (r *Registry) Types() map[string]Type {
	if r == nil {
		return nil
	}
	return r.types
}

// Close closes the types that hold connections of their own (those with a Close method), once
// the node's consumers have stopped.
func (r *Registry) Close() error {
	var errs []error
	for _, name := range r.Names() {
		t, _ := r.Get(name)
		if c, ok := t.(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close %s sources: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}
