package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/heraldhq/herald/internal/node"
)

// healthcheckCmd asks a Herald on this machine whether it serves. The container image runs it as
// its HEALTHCHECK: the image has no shell and no curl, so the binary checks itself.
func healthcheckCmd() *cobra.Command {
	var (
		target, addr string
		timeout      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 if Herald answers GET /healthz with 200 (a container health check)",
		Long: `Ask a running Herald whether it serves: GET /healthz, exit 0 on 200, exit 1 otherwise.
Without --url it asks the Herald of --addr on this machine (HERALD_ADDR, as "herald serve" reads it;
a wildcard address such as 0.0.0.0:8080 is asked on loopback), so a container that sets HERALD_ADDR
checks the right port with no flag. It never goes through a proxy. Over HTTPS, give --url.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := bindEnv(cmd.Flags()); err != nil {
				return usageErrorf("%w", err)
			}
			u, err := healthURL(target, addr)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			if err := checkHealth(ctx, u); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "ok")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&target, "url", "", "URL to GET (default: http://<--addr>/healthz)")
	f.StringVar(&addr, "addr", node.DefaultAddr, "the address \"herald serve\" listens on (HERALD_ADDR)")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	return cmd
}

// healthURL is --url if given, else /healthz on --addr, with a wildcard host replaced by loopback.
func healthURL(target, addr string) (string, error) {
	if target != "" {
		u, err := url.Parse(target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", usageErrorf("--url %q: want http://host:port/path or https://host:port/path", target)
		}
		return target, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", usageErrorf("--addr %q: want host:port: %w", addr, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}

// checkHealth GETs u and wants 200.
func checkHealth(ctx context.Context, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("health check %s: %w", u, err)
	}
	c := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health check %s: %d %s: %s", u, resp.StatusCode, http.StatusText(resp.StatusCode), body)
	}
	return nil
}
