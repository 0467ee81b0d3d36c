package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/redact"
	"github.com/heraldhq/herald/internal/store"
)

// Tenant is a customer of the operator.
type Tenant struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	RedactFields []string `json:"redact_fields" doc:"JSON field paths (card.number, password) whose values the API shows as [REDACTED] in event data and attempt responses, and which are redacted in attempt responses before they are stored. A path matches at any depth; arrays are transparent. Endpoints receive payloads intact."`
	MaxEndpoints int      `json:"max_endpoints" doc:"The tenant's own bound on its endpoints (own_limits.max_endpoints), set by an admin; 0: its plan's or the node's default (--max-endpoints-per-tenant, 1000)."`
	Plan         string   `json:"plan" doc:"The plan whose limits the tenant has; empty for none."`
	// OwnLimits are the limits set on the tenant itself; Limits the effective ones.
	OwnLimits store.TenantLimits `json:"own_limits" doc:"Limits set on the tenant itself, which take precedence over its plan's."`
	Limits    map[string]Limit   `json:"limits,omitempty" doc:"The tenant's effective limits, each with where it comes from (as GET /v1/tenants/{tenant}/limits answers)."`
	CreatedAt time.Time          `json:"created_at"`
	UpdatedAt time.Time          `json:"updated_at"`
}

