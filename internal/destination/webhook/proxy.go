package webhook

import (
	"strings"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
)

// checkProxy validates the proxy field: "", "none" or a proxy URL (http://, https://, socks5://,
// userinfo allowed, no path). Its address is checked by the guard at every dial, like a
// destination's, since a tenant must not reach an internal proxy; the message never repeats the
// URL, which may hold the proxy's password.
func checkProxy(s *Settings) []*destination.FieldError {
	if s.Proxy == "" || s.Proxy == ProxyNone {
		return nil
	}
	if err := httpsend.ValidateProxyURL(s.Proxy); err != nil {
		msg := err.Error()
		if strings.ContainsAny(msg, "@") {
			msg = "not a valid proxy URL"
		}
		return []*destination.FieldError{{Field: "proxy",
			Message: msg + ` (want "none", or http://, https:// or socks5://[user:password@]host[:port])`}}
	}
	return nil
}

// proxySettings describes the proxy field for forms.
func proxySettings() []destination.Setting {
	return []destination.Setting{
		{Name: "proxy", Kind: destination.SettingString, Secret: true, Choices: []string{ProxyNone}, Open: true,
			Placeholder: "http://user:password@proxy.example.com:3128",
			Help:        `The outbound proxy for this endpoint instead of the node's: "none" sends directly, or an http://, https:// or socks5:// URL (credentials allowed: the field is sealed). Herald still checks the destination itself and asks the proxy for the checked address; the proxy's own address must be a public one.`},
	}
}
