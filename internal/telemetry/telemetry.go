// Package telemetry sets up Herald's OpenTelemetry tracing and holds the small vocabulary the
// traced packages share: the tracer's name, the span attributes, and W3C trace context carried in
// HTTP headers and in stored events.
//
// Nothing here is global: the provider is built by Setup and passed down through each package's
// Config, and the W3C propagator is a value, so that two nodes in one process (as in tests) never
// share a tracer or a propagator through otel's package-level state.
package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ServiceName is the service.name of Herald's spans.
const ServiceName = "herald"

// TracerName names the tracer (the instrumentation scope) of every Herald span.
const TracerName = "github.com/heraldhq/herald"

// Span attributes. They name what a span is about; payloads, URLs and secrets are never recorded.
const (
	AttrTenant     = attribute.Key("herald.tenant")
	AttrEndpoint   = attribute.Key("herald.endpoint")
	AttrEventID    = attribute.Key("herald.event.id")
	AttrEventType  = attribute.Key("herald.event.type")
	AttrEventCount = attribute.Key("herald.event.count")
	AttrDelivery   = attribute.Key("herald.delivery.id")
	AttrAttempt    = attribute.Key("herald.attempt")
	AttrOutcome    = attribute.Key("herald.outcome")
	AttrErrorClass = attribute.Key("herald.error_class")
	AttrSource     = attribute.Key("herald.source")
	AttrRequest    = attribute.Key("herald.request.id")
	AttrStatusCode = attribute.Key("http.response.status_code")
)

// Config says where spans go.
type Config struct {
	// Endpoint is the OTLP/HTTP collector's base URL ("http://otel-collector:4318"); spans are
	// posted to its /v1/traces (a URL with another path is used as it is). Empty: the standard
	// OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT variables, if FromEnv.
	Endpoint string
	// FromEnv lets the exporter read the standard OTEL_EXPORTER_OTLP_* variables (endpoint,
	// headers, timeout, certificate) when Endpoint is empty.
	FromEnv bool
	// Version is the service.version of the spans.
	Version string
}

// Enabled reports whether spans are exported under cfg with the environment getenv reads.
func (c Config) Enabled(getenv func(string) string) bool {
	if c.Endpoint != "" {
		return true
	}
	return c.FromEnv && getenv != nil &&
		(getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "")
}

// Tracing is a tracer provider and what ends it.
type Tracing struct {
	Provider trace.TracerProvider
	sdk      *sdktrace.TracerProvider
}

// Disabled is tracing that records nothing: its spans cost an allocation-free no-op, but they
// still carry a trace context received with a request, so a caller's trace id reaches receivers
// even when Herald exports nothing.
func Disabled() *Tracing { return &Tracing{Provider: noop.NewTracerProvider()} }

// Setup builds the OTLP/HTTP exporter and a batching provider when cfg enables export (see
// Enabled), and Disabled otherwise. getenv is os.Getenv in the CLI.
func Setup(ctx context.Context, cfg Config, getenv func(string) string) (*Tracing, error) {
	if !cfg.Enabled(getenv) {
		return Disabled(), nil
	}
	var opts []otlptracehttp.Option
	if cfg.Endpoint != "" {
		u, err := exportURL(cfg.Endpoint)
		if err != nil {
			return nil, err
		}
		opts = append(opts, otlptracehttp.WithEndpointURL(u))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	return NewTracing(cfg.Version, sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(2*time.Second))), nil
}

// NewTracing makes a provider of Herald's resource (service.name "herald") around the span
// processors given: Setup's batching exporter, or a test's in-memory recorder.
func NewTracing(version string, opts ...sdktrace.TracerProviderOption) *Tracing {
	attrs := []attribute.KeyValue{attribute.String("service.name", ServiceName)}
	if version != "" {
		attrs = append(attrs, attribute.String("service.version", version))
	}
	res := resource.NewSchemaless(attrs...)
	opts = append([]sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		// A publish that arrives with a sampled-out trace context stays out; the rest is kept.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
	}, opts...)
	tp := sdktrace.NewTracerProvider(opts...)
	return &Tracing{Provider: tp, sdk: tp}
}

// Shutdown exports the spans still buffered and stops the provider; it does nothing when
// tracing is disabled.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.sdk == nil {
		return nil
	}
	if err := t.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut down tracing: %w", err)
	}
	return nil
}

// exportURL turns a collector's base URL into its traces URL, as the OTLP specification does
// for OTEL_EXPORTER_OTLP_ENDPOINT.
func exportURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("OTLP endpoint %q: %w", endpoint, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("OTLP endpoint %q: want http(s)://host:port", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// Tracer is Herald's tracer of tp; a nil tp traces nothing.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer(TracerName)
}

// w3c is the W3C Trace Context propagator (traceparent and tracestate); it has no state.
func w3c() propagation.TraceContext { return propagation.TraceContext{} }

// Extract returns ctx with the trace context of an incoming request's headers, if they carry
// one; the spans started from it are its children.
func Extract(ctx context.Context, h http.Header) context.Context {
	if h.Get("traceparent") == "" {
		return ctx
	}
	return w3c().Extract(ctx, propagation.HeaderCarrier(h))
}

// Inject writes ctx's trace context into outgoing headers (traceparent, and tracestate when
// there is one); it writes nothing when ctx has no valid span context.
func Inject(ctx context.Context, h http.Header) {
	w3c().Inject(ctx, propagation.HeaderCarrier(h))
}

// Capture is ctx's trace context as the traceparent and tracestate values to store with an
// event; both are empty when ctx has none.
func Capture(ctx context.Context) (traceparent, tracestate string) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return "", ""
	}
	c := propagation.MapCarrier{}
	w3c().Inject(ctx, c)
	return c["traceparent"], c["tracestate"]
}

// Restore returns ctx with a stored trace context as its remote parent; a missing or malformed
// one leaves ctx as it is.
func Restore(ctx context.Context, traceparent, tracestate string) context.Context {
	if traceparent == "" {
		return ctx
	}
	c := propagation.MapCarrier{"traceparent": strings.TrimSpace(traceparent)}
	if tracestate != "" {
		c["tracestate"] = tracestate
	}
	return w3c().Extract(ctx, c)
}