// tenantOut is a tenant as the API shows it, without its effective limits (withLimits adds them).
func tenantOut(t *store.Tenant) Tenant {
	rf := t.RedactFields
	if rf == nil {
		rf = []string{}
	}
	max := 0
	if t.Limits.MaxEndpoints != nil {
		max = *t.Limits.MaxEndpoints
	}
	return Tenant{ID: t.ID, Name: t.Name, RedactFields: rf, MaxEndpoints: max, Plan: t.Plan, OwnLimits: t.Limits, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
}

// withLimits is tenantOut with the tenant's effective limits.
func (s *Server) withLimits(ctx context.Context, t *store.Tenant) (Tenant, error) {
	out := tenantOut(t)
	eff, err := s.resolveLimits(ctx, t)
	if err != nil {
		return out, s.fail(err, "plan "+t.Plan)
	}
	out.Limits = eff.out()
	return out, nil
}

// applyPlanAndLimits sets a tenant's plan (which must exist) and own limits from a create or
// update body; maxEndpoints is the older field for own_limits.max_endpoints (0 clears it).
func (s *Server) applyPlanAndLimits(ctx context.Context, t *store.Tenant, plan *string, limits *store.TenantLimits, maxEndpoints *int) error {
	if limits != nil {
		if err := s.checkLimits("body.limits", *limits); err != nil {
			return err
		}
		t.Limits = *limits
	}
	if maxEndpoints != nil {
		t.Limits.MaxEndpoints = nil
		if *maxEndpoints > 0 {
			t.Limits.MaxEndpoints = maxEndpoints
		}
	}
	if plan != nil {
		if *plan != "" {
			if _, err := s.st.GetPlan(ctx, *plan); errors.Is(err, store.ErrNotFound) {
				return huma.Error422UnprocessableEntity("unknown plan", &huma.ErrorDetail{Location: "body.plan", Message: "no plan of this name; create it first", Value: *plan})
			} else if err != nil {
				return s.fail(err, "plan "+*plan)
			}
		}
		t.Plan = *plan
	}
	return nil
}

type createTenantInput struct {
	Body struct {
		ID           string              `json:"id" pattern:"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$" doc:"Your id for the tenant: letters, digits, '_', '.', '-', at most 64." example:"acme"`
		Name         string              `json:"name" minLength:"1" maxLength:"200" example:"Acme Inc"`
		RedactFields []string            `json:"redact_fields,omitempty" maxItems:"100" doc:"See the tenant's redact_fields." example:"[\"card.number\",\"password\"]"`
		MaxEndpoints int                 `json:"max_endpoints,omitempty" minimum:"0" maximum:"1000000" doc:"See the tenant's max_endpoints."`
		Plan         string              `json:"plan,omitempty" maxLength:"64" doc:"The plan whose limits the tenant has (it must exist)." example:"pro"`
		Limits       *store.TenantLimits `json:"limits,omitempty" doc:"The tenant's own limits, which take precedence over its plan's."`
	}
}

// checkRedactFields validates a tenant's redaction paths, naming each bad one.
func checkRedactFields(paths []string) error {
	var errs []error
	for i, p := range paths {
		if err := redact.Check(p); err != nil {
			errs = append(errs, &huma.ErrorDetail{Location: fmt.Sprintf("body.redact_fields[%d]", i), Message: err.Error(), Value: p})
		}
	}
	if len(errs) > 0 {
		return huma.Error422UnprocessableEntity("invalid redact_fields", errs...)
	}
	return nil
}

// TenantDeleted is the answer to deleting a tenant: how much was removed.
type TenantDeleted struct {
	TenantID string               `json:"tenant_id"`
	Deleted  store.TenantDeletion `json:"deleted" doc:"Rows removed, by kind. Event types are shared by all tenants and stay."`
}

type tenantInput struct {
	TenantPath
}

type updateTenantInput struct {
	TenantPath
	Body struct {
		Name         *string             `json:"name,omitempty" minLength:"1" maxLength:"200"`
		RedactFields []string            `json:"redact_fields,omitempty" maxItems:"100" doc:"Replaces the list; [] redacts nothing. See the tenant's redact_fields."`
		MaxEndpoints *int                `json:"max_endpoints,omitempty" minimum:"0" maximum:"1000000" doc:"The tenant's own bound on its endpoints; 0 returns it to the plan's or the node's default. Endpoints it already has above a lowered bound stay."`
		Plan         *string             `json:"plan,omitempty" maxLength:"64" doc:"The plan whose limits the tenant has (it must exist); empty for none."`
		Limits       *store.TenantLimits `json:"limits,omitempty" doc:"Replaces the tenant's own limits; {} leaves every limit to its plan or the node. What the tenant already has above a lowered limit stays."`
	}
}

type listTenantsInput struct {
	ListParams
}

func (s *Server) registerTenants() {
	admin := map[string]any{metaAdminOnly: true}
	huma.Register(s.api, huma.Operation{
		OperationID: "create-tenant", Method: http.MethodPost, Path: "/v1/tenants", Tags: []string{"Tenants"},
		Summary: "Create a tenant", DefaultStatus: http.StatusCreated, Metadata: admin,
	}, func(ctx context.Context, in *createTenantInput) (*Out[Tenant], error) {
		if err := noNUL("body.name", in.Body.Name); err != nil {
			return nil, err
		}
		if err := checkRedactFields(in.Body.RedactFields); err != nil {
			return nil, err
		}
		now := s.auditTime()
		t := &store.Tenant{ID: in.Body.ID, Name: in.Body.Name, RedactFields: in.Body.RedactFields, CreatedAt: now, UpdatedAt: now}
		if err := s.applyPlanAndLimits(ctx, t, &in.Body.Plan, in.Body.Limits, &in.Body.MaxEndpoints); err != nil {
			return nil, err
		}
		a := s.audit(ctx, "tenant.create", "tenant", t.ID, t.ID, nil, tenantOut(t))
		a.At = now // the tenant's audit log starts with its creation
		if err := s.st.CreateTenant(store.WithAudit(ctx, a), t); err != nil {
			return nil, s.fail(err, "tenant "+t.ID)
		}
		s.tenantLimits.forget(t.ID)
		out, err := s.withLimits(ctx, t)
		return &Out[Tenant]{Body: out}, err
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "list-tenants", Method: http.MethodGet, Path: "/v1/tenants", Tags: []string{"Tenants"},
		Summary: "List tenants", Metadata: admin,
	}, func(ctx context.Context, in *listTenantsInput) (*Out[ListBody[Tenant]], error) {
		ts, next, err := s.st.ListTenants(ctx, in.page())
		if err != nil {
			return nil, s.fail(err, "tenants")
		}
		out := make([]Tenant, len(ts))
		for i := range ts {
			out[i] = tenantOut(&ts[i])
		}
		return &Out[ListBody[Tenant]]{Body: list(out, next)}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "get-tenant", Method: http.MethodGet, Path: "/v1/tenants/{tenant}", Tags: []string{"Tenants"},
		Summary: "Get a tenant",
	}, func(ctx context.Context, in *tenantInput) (*Out[Tenant], error) {
		t, err := s.st.GetTenant(ctx, in.Tenant)
		if err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		out, err := s.withLimits(ctx, t)
		return &Out[Tenant]{Body: out}, err
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "update-tenant", Method: http.MethodPatch, Path: "/v1/tenants/{tenant}", Tags: []string{"Tenants"},
		Summary: "Change a tenant's name, redaction paths, plan or limits", Description: "Only the fields given change.", Metadata: admin,
	}, func(ctx context.Context, in *updateTenantInput) (*Out[Tenant], error) {
		if in.Body.Name != nil {
			if err := noNUL("body.name", *in.Body.Name); err != nil {
				return nil, err
			}
		}
		if err := checkRedactFields(in.Body.RedactFields); err != nil {
			return nil, err
		}
		t, err := s.st.GetTenant(ctx, in.Tenant)
		if err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		before := tenantOut(t)
		if in.Body.Name != nil {
			t.Name = *in.Body.Name
		}
		if err := s.applyPlanAndLimits(ctx, t, in.Body.Plan, in.Body.Limits, in.Body.MaxEndpoints); err != nil {
			return nil, err
		}
		if in.Body.RedactFields != nil {
			t.RedactFields = in.Body.RedactFields
			if len(t.RedactFields) == 0 {
				t.RedactFields = nil
			}
		}
		t.UpdatedAt = s.now()
		a := s.audit(ctx, "tenant.update", "tenant", t.ID, t.ID, before, tenantOut(t))
		if err := s.st.UpdateTenant(store.WithAudit(ctx, a), t); err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		s.tenantLimits.forget(t.ID)
		out, err := s.withLimits(ctx, t)
		return &Out[Tenant]{Body: out}, err
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "delete-tenant", Method: http.MethodDelete, Path: "/v1/tenants/{tenant}", Tags: []string{"Tenants"},
		Summary: "Delete a tenant with all its data",
		Description: "Removes the tenant's endpoints (with their secrets), events, deliveries, attempts and API keys, in small " +
			"transactions, and answers how many of each. Interrupted, the tenant stays; deleting it again finishes the job.",
		Metadata: admin,
	}, func(ctx context.Context, in *tenantInput) (*Out[TenantDeleted], error) {
		t, err := s.st.GetTenant(ctx, in.Tenant)
		if err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		// The endpoints' lanes are told once the endpoints are gone, so that none keeps sending.
		var endpoints []string
		for cursor := ""; ; {
			eps, next, err := s.st.ListEndpoints(ctx, in.Tenant, store.Page{Limit: store.MaxLimit, Cursor: cursor})
			if err != nil {
				return nil, s.fail(err, "endpoints")
			}
			for _, e := range eps {
				endpoints = append(endpoints, e.ID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		a := s.audit(ctx, "tenant.delete", "tenant", t.ID, t.ID, tenantOut(t), nil)
		// Before and after the change: a request between the two could remember one again.
		gone := func(k *store.APIKey) bool { return k.TenantID == in.Tenant }
		s.keys.forget(gone)
		defer s.keys.forget(gone)
		del, err := s.st.DeleteTenant(store.WithAudit(ctx, a), in.Tenant)
		s.tenantLimits.forget(in.Tenant)
		for _, id := range endpoints {
			s.cfg.Notifier.EndpointChanged(id)
		}
		if err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		s.log.Info("tenant deleted", "tenant", in.Tenant, "by", a.ActorKeyID, "events", del.Events, "deliveries", del.Deliveries,
			"attempts", del.Attempts, "endpoints", del.Endpoints, "api_keys", del.APIKeys)
		return &Out[TenantDeleted]{Body: TenantDeleted{TenantID: in.Tenant, Deleted: *del}}, nil
	})
}

// errTenantGone is what tenantInstance says when the tenant instance asked for no longer exists.
var errTenantGone = errors.New("the tenant was deleted")

// tenantInstance reads tenant id if it is still the instance uid: something opened for a tenant
// (a listen stream) must not carry on with a tenant created later with the same id.
func (s *Server) tenantInstance(ctx context.Context, id, uid string) (*store.Tenant, error) {
	t, err := s.st.GetTenant(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, errTenantGone
	case err != nil:
		return nil, fmt.Errorf("read tenant %s: %w", id, err)
	case t.UID != uid:
		return nil, errTenantGone
	}
	return t, nil
}
