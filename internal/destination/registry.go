package destination

import (
	"errors"
	"fmt"
	"slices"
)

// TypeWebhook is the name of the webhook type: an HTTPS POST, an endpoint's default type.
const TypeWebhook = "webhook"

// Registry is the destination types a node knows, by name. The node builds it once at start
// and hands it to the API (which checks endpoints' settings against it) and the dispatcher
// (which opens senders from it). It is read only after NewRegistry, so safe for concurrent use.
type Registry struct {
	types map[string]Type
	names []string
}

// NewRegistry makes a registry of the types, which must have distinct names.
func NewRegistry(types ...Type) (*Registry, error) {
	r := &Registry{types: make(map[string]Type, len(types))}
	for _, t := range types {
		name := t.Name()
		if name == "" {
			return nil, errors.New("destination type with an empty name")
		}
		if _, dup := r.types[name]; dup {
			return nil, fmt.Errorf("destination type %q registered twice", name)
		}
		r.types[name] = t
		r.names = append(r.names, name)
	}
	slices.Sort(r.names)
	return r, nil
}

// Names are the types' names, sorted.
func (r *Registry) Names() []string { return slices.Clone(r.names) }

// Get is the type of that name.
func (r *Registry) Get(name string) (Type, bool) {
	t, ok := r.types[name]
	return t, ok
}

// Open opens a sender for an endpoint of the named type.
func (r *Registry) Open(name string, t Target) (Sender, error) {
	typ, ok := r.types[name]
	if !ok {
		return nil, fmt.Errorf("endpoint %s: unknown destination type %q", t.EndpointID, name)
	}
	s, err := typ.Open(t)
	if err != nil {
		return nil, fmt.Errorf("endpoint %s: open %s destination: %w", t.EndpointID, name, err)
	}
	return s, nil
}

// Close closes every type (their pooled connections), and returns their errors joined.
func (r *Registry) Close() error {
	var errs []error
	for _, name := range r.names {
		if err := r.types[name].Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s destinations: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
