package dispatch

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/store"
)

// The mapping, read back by the official SDK: attributes with characters the HTTP binding
// percent-encodes, a source that is no URI reference (the tenant's path instead), and a
// transformation's non-JSON output (text/plain), in both modes.
func TestCloudEvents_MappingReadByTheSDK(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 12, 3, 10, 0, 0, 123000000, time.UTC)
	payload, err := (&event.Envelope{ID: "evt_1", Type: "order.créé", Timestamp: ts, Data: []byte(`{"a": 1}`),
		Source: "billing service", Resource: &event.Resource{ID: "ord 1 \"%é", Type: "order"}}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	c := store.Claimed{EventID: "evt_1", EventType: "order.créé", Payload: payload}
	text := func(context.Context, []byte) ([]byte, error) { return []byte("hello, world"), nil }
	for _, tc := range []struct {
		format    string
		transform transformFunc
		ct, data  string
	}{
		{store.FormatCloudEventsStructured, nil, "application/json", `{"a":1}`},
		{store.FormatCloudEventsBinary, nil, "application/json", `{"a":1}`},
		{store.FormatCloudEventsStructured, text, "text/plain; charset=utf-8", "hello, world"},
		{store.FormatCloudEventsBinary, text, "text/plain; charset=utf-8", "hello, world"},
	} {
		s := laneSnapshot{ep: &store.Endpoint{TenantID: "acme corp", Options: store.EndpointOptions{Format: tc.format}}, transform: tc.transform}
		body, h, err := s.render(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		for k, v := range h {
			req.Header[k] = v
		}
		ev, err := cehttp.NewEventFromHTTPRequest(req)
		if err != nil {
			t.Fatalf("%s: the SDK cannot read %s %v: %v", tc.format, body, h, err)
		}
		if err := ev.Validate(); err != nil {
			t.Errorf("%s: %v", tc.format, err)
		}
		typ, source, subject := ev.Type(), ev.Source(), ev.Subject()
		if tc.format == store.FormatCloudEventsBinary {
			// The HTTP binding (3.1.3.2) percent-encodes header values; sdk-go v2.16 reads them
			// without the one round of decoding the spec asks of a receiver
			// (https://github.com/cloudevents/sdk-go/issues/1331), so the test does it.
			for _, v := range []*string{&typ, &source, &subject} {
				if *v, err = url.PathUnescape(*v); err != nil {
					t.Fatal(err)
				}
			}
		}
		if ev.ID() != "evt_1" || typ != "order.créé" || source != "/herald/tenants/acme%20corp" ||
			subject != "ord 1 \"%é" || !ev.Time().Equal(ts) || ev.DataContentType() != tc.ct || string(ev.Data()) != tc.data {
			t.Errorf("%s: read back %s with data %q", tc.format, ev.Context, ev.Data())
		}
	}
}

// advisedSender is a Sender whose receiver allowed a rate (the webhook type's after a handshake).
type advisedSender struct{ rate float64 }

func (advisedSender) Send(context.Context, *destination.Message) destination.Outcome {
	return destination.Outcome{Class: destination.Success}
}
func (a advisedSender) AllowedRate() float64 { return a.rate }

// The lane's rate limit is the lower of the endpoint's and the one its receiver allowed.
func TestSetLimiter_LowerOfConfiguredAndAllowed(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		configured, allowed, want float64
	}{
		{0, 0, 0}, {10, 0, 10}, {0, 2, 2}, {10, 2, 2}, {1, 2, 1},
	} {
		l := &lane{sender: advisedSender{c.allowed}}
		l.setLimiter(c.configured)
		got := 0.0
		if l.limiter != nil {
			got = float64(l.limiter.Limit())
		}
		if got != c.want {
			t.Errorf("configured %v, allowed %v: limit %v, want %v", c.configured, c.allowed, got, c.want)
		}
	}
}
