package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/store"
)

// Key prefixes make a leaked key recognisable (secret scanners, logs) and say what it may do.
const (
	AdminKeyPrefix  = "hk_admin_"
	TenantKeyPrefix = "hk_tenant_"
)

// NewKey makes an API key for a role: the secret to show once, and the record to store (its hash).
func NewKey(role store.Role, tenantID, name string, now time.Time) (string, *store.APIKey, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("generate key: %w", err)
	}
	prefix := AdminKeyPrefix
	if role == store.RoleTenant {
		prefix = TenantKeyPrefix
	}
	secret := prefix + base64.RawURLEncoding.EncodeToString(b)
	k := &store.APIKey{
		ID: newID("key"), Name: name, Role: role, TenantID: tenantID,
		Hash: HashKey(secret), Prefix: secret[:len(prefix)+6], CreatedAt: now,
	}
	return secret, k, nil
}

// HashKey is how keys are stored: SHA-256 is enough because keys are 256 random bits, not passwords.
func HashKey(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

type principalKey struct{}

// principal is who is calling.
type principal struct {
	key *store.APIKey
	// expires is when a portal token stops working (zero for API keys).
	expires time.Time
}

func (p principal) admin() bool { return p.key.Role == store.RoleAdmin }

const metaAdminOnly = "admin-only"

// metaSecretBody marks operations whose request body carries secrets (a source's verification
// secrets, an endpoint's signing secret): their problems never quote the values sent.
const metaSecretBody = "secret-body"

// authenticate checks the bearer key of every API operation and scopes tenant keys to their
// tenant. A tenant key asking for another tenant gets 404, as if it did not exist, so it learns
// nothing about other tenants.
func (s *Server) authenticate(ctx huma.Context, next func(huma.Context)) {
	auth := ctx.Header("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || token == "" {
		ctx.SetHeader("WWW-Authenticate", `Bearer realm="herald"`)
		_ = huma.WriteErr(s.api, ctx, http.StatusUnauthorized, "missing API key: send Authorization: Bearer <key>")
		return
	}
	token = strings.TrimSpace(token)
	if strings.HasPrefix(token, PortalTokenPrefix) {
		s.authenticatePortal(ctx, token, next)
		return
	}
	hash := HashKey(token)
	key, err := s.keys.lookup(hash, time.Now())
	if key == nil {
		if key, err = s.st.APIKeyByHash(ctx.Context(), hash); err == nil {
			s.keys.remember(key, time.Now())
		}
	}
	if err != nil || subtle.ConstantTimeCompare(key.Hash, hash) != 1 {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.cannotCheck(ctx, "API key", err)
			return
		}
		s.authFailed(ctx, "invalid or revoked API key")
		return
	}
	s.authorize(ctx, principal{key: key}, next)
}

// cannotCheck answers a request whose credential could not be checked because the store failed:
// 503 with Retry-After, never 401, 403 or 404, which a client would take as final.
func (s *Server) cannotCheck(ctx huma.Context, what string, err error) {
	s.log.Error("check credential", "what", what, "err", err)
	ctx.SetHeader("Retry-After", "5")
	_ = huma.WriteErr(s.api, ctx, http.StatusServiceUnavailable, "cannot check the "+what+" now; try again later")
}

// authenticatePortal admits a portal token (portal.go) as a tenant key of its tenant until it
// expires, and while the tenant instance it was made for exists: a link dies with its tenant,
// even when a tenant of the same id is created later.
func (s *Server) authenticatePortal(ctx huma.Context, token string, next func(huma.Context)) {
	c, err := verifyPortalToken(s.cfg.PortalKey, token, s.now())
	if err != nil {
		s.authFailed(ctx, err.Error())
		return
	}
	t, err := s.st.GetTenant(ctx.Context(), c.Tenant)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.authFailed(ctx, errPortalToken.Error())
		return
	case err != nil:
		s.cannotCheck(ctx, "portal link", err)
		return
	case subtle.ConstantTimeCompare([]byte(t.UID), []byte(c.TenantUID)) != 1:
		s.authFailed(ctx, errPortalToken.Error())
		return
	}
	s.authorize(ctx, principal{key: portalKey(c), expires: time.Unix(c.Expiry, 0).UTC()}, next)
}

// authorize scopes an authenticated caller: a tenant key reaches its own tenant's routes only.
func (s *Server) authorize(ctx huma.Context, p principal, next func(huma.Context)) {
	key := p.key
	if !p.admin() {
		// Another tenant is checked first: its admin-only routes answer 404 too, not 403, so
		// that no answer differs between a tenant that exists and one that does not.
		if t := ctx.Param("tenant"); t != "" && t != key.TenantID {
			_ = huma.WriteErr(s.api, ctx, http.StatusNotFound, "tenant not found")
			return
		}
		if op := ctx.Operation(); op.Metadata[metaAdminOnly] == true {
			_ = huma.WriteErr(s.api, ctx, http.StatusForbidden, "this operation needs an admin key")
			return
		}
	}
	next(huma.WithValue(ctx, principalKey{}, p))
}

// newID makes a sortable unique id: prefix_ + 48 bits of milliseconds + 80 random bits, base32
// (the event package's scheme).
func newID(prefix string) string { return event.NewPrefixedID(prefix, time.Now()) }
