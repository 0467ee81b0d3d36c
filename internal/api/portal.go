package api

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/store"
)

// A portal link lets an operator hand one of its customers (a tenant) the dashboard, limited to
// that tenant, for a short time, without creating an API key. The link carries a portal token in
// its URL fragment (which browsers send to no server and put in no Referer); the dashboard uses the
// token as its Bearer credential. The token is stateless:
//
//	hk_portal_<base64url(JSON {"t": tenant, "u": tenant instance, "e": expiry in Unix seconds, "i": link id})>.<base64url(HMAC-SHA256)>
//
// signed with Config.PortalKey, a key derived from the encryption master key (seal.Keyring.Derive):
// every node sharing the master key accepts the link, a copy of the database cannot forge one, and
// rotating the master key voids every outstanding link. A portal token acts as a tenant key of its
// tenant (never an admin). Its expiry is checked on every request, and so is its tenant instance
// (store.Tenant.UID): deleting the tenant voids the link, even if a tenant of the same id is
// created later. Links minted before tenants had instances carry none and are refused.

// PortalTokenPrefix starts every portal token, so that a leaked one is recognisable.
const PortalTokenPrefix = "hk_portal_"

// Portal link lifetimes, in seconds.
const (
	defaultPortalTTL = 3600
	maxPortalTTL     = 86400
)

// portalClaims is what a portal token says.
type portalClaims struct {
	Tenant    string `json:"t"`
	TenantUID string `json:"u"`
	Expiry    int64  `json:"e"`
	ID        string `json:"i"`
}

// signPortalToken makes the token of c with key.
func signPortalToken(key []byte, c portalClaims) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode portal token: %w", err)
	}
	body := PortalTokenPrefix + base64.RawURLEncoding.EncodeToString(payload)
	return body + "." + base64.RawURLEncoding.EncodeToString(portalMAC(key, body)), nil
}

func portalMAC(key []byte, body string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(body))
	return m.Sum(nil)
}

// errPortalToken is every reason a portal token is refused; the caller learns no more than that.
var errPortalToken = errors.New("invalid or expired portal link")

// verifyPortalToken checks the signature and the expiry of a portal token and returns its claims.
func verifyPortalToken(key []byte, token string, now time.Time) (*portalClaims, error) {
	if len(key) == 0 || len(token) > 1024 {
		return nil, errPortalToken
	}
	body, sig, ok := strings.Cut(token, ".")
	if !ok || !strings.HasPrefix(body, PortalTokenPrefix) {
		return nil, errPortalToken
	}
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(mac, portalMAC(key, body)) {
		return nil, errPortalToken
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(body, PortalTokenPrefix))
	if err != nil {
		return nil, errPortalToken
	}
	var c portalClaims
	if err := json.Unmarshal(payload, &c); err != nil || c.Tenant == "" || c.TenantUID == "" || c.ID == "" {
		return nil, errPortalToken
	}
	if !now.Before(time.Unix(c.Expiry, 0)) {
		return nil, errPortalToken
	}
	return &c, nil
}

// portalKey is the principal of a portal token: a tenant key that exists only in the request. Its
// id names the link, so the audit log and the rate limit tell links apart.
func portalKey(c *portalClaims) *store.APIKey {
	return &store.APIKey{ID: c.ID, Name: "portal link", Role: store.RoleTenant, TenantID: c.Tenant, TenantUID: c.TenantUID, Prefix: PortalTokenPrefix}
}

// PortalLink is the answer to a portal link request.
type PortalLink struct {
	ID        string    `json:"id" doc:"The link's id (portal_…); the audit log names its sessions' changes by it."`
	URL       string    `json:"url" doc:"The dashboard URL to give the tenant; it carries the credential, so treat it as a secret."`
	ExpiresAt time.Time `json:"expires_at"`
}

