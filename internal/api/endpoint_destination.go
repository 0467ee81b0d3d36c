package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/store"
)

// An endpoint's destination: its type (webhook, the default, or one of the message broker types
// the node was built with) and, for a type other than webhook, the type's settings, given as
// "config". A webhook's destination is its url; the other types have none.
//
// Credentials in the config (the fields the type's Secrets() names) are sealed at rest and never
// shown: an answer carries the config without them and config_secrets, the names of those set.
// An update's config replaces the whole config, except that a credential it omits keeps its
// stored value (so that a client may send back the config it read); null removes one.

// destinationType is the type the endpoint will have after f, checked against the registry.
func (s *Server) destinationType(f *EndpointFields, e *store.Endpoint) (destination.Type, error) {
	name := e.DestinationType()
	if f.Type != nil {
		name = *f.Type
	}
	typ, ok := s.dests.Get(name)
	if !ok {
		return nil, &huma.ErrorDetail{Location: "body.type", Value: name,
			Message: fmt.Sprintf("unknown destination type; this server has: %s", strings.Join(s.dests.Names(), ", "))}
	}
	return typ, nil
}

// applyDestination validates the type, url and config of f and writes the type and settings
// into e (the url is apply's, for webhooks only).
func (s *Server) applyDestination(f *EndpointFields, e *store.Endpoint) []error {
	typ, err := s.destinationType(f, e)
	if err != nil {
		return []error{err}
	}
	name, changed := typ.Name(), typ.Name() != e.DestinationType()
	var errs []error
	if name == destination.TypeWebhook {
		if f.URL == nil && e.URL == "" && changed {
			errs = append(errs, &huma.ErrorDetail{Location: "body.url", Message: "required: a webhook endpoint's destination is its url"})
		}
	} else if f.URL != nil && *f.URL != "" {
		errs = append(errs, &huma.ErrorDetail{Location: "body.url", Value: *f.URL,
			Message: fmt.Sprintf("only for webhook endpoints: a %s endpoint's destination is its config", name)})
	}
	if f.Config == nil && !changed {
		return errs
	}
	given := f.Config
	merged := map[string]any{}
	secrets := typ.Secrets()
	if !changed && len(e.Settings) > 0 {
		// A credential the update omits keeps its stored value.
		var stored map[string]any
		if err := json.Unmarshal(e.Settings, &stored); err == nil {
			for _, k := range secrets {
				if v, ok := stored[k]; ok {
					merged[k] = v
				}
			}
		}
	}
	for k, v := range given {
		if v == nil && slices.Contains(secrets, k) {
			delete(merged, k) // null removes a credential
			continue
		}
		merged[k] = v
	}
	var raw json.RawMessage
	if f.Config != nil || name != destination.TypeWebhook {
		b, err := json.Marshal(merged)
		if err != nil {
			return append(errs, &huma.ErrorDetail{Location: "body.config", Message: "not a JSON object: " + err.Error()})
		}
		raw = b
	}
	settings, ferrs := typ.Check(raw)
	for _, fe := range ferrs {
		loc := "body.config"
		if fe.Field != "" {
			loc += "." + fe.Field
		}
		d := &huma.ErrorDetail{Location: loc, Message: fe.Message}
		if !slices.Contains(secrets, fe.Field) {
			d.Value = fe.Value
		}
		errs = append(errs, d)
	}
	if len(ferrs) == 0 {
		if bytes.Equal(settings, []byte("null")) {
			settings = nil
		}
		e.Type, e.Settings, e.SecretFields = name, settings, secrets
		if name != destination.TypeWebhook {
			e.URL = ""
		}
	}
	return errs
}

// checkSignatureForType refuses a signature format other than Standard Webhooks for a type other
// than webhook: its messages carry the Standard Webhooks headers as message headers.
func checkSignatureForType(e *store.Endpoint) []error {
	if e.DestinationType() == destination.TypeWebhook || e.Options.Signature == "" || e.Options.Signature == store.SignatureStandard {
		return nil
	}
	return []error{&huma.ErrorDetail{Location: "body.signature_format", Value: e.Options.Signature,
		Message: fmt.Sprintf("a %s endpoint's messages carry Standard Webhooks headers: only standard-webhooks", e.DestinationType())}}
}

// configOut is the endpoint's config as answers show it: without its credentials, and the names
// of those that are set.
func configOut(e *store.Endpoint) (map[string]any, []string) {
	if len(e.Settings) == 0 {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(e.Settings, &m); err != nil {
		return nil, nil
	}
	var set []string
	for _, k := range e.SecretFields {
		if _, ok := m[k]; ok {
			set = append(set, k)
			delete(m, k)
		}
	}
	slices.Sort(set)
	return m, set
}

// destinationOut is where the endpoint's messages go: its config without credentials, as
// answers show it.
func destinationOut(e *store.Endpoint) map[string]any {
	m, _ := configOut(e)
	return m
}

// documentTypes puts the registries' type names into the OpenAPI schemas of the endpoint and
// broker source bodies and answers, as the enum of "type", and makes their "config" an object
// (huma builds the schemas from the structs, which cannot know which types the node was built
// with). Validation uses the same schemas.
func (s *Server) documentTypes() {
	s.documentTypeEnum(s.dests.Names(), "Endpoint", "/v1/tenants/{tenant}/endpoints", "/v1/tenants/{tenant}/endpoints/{id}")
	if names := s.cfg.SourceTypes.Names(); len(names) > 0 {
		// Without types, the enum would refuse everything: the handler says why instead.
		s.documentTypeEnum(names, "BrokerSource", "/v1/tenants/{tenant}/broker-sources", "/v1/tenants/{tenant}/broker-sources/{id}")
	}
}

// documentTypeEnum sets the "type" enum and the "config" object type in the request bodies of
// the paths' operations and in the answer schema named component.
func (s *Server) documentTypeEnum(names []string, component string, paths ...string) {
	oapi := s.api.OpenAPI()
	enum := make([]any, len(names))
	for i, n := range names {
		enum[i] = n
	}
	seen := map[*huma.Schema]bool{}
	set := func(sch *huma.Schema) {
		if sch == nil {
			return
		}
		if sch.Ref != "" {
			sch = oapi.Components.Schemas.SchemaFromRef(sch.Ref)
		}
		if sch == nil || seen[sch] {
			return
		}
		seen[sch] = true
		if p := sch.Properties["type"]; p != nil {
			p.Enum = enum
			p.PrecomputeMessages()
		}
		if p := sch.Properties["config"]; p != nil && p.Type == "" {
			p.Type = huma.TypeObject
			p.PrecomputeMessages()
		}
	}
	for _, path := range paths {
		item := oapi.Paths[path]
		if item == nil {
			continue
		}
		for _, op := range []*huma.Operation{item.Post, item.Patch, item.Get} {
			if op == nil {
				continue
			}
			if op.RequestBody != nil {
				if mt := op.RequestBody.Content["application/json"]; mt != nil {
					set(mt.Schema)
				}
			}
		}
	}
	set(oapi.Components.Schemas.Map()[component])
}
