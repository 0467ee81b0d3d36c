package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/heraldhq/herald/internal/api"
	natsdest "github.com/heraldhq/herald/internal/broker/nats"
	"github.com/heraldhq/herald/internal/broker/rabbitmq"
	"github.com/heraldhq/herald/internal/source"
)

// GET /v1/source-types describes each broker source type from the type itself, to any key, as
// the destination types are: the nats type's settings with its credentials marked secret and
// the stream marked as where it reads. A server that runs no source type answers an empty list.
func TestAPI_SourceTypesDescribeTheirSettings(t *testing.T) {
	t.Parallel()
	nats := natsdest.NewSource(source.Env{})
	reg, err := source.NewRegistry(nats, rabbitmq.NewSource(source.Env{}))
	if err != nil {
		t.Fatal(err)
	}
	a := newTestAPI(t, api.Config{SourceTypes: reg})
	for _, key := range []string{a.admin, a.tenantKey("acme")} {
		ans := a.do(key, "GET", "/v1/source-types", nil)
		if ans.status != http.StatusOK {
			t.Fatalf("GET /v1/source-types: %d %s", ans.status, ans.body)
		}
		var got struct {
			Data []api.SourceType `json:"data"`
		}
		if err := json.Unmarshal(ans.body, &got); err != nil {
			t.Fatalf("%s: %v", ans.body, err)
		}
		if len(got.Data) != 2 || got.Data[0].Name != "nats" || got.Data[1].Name != "rabbitmq" {
			t.Fatalf("types %s, want nats and rabbitmq", ans.body)
		}
		n := got.Data[0]
		want := nats.Settings()
		if !n.Described || len(n.Settings) != len(want) {
			t.Fatalf("nats %+v, want described with %d settings", n, len(want))
		}
		secrets, reads := []string{}, []string{}
		for i, s := range n.Settings {
			w := want[i]
			if s.Name != w.Name || s.Kind != w.Kind || s.Required != w.Required || s.Secret != w.Secret || s.Help != w.Help || s.Destination != w.Destination {
				t.Errorf("setting %d = %+v, want %+v", i, s, w)
			}
			if s.Secret {
				secrets = append(secrets, s.Name)
			}
			if s.Destination {
				reads = append(reads, s.Name)
			}
			if s.Name == "max_ack_pending" {
				if d, ok := s.Default.(float64); !ok || d != 1000 {
					t.Errorf("max_ack_pending's default = %v, want 1000", s.Default)
				}
			}
		}
		if len(secrets) != 2 || secrets[0] != "password" || secrets[1] != "token" || len(reads) != 1 || reads[0] != "stream" {
			t.Errorf("secret settings %v (want password, token), where it reads %v (want stream)", secrets, reads)
		}
	}
	if ans := a.do("", "GET", "/v1/source-types", nil); ans.status != http.StatusUnauthorized {
		t.Fatalf("without a key: %d, want 401", ans.status)
	}
	ans := a.do("", "GET", "/openapi.json", nil)
	if !bytes.Contains(ans.body, []byte(`"/v1/source-types"`)) || !bytes.Contains(ans.body, []byte(`"SourceType"`)) {
		t.Fatalf("the OpenAPI document does not describe /v1/source-types")
	}

	none := newTestAPI(t, api.Config{})
	ans = none.do(none.admin, "GET", "/v1/source-types", nil)
	if ans.status != http.StatusOK || !bytes.Contains(ans.body, []byte(`"data":[]`)) {
		t.Fatalf("a server without source types: %d %s, want an empty list", ans.status, ans.body)
	}
}
