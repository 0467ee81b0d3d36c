package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/api"
)

// decodeAny decodes JSON keeping numbers as written, for comparing documents by meaning.
func decodeAny(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

// FuzzPublishEvent feeds arbitrary bodies to the publish handler, in process, on a real SQLite
// store. Whatever the body, the answer is a 202 or a problem+json 4xx, never a 5xx or a panic,
// and an accepted event reads back with the data that was sent.
func FuzzPublishEvent(f *testing.F) {
	for _, s := range []string{
		`{"type":"invoice.paid","data":{"invoice":"in_1","amount":1200,"currency":"EUR"}}`,
		`{"id":"inv_1-paid","type":"invoice.paid","data":{}}`,
		`{"type":"invoice.paid","data":{"n":1e308,"m":-0.0,"s":"\u0000\ud800","u":"\u00e9"}}`,
		`{"type":"invoice.paid","data":{"a":[[[[[[[[[[]]]]]]]]]]}}`,
		`{"type":"invoice.paid","data":{"a":1,"a":2}}`,
		`{"type":"invoice.paid","data":{},"source":"billing","resource":{"id":"in_1","type":"invoice","url":"https://x"}}`,
		`{"type":"invoice.paid","data":[1]}`,
		`{"type":"invoice.paid","data":null}`,
		`{"type":"nope.never","data":{}}`,
		`{"type":"invoice.paid","data":{}, "extra":1}`,
		`{"type":"invoice.paid","data":{"x":"` + strings.Repeat("y", 1000) + `"}}`,
		`{"type":"invoice.paid","data":{"big":123456789012345678901234567890}}`,
		`{"type":"invoice.paid","data":{"bad":"` + "\xff\xfe" + `"}}`,
		`{"type":"invoice.paid","source":"a\u0000b","data":{}}`,
		`{"type":"invoice.paid","data":{` + strings.Repeat(`"a":{`, 70) + strings.Repeat("}", 70) + `}}`,
		``, `null`, `[]`, `{`, `{"type":`, "\xef\xbb\xbf{}", `{"type":"invoice.paid","data":{}}garbage`,
	} {
		f.Add([]byte(s))
	}
	a := newTestAPI(f, api.Config{MaxEventBytes: 16 << 10})
	a.tenantKey("acme")
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid"}, nil)

	call := func(t *testing.T, method, path string, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+a.admin)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		rec := httptest.NewRecorder()
		a.api.ServeHTTP(rec, req)
		return rec
	}

	f.Fuzz(func(t *testing.T, body []byte) {
		rec := call(t, "POST", "/v1/tenants/acme/events", body)
		switch {
		case rec.Code == http.StatusAccepted:
		case rec.Code >= 400 && rec.Code < 500:
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("status %d with Content-Type %q, want problem+json; body %q", rec.Code, ct, body)
			}
			var p struct {
				Status int `json:"status"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != rec.Code {
				t.Fatalf("status %d: answer %q is not a problem document with that status (%v)", rec.Code, rec.Body.Bytes(), err)
			}
			return
		default:
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body.Bytes())
		}

		var pub struct {
			ID        string `json:"id"`
			Duplicate bool   `json:"duplicate"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &pub); err != nil || pub.ID == "" {
			t.Fatalf("202 answer %q has no event id (%v)", rec.Body.Bytes(), err)
		}
		if pub.Duplicate {
			return // an earlier input used this id: the original stands
		}
		got := call(t, "GET", "/v1/tenants/acme/events/"+pub.ID, nil)
		if got.Code != http.StatusOK {
			t.Fatalf("GET accepted event %s = %d: %s", pub.ID, got.Code, got.Body.Bytes())
		}
		var sent, stored struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &sent); err != nil {
			t.Fatalf("accepted a body encoding/json refuses: %q: %v", body, err)
		}
		if err := json.Unmarshal(got.Body.Bytes(), &stored); err != nil {
			t.Fatalf("stored event %q is not JSON: %v", got.Body.Bytes(), err)
		}
		want, err1 := decodeAny(sent.Data)
		have, err2 := decodeAny(stored.Data)
		if err1 != nil || err2 != nil || !reflect.DeepEqual(want, have) {
			t.Fatalf("data sent %s, read back %s (%v, %v)", sent.Data, stored.Data, err1, err2)
		}
	})
}
