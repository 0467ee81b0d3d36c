package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The container image's HEALTHCHECK runs "herald healthcheck" with only HERALD_ADDR set, as here.
func TestHealthcheck_AsksTheServingHerald(t *testing.T) {
	needBinary(t)
	t.Parallel()
	h := serve(t, "herald", t.TempDir(), []string{"HERALD_API_KEY=" + testKey})

	check := func() (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, heraldBin, "healthcheck", "--timeout", "3s")
		cmd.Env = childEnv("HERALD_ADDR=" + h.addr)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return string(out), 0
		case errors.As(err, &exit):
			return string(out), exit.ExitCode()
		}
		t.Fatalf("run herald healthcheck: %v", err)
		return "", 0
	}

	if out, code := check(); code != 0 || strings.TrimSpace(out) != "ok" {
		t.Fatalf("healthcheck of a serving herald: exit %d, output %q; want 0 and ok", code, out)
	}
	h.stop()
	out, code := check()
	if code != 1 {
		t.Fatalf("healthcheck of a stopped herald: exit %d, want 1; output %q", code, out)
	}
	if !strings.Contains(out, h.addr) {
		t.Errorf("healthcheck of a stopped herald says %q, want the address it asked (%s)", out, h.addr)
	}
}

func TestHealthcheck_FailsOnAnythingButOK(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"unavailable"}`))
	}))
	defer srv.Close()

	for _, c := range []struct {
		name     string
		args     []string
		wantCode int
		wants    []string
	}{
		{"503", []string{"--url", srv.URL + "/healthz"}, 1, []string{"503", "unavailable"}},
		{"404", []string{"--url", srv.URL + "/elsewhere"}, 1, []string{"404"}},
		{"not a URL", []string{"--url", "localhost:8080"}, 2, []string{"--url", "http://host:port"}},
		{"bad addr", []string{"--addr", "8080"}, 2, []string{"--addr", "host:port"}},
		{"argument", []string{"http://127.0.0.1:8080/healthz"}, 1, []string{"unknown command"}},
	} {
		cmd := root()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(append([]string{"healthcheck"}, c.args...))
		err := cmd.ExecuteContext(context.Background())
		if err == nil {
			t.Errorf("%s: healthcheck succeeded, want exit %d", c.name, c.wantCode)
			continue
		}
		if got := exitCode(err); got != c.wantCode {
			t.Errorf("%s: exit %d (%v), want %d", c.name, got, err, c.wantCode)
		}
		for _, w := range c.wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}
	}
}

func TestHealthURL_AsksWildcardAddressesOnLoopback(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ url, addr, want string }{
		{"", "127.0.0.1:8080", "http://127.0.0.1:8080/healthz"},
		{"", "0.0.0.0:9000", "http://127.0.0.1:9000/healthz"},
		{"", ":9000", "http://127.0.0.1:9000/healthz"},
		{"", "[::]:9000", "http://[::1]:9000/healthz"},
		{"", "[::1]:8080", "http://[::1]:8080/healthz"},
		{"https://localhost:8443/readyz", "0.0.0.0:9000", "https://localhost:8443/readyz"},
	} {
		got, err := healthURL(c.url, c.addr)
		if err != nil || got != c.want {
			t.Errorf("healthURL(%q, %q) = %q, %v; want %q", c.url, c.addr, got, err, c.want)
		}
	}
}
