package node_test

import (
	"bytes"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/heraldhq/herald/internal/inbound/verify"
	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/telemetry"
)

// collector is a real OTLP/HTTP trace collector on 127.0.0.1: it decodes the protobuf export
// requests the node's exporter posts to /v1/traces and keeps their spans.
type collector struct {
	*httptest.Server
	mu       sync.Mutex
	spans    []*tracepb.Span
	services []string
}

func newCollector(t *testing.T) *collector {
	c := &collector{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || err != nil {
			t.Errorf("collector: %s %s (%s): %v", r.Method, r.URL.Path, r.Header.Get("Content-Type"), err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			t.Errorf("collector: decode export request: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					c.services = append(c.services, a.Value.GetStringValue())
				}
			}
			for _, ss := range rs.ScopeSpans {
				c.spans = append(c.spans, ss.Spans...)
			}
		}
		c.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(c.Close)
	return c
}

// named returns the collected spans called name.
func (c *collector) named(name string) []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range c.spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// attr is a span attribute's value as text ("" when absent); string arrays are joined by ",".
func attr(s *tracepb.Span, key string) string {
	for _, a := range s.Attributes {
		if a.Key != key {
			continue
		}
		switch v := a.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			return v.StringValue
		case *commonpb.AnyValue_IntValue:
			return strconv.FormatInt(v.IntValue, 10)
		case *commonpb.AnyValue_ArrayValue:
			var parts []string
			for _, e := range v.ArrayValue.Values {
				parts = append(parts, e.GetStringValue())
			}
			return strings.Join(parts, ",")
		}
	}
	return ""
}

// A publish that arrives with a W3C traceparent is traced into the attempt that delivers it:
// the receiver gets a traceparent of the same trace (and the caller's tracestate), whose parent
// is the attempt's span; the attempt's span is a child of the publish's, across the store; and
// the spans reach a real OTLP/HTTP collector with the tenant, endpoint and event attributes.
// A request received on a source is traced the same way into its forwarded delivery.
func TestTrace_PublishToAttemptOverOTLP(t *testing.T) {
	t.Parallel()
	tracePublishToAttempt(t, nil)
}

func TestTrace_PublishToAttemptOverOTLPOnPostgres(t *testing.T) {
	t.Parallel()
	tracePublishToAttempt(t, onPostgres(t))
}

