package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/store"
)

// Tenant is a customer of the operator.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func tenantOut(t *store.Tenant) Tenant {
	return Tenant{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
}

type createTenantInput struct {
	Body struct {
		ID   string `json:"id" pattern:"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$" doc:"Your id for the tenant: letters, digits, '_', '.', '-', at most 64." example:"acme"`
		Name string `json:"name" minLength:"1" maxLength:"200" example:"Acme Inc"`
	}
}

type tenantInput struct {
	TenantPath
}

type updateTenantInput struct {
	TenantPath
	Body struct {
		Name string `json:"name" minLength:"1" maxLength:"200"`
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
		now := s.now()
		t := &store.Tenant{ID: in.Body.ID, Name: in.Body.Name, CreatedAt: now, UpdatedAt: now}
		if err := s.st.CreateTenant(ctx, t); err != nil {
			return nil, s.fail(err, "tenant "+t.ID)
		}
		return &Out[Tenant]{Body: tenantOut(t)}, nil
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
		return &Out[Tenant]{Body: tenantOut(t)}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "update-tenant", Method: http.MethodPatch, Path: "/v1/tenants/{tenant}", Tags: []string{"Tenants"},
		Summary: "Rename a tenant", Metadata: admin,
	}, func(ctx context.Context, in *updateTenantInput) (*Out[Tenant], error) {
		if err := noNUL("body.name", in.Body.Name); err != nil {
			return nil, err
		}
		t, err := s.st.GetTenant(ctx, in.Tenant)
		if err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		t.Name, t.UpdatedAt = in.Body.Name, s.now()
		if err := s.st.UpdateTenant(ctx, t); err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		return &Out[Tenant]{Body: tenantOut(t)}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "delete-tenant", Method: http.MethodDelete, Path: "/v1/tenants/{tenant}", Tags: []string{"Tenants"},
		Summary: "Delete a tenant with its endpoints, events, deliveries and keys", DefaultStatus: http.StatusNoContent, Metadata: admin,
	}, func(ctx context.Context, in *tenantInput) (*struct{}, error) {
		if err := s.st.DeleteTenant(ctx, in.Tenant); err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		return nil, nil
	})
}
