package api

import (
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// The conventions of the OpenAPI document that code generators and linters rely on: problem
// responses declared per operation, a servers list, arrays that are never null, and query
// parameters that are refused when a route does not take them.

// problemType is the media type of every error answer.
const problemType = "application/problem+json"

// metaMayForbid marks an operation whose handler answers 403 for some tenant-key requests,
// besides the admin-only operations (metaAdminOnly), which answer 403 to every tenant key.
const metaMayForbid = "may-forbid"

// declareProblems is an OnAddOperation hook: it declares the 4xx problem answers an operation can
// give, so that generated clients type them. The "default" answer huma adds still covers 5xx.
func declareProblems(oapi *huma.OpenAPI, op *huma.Operation) {
	ref := oapi.Components.Schemas.Schema(reflect.TypeFor[huma.ErrorModel](), true, "")
	add := func(status int, why string) {
		code := strconv.Itoa(status)
		if op.Responses[code] != nil {
			return
		}
		if op.Responses == nil {
			op.Responses = map[string]*huma.Response{}
		}
		op.Responses[code] = &huma.Response{
			Description: http.StatusText(status) + ": " + why,
			Content:     map[string]*huma.MediaType{problemType: {Schema: ref}},
		}
	}
	add(http.StatusUnauthorized, "no API key, or one that is invalid or revoked.")
	if op.Metadata[metaAdminOnly] == true || op.Metadata[metaMayForbid] == true {
		add(http.StatusForbidden, "the key may not do this (an admin key is needed).")
	}
	if slices.ContainsFunc(op.Parameters, func(p *huma.Param) bool { return p.In == "path" }) {
		add(http.StatusNotFound, "what the path names does not exist, or belongs to another tenant.")
	}
	if op.RequestBody != nil {
		add(http.StatusBadRequest, "the body is not JSON.")
		add(http.StatusRequestEntityTooLarge, "the body is too large.")
		add(http.StatusUnsupportedMediaType, "the body is not application/json.")
	}
	add(http.StatusUnprocessableEntity, "a parameter or a field of the body is invalid, or a query parameter is unknown; errors[] names each.")
	add(http.StatusTooManyRequests, "over a rate limit; Retry-After says when to try again.")
}

// nonNullArrays makes every array of the document non-nullable (huma's default is nullable):
// Herald refuses null in request bodies (nullFields), and fillSlices answers [] for a nil slice,
// so null is never a value of an array.
func nonNullArrays(oapi *huma.OpenAPI) {
	seen := map[*huma.Schema]bool{}
	var walk func(s *huma.Schema)
	walk = func(s *huma.Schema) {
		if s == nil || seen[s] {
			return
		}
		seen[s] = true
		if s.Type == huma.TypeArray {
			s.Nullable = false
		}
		walk(s.Items)
		if ap, ok := s.AdditionalProperties.(*huma.Schema); ok {
			walk(ap)
		}
		walk(s.Not)
		for _, p := range s.Properties {
			walk(p)
		}
		for _, l := range [][]*huma.Schema{s.OneOf, s.AnyOf, s.AllOf} {
			for _, x := range l {
				walk(x)
			}
		}
	}
	for _, s := range oapi.Components.Schemas.Map() {
		walk(s)
	}
	for _, item := range oapi.Paths {
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Delete, item.Patch} {
			if op == nil {
				continue
			}
			for _, p := range op.Parameters {
				walk(p.Schema)
			}
			if op.RequestBody != nil {
				for _, mt := range op.RequestBody.Content {
					walk(mt.Schema)
				}
			}
			for _, r := range op.Responses {
				for _, mt := range r.Content {
					walk(mt.Schema)
				}
			}
		}
	}
}

// tagDescription describes an operations' tag in the document.
func tagDescription(name string) string {
	switch name {
	case "API keys":
		return "Admin and tenant keys: create, list, revoke."
	case "Audit log":
		return "Who changed what, when: every change made through the API."
	case "Broker sources":
		return "Receiving from message brokers (NATS, RabbitMQ, Redis, Kafka, …) into a tenant's events."
	case "Deliveries":
		return "Deliveries and attempts of events to endpoints; replays, stats and the endpoint feed."
	case "Endpoints":
		return "Where a tenant's events are sent, how they are signed, filtered and retried."
	case "Event types":
		return "The catalog of event types, their schemas, examples and generated docs."
	case "Events":
		return "Publishing events (idempotent by id), reading them, resending them."
	case "Plans":
		return "Named sets of tenant limits (events per second, endpoints, sources, sizes, features) an operator assigns to tenants."
	case "Received requests":
		return "Webhooks received at sources: accepted, quarantined or rejected, and their replay."
	case "Sources":
		return "Receiving webhooks from providers (Stripe, GitHub, Standard Webhooks, …) with verification."
	case "Tenants":
		return "Your customers: each has its own endpoints, events, keys and portal links."
	}
	return ""
}

