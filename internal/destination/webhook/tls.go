package webhook

import "github.com/heraldhq/herald/internal/destination"

// checkTLS validates the mutual TLS fields (tls_*). Contract: issue 17's mTLS work fills it in.
func checkTLS(s *Settings) []*destination.FieldError { return nil }

// tlsSettings describes the TLS fields for forms.
func tlsSettings() []destination.Setting { return nil }
