package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/node"
)

const bodyTestKey = "hk_admin_bodytest_0123456789abcdef"

// startNode runs a real Herald node (SQLite) on 127.0.0.1 and returns its API server and address.
func startNode(t *testing.T) (*api.Server, string) {
	t.Helper()
	n, err := node.Start(context.Background(), node.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Dev: true, APIKey: bodyTestKey,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			t.Errorf("close node: %v", err)
		}
	})
	return n.API, n.Addr
}

// bodyRoute is a route that takes a request body, with its path parameters filled in.
type bodyRoute struct {
	method, path string
	op           *huma.Operation
}

// bodyRoutes lists every route of the OpenAPI document that takes a body, so that a new one is
// covered without changing the test.
func bodyRoutes(t *testing.T, a *api.Server) []bodyRoute {
	t.Helper()
	param := regexp.MustCompile(`\{[^}]+\}`)
	var routes []bodyRoute
	for path, item := range a.OpenAPI().Paths {
		for _, op := range []*huma.Operation{item.Post, item.Put, item.Patch, item.Delete} {
			if op != nil && op.RequestBody != nil {
				routes = append(routes, bodyRoute{op.Method, param.ReplaceAllString(path, "x"), op})
			}
		}
	}
	sort.Slice(routes, func(i, j int) bool { return routes[i].path+routes[i].method < routes[j].path+routes[j].method })
	if len(routes) < 10 {
		t.Fatalf("only %d routes take a body: %v", len(routes), routes)
	}
	return routes
}

// rawRequest writes head (the request line is added, then Host, the admin key and extra headers)
// and body on a new TCP connection, half-closes it when closeWrite, and reads the answer.
func rawRequest(t *testing.T, addr string, r bodyRoute, headers, body string, closeWrite bool) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second)) // only a hang fails here
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n%s\r\n%s", r.method, r.path, addr, bodyTestKey, headers, body)
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: read answer: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// A body Herald cannot read or decode is the client's mistake on every route that takes one: a
// 4xx problem+json naming the body, never a 500.
func TestBody_UnreadableBodiesAre4xxOnEveryRoute(t *testing.T) {
	t.Parallel()
	a, addr := startNode(t)
	cases := []struct {
		name, headers, body string
		closeWrite          bool
		want                int
	}{
		{"malformed chunk size", "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n", false, http.StatusBadRequest},
		{"chunk longer than its size", "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n", "2\r\n{\"a\":1}\r\n0\r\n\r\n", false, http.StatusBadRequest},
		{"chunked body cut short", "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n", "10\r\n{\"a\"", true, http.StatusBadRequest},
		{"body shorter than its length", "Content-Type: application/json\r\nContent-Length: 100\r\n", `{"a":`, true, http.StatusBadRequest},
		{"length over every limit", "Content-Type: application/json\r\nContent-Length: 1073741824\r\n", "{}", false, http.StatusRequestEntityTooLarge},
		{"not JSON", "Content-Type: application/json\r\nContent-Length: {len}\r\n", "{{{", false, http.StatusBadRequest},
		{"invalid UTF-8", "Content-Type: application/json\r\nContent-Length: {len}\r\n", "{\"name\":\"\xff\xfe\"}", false, http.StatusBadRequest},
		{"wrong content type", "Content-Type: text/plain\r\nContent-Length: {len}\r\n", "{}", false, http.StatusUnsupportedMediaType},
		{"compressed", "Content-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {len}\r\n", "\x1f\x8b\x08\x00", false, http.StatusUnsupportedMediaType},
	}
	for _, r := range bodyRoutes(t, a) {
		for _, c := range cases {
			t.Run(r.method+" "+r.path+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				headers := strings.ReplaceAll(c.headers, "{len}", fmt.Sprint(len(c.body)))
				resp, body := rawRequest(t, addr, r, headers, c.body, c.closeWrite)
				if resp.StatusCode != c.want || resp.Header.Get("Content-Type") != "application/problem+json" {
					t.Fatalf("%d %s %.300s, want %d problem+json", resp.StatusCode, resp.Header.Get("Content-Type"), body, c.want)
				}
				var p struct {
					Status int `json:"status"`
				}
				if err := json.Unmarshal(body, &p); err != nil || p.Status != c.want {
					t.Fatalf("problem %.300s (%v), want status %d", body, err, c.want)
				}
			})
		}
	}
}

// dribble sends a publish whose body takes about total to arrive, in pieces, on a raw
// connection, or stops after stopAfter bytes and waits for the answer.
func dribble(t *testing.T, addr, key, path string, body []byte, pieces int, total time.Duration, stopAfter int) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Minute)) // only a hang fails here
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		path, addr, key, len(body))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	step := (len(body) + pieces - 1) / pieces
	for sent := 0; sent < len(body); sent += step {
		if stopAfter > 0 && sent >= stopAfter {
			break
		}
		if _, err := conn.Write(body[sent:min(sent+step, len(body))]); err != nil {
			t.Fatalf("write the body after %d bytes: %v", sent, err)
		}
		time.Sleep(total / time.Duration(pieces))
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// A body that keeps coming at the minimum rate is taken however long it takes (here past huma's
// former flat 5 s, and past the server's WriteTimeout, which then counts from the body's end);
// one that stalls is answered 408 problem+json once it falls behind.
func TestBody_SlowBodyAtTheMinimumRateIsTakenAStalledOneIs408(t *testing.T) {
	t.Parallel()
	const writeTimeout = 2 * time.Second
	a := newTestAPI(t, api.Config{BodyGrace: time.Second, BodyMinRate: 1 << 10, AnswerTimeout: writeTimeout})
	a.tenantKey("acme")
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "order.created"}, nil)
	srv := httptest.NewUnstartedServer(a.api)
	srv.Config.WriteTimeout = writeTimeout
	srv.Start()
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	events := make([]string, 60)
	for i := range events {
		events[i] = fmt.Sprintf(`{"type":"order.created","data":{"i":%d,"pad":"%s"}}`, i, strings.Repeat("x", 60))
	}
	body := []byte(`{"events":[` + strings.Join(events, ",") + `]}`) // about 6 KiB: 6 s at 1 KiB/s would be allowed 7 s
	t.Run("slow", func(t *testing.T) {
		t.Parallel()
		resp, b := dribble(t, addr, a.admin, "/v1/tenants/acme/events/batch", body, 24, 6*time.Second, 0)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("a %d-byte batch sent over 6 s: %d %.300s, want 202", len(body), resp.StatusCode, b)
		}
	})
	t.Run("stalled", func(t *testing.T) {
		t.Parallel()
		resp, b := dribble(t, addr, a.admin, "/v1/tenants/acme/events/batch", body, 24, 0, 1<<10)
		if resp.StatusCode != http.StatusRequestTimeout || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("a batch that stalls after 1 KiB: %d %s %.300s, want 408 problem+json", resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
	})
}