func tracePublishToAttempt(t *testing.T, mod func(*node.Config)) {
	col := newCollector(t)
	h := start(t, func(c *node.Config) {
		if mod != nil {
			mod(c)
		}
		c.Tracing = telemetry.Config{Endpoint: col.URL}
	})
	h.setup("acme", "invoice.paid")
	rc := newReceiver(t, nil)
	ep := h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}})

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, err := http.NewRequest("POST", h.node.URL()+"/v1/tenants/acme/events",
		strings.NewReader(`{"id":"evt_traced","type":"invoice.paid","data":{"n":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
	req.Header.Set("tracestate", "vendor=opaque")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("publish = %d", resp.StatusCode)
	}

	// Inbound: a source's request, with its sender's trace context.
	src := h.newSource("acme", verify.Config{Scheme: verify.SchemeBearer, Secrets: []string{"in-token"}}, nil)
	const inTrace = "0af7651916cd43dd8448eb211c80319c"
	in := h.mustIngest(200, "/in/"+src.Token, http.Header{
		"Authorization": {"Bearer in-token"}, "Content-Type": {"application/json"},
		"Traceparent": {"00-" + inTrace + "-b7ad6b7169203331-01"},
	}, []byte(`{"type":"invoice.paid"}`))

	eventually(t, 15*time.Second, "both deliveries", func() bool { return rc.count() == 2 })
	byEvent := map[string]http.Header{}
	for _, r := range rc.got() {
		byEvent[r.header.Get("webhook-id")] = r.header
	}
	got := byEvent["evt_traced"]
	tp := strings.Split(got.Get("traceparent"), "-")
	if len(tp) != 4 || tp[1] != traceID || tp[2] == parentID || tp[3] != "01" {
		t.Fatalf("receiver's traceparent %q: want trace %s, a span of Herald's, sampled", got.Get("traceparent"), traceID)
	}
	if ts := got.Get("tracestate"); ts != "vendor=opaque" {
		t.Errorf("receiver's tracestate %q, want the caller's", ts)
	}
	inTP := strings.Split(byEvent[in.EventID].Get("traceparent"), "-")
	if len(inTP) != 4 || inTP[1] != inTrace {
		t.Errorf("forwarded inbound event's traceparent %q: want trace %s", byEvent[in.EventID].Get("traceparent"), inTrace)
	}

	h.stop() // flushes the exporter
	pubs := col.named("herald.publish")
	if len(pubs) != 1 {
		t.Fatalf("%d herald.publish spans, want 1", len(pubs))
	}
	pub := pubs[0]
	if hex.EncodeToString(pub.TraceId) != traceID || hex.EncodeToString(pub.ParentSpanId) != parentID ||
		attr(pub, "herald.tenant") != "acme" || attr(pub, "herald.event.id") != "evt_traced" || pub.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("publish span: trace %x parent %x kind %v attrs %v", pub.TraceId, pub.ParentSpanId, pub.Kind, pub.Attributes)
	}
	if st := col.named("herald.store.publish"); len(st) != 1 || !bytes.Equal(st[0].ParentSpanId, pub.SpanId) {
		t.Errorf("store span: %v, want one child of the publish span", st)
	}
	var att *tracepb.Span
	for _, s := range col.named("herald.attempt") {
		if attr(s, "herald.event.id") == "evt_traced" {
			att = s
		}
	}
	if att == nil {
		t.Fatalf("no herald.attempt span for evt_traced among %d spans", len(col.spans))
	}
	if hex.EncodeToString(att.TraceId) != traceID || !bytes.Equal(att.ParentSpanId, pub.SpanId) || hex.EncodeToString(att.SpanId) != tp[2] {
		t.Errorf("attempt span: trace %x parent %x span %x; want trace %s, parent the publish (%x), span the receiver's parent %s",
			att.TraceId, att.ParentSpanId, att.SpanId, traceID, pub.SpanId, tp[2])
	}
	for k, want := range map[string]string{"herald.tenant": "acme", "herald.endpoint": ep.ID, "herald.event.type": "invoice.paid",
		"herald.attempt": "1", "herald.outcome": "success", "http.response.status_code": "200"} {
		if v := attr(att, k); v != want {
			t.Errorf("attempt span %s = %q, want %q", k, v, want)
		}
	}
	if att.Kind != tracepb.Span_SPAN_KIND_CLIENT || att.TraceState != "vendor=opaque" {
		t.Errorf("attempt span kind %v tracestate %q", att.Kind, att.TraceState)
	}
	ins := col.named("herald.inbound")
	var inSpan *tracepb.Span
	for _, s := range ins {
		if attr(s, "herald.source") == src.ID {
			inSpan = s
		}
	}
	if inSpan == nil || hex.EncodeToString(inSpan.TraceId) != inTrace || attr(inSpan, "herald.event.id") != in.EventID || attr(inSpan, "herald.tenant") != "acme" {
		t.Errorf("inbound span %v", inSpan)
	}
	col.mu.Lock()
	services := col.services
	col.mu.Unlock()
	for _, s := range services {
		if s != telemetry.ServiceName {
			t.Errorf("service.name %q", s)
		}
	}
}

// With tracing off (no exporter), nothing is recorded, yet a caller's trace context still
// reaches the receiver: the publish stores it and the attempt sends it on unchanged.
func TestTrace_OffStillPropagatesCallersContext(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	h.setup("acme", "invoice.paid")
	rc := newReceiver(t, nil)
	h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}})
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req, err := http.NewRequest("POST", h.node.URL()+"/v1/tenants/acme/events", strings.NewReader(`{"type":"invoice.paid","data":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", tp)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// And one without: its delivery carries no traceparent at all.
	h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{}})
	eventually(t, 10*time.Second, "both deliveries", func() bool { return rc.count() == 2 })
	var with, without int
	for _, r := range rc.got() {
		switch r.header.Get("traceparent") {
		case tp:
			with++
		case "":
			without++
		}
	}
	if with != 1 || without != 1 {
		t.Errorf("traceparents received: %d the caller's, %d none; want 1 and 1", with, without)
	}
}
