package webhook

import "github.com/heraldhq/herald/internal/destination"

// checkProxy validates the proxy field. Contract: issue 17's egress work fills it in.
func checkProxy(s *Settings) []*destination.FieldError { return nil }

// proxySettings describes the proxy field for forms.
func proxySettings() []destination.Setting { return nil }
