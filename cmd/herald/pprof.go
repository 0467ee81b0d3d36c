package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// pprofListener serves Go's runtime profiles (net/http/pprof) on an address of its own, apart
// from the API: the API's listener never serves them. It is off unless --pprof-addr is given, and
// it refuses an address that is not loopback unless allowRemote, because a profile shows the
// process's internals (goroutine stacks with their arguments, the command line) to whoever asks.
// Importing net/http/pprof also registers its handlers on http.DefaultServeMux, which Herald
// never serves (TestPprof_ServedOnItsOwnAddressOnly checks that the API's listener does not).
type pprofListener struct {
	srv *http.Server
}

// startPprof listens on addr and serves the profiles until stop is called.
func startPprof(addr string, allowRemote bool, log *slog.Logger) (*pprofListener, error) {
	if !allowRemote {
		if err := loopbackAddr(addr); err != nil {
			return nil, fmt.Errorf("--pprof-addr %q: %w (add --pprof-allow-remote to serve profiles beyond this machine)", addr, err)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof-addr: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // and every named profile: heap, goroutine, block, mutex, allocs …
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No WriteTimeout: a CPU profile or a trace streams for as long as ?seconds= asks.
	p := &pprofListener{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("profiling listener stopped", "err", err)
		}
	}()
	log.Info("serving Go profiles", "addr", ln.Addr().String(), "path", "/debug/pprof/")
	return p, nil
}

// stop closes the listener and any profile being streamed.
func (p *pprofListener) stop() { _ = p.srv.Close() }

// loopbackAddr checks that addr's host is a loopback IP address or "localhost". An empty host
// (":6060") listens on every interface, so it is refused too.
func loopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return errors.New("not a loopback address (127.0.0.1, ::1 or localhost)")
	}
	return nil
}
