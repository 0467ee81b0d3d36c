package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/heraldhq/herald/internal/store"
)

// A database of the first release is migrated forward at open and keeps its data.
func TestMigrate_FromAnOlderVersionKeepsData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "herald.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, sub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO tenants (id, name, created_at, updated_at) VALUES ('acme', 'Acme', 1, 1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO api_keys (id, role, tenant_id, hash, prefix, created_at) VALUES ('k', 'tenant', 'acme', CAST('old-key-hash' AS BLOB), 'hk_tenant_x', 1)`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tn, err := s.GetTenant(ctx, "acme")
	if err != nil || tn.Name != "Acme" || tn.RedactFields != nil {
		t.Fatalf("the tenant after the migration: %+v, %v", tn, err)
	}
	if err := s.RecordAudit(ctx, &store.AuditEntry{Action: "tenant.update", ResourceType: "tenant", ResourceID: "acme", TenantID: "acme"}); err != nil {
		t.Fatalf("the audit log after the migration: %v", err)
	}
	// Migration 8: the tenant has an instance, and its key is bound to it.
	if k, err := s.APIKeyByHash(ctx, []byte("old-key-hash")); len(tn.UID) != 32 || err != nil || k.TenantUID != tn.UID {
		t.Fatalf("after migration 8: tenant instance %q, key %+v, %v", tn.UID, k, err)
	}
}
