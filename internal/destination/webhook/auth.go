package webhook

import "github.com/heraldhq/herald/internal/destination"

// checkAuth validates the authentication fields (auth, basic_*, bearer_token, api_key*,
// oauth2_*). Contract: issue 17's authentication work fills it in.
func checkAuth(s *Settings) []*destination.FieldError { return nil }

// authSettings describes the authentication fields for forms.
func authSettings() []destination.Setting { return nil }
