package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/destination/webhook"
	"github.com/heraldhq/herald/internal/httpsend"
)

// The webhook type takes no settings, and its sender POSTs the message's body with its headers,
// bounded by ctx's deadline (the endpoint's timeout).
func TestWebhook_SendAndCheck(t *testing.T) {
	t.Parallel()
	typ := webhook.New(httpsend.New(httpsend.Config{AllowHTTP: true, AllowLoopback: true}), nil)
	t.Cleanup(func() { _ = typ.Close() })
	for _, ok := range []string{"", "null", "{}"} {
		if s, errs := typ.Check(json.RawMessage(ok)); errs != nil || s != nil {
			t.Errorf("Check(%q) = %s, %v; want nothing", ok, s, errs)
		}
	}
	if _, errs := typ.Check(json.RawMessage(`{"subject":"x"}`)); len(errs) != 1 || errs[0].Field != "subject" {
		t.Errorf("Check with a setting = %v, want an error at subject", errs)
	}

	got := make(chan *http.Request, 1)
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		got <- r
		if r.Header.Get("X-Slow") != "" {
			time.Sleep(2 * time.Second)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	s, err := typ.Open(destination.Target{EndpointID: "ep_1", URL: srv.URL + "/hook"})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"Webhook-Id": {"evt_1"}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := s.Send(ctx, &destination.Message{ID: "evt_1", Body: []byte(`{"a":1}`), Header: h})
	r := <-got
	if out.Class != destination.Success || out.StatusCode != http.StatusNoContent || r.Method != http.MethodPost ||
		r.URL.Path != "/hook" || r.Header.Get("Webhook-Id") != "evt_1" || body != `{"a":1}` {
		t.Fatalf("outcome %+v; request %s %s %v %s", out, r.Method, r.URL.Path, r.Header, body)
	}

	// The deadline is the attempt's timeout.
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	out = s.Send(ctx, &destination.Message{ID: "evt_2", Body: []byte(`{}`), Header: http.Header{"X-Slow": {"1"}}})
	<-got
	if out.Class != destination.Retryable || out.ErrorKind != destination.KindTimeout || !strings.Contains(out.Error, "timed out") {
		t.Fatalf("slow receiver: %+v, want a retryable timeout", out)
	}
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	c := httpsend.New(httpsend.Config{})
	if _, err := destination.NewRegistry(webhook.New(c, nil), webhook.New(c, nil)); err == nil {
		t.Fatal("two types of one name were accepted")
	}
	r, err := destination.NewRegistry(webhook.New(c, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Get("webhook"); !ok || strings.Join(r.Names(), ",") != "webhook" {
		t.Fatalf("names %v", r.Names())
	}
	if _, err := r.Open("nats", destination.Target{EndpointID: "ep_1"}); err == nil || !strings.Contains(err.Error(), "unknown destination type") {
		t.Fatalf("Open of an unknown type: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}
