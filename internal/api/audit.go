package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/redact"
	"github.com/heraldhq/herald/internal/store"
)

// The audit log records every change made through the API. Configuration changes (tenants, event
// types, endpoints, API keys) are written in the same transaction as the change, through
// store.WithAudit; queue operations (retry, resend, replay) and sensitive reads (an endpoint's
// secret, an export) are recorded right after they succeed, with recordAfter: a replay runs in
// many transactions, and a read has none.

// AuditEntry is one change made through the API.
type AuditEntry struct {
	ID       string          `json:"id" doc:"aud_<n>"`
	At       time.Time       `json:"at"`
	Actor    AuditActor      `json:"actor"`
	Action   string          `json:"action" doc:"resource.verb, e.g. endpoint.update, endpoint.secret_rotate, tenant.delete." example:"endpoint.update"`
	Resource AuditResource   `json:"resource"`
	TenantID string          `json:"tenant_id,omitempty" doc:"The tenant the resource belongs to; absent for global resources (event types, admin keys)."`
	Before   json.RawMessage `json:"before,omitempty" doc:"The resource before the change, as the API shows it, with secrets and header values replaced by [REDACTED]; absent for a create."`
	After    json.RawMessage `json:"after,omitempty" doc:"The resource after the change, likewise; absent for a delete."`
}

// AuditActor is the API key that made a change.
type AuditActor struct {
	KeyID    string `json:"key_id"`
	Role     string `json:"role" enum:"admin,tenant"`
	TenantID string `json:"tenant_id,omitempty" doc:"The tenant of a tenant key."`
}

// AuditResource names what was changed.
type AuditResource struct {
	Type string `json:"type" example:"endpoint"`
	ID   string `json:"id,omitempty" example:"ep_01h…"`
}

func auditOut(a *store.AuditEntry) AuditEntry {
	return AuditEntry{
		ID: "aud_" + strconv.FormatInt(a.ID, 10), At: a.At,
		Actor:  AuditActor{KeyID: a.ActorKeyID, Role: string(a.ActorRole), TenantID: a.ActorTenant},
		Action: a.Action, Resource: AuditResource{Type: a.ResourceType, ID: a.ResourceID}, TenantID: a.TenantID,
		Before: a.Before, After: a.After,
	}
}

// auditTime is the time of an audit entry (and of the change it records), at the precision the
// stores keep.
func (s *Server) auditTime() time.Time { return s.now().Truncate(time.Microsecond) }

// audit builds the entry of a change by the caller. before and after are snapshots (nil: none);
// they must hold no secret.
func (s *Server) audit(ctx context.Context, action, resType, resID, tenant string, before, after any) *store.AuditEntry {
	a := &store.AuditEntry{
		At: s.auditTime(), Action: action, ResourceType: resType, ResourceID: resID, TenantID: tenant,
		Before: s.snapshot(action, before), After: s.snapshot(action, after),
	}
	if p, ok := ctx.Value(principalKey{}).(principal); ok {
		a.ActorKeyID, a.ActorRole, a.ActorTenant = p.key.ID, p.key.Role, p.key.TenantID
	}
	return a
}

func (s *Server) snapshot(action string, v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Snapshots are the API's own answer types; this does not happen, but an entry without a
		// snapshot is better than a change without an entry.
		s.log.Error("audit snapshot", "action", action, "err", err)
		return nil
	}
	return b
}

// recordAfter writes the entry of a change already made. The change stands whatever happens
// here, so a failure is logged (with the entry) rather than answered.
func (s *Server) recordAfter(ctx context.Context, a *store.AuditEntry) {
	if err := s.st.RecordAudit(context.WithoutCancel(ctx), a); err != nil {
		s.log.Error("audit entry not recorded", "action", a.Action, "resource_type", a.ResourceType, "resource_id", a.ResourceID,
			"tenant", a.TenantID, "actor", a.ActorKeyID, "err", err)
	}
}

// endpointSnapshot is an endpoint as the audit log keeps it: what GET shows, with its secrets
// listed as markers (so that a rotation shows) and its header values hidden (they often carry
// credentials for the receiver).
type endpointSnapshot struct {
	Endpoint
	Secrets []secretMarker `json:"secrets"`
}

