package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestPprof_LoopbackAddr(t *testing.T) {
	t.Parallel()
	for addr, ok := range map[string]bool{
		"127.0.0.1:6060": true, "[::1]:6060": true, "localhost:6060": true, "127.0.0.2:0": true,
		":6060": false, "0.0.0.0:6060": false, "[::]:6060": false, "10.0.0.1:6060": false, "example.com:6060": false, "127.0.0.1": false,
	} {
		if err := loopbackAddr(addr); (err == nil) != ok {
			t.Errorf("loopbackAddr(%q) = %v, want ok %v", addr, err, ok)
		}
	}
}

// pprofGet fetches url and returns its status and body (status 0 when nothing answered).
func pprofGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPprof_ServedOnItsOwnAddressOnly runs the binary with HERALD_PPROF_ADDR: the profiles are
// served there, and the API's own listener does not serve them.
func TestPprof_ServedOnItsOwnAddressOnly(t *testing.T) {
	needBinary(t)
	t.Parallel()
	pprofAddr := freeAddr(t)
	p := serve(t, "pprof", t.TempDir(), []string{"HERALD_API_KEY=" + testKey, "HERALD_PPROF_ADDR=" + pprofAddr})
	status, body := pprofGet(t, "http://"+pprofAddr+"/debug/pprof/")
	if status != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Fatalf("GET /debug/pprof/ on --pprof-addr = %d %.200q, want 200 with the profiles' index%s", status, body, p.logs())
	}
	if status, body := pprofGet(t, "http://"+pprofAddr+"/debug/pprof/heap?debug=1"); status != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Fatalf("GET /debug/pprof/heap?debug=1 = %d %.200q, want the heap profile", status, body)
	}
	if status, body := pprofGet(t, "http://"+pprofAddr+"/debug/pprof/profile?seconds=1"); status != http.StatusOK || len(body) == 0 {
		t.Fatalf("GET /debug/pprof/profile?seconds=1 = %d (%d bytes), want a CPU profile", status, len(body))
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"} {
		if status, body := pprofGet(t, "http://"+p.addr+path); status == http.StatusOK || strings.Contains(body, "goroutine") {
			t.Errorf("the API listener answers GET %s with %d %.200q: profiles must be served on --pprof-addr only", path, status, body)
		}
	}
}

// TestPprof_OffByDefault: without --pprof-addr no profiling listener starts and the API does not
// serve the profiles either.
func TestPprof_OffByDefault(t *testing.T) {
	needBinary(t)
	t.Parallel()
	p := serve(t, "no pprof", t.TempDir(), []string{"HERALD_API_KEY=" + testKey})
	if status, body := pprofGet(t, "http://"+p.addr+"/debug/pprof/"); status == http.StatusOK || strings.Contains(body, "goroutine") {
		t.Errorf("GET /debug/pprof/ on the API = %d %.200q, want no profiles", status, body)
	}
	if strings.Contains(p.stderr.String(), "serving Go profiles") {
		t.Errorf("a profiling listener started without --pprof-addr:%s", p.logs())
	}
}

// TestPprof_RefusesARemoteAddressUnlessAllowed: an address beyond loopback stops the start with a
// message naming the flag, before the node starts.
func TestPprof_RefusesARemoteAddressUnlessAllowed(t *testing.T) {
	needBinary(t)
	t.Parallel()
	p := run(t, "pprof remote", []string{"HERALD_API_KEY=" + testKey}, "serve", "--addr", freeAddr(t), "--data-dir", t.TempDir(), "--pprof-addr", "0.0.0.0:0")
	if code := p.waitExit(readyWithin); code != 1 {
		t.Fatalf("exit code %d, want 1%s", code, p.logs())
	}
	if msg := p.stderr.String(); !strings.Contains(msg, "--pprof-addr") || !strings.Contains(msg, "--pprof-allow-remote") || strings.Contains(msg, "herald is serving") {
		t.Fatalf("stderr %q: want a refusal naming --pprof-addr and --pprof-allow-remote, before serving", msg)
	}
}
