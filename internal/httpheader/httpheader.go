// Package httpheader reads HTTP headers whatever the case their names were stored in.
package httpheader

import (
	"net/http"
	"slices"
	"strings"
)

// Values returns a header's values, matching its name without regard to case: http.Header.Values
// only finds canonical keys ("Webhook-Id"), which net/http always produces, but headers copied
// into a map by hand (serverless events, other HTTP stacks, tests) often keep the lower-case wire
// form.
func Values(h http.Header, name string) []string {
	if vs := h.Values(name); len(vs) > 0 {
		return vs
	}
	var keys []string
	for k := range h {
		if strings.EqualFold(k, name) && len(h[k]) > 0 {
			keys = append(keys, k)
		}
	}
	// Sorted so that a map holding the same name in several spellings gives the same answer
	// every time, not one that depends on map order.
	slices.Sort(keys)
	var vs []string
	for _, k := range keys {
		vs = append(vs, h[k]...)
	}
	return vs
}
