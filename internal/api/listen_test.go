package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/metrics"
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

// publishLarge publishes n events of about 240 KiB of data each (just under the 256 KiB event
// limit), named prefix0, prefix1…, in one batch.
func (a *testAPI) publishLarge(prefix string, n int) {
	a.t.Helper()
	pad := strings.Repeat("x", 240<<10)
	var batch []map[string]any
	for i := range n {
		batch = append(batch, map[string]any{"id": prefix + strconv.Itoa(i), "type": "invoice.paid", "data": map[string]any{"pad": pad}})
	}
	a.must(http.StatusAccepted, "POST", "/v1/tenants/acme/events/batch", map[string]any{"events": batch}, nil)
}

// openUnread opens a listen stream and never reads it past the headers.
func openUnread(t *testing.T, base, key, lastEventID string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/v1/tenants/acme/listen", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Last-Event-ID", lastEventID)
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		cancel()
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { cancel(); _ = resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("listen: %s", resp.Status)
	}
	return resp
}

// readyCursor opens a stream just to take its ready cursor: the place where the events
// published after it start.
func readyCursor(t *testing.T, base, key string) string {
	t.Helper()
	s, ans := listen(t, base, key, "", nil)
	if s == nil {
		t.Fatalf("listen: %d %s", ans.status, ans.body)
	}
	defer s.close()
	return s.next(5 * time.Second).id
}

// liveHeap is the heap in use after two collections: what is still referenced (the first
// only moves what sync.Pools keep, such as encoding/json's buffers, to where the second frees it).
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// A stream whose client never reads holds one small page of events while its write waits, not
// the backlog: streams of 100 events of 240 KiB each (24 MiB) to clients that read nothing add
// a few MiB to the server's heap, not what they would send. (The test measures the process's
// live heap, so it runs alone, not in parallel with the others.)
func TestListen_AStreamNobodyReadsHoldsOnePage(t *testing.T) {
	a := newTestAPI(t, api.Config{})
	key, _, _ := feedSetUp(t, a)
	from := readyCursor(t, a.srv.URL, key)
	a.publishLarge("big", 100)

	const streams = 4
	const perStream = 8 << 20 // generous: a page is at most 1 MiB and one event
	before := liveHeap()
	for range streams {
		openUnread(t, a.srv.URL, key, from)
	}
	// The streams read and write until their writes block (the 30 s write timeout is far
	// off). What they hold then is the heap they keep over the second half of 4 s: the
	// smallest sample there, so that the garbage of a page being written does not count.
	var held uint64 = math.MaxUint64
	for i := range 40 {
		if h := liveHeap(); i >= 20 {
			held = min(held, h)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if grew := int64(held) - int64(before); grew > streams*perStream {
		t.Fatalf("%d streams nobody reads hold %d MiB of live heap, want at most %d MiB", streams, grew>>20, streams*perStream>>20)
	}
}

// metricValue is the value of a gauge or counter (the sum over its labels).
func metricValue(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.GetMetric() {
			v += s.GetGauge().GetValue() + s.GetCounter().GetValue()
		}
	}
	return v
}

// A client that stops reading is dropped once a write has waited the write timeout: the
// server logs why, with the tenant and the key, counts it, frees the stream's place, and
// closes the connection.
func TestListen_DropsAClientThatDoesNotKeepUp(t *testing.T) {
	t.Parallel()
	// The log goes to a file, which the test reads while the server writes it.
	logFile, err := os.Create(filepath.Join(t.TempDir(), "herald.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logFile.Close() })
	logs := func() string {
		b, err := os.ReadFile(logFile.Name())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	m := metrics.New(metrics.Options{})
	a := newTestAPI(t, api.Config{ListenWriteTimeout: 300 * time.Millisecond, Metrics: m, Logger: slog.New(slog.NewTextHandler(logFile, nil))})
	key, _, _ := feedSetUp(t, a)
	from := readyCursor(t, a.srv.URL, key)
	a.publishLarge("big", 100) // 24 MiB: more than the sockets' buffers take

	resp := openUnread(t, a.srv.URL, key, from)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs(), "reason="+api.ListenSlowConsumer) {
		if time.Now().After(deadline) {
			t.Fatalf("the stream was not dropped within 20 s; log:\n%s", logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var line string
	for _, l := range strings.Split(logs(), "\n") {
		if strings.Contains(l, "reason="+api.ListenSlowConsumer) {
			line = l
		}
	}
	if !strings.Contains(line, "tenant=acme") || !strings.Contains(line, "key=key_") || !strings.Contains(line, "level=WARN") {
		t.Errorf("the drop's log line does not name the tenant and the key: %s", line)
	}
	if n := metricValue(t, m, "herald_listen_dropped_total"); n != 1 {
		t.Errorf("herald_listen_dropped_total = %v, want 1", n)
	}
	for metricValue(t, m, "herald_listen_streams") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("herald_listen_streams is not back to 0 after the drop")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The connection is closed: what the client reads now ends.
	read := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, resp.Body)
		read <- err
	}()
	select {
	case <-read:
	case <-time.After(20 * time.Second):
		t.Fatal("the dropped stream's connection stays open")
	}
}

// tenantKeyOf makes another key of an existing tenant.
func (a *testAPI) tenantKeyOf(tenant string) string {
	a.t.Helper()
	var k struct {
		Key string `json:"key"`
	}
	a.must(http.StatusCreated, "POST", "/v1/api-keys", map[string]any{"role": "tenant", "tenant_id": tenant}, &k)
	return k.Key
}

// Streams are limited per API key and per server: above either limit, 429 with Retry-After
// naming the limit, while other keys (under the server's limit) still listen; a stream that
// ends gives its place back.
func TestListen_LimitsStreamsPerKeyAndPerServer(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{MaxListenStreamsPerKey: 2, MaxListenStreams: 3})
	first, _, _ := feedSetUp(t, a)
	second, third := a.tenantKeyOf("acme"), a.tenantKeyOf("acme")

	open := func(key string) *sseStream {
		t.Helper()
		s, ans := listen(t, a.srv.URL, key, "", nil)
		if s == nil {
			t.Fatalf("listen: %d %s", ans.status, ans.body)
		}
		s.next(5 * time.Second)
		return s
	}
	refused := func(key, want string) {
		t.Helper()
		s, ans := listen(t, a.srv.URL, key, "", nil)
		if s != nil {
			t.Fatalf("a stream above the limit opened (want 429: %s)", want)
		}
		if ans.status != http.StatusTooManyRequests {
			t.Fatalf("above the limit: %d %s, want 429", ans.status, ans.body)
		}
		if p := ans.problem(t); !strings.Contains(p.Detail, want) {
			t.Errorf("the problem says %q, want it to name the limit (%q)", p.Detail, want)
		}
		if ra, err := strconv.Atoi(ans.header.Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("Retry-After = %q, want whole seconds", ans.header.Get("Retry-After"))
		}
	}

	s1 := open(first)
	open(first)
	refused(first, "this API key already has 2 open")
	open(second) // another key still may
	refused(third, "this server already holds 3")

	// A stream that ends frees its place (once its handler sees the client gone).
	s1.close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, ans := listen(t, a.srv.URL, third, "", nil)
		if s != nil {
			s.next(5 * time.Second)
			break
		}
		if ans.status != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("after a stream ended: %d %s", ans.status, ans.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
