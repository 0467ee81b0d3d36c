package store

import (
	"context"
	"encoding/json"
	"time"
)

// AuditEntry records one change made through the API: who made it (the API key), what it was
// (an action such as "endpoint.update" on a resource), when, and the resource before and after.
// Snapshots never hold secrets: the API replaces them by a marker before it builds the entry.
type AuditEntry struct {
	ID           int64
	At           time.Time
	ActorKeyID   string
	ActorRole    Role
	ActorTenant  string // the tenant of a tenant key; empty for an admin key
	Action       string // resource.verb: "tenant.create", "endpoint.secret_rotate", …
	ResourceType string
	ResourceID   string
	TenantID     string          // the tenant the resource belongs to; empty for global resources
	Before       json.RawMessage // nil when there was nothing before (a create)
	After        json.RawMessage // nil when nothing is left (a delete)
}

// AuditFilter selects audit entries; empty fields match everything.
type AuditFilter struct {
	TenantID     string
	Action       string
	ResourceType string
	ResourceID   string
	Since        time.Time // at or after
	Until        time.Time // before
	Page
}

// TenantDeletion counts what deleting a tenant removed.
type TenantDeletion struct {
	Events     int `json:"events"`
	Deliveries int `json:"deliveries"`
	Attempts   int `json:"attempts"`
	Endpoints  int `json:"endpoints"`
	APIKeys    int `json:"api_keys"`
	Sources    int `json:"sources"`
	Received   int `json:"received_requests"`
}

type auditKey struct{}

// WithAudit returns a context that carries an audit entry for the one store write it is passed
// to: the configuration writes (creating, changing and deleting tenants, event types, endpoints
// and API keys) record it in the same transaction as their change, and only if the change is
// made, setting its ID. A nil entry hides one that ctx carries.
//
// The entry travels in the context rather than as an argument so that the write methods keep one
// signature whether or not a change is audited (the engine's own writes are not).
func WithAudit(ctx context.Context, e *AuditEntry) context.Context {
	return context.WithValue(ctx, auditKey{}, e)
}

// AuditFrom returns the audit entry that ctx carries for a write, or nil.
func AuditFrom(ctx context.Context) *AuditEntry {
	e, _ := ctx.Value(auditKey{}).(*AuditEntry)
	return e
}
