package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/heraldhq/herald/internal/api"
)

// null is no value of any field a route declares: {"events": null} published nothing with 202
// while [] was 422. Every top-level field of every route's body is tried, and a few nested ones;
// a null inside free-form data (an event's payload) stays the sender's business.
func TestNulls_EveryDeclaredFieldRefusesNull(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	key := a.tenantKey("acme")
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "order.created"}, nil)
	oapi := a.api.OpenAPI()
	type tc struct{ method, path, body, loc string }
	var cases []tc
	for _, r := range bodyRoutes(t, a.api) {
		sch := r.op.RequestBody.Content["application/json"].Schema
		if sch.Ref != "" {
			sch = oapi.Components.Schemas.SchemaFromRef(sch.Ref)
		}
		for prop := range sch.Properties {
			cases = append(cases, tc{r.method, r.path, `{"` + prop + `":null}`, "body." + prop})
		}
	}
	if len(cases) < 40 {
		t.Fatalf("only %d fields found", len(cases))
	}
	cases = append(cases,
		tc{"POST", "/v1/tenants/acme/events/batch", `{"events":[{"type":"order.created","data":{},"resource":null}]}`, "body.events[0].resource"},
		tc{"POST", "/v1/tenants/acme/events", `{"type":"order.created","data":{},"source":null}`, "body.source"},
		tc{"POST", "/v1/tenants/acme/endpoints", `{"url":"https://hooks.example.com/a","batch":{"enabled":true,"max_events":null}}`, "body.batch.max_events"},
	)
	for _, c := range cases {
		t.Run(c.method+" "+c.path+" "+c.body, func(t *testing.T) {
			t.Parallel()
			ans := a.do(a.admin, c.method, c.path, c.body)
			if ans.status != http.StatusUnprocessableEntity {
				t.Fatalf("%d %.300s, want 422 at %s", ans.status, ans.body, c.loc)
			}
			if _, ok := ans.problem(t).find(c.loc); !ok {
				t.Fatalf("no error at %s: %.300s", c.loc, ans.body)
			}
		})
	}
	t.Run("null inside data", func(t *testing.T) {
		t.Parallel()
		ans := a.do(key, "POST", "/v1/tenants/acme/events", `{"type":"order.created","data":{"coupon":null,"items":[null]}}`)
		var got struct {
			ID string `json:"id"`
		}
		if ans.status != http.StatusAccepted || json.Unmarshal(ans.body, &got) != nil || got.ID == "" {
			t.Fatalf("%d %.300s, want 202", ans.status, ans.body)
		}
	})
}