type portalLinkInput struct {
	TenantPath
	IngestOrigin
	Body *struct {
		ExpiresInSeconds int `json:"expires_in_seconds,omitempty" minimum:"60" maximum:"86400" doc:"How long the link works; default 3600."`
	} `required:"false"`
}

// Caller is the answer of GET /v1/me.
type Caller struct {
	KeyID     string     `json:"key_id" doc:"The API key's id, or the portal link's (portal_…)."`
	Role      string     `json:"role" enum:"admin,tenant"`
	TenantID  string     `json:"tenant_id,omitempty" doc:"The tenant a tenant key or portal link is limited to."`
	Portal    bool       `json:"portal" doc:"Whether the credential is a portal link."`
	ExpiresAt *time.Time `json:"expires_at,omitempty" doc:"When a portal link's credential stops working."`
}

func (s *Server) registerPortal() {
	huma.Register(s.api, huma.Operation{
		OperationID: "get-me", Method: http.MethodGet, Path: "/v1/me", Tags: []string{"API keys"},
		Summary:     "Describe the caller's credential",
		Description: "What the dashboard asks after sign-in: the role, and the tenant of a tenant key or portal link.",
	}, func(ctx context.Context, _ *struct{}) (*Out[Caller], error) {
		p, ok := ctx.Value(principalKey{}).(principal)
		if !ok {
			return nil, huma.Error401Unauthorized("missing API key")
		}
		out := Caller{KeyID: p.key.ID, Role: string(p.key.Role), TenantID: p.key.TenantID, Portal: !p.expires.IsZero()}
		if out.Portal {
			out.ExpiresAt = &p.expires
		}
		return &Out[Caller]{Body: out}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "create-portal-link", Method: http.MethodPost, Path: "/v1/tenants/{tenant}/portal-links", Tags: []string{"Tenants"},
		Summary:       "Create a short-lived link to the dashboard, limited to one tenant",
		Description:   "The link opens the dashboard signed in as the tenant, with a tenant key's powers, until it expires (default 1 h, at most 24 h). It cannot be revoked before then, except by deleting the tenant (a tenant created later with the same id does not revive it) or by rotating the encryption master key, which voids every link.",
		DefaultStatus: http.StatusCreated, Metadata: map[string]any{metaAdminOnly: true},
	}, func(ctx context.Context, in *portalLinkInput) (*Out[PortalLink], error) {
		if len(s.cfg.PortalKey) == 0 {
			return nil, huma.Error503ServiceUnavailable("portal links are not configured on this server")
		}
		ttl := defaultPortalTTL
		if in.Body != nil && in.Body.ExpiresInSeconds != 0 {
			ttl = in.Body.ExpiresInSeconds
		}
		t, err := s.st.GetTenant(ctx, in.Tenant)
		if err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		var rnd [12]byte
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, s.fail(fmt.Errorf("portal link id: %w", err), "portal link")
		}
		expires := s.now().Add(time.Duration(ttl) * time.Second).Truncate(time.Second)
		c := portalClaims{Tenant: in.Tenant, TenantUID: t.UID, Expiry: expires.Unix(), ID: "portal_" + base64.RawURLEncoding.EncodeToString(rnd[:])}
		token, err := signPortalToken(s.cfg.PortalKey, c)
		if err != nil {
			return nil, s.fail(err, "portal link")
		}
		base := strings.TrimRight(s.cfg.PublicURL, "/")
		if base == "" {
			base = in.base
		}
		out := PortalLink{ID: c.ID, URL: base + "/ui/#portal=" + token, ExpiresAt: expires}
		// The entry names the link and its expiry, never the token.
		s.recordAfter(ctx, s.audit(ctx, "portal_link.create", "portal_link", c.ID, in.Tenant, nil, struct {
			ID        string    `json:"id"`
			ExpiresAt time.Time `json:"expires_at"`
		}{c.ID, expires}))
		return &Out[PortalLink]{Body: out}, nil
	})
}
