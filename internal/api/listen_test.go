package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/api"
)

// sse is one Server-Sent Event, or a comment (a heartbeat).
type sse struct {
	name, id, data, comment string
}

// sseStream reads a listen stream in the background.
type sseStream struct {
	t      *testing.T
	resp   *http.Response
	events chan sse
	ended  chan error
	cancel context.CancelFunc
}

// listen opens a listen stream with key; header sets extra request headers.
func listen(t *testing.T, base, key, query string, header map[string]string) (*sseStream, answer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/v1/tenants/acme/listen"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		cancel()
		t.Fatalf("listen: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
		return nil, answer{status: resp.StatusCode, header: resp.Header, body: []byte(b.String())}
	}
	s := &sseStream{t: t, resp: resp, events: make(chan sse, 1000), ended: make(chan error, 1), cancel: cancel}
	t.Cleanup(s.close)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		var ev sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev != (sse{}) {
					s.events <- ev
				}
				ev = sse{}
			case strings.HasPrefix(line, ":"):
				s.events <- sse{comment: strings.TrimSpace(line[1:])}
			default:
				field, value, _ := strings.Cut(line, ":")
				value = strings.TrimPrefix(value, " ")
				switch field {
				case "event":
					ev.name = value
				case "id":
					ev.id = value
				case "data":
					ev.data = value
				}
			}
		}
		s.ended <- sc.Err()
	}()
	return s, answer{status: resp.StatusCode, header: resp.Header}
}

func (s *sseStream) close() {
	s.cancel()
	_ = s.resp.Body.Close()
}

// next returns the next event that is not a heartbeat.
func (s *sseStream) next(within time.Duration) sse {
	s.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev := <-s.events:
			if ev.comment == "" {
				return ev
			}
		case err := <-s.ended:
			s.ended <- err
			// The reader sends every event before it reports the end.
			select {
			case ev := <-s.events:
				if ev.comment == "" {
					return ev
				}
				continue
			default:
			}
			s.t.Fatalf("the stream ended (%v) while an event was expected", err)
		case <-deadline:
			s.t.Fatalf("no event within %v", within)
		}
	}
}

// quiet checks that no event (heartbeats aside) comes within d.
func (s *sseStream) quiet(d time.Duration) {
	s.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case ev := <-s.events:
			if ev.comment == "" {
				s.t.Fatalf("unexpected event %+v", ev)
			}
		case <-deadline:
			return
		}
	}
}

func eventID(t *testing.T, ev sse) string {
	t.Helper()
	var e struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(ev.data), &e); err != nil || ev.name != "" || ev.id == "" {
		t.Fatalf("not an event with an id: %+v (%v)", ev, err)
	}
	return e.ID
}

func TestListen_StreamsNewEventsAndResumesFromTheLastID(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	key, _, _ := feedSetUp(t, a)
	a.publishEvent("before", "invoice.paid", map[string]any{})

	s, ans := listen(t, a.srv.URL, key, "?events=invoice.*", nil)
	if s == nil {
		t.Fatalf("listen: %d %s", ans.status, ans.body)
	}
	if ct := ans.header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q", ct)
	}
	ready := s.next(5 * time.Second)
	if ready.name != "ready" || ready.id == "" || !strings.Contains(ready.data, `"heartbeat_seconds":15`) {
		t.Fatalf("first event = %+v, want ready with a cursor", ready)
	}
	a.publishEvent("c1", "customer.created", map[string]any{})
	a.publishEvent("i1", "invoice.paid", map[string]any{"card": map[string]any{"number": "4242"}})
	ev := s.next(5 * time.Second)
	if id := eventID(t, ev); id != "i1" {
		t.Fatalf("got %s, want i1 (before was published before the stream, c1 is not an invoice)", id)
	}
	if !strings.Contains(ev.data, `"card":{"number":"[REDACTED]"}`) {
		t.Fatalf("i1 = %s, want card.number redacted", ev.data)
	}
	last := ev.id
	s.close()

	// Published while nobody listened: a stream resuming after the last id gets them, once.
	a.publishEvent("i2", "invoice.voided", map[string]any{})
	a.publishEvent("i3", "invoice.paid", map[string]any{})
	s, ans = listen(t, a.srv.URL, key, "?events=invoice.*", map[string]string{"Last-Event-ID": last})
	if s == nil {
		t.Fatalf("resume: %d %s", ans.status, ans.body)
	}
	if r := s.next(5 * time.Second); r.name != "ready" {
		t.Fatalf("first event on resume = %+v", r)
	}
	for _, want := range []string{"i2", "i3"} {
		if got := eventID(t, s.next(5*time.Second)); got != want {
			t.Fatalf("resumed stream sent %s, want %s", got, want)
		}
	}
	s.quiet(500 * time.Millisecond)
	s.close()

	// From the ready cursor of the first stream, with after and two patterns.
	s, ans = listen(t, a.srv.URL, key, "?events=invoice.voided,customer.created&after="+ready.id, nil)
	if s == nil {
		t.Fatalf("after: %d %s", ans.status, ans.body)
	}
	s.next(5 * time.Second)
	for _, want := range []string{"c1", "i2"} {
		if got := eventID(t, s.next(5*time.Second)); got != want {
			t.Fatalf("stream after the first ready sent %s, want %s", got, want)
		}
	}
}