type secretMarker struct {
	Key       string     `json:"key"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

func (s *Server) endpointSnapshot(e *store.Endpoint) endpointSnapshot {
	out := endpointSnapshot{Endpoint: endpointOut(e, s.defaultSchedule()), Secrets: []secretMarker{}}
	out.Secret = ""
	h := make(map[string]string, len(out.Headers))
	for k := range out.Headers {
		h[k] = redact.Marker
	}
	out.Headers = h
	for _, sec := range e.Secrets {
		out.Secrets = append(out.Secrets, secretMarker{Key: redact.Marker, ExpiresAt: sec.ExpiresAt})
	}
	return out
}

// auditEndpoint returns ctx carrying the audit entry of a change of an endpoint: before is nil
// for a create, after for a delete.
func (s *Server) auditEndpoint(ctx context.Context, action string, before *endpointSnapshot, after *store.Endpoint) context.Context {
	var b, a any
	var id, tenant string
	if before != nil {
		b, id, tenant = before, before.ID, before.TenantID
	}
	if after != nil {
		a, id, tenant = s.endpointSnapshot(after), after.ID, after.TenantID
	}
	return store.WithAudit(ctx, s.audit(ctx, action, "endpoint", id, tenant, b, a))
}

// endpointUpdateAction names a change of an endpoint: enabling and disabling it are told apart.
func endpointUpdateAction(wasEnabled bool, e *store.Endpoint) string {
	switch {
	case e.Enabled && !wasEnabled:
		return "endpoint.enable"
	case !e.Enabled && wasEnabled:
		return "endpoint.disable"
	}
	return "endpoint.update"
}

// AuditQuery filters the audit log.
type AuditQuery struct {
	ListParams
	Action       string    `query:"action" maxLength:"64" doc:"Only this action, e.g. endpoint.update."`
	ResourceType string    `query:"resource_type" maxLength:"64" doc:"Only this resource type: tenant, event_type, endpoint, api_key, event, delivery, source, received_request."`
	ResourceID   string    `query:"resource_id" maxLength:"200" doc:"Only this resource."`
	Since        time.Time `query:"since" doc:"Only entries recorded at or after this time (RFC 3339)."`
	Until        time.Time `query:"until" doc:"Only entries recorded before this time (RFC 3339)."`
}

func (q *AuditQuery) filter(tenant string) (store.AuditFilter, error) {
	if err := noNUL("query.action", q.Action, "query.resource_type", q.ResourceType, "query.resource_id", q.ResourceID); err != nil {
		return store.AuditFilter{}, err
	}
	return store.AuditFilter{TenantID: tenant, Action: q.Action, ResourceType: q.ResourceType, ResourceID: q.ResourceID,
		Since: q.Since, Until: q.Until, Page: q.page()}, nil
}

func (s *Server) auditList(ctx context.Context, f store.AuditFilter) (*Out[ListBody[AuditEntry]], error) {
	es, next, err := s.st.ListAudit(ctx, f)
	if err != nil {
		return nil, s.fail(err, "audit log")
	}
	out := make([]AuditEntry, len(es))
	for i := range es {
		out[i] = auditOut(&es[i])
	}
	return &Out[ListBody[AuditEntry]]{Body: list(out, next)}, nil
}

func (s *Server) registerAudit() {
	tags := []string{"Audit log"}
	huma.Register(s.api, huma.Operation{
		OperationID: "list-audit", Method: http.MethodGet, Path: "/v1/audit", Tags: tags,
		Summary:     "List the audit log, newest first",
		Description: "Every change made through the API: who (the API key), what (action and resource), when, and the resource before and after, without secrets.",
		Metadata:    map[string]any{metaAdminOnly: true},
	}, func(ctx context.Context, in *struct {
		AuditQuery
		TenantID string `query:"tenant_id" maxLength:"64" doc:"Only entries about this tenant's resources."`
	}) (*Out[ListBody[AuditEntry]], error) {
		if err := noNUL("query.tenant_id", in.TenantID); err != nil {
			return nil, err
		}
		f, err := in.filter(in.TenantID)
		if err != nil {
			return nil, err
		}
		return s.auditList(ctx, f)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "list-tenant-audit", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/audit", Tags: tags,
		Summary:     "List a tenant's audit log, newest first",
		Description: "The entries about the tenant's resources since the tenant was created.",
	}, func(ctx context.Context, in *struct {
		TenantPath
		AuditQuery
	}) (*Out[ListBody[AuditEntry]], error) {
		f, err := in.filter(in.Tenant)
		if err != nil {
			return nil, err
		}
		t, err := s.st.GetTenant(ctx, in.Tenant)
		if err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		// Entries about an earlier tenant of the same id (deleted, then created again) are not
		// this tenant's.
		if f.Since.Before(t.CreatedAt) {
			f.Since = t.CreatedAt
		}
		return s.auditList(ctx, f)
	})
}
