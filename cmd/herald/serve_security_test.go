package main

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testcert"
)

// TestServe_HTTPSAndRateLimitFromEnvAndFlags runs the binary with its certificate from
// HERALD_TLS_CERT / HERALD_TLS_KEY and a tight admin key rate limit from flags, and talks to it
// with a client that trusts only that certificate.
func TestServe_HTTPSAndRateLimitFromEnvAndFlags(t *testing.T) {
	needBinary(t)
	certFile, keyFile, pool := testcert.WriteSelfSigned(t, t.TempDir())
	addr := freeAddr(t)
	p := run(t, "https", []string{"HERALD_API_KEY=" + testKey, "HERALD_TLS_CERT=" + certFile, "HERALD_TLS_KEY=" + keyFile},
		"serve", "--addr", addr, "--data-dir", t.TempDir(), "--admin-rate", "0.2", "--admin-burst", "2")
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(path string) (*http.Response, error) {
		req, err := http.NewRequest("GET", "https://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testKey)
		resp, err := hc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}

	deadline := time.Now().Add(readyWithin)
	for !strings.Contains(p.stderr.String(), "herald is serving") {
		if p.done() || time.Now().After(deadline) {
			t.Fatalf("herald did not start with HTTPS%s", p.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range 2 {
		resp, err := get("/v1/tenants")
		if err != nil {
			t.Fatalf("HTTPS request %d: %v%s", i+1, err, p.logs())
		}
		if resp.StatusCode != http.StatusOK || resp.TLS == nil {
			t.Fatalf("HTTPS request %d: status %d, TLS %v", i+1, resp.StatusCode, resp.TLS != nil)
		}
	}
	resp, err := get("/v1/tenants")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third request with --admin-burst 2 = %d, want 429", resp.StatusCode)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After = %q, want whole seconds", resp.Header.Get("Retry-After"))
	}
	p.stop()
}

func TestServe_BadSecuritySettingsStopTheStart(t *testing.T) {
	needBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	certFile, _, _ := testcert.WriteSelfSigned(t, t.TempDir())
	for _, c := range []struct {
		name  string
		env   []string
		args  []string
		wants []string
	}{
		{"negative --api-rate", nil, []string{"--api-rate", "-1"}, []string{"--api-rate"}},
		{"NaN HERALD_API_RATE", []string{"HERALD_API_RATE=NaN"}, nil, []string{"--api-rate"}},
		{"negative --api-burst", nil, []string{"--api-burst", "-5"}, []string{"--api-burst"}},
		{"--max-listen-streams 0", nil, []string{"--max-listen-streams", "0"}, []string{"--max-listen-streams 0"}},
		{"negative HERALD_MAX_LISTEN_STREAMS_PER_KEY", []string{"HERALD_MAX_LISTEN_STREAMS_PER_KEY=-1"}, nil, []string{"--max-listen-streams-per-key -1"}},
		{"certificate without key", nil, []string{"--tls-cert", certFile}, []string{"--tls-key"}},
		{"unreadable certificate", []string{"HERALD_TLS_CERT=/nonexistent/cert.pem", "HERALD_TLS_KEY=/nonexistent/key.pem"}, nil,
			[]string{"load the TLS certificate"}},
		{"bad --internal-cidr", nil, []string{"--internal-cidr", "10.0.0.0/33"}, []string{"--internal-cidr"}},
		{"bad HERALD_INTERNAL_CIDR entry", []string{"HERALD_INTERNAL_CIDR=10.2.0.0/16,nonsense"}, nil, []string{`--internal-cidr "nonsense"`}},
	} {
		args := append([]string{"serve", "--addr", freeAddr(t), "--data-dir", t.TempDir(), "--api-key", testKey}, c.args...)
		cmd := exec.CommandContext(ctx, heraldBin, args...)
		cmd.Env = childEnv(c.env...)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Errorf("%s: want a non-zero exit, got %v; output:\n%s", c.name, err, out)
			continue
		}
		for _, w := range c.wants {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s: output does not mention %s:\n%s", c.name, w, out)
			}
		}
	}
}
