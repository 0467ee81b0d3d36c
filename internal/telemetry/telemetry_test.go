package telemetry_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/heraldhq/herald/internal/telemetry"
)

// A trace context captured from a request's span, stored, and restored later makes the later
// span a child of the first, in the same trace, with the caller's tracestate kept.
func TestTelemetry_CaptureAndRestoreContinueTheTrace(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tr := telemetry.NewTracing("test", sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	tracer := telemetry.Tracer(tr.Provider)

	in := http.Header{}
	in.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	in.Set("tracestate", "vendor=opaque")
	ctx, publish := tracer.Start(telemetry.Extract(context.Background(), in), "publish")
	parent, state := telemetry.Capture(ctx)
	publish.End()
	if want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + publish.SpanContext().SpanID().String() + "-01"; parent != want || state != "vendor=opaque" {
		t.Fatalf("captured %q %q, want %q vendor=opaque", parent, state, want)
	}

	_, attempt := tracer.Start(telemetry.Restore(context.Background(), parent, state), "attempt")
	out := http.Header{}
	telemetry.Inject(trace.ContextWithSpan(context.Background(), attempt), out)
	attempt.End()
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans ended", len(spans))
	}
	a := spans[1]
	if a.Parent().SpanID() != publish.SpanContext().SpanID() || a.SpanContext().TraceID() != publish.SpanContext().TraceID() || !a.Parent().IsRemote() {
		t.Errorf("attempt's parent %v, want the publish span %v (remote)", a.Parent(), publish.SpanContext())
	}
	if got := out.Get("traceparent"); !strings.Contains(got, a.SpanContext().SpanID().String()) || out.Get("tracestate") != "vendor=opaque" {
		t.Errorf("outgoing headers %v", out)
	}
	for _, kv := range a.Resource().Attributes() {
		if kv.Key == "service.name" && kv.Value.AsString() != "herald" {
			t.Errorf("service.name %q", kv.Value.AsString())
		}
	}
}

// Without a trace context nothing is captured or sent, and malformed stored values are ignored.
func TestTelemetry_NoContextNoHeaders(t *testing.T) {
	t.Parallel()
	if p, s := telemetry.Capture(context.Background()); p != "" || s != "" {
		t.Errorf("captured %q %q from nothing", p, s)
	}
	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"} {
		h := http.Header{}
		telemetry.Inject(telemetry.Restore(context.Background(), bad, ""), h)
		if len(h) != 0 {
			t.Errorf("Restore(%q) then Inject wrote %v", bad, h)
		}
	}
	// Tracing off: the no-op tracer makes no span of its own, but keeps a caller's context.
	tracer := telemetry.Tracer(telemetry.Disabled().Provider)
	ctx, span := tracer.Start(telemetry.Restore(context.Background(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""), "x")
	if span.IsRecording() {
		t.Error("a disabled tracer records")
	}
	if p, _ := telemetry.Capture(ctx); p != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Errorf("disabled tracing captured %q, want the caller's context unchanged", p)
	}
}

func TestTelemetry_Enabled(t *testing.T) {
	t.Parallel()
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	for _, c := range []struct {
		name string
		cfg  telemetry.Config
		env  map[string]string
		want bool
	}{
		{"nothing", telemetry.Config{FromEnv: true}, nil, false},
		{"flag", telemetry.Config{Endpoint: "http://127.0.0.1:4318"}, nil, true},
		{"standard variable", telemetry.Config{FromEnv: true}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, true},
		{"traces variable", telemetry.Config{FromEnv: true}, map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, true},
		{"variable ignored without FromEnv", telemetry.Config{}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, false},
	} {
		if got := c.cfg.Enabled(env(c.env)); got != c.want {
			t.Errorf("%s: Enabled = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestTelemetry_SetupRefusesBadEndpoint(t *testing.T) {
	t.Parallel()
	for _, e := range []string{"collector:4318", "ftp://c:4318", "http://"} {
		if _, err := telemetry.Setup(context.Background(), telemetry.Config{Endpoint: e}, nil); err == nil {
			t.Errorf("Setup(%q) accepted it", e)
		}
	}
	tr, err := telemetry.Setup(context.Background(), telemetry.Config{}, func(string) string { return "" })
	if err != nil || tr.Provider == nil {
		t.Fatalf("Setup without endpoint: %v", err)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}
