package webhook

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
)

// authenticator sends a request with the endpoint's credentials.
type authenticator interface {
	send(ctx context.Context, c *httpsend.Client, r httpsend.Request) destination.Outcome
}

// newAuth returns the authenticator of the settings (which Check accepted), nil for none.
func newAuth(c *httpsend.Client, s Settings) authenticator {
	switch s.Auth {
	case AuthBasic:
		cred := base64.StdEncoding.EncodeToString([]byte(s.BasicUsername + ":" + s.BasicPassword))
		return staticAuth{name: "Authorization", value: []string{"Basic " + cred}}
	case AuthBearer:
		return staticAuth{name: "Authorization", value: []string{"Bearer " + s.BearerToken}}
	case AuthAPIKey:
		name := s.APIKeyHeader
		if name == "" {
			name = DefaultAPIKeyHeader
		}
		return staticAuth{name: textproto.CanonicalMIMEHeaderKey(name), value: []string{s.APIKey}}
	case AuthOAuth2:
		return &oauth2Auth{tokens: newTokenCache(c, s)}
	}
	return nil
}

// staticAuth puts one header with a fixed credential on every request. value is built once and
// shared by every request: the transport only reads header values.
type staticAuth struct {
	name  string
	value []string
}

func (a staticAuth) send(ctx context.Context, c *httpsend.Client, r httpsend.Request) destination.Outcome {
	r.Header = withHeader(r.Header, a.name, a.value)
	return c.Send(ctx, r)
}

// withHeader returns a copy of h (the message's header, read-only and shared by the attempts)
// with name set to value, replacing an endpoint's custom header of that name in any case. The
// values are not copied: nobody writes them.
func withHeader(h http.Header, name string, value []string) http.Header {
	out := make(http.Header, len(h)+1)
	for k, v := range h {
		if !strings.EqualFold(k, name) {
			out[k] = v
		}
	}
	out[name] = value
	return out
}