func TestListen_RefusesBadRequestsWithProblems(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	key, invoices, _ := feedSetUp(t, a)
	a.publishEvent("i1", "invoice.paid", map[string]any{})
	_, p := a.feed(key, invoices, "", 10) // an endpoint feed's cursor is not a listen cursor

	for _, c := range []struct {
		query    string
		header   map[string]string
		location string
	}{
		{"?events=Not+A+Type", nil, "query.events[0]"},
		{"?events=invoice.*,invoice.", nil, "query.events[1]"},
		{"?after=" + p.Next, nil, "query.after"},
		{"", map[string]string{"Last-Event-ID": "garbage"}, "header.Last-Event-ID"},
	} {
		s, ans := listen(t, a.srv.URL, key, c.query, c.header)
		if s != nil {
			t.Fatalf("%s %v: the stream opened", c.query, c.header)
		}
		if ans.status != http.StatusUnprocessableEntity {
			t.Fatalf("%s %v: %d %s, want 422", c.query, c.header, ans.status, ans.body)
		}
		if _, ok := ans.problem(t).find(c.location); !ok {
			t.Errorf("%s %v: the problem does not name %s: %s", c.query, c.header, c.location, ans.body)
		}
	}
	if _, ans := listen(t, a.srv.URL, "hk_tenant_wrong", "", nil); ans.status != http.StatusUnauthorized {
		t.Fatalf("a wrong key: %d %s", ans.status, ans.body)
	}
	other := a.tenantKey("other")
	if _, ans := listen(t, a.srv.URL, other, "", nil); ans.status != http.StatusNotFound {
		t.Fatalf("another tenant's key: %d %s", ans.status, ans.body)
	}
}

// A stream outlives the server's read and write timeouts, sends heartbeats while quiet, and its
// handler ends when the client goes.
func TestListen_OutlivesServerTimeoutsAndEndsWithTheClient(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{ListenHeartbeat: 100 * time.Millisecond})
	key, _, _ := feedSetUp(t, a)
	srv := httptest.NewUnstartedServer(a.api)
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Config.WriteTimeout = 300 * time.Millisecond
	srv.Start()
	closed := false
	t.Cleanup(func() {
		if !closed {
			srv.Close()
		}
	})

	s, ans := listen(t, srv.URL, key, "", nil)
	if s == nil {
		t.Fatalf("listen: %d %s", ans.status, ans.body)
	}
	s.next(5 * time.Second)
	// The stream outlives four times both timeouts and carries heartbeats meanwhile; how many
	// arrive in a given time is the scheduler's, so the wait is for five of them (10 s only
	// catches a stream that sends none).
	heartbeats := 0
	outlived := time.After(1200 * time.Millisecond) // four times both timeouts
	hang := time.After(10 * time.Second)
	for past := false; !past || heartbeats < 5; {
		select {
		case ev := <-s.events:
			if ev.comment != "heartbeat" {
				t.Fatalf("unexpected %+v", ev)
			}
			heartbeats++
		case err := <-s.ended:
			t.Fatalf("the stream ended after %d heartbeats: %v", heartbeats, err)
		case <-outlived:
			past = true
		case <-hang:
			t.Fatalf("%d heartbeats in 10 s at 100 ms, want at least 5", heartbeats)
		}
	}
	a.publishEvent("late", "invoice.paid", map[string]any{})
	if id := eventID(t, s.next(5*time.Second)); id != "late" {
		t.Fatalf("got %s, want late", id)
	}

	// httptest.Server.Close waits for every handler: it returns only if the stream's ended.
	s.close()
	done := make(chan struct{})
	go func() { srv.Close(); close(done) }()
	select {
	case <-done:
		closed = true
	case <-time.After(5 * time.Second):
		t.Fatal("the stream's handler still runs 5 s after its client went")
	}
}

// Shutdown of a server that calls StopStreams on shutdown ends streams with a close event,
// instead of waiting for them until its context expires.
func TestListen_ServerShutdownEndsStreams(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	key, _, _ := feedSetUp(t, a)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: a.api, ReadHeaderTimeout: 5 * time.Second}
	srv.RegisterOnShutdown(a.api.StopStreams)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	s, ans := listen(t, "http://"+ln.Addr().String(), key, "", nil)
	if s == nil {
		t.Fatalf("listen: %d %s", ans.status, ans.body)
	}
	s.next(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	// A stream that held the server up would make Shutdown wait out its context: an error.
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v after %v", err, time.Since(start))
	}
	if ev := s.next(time.Second); ev.name != "close" {
		t.Fatalf("last event = %+v, want close", ev)
	}
	select {
	case err := <-s.ended:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("the stream ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end")
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
}

// A backlog larger than one read of the store comes whole and in order.
func TestListen_SendsABacklogInOrder(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	key, _, _ := feedSetUp(t, a)
	s, ans := listen(t, a.srv.URL, key, "", nil)
	if s == nil {
		t.Fatalf("listen: %d %s", ans.status, ans.body)
	}
	s.next(5 * time.Second)
	var batch []map[string]any
	for i := range 250 {
		batch = append(batch, map[string]any{"id": "b" + strconv.Itoa(i), "type": "invoice.paid", "data": map[string]any{}})
	}
	a.must(http.StatusAccepted, "POST", "/v1/tenants/acme/events/batch", map[string]any{"events": batch}, nil)
	for i := range 250 {
		if got := eventID(t, s.next(5*time.Second)); got != "b"+strconv.Itoa(i) {
			t.Fatalf("event %d is %s", i, got)
		}
	}
	s.quiet(300 * time.Millisecond)
}
