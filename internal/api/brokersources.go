package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/inbound/schema"
	"github.com/heraldhq/herald/internal/source"
	"github.com/heraldhq/herald/internal/store"
)

// A broker source reads a message broker and turns each message into an event of the tenant
// (internal/source, docs/sources.md). Its settings are the broker type's; the fields the type
// names as secrets are write-only, kept on an update that omits them, and never audited.

// BrokerSource is a broker source as the API shows it.
type BrokerSource struct {
	ID       string         `json:"id"`
	TenantID string         `json:"tenant_id"`
	Name     string         `json:"name"`
	Type     string         `json:"type" doc:"The broker: one of the types this node runs (see docs/sources.md)."`
	Settings map[string]any `json:"config" doc:"The type's settings as checked, defaults filled, without its secrets."`
	// SecretsSet names the secret settings that hold a value.
	SecretsSet []string        `json:"config_secrets" doc:"The secret settings (passwords, tokens) that hold a value. Their values are never returned."`
	Mapping    source.Mapping  `json:"mapping"`
	Schema     json.RawMessage `json:"schema,omitempty" doc:"JSON Schema the event data must satisfy; a message that does not is quarantined."`
	Enabled    bool            `json:"enabled"`
	Health     BrokerHealth    `json:"health"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
}

// BrokerHealth is what the nodes' consumers last found of the broker.
type BrokerHealth struct {
	State     string    `json:"state" enum:"starting,healthy,unhealthy"`
	LastError string    `json:"last_error,omitempty" doc:"Why the broker could not be read, while unhealthy."`
	Since     time.Time `json:"since"`
}

// BrokerSourceFields are what a create or update sets.
type BrokerSourceFields struct {
	Name     *string         `json:"name,omitempty" maxLength:"200"`
	Type     *string         `json:"type,omitempty" maxLength:"40" doc:"The broker type (required on create; see docs/sources.md)."`
	Settings json.RawMessage `json:"config,omitempty" doc:"The type's settings (an object); each is checked, errors at body.config.<field>. Secret settings are write-only; on update, omit one to keep it."`
	Mapping  json.RawMessage `json:"mapping,omitempty" doc:"How a message becomes an event: {\"event_type\": {\"from\": \"subject|header|field|fixed\", \"prefix\"|\"name\"|\"path\"|\"value\"}, \"event_id\": {\"from\": \"message|header|field\", \"name\"|\"path\"}}."`
	Schema   json.RawMessage `json:"schema,omitempty" doc:"JSON Schema for the event data; {} removes it (as for event types, null is refused)."`
	Enabled  *bool           `json:"enabled,omitempty"`
}

// BrokerSourcePath names a broker source.
type BrokerSourcePath struct {
	TenantPath
	ID string `path:"id" maxLength:"64" doc:"A broker source id, bsrc_…"`
}

func (s *Server) brokerSourceOut(b *store.BrokerSource) BrokerSource {
	out := BrokerSource{ID: b.ID, TenantID: b.TenantID, Name: b.Name, Type: b.Type, Schema: b.Schema, Enabled: b.Enabled,
		Health: BrokerHealth{State: b.Health.State, LastError: b.Health.LastError, Since: b.Health.Since}, CreatedAt: b.CreatedAt,
		UpdatedAt: b.UpdatedAt, Settings: map[string]any{}, SecretsSet: []string{}}
	_ = json.Unmarshal(b.Settings, &out.Settings)
	var secrets []string
	if t, ok := s.cfg.SourceTypes.Get(b.Type); ok {
		secrets = t.Secrets()
	}
	for _, f := range secrets {
		if v, ok := out.Settings[f]; ok {
			delete(out.Settings, f)
			if v != nil && v != "" {
				out.SecretsSet = append(out.SecretsSet, f)
			}
		}
	}
	out.Mapping, _ = source.CheckMapping(b.Mapping)
	return out
}

// auditBrokerSource returns ctx carrying the audit entry of a change (before nil: a create;
// after nil: a delete). Snapshots are what GET shows: no secret.
func (s *Server) auditBrokerSource(ctx context.Context, action string, before, after *store.BrokerSource) context.Context {
	var b, a any
	var id, tenant string
	if before != nil {
		b, id, tenant = s.brokerSourceOut(before), before.ID, before.TenantID
	}
	if after != nil {
		a, id, tenant = s.brokerSourceOut(after), after.ID, after.TenantID
	}
	return store.WithAudit(ctx, s.audit(ctx, action, "broker_source", id, tenant, b, a))
}

func fieldDetails(prefix string, errs []*destination.FieldError) []error {
	details := make([]error, len(errs))
	for i, e := range errs {
		details[i] = &huma.ErrorDetail{Location: prefix + e.Field, Message: e.Message, Value: e.Value}
	}
	return details
}

func invalidField(loc, msg string) error {
	return huma.Error422UnprocessableEntity("invalid broker source", &huma.ErrorDetail{Location: loc, Message: msg})
}

// applyBrokerSource sets b from in: on create every field, on update those given. Settings
// omitting a secret keep the stored one (same type only).
func (s *Server) applyBrokerSource(in *BrokerSourceFields, b *store.BrokerSource, create bool) error {
	if in.Name != nil {
		if err := noNUL("body.name", *in.Name); err != nil {
			return err
		}
		b.Name = *in.Name
	}
	typeChanged := false
	if in.Type != nil && *in.Type != b.Type {
		b.Type, typeChanged = *in.Type, true
	}
	if create && b.Type == "" {
		return invalidField("body.type", "required: one of "+strings.Join(s.cfg.SourceTypes.Names(), ", "))
	}
	t, ok := s.cfg.SourceTypes.Get(b.Type)
	if !ok {
		names := s.cfg.SourceTypes.Names()
		if len(names) == 0 {
			return invalidField("body.type", "this server runs no broker source type")
		}
		return invalidField("body.type", "unknown broker source type; one of "+strings.Join(names, ", "))
	}
	var problems []error
	if in.Settings != nil || create || typeChanged {
		raw := in.Settings
		if raw == nil {
			if !create && !typeChanged {
				raw = b.Settings
			} else {
				return invalidField("body.config", "required: the "+b.Type+" settings")
			}
		}
		var given map[string]json.RawMessage
		if err := json.Unmarshal(raw, &given); err != nil || given == nil {
			return invalidField("body.config", "must be an object")
		}
		if !create && !typeChanged {
			// A secret the update omits keeps its stored value.
			var stored map[string]json.RawMessage
			_ = json.Unmarshal(b.Settings, &stored)
			for _, f := range t.Secrets() {
				if _, ok := given[f]; !ok {
					if v, ok := stored[f]; ok {
						given[f] = v
					}
				}
			}
			raw, _ = json.Marshal(given)
		}
		norm, errs := t.Check(raw)
		if len(errs) > 0 {
			problems = append(problems, fieldDetails("body.config.", errs)...)
		}
		b.Settings = norm
	}
	if in.Mapping != nil || create {
		m, errs := source.CheckMapping(in.Mapping)
		if len(errs) > 0 {
			problems = append(problems, fieldDetails("body.", errs)...)
		}
		b.Mapping, _ = json.Marshal(m)
	}
	// The settings' and the mapping's problems are answered together, so that a form shows
	// them all at once.
	if len(problems) > 0 {
		return huma.Error422UnprocessableEntity("invalid broker source", problems...)
	}
	if in.Schema != nil {
		// {} removes the schema, as for event types (null never reaches here: the API refuses
		// null for a declared field).
		if c := bytes.TrimSpace(in.Schema); string(c) == "{}" || string(c) == "null" {
			b.Schema = nil
		} else {
			if _, err := schema.Compile(in.Schema); err != nil {
				return invalidField("body.schema", err.Error())
			}
			var buf bytes.Buffer
			if err := json.Compact(&buf, in.Schema); err != nil {
				return invalidField("body.schema", "must be JSON")
			}
			b.Schema = buf.Bytes()
		}
	}
	if in.Enabled != nil {
		b.Enabled = *in.Enabled
	}
	return nil
}

func (s *Server) brokerSourcesChanged() {
	if s.cfg.BrokerSourcesChanged != nil {
		s.cfg.BrokerSourcesChanged()
	}
}

func (s *Server) registerBrokerSources() {
	tags := []string{"Broker sources"}
	types := "none"
	if names := s.cfg.SourceTypes.Names(); len(names) > 0 {
		types = strings.Join(names, ", ")
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "create-broker-source", Metadata: map[string]any{metaSecretBody: true}, Method: http.MethodPost,
		Path: "/v1/tenants/{tenant}/broker-sources", Tags: tags, Summary: "Create a broker source",
		Description: "A broker source reads a message broker (types on this server: " + types + ") and turns each message into an event " +
			"of the tenant, fanned out to its endpoints. Every node consumes it; a message is acknowledged to the broker only once its " +
			"event is stored. Secret settings are write-only.",
		DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *struct {
		TenantPath
		Body BrokerSourceFields
	}) (*Out[BrokerSource], error) {
		now := s.auditTime()
		b := &store.BrokerSource{ID: newID("bsrc"), TenantID: in.Tenant, Enabled: true, CreatedAt: now, UpdatedAt: now}
		if err := s.applyBrokerSource(&in.Body, b, true); err != nil {
			return nil, err
		}
		if err := s.st.CreateBrokerSource(s.auditBrokerSource(ctx, "broker_source.create", nil, b), b); err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		s.brokerSourcesChanged()
		return &Out[BrokerSource]{Body: s.brokerSourceOut(b)}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "list-broker-sources", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/broker-sources", Tags: tags,
		Summary: "List a tenant's broker sources",
	}, func(ctx context.Context, in *struct {
		TenantPath
		ListParams
	}) (*Out[ListBody[BrokerSource]], error) {
		if _, err := s.st.GetTenant(ctx, in.Tenant); err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		bs, next, err := s.st.ListBrokerSources(ctx, in.Tenant, in.page())
		if err != nil {
			return nil, s.fail(err, "broker sources")
		}
		out := make([]BrokerSource, len(bs))
		for i := range bs {
			out[i] = s.brokerSourceOut(&bs[i])
		}
		return &Out[ListBody[BrokerSource]]{Body: list(out, next)}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "get-broker-source", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/broker-sources/{id}", Tags: tags,
		Summary: "Get a broker source, with its health",
	}, func(ctx context.Context, in *BrokerSourcePath) (*Out[BrokerSource], error) {
		b, err := s.st.GetBrokerSource(ctx, in.Tenant, in.ID)
		if err != nil {
			return nil, s.fail(err, "broker source "+in.ID)
		}
		return &Out[BrokerSource]{Body: s.brokerSourceOut(b)}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "update-broker-source", Metadata: map[string]any{metaSecretBody: true}, Method: http.MethodPatch,
		Path: "/v1/tenants/{tenant}/broker-sources/{id}", Tags: tags, Summary: "Change a broker source",
		Description: "Only the fields given change; settings and mapping are replaced as a whole, but settings without a secret keep " +
			"the stored one. The nodes' consumers restart with the new configuration.",
	}, func(ctx context.Context, in *struct {
		BrokerSourcePath
		Body BrokerSourceFields
	}) (*Out[BrokerSource], error) {
		b, err := s.st.GetBrokerSource(ctx, in.Tenant, in.ID)
		if err != nil {
			return nil, s.fail(err, "broker source "+in.ID)
		}
		before := *b
		if err := s.applyBrokerSource(&in.Body, b, false); err != nil {
			return nil, err
		}
		b.UpdatedAt = s.auditTime()
		action := "broker_source.update"
		switch {
		case b.Enabled && !before.Enabled:
			action = "broker_source.enable"
		case !b.Enabled && before.Enabled:
			action = "broker_source.disable"
		}
		if err := s.st.UpdateBrokerSource(s.auditBrokerSource(ctx, action, &before, b), b); err != nil {
			return nil, s.fail(err, "broker source "+in.ID)
		}
		s.brokerSourcesChanged()
		return &Out[BrokerSource]{Body: s.brokerSourceOut(b)}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "delete-broker-source", Method: http.MethodDelete, Path: "/v1/tenants/{tenant}/broker-sources/{id}", Tags: tags,
		Summary:       "Delete a broker source with its quarantined messages",
		Description:   "The nodes stop consuming; unacknowledged messages stay on the broker. The events it made stay.",
		DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *BrokerSourcePath) (*struct{}, error) {
		b, err := s.st.GetBrokerSource(ctx, in.Tenant, in.ID)
		if err != nil {
			return nil, s.fail(err, "broker source "+in.ID)
		}
		if err := s.st.DeleteBrokerSource(s.auditBrokerSource(ctx, "broker_source.delete", b, nil), in.Tenant, in.ID); err != nil {
			return nil, s.fail(err, "broker source "+in.ID)
		}
		s.brokerSourcesChanged()
		return nil, nil
	})
}