// declareTags lists the operations' tags at the top of the document, sorted by name, with
// their descriptions, as linters ask (spectral's operation-tag-defined, redocly's
// tag-description).
func declareTags(oapi *huma.OpenAPI) {
	seen := map[string]bool{}
	for _, t := range oapi.Tags {
		seen[t.Name] = true
	}
	var names []string
	for _, item := range oapi.Paths {
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Delete, item.Patch} {
			if op == nil {
				continue
			}
			for _, t := range op.Tags {
				if !seen[t] {
					seen[t] = true
					names = append(names, t)
				}
			}
		}
	}
	slices.Sort(names)
	for _, n := range names {
		oapi.Tags = append(oapi.Tags, &huma.Tag{Name: n, Description: tagDescription(n)})
	}
}

// fillSlices is a huma transformer that answers [] where a response holds a nil slice, which
// encoding/json would write as null: the document says arrays are never null (nonNullArrays).
func fillSlices(_ huma.Context, _ string, v any) (any, error) {
	if _, ok := v.(*huma.ErrorModel); ok || v == nil {
		return v, nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		fillValue(rv)
		return v, nil
	}
	// A value is copied so that it can be set.
	cp := reflect.New(rv.Type()).Elem()
	cp.Set(rv)
	if fillValue(cp) {
		return cp.Interface(), nil
	}
	return v, nil
}

// fillValue replaces the nil slices reachable from v (settable, or through pointers, slices and
// maps) by empty ones, and reports whether it changed anything. Byte slices (raw JSON, base64)
// and interface values (free-form data) are left as they are.
func fillValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Pointer:
		return !v.IsNil() && fillValue(v.Elem())
	case reflect.Struct:
		changed := false
		for i := range v.NumField() {
			if f := v.Field(i); v.Type().Field(i).IsExported() && f.CanSet() {
				changed = fillValue(f) || changed
			}
		}
		return changed
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return false
		}
		if v.IsNil() {
			if !v.CanSet() {
				return false
			}
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			return true
		}
		if !holdsSlices(v.Type().Elem()) {
			return false
		}
		changed := false
		for i := range v.Len() {
			changed = fillValue(v.Index(i)) || changed
		}
		return changed
	case reflect.Map:
		if !holdsSlices(v.Type().Elem()) {
			return false // map[string]string, map[string]any: nothing to walk
		}
		changed := false
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			if fillValue(e) {
				v.SetMapIndex(k, e)
				changed = true
			}
		}
		return changed
	}
	return false
}

// holdsSlices reports whether a value of type t may be or hold a slice fillValue would fill:
// scalars and interface values (free-form data) are not walked.
func holdsSlices(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Slice, reflect.Struct, reflect.Pointer, reflect.Map:
		return true
	}
	return false
}

// servers is the document's servers list: the public URL when the operator set one, else the
// server that serves the document ("/", relative to where it was fetched).
func servers(publicURL string) []*huma.Server {
	if publicURL != "" {
		return []*huma.Server{{URL: strings.TrimSuffix(publicURL, "/"), Description: "This Herald server."}}
	}
	return []*huma.Server{{URL: "/", Description: "The Herald server that serves this document."}}
}

// maxNameEcho bounds how much of an unknown parameter's name a problem quotes.
const maxNameEcho = 64

// knownQuery is a middleware that refuses a query parameter the route does not take, with a 422
// naming it: a misspelt filter (?stauts=dead) would otherwise be ignored and return everything.
func (s *Server) knownQuery(ctx huma.Context, next func(huma.Context)) {
	u := ctx.URL()
	if u.RawQuery == "" {
		next(ctx)
		return
	}
	op := ctx.Operation()
	var takes []string
	for _, p := range op.Parameters {
		if p.In == "query" {
			takes = append(takes, p.Name)
		}
	}
	var errs []error
	seen := map[string]bool{}
	for name := range u.Query() {
		if slices.Contains(takes, name) || seen[name] {
			continue
		}
		seen[name] = true
		shown := name
		if len(shown) > maxNameEcho {
			shown = shown[:maxNameEcho] + "…"
		}
		msg := "unknown query parameter; this route takes none"
		if len(takes) > 0 {
			msg = "unknown query parameter; this route takes " + strings.Join(takes, ", ")
		}
		errs = append(errs, &huma.ErrorDetail{Location: "query." + shown, Message: msg})
	}
	if len(errs) == 0 {
		next(ctx)
		return
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	_ = huma.WriteErr(s.api, ctx, http.StatusUnprocessableEntity, "unknown query parameter", errs...)
}
