package node

import (
	"context"
	"log/slog"
	"math"
	"time"

	"github.com/heraldhq/herald/internal/destination"
	webhookdest "github.com/heraldhq/herald/internal/destination/webhook"
	"github.com/heraldhq/herald/internal/ops"
	"github.com/heraldhq/herald/internal/store"
)

// DefaultCertificateCheck is how often a node looks for client certificates about to expire.
const DefaultCertificateCheck = time.Hour

// certWatch publishes endpoint.certificate_expiring for the enabled webhook endpoints whose
// mutual TLS client certificate expires within ops.CertificateExpiringWithin. Each node checks
// every endpoint every interval; an endpoint and certificate is reported once: this process
// remembers what it reported, and the event's id (endpoint and fingerprint) makes a second
// publish of it, by another node or after a restart, a duplicate the store keeps only once
// (for as long as it keeps the event, --retention). A rotated certificate is a new one.
type certWatch struct {
	st    store.Store
	ops   *ops.Publisher
	log   *slog.Logger
	every time.Duration
	now   func() time.Time
	sent  map[string]bool // endpoint id + fingerprint
}

func (w *certWatch) run(ctx context.Context) {
	if w.ops == nil {
		return // operational events are off
	}
	if w.every <= 0 {
		w.every = DefaultCertificateCheck
	}
	w.sent = map[string]bool{}
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		if err := w.check(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("check client certificates for expiry", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check pages through every tenant's endpoints once.
func (w *certWatch) check(ctx context.Context) error {
	now := w.now()
	seen := map[string]bool{}
	var tenantCursor string
	for {
		tenants, next, err := w.st.ListTenants(ctx, store.Page{Limit: 100, Cursor: tenantCursor})
		if err != nil {
			return err
		}
		for _, tn := range tenants {
			if err := w.checkTenant(ctx, tn.ID, now, seen); err != nil {
				return err
			}
		}
		if next == "" {
			break
		}
		tenantCursor = next
	}
	// Forget what is no longer there (a deleted endpoint, a replaced certificate), so the
	// memory stays the size of the expiring certificates.
	for k := range w.sent {
		if !seen[k] {
			delete(w.sent, k)
		}
	}
	return nil
}

func (w *certWatch) checkTenant(ctx context.Context, tenant string, now time.Time, seen map[string]bool) error {
	var cursor string
	for {
		eps, next, err := w.st.ListEndpoints(ctx, tenant, store.Page{Limit: 100, Cursor: cursor})
		if err != nil {
			return err
		}
		for i := range eps {
			e := &eps[i]
			if !e.Enabled || e.DestinationType() != destination.TypeWebhook || len(e.Settings) == 0 {
				continue
			}
			info := webhookdest.ClientCertificate(e.Settings)
			if info == nil || info.NotAfter.Sub(now) > ops.CertificateExpiringWithin {
				continue
			}
			key := e.ID + "/" + info.FingerprintSHA256
			seen[key] = true
			if w.sent[key] {
				continue
			}
			w.sent[key] = true
			days := int(math.Floor(info.NotAfter.Sub(now).Hours() / 24))
			w.log.Warn("endpoint client certificate expiring", "tenant", e.TenantID, "endpoint", e.ID,
				"not_after", info.NotAfter, "fingerprint_sha256", info.FingerprintSHA256)
			w.ops.CertificateExpiring(ops.CertificateExpiringData{
				Tenant: e.TenantID, Endpoint: e.ID, Subject: info.Subject, Issuer: info.Issuer,
				FingerprintSHA256: info.FingerprintSHA256, NotAfter: info.NotAfter, DaysLeft: days,
			})
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}
