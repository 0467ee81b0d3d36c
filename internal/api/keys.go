package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/store"
)

// APIKey describes a key; the secret itself is only in the answer that created it.
type APIKey struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      string     `json:"role" enum:"admin,tenant"`
	TenantID  string     `json:"tenant_id,omitempty"`
	Prefix    string     `json:"prefix" doc:"The key's first characters, to recognise it."`
	Key       string     `json:"key,omitempty" doc:"The secret: shown once, when the key is created."`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

func keyOut(k *store.APIKey) APIKey {
	return APIKey{ID: k.ID, Name: k.Name, Role: string(k.Role), TenantID: k.TenantID, Prefix: k.Prefix, CreatedAt: k.CreatedAt, RevokedAt: k.RevokedAt}
}

type createKeyInput struct {
	Body struct {
		Name     string `json:"name,omitempty" maxLength:"200"`
		Role     string `json:"role" enum:"admin,tenant"`
		TenantID string `json:"tenant_id,omitempty" maxLength:"64" doc:"Required for a tenant key."`
	}
}

func (s *Server) registerKeys() {
	admin := map[string]any{metaAdminOnly: true}
	huma.Register(s.api, huma.Operation{
		OperationID: "create-api-key", Method: http.MethodPost, Path: "/v1/api-keys", Tags: []string{"API keys"},
		Summary: "Create an API key (admin, or scoped to one tenant)", DefaultStatus: http.StatusCreated, Metadata: admin,
	}, func(ctx context.Context, in *createKeyInput) (*Out[APIKey], error) {
		if err := noNUL("body.name", in.Body.Name); err != nil {
			return nil, err
		}
		role := store.Role(in.Body.Role)
		var uid string // the tenant instance a tenant key is bound to
		if role == store.RoleTenant {
			if in.Body.TenantID == "" {
				return nil, huma.Error422UnprocessableEntity("a tenant key needs a tenant", &huma.ErrorDetail{Location: "body.tenant_id", Message: "required when role is tenant"})
			}
			t, err := s.st.GetTenant(ctx, in.Body.TenantID)
			if err != nil {
				return nil, s.fail(err, "tenant "+in.Body.TenantID)
			}
			uid = t.UID
		} else if in.Body.TenantID != "" {
			return nil, huma.Error422UnprocessableEntity("an admin key has no tenant", &huma.ErrorDetail{Location: "body.tenant_id", Message: "must be empty when role is admin", Value: in.Body.TenantID})
		}
		secret, k, err := NewKey(role, in.Body.TenantID, in.Body.Name, s.now())
		if err != nil {
			return nil, s.fail(err, "api key")
		}
		k.TenantUID = uid
		a := s.audit(ctx, "api_key.create", "api_key", k.ID, k.TenantID, nil, keyOut(k))
		if err := s.st.CreateAPIKey(store.WithAudit(ctx, a), k); err != nil {
			if errors.Is(err, store.ErrNotFound) { // the tenant was deleted meanwhile
				return nil, s.fail(err, "tenant "+in.Body.TenantID)
			}
			return nil, s.fail(err, "api key")
		}
		out := keyOut(k)
		out.Key = secret
		return &Out[APIKey]{Body: out}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "list-api-keys", Method: http.MethodGet, Path: "/v1/api-keys", Tags: []string{"API keys"},
		Summary: "List API keys", Metadata: admin,
	}, func(ctx context.Context, in *struct{}) (*Out[ListBody[APIKey]], error) {
		ks, err := s.st.ListAPIKeys(ctx)
		if err != nil {
			return nil, s.fail(err, "api keys")
		}
		out := make([]APIKey, len(ks))
		for i := range ks {
			out[i] = keyOut(&ks[i])
		}
		return &Out[ListBody[APIKey]]{Body: list(out, "")}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "revoke-api-key", Method: http.MethodDelete, Path: "/v1/api-keys/{id}", Tags: []string{"API keys"},
		Summary: "Revoke an API key", DefaultStatus: http.StatusNoContent, Metadata: admin,
	}, func(ctx context.Context, in *struct {
		ID string `path:"id" maxLength:"64"`
	}) (*struct{}, error) {
		keys, err := s.st.ListAPIKeys(ctx)
		if err != nil {
			return nil, s.fail(err, "api keys")
		}
		var k *store.APIKey
		for i := range keys {
			if keys[i].ID == in.ID && keys[i].RevokedAt == nil {
				k = &keys[i]
			}
		}
		if k == nil {
			return nil, huma.Error404NotFound("api key " + in.ID + " not found")
		}
		before := keyOut(k)
		revoked := s.auditTime()
		k.RevokedAt = &revoked
		a := s.audit(ctx, "api_key.revoke", "api_key", k.ID, k.TenantID, before, keyOut(k))
		// Before and after the change: a request between the two could remember it again.
		isRevoked := func(k *store.APIKey) bool { return k.ID == in.ID }
		s.keys.forget(isRevoked)
		defer s.keys.forget(isRevoked)
		if err := s.st.RevokeAPIKey(store.WithAudit(ctx, a), in.ID); err != nil {
			return nil, s.fail(err, "api key "+in.ID)
		}
		return nil, nil
	})
}
