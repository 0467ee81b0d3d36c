package bench

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseStat_CommWithSpacesAndParentheses(t *testing.T) {
	t.Parallel()
	// Fields 14 and 15 (utime, stime) are 250 and 50 ticks: 3 s at 100 ticks a second.
	stat := []byte("4242 (post gres) (x)) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 1 0 100 0 0\n")
	comm, cpu, err := parseStat(stat)
	if err != nil || comm != "post gres) (x)" || cpu != 3*time.Second {
		t.Fatalf("parseStat = %q, %v, %v; want \"post gres) (x)\", 3s", comm, cpu, err)
	}
	for _, bad := range []string{"", "4242 postgres S 1", "4242 (postgres) S 1 2 3", "4242 (p) S 1 4242 4242 0 -1 4194560 500 0 0 0 x 50"} {
		if _, _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
}

func TestProcCPU_ThisProcess(t *testing.T) {
	t.Parallel()
	before, err := procCPU(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	self := selfCPU()
	// Burn about 60 ms of CPU: six of /proc's 10 ms ticks.
	for end := time.Now().Add(60 * time.Millisecond); time.Now().Before(end); {
	}
	after, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after <= before || selfCPU() <= self {
		t.Fatalf("CPU did not grow: /proc %s → %s, getrusage %s → %s", before, after, self, selfCPU())
	}
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	if mine := commCPU(strings.TrimSpace(string(b))); mine[os.Getpid()] <= 0 {
		t.Fatalf("commCPU(%q) = %v: this process is missing", strings.TrimSpace(string(b)), mine)
	}
	if _, err := procCPU(-1); err == nil {
		t.Error("procCPU of no process succeeded")
	}
}

func TestCPUUse_PerDelivery(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		use   cpuUse
		want  float64
		scope string
	}{
		{cpuUse{Self: 3 * time.Millisecond}, 3, "bench process"},
		{cpuUse{Self: 9 * time.Millisecond, Nodes: 2 * time.Millisecond, NodesMeasured: true}, 2, "node"},
		{cpuUse{Self: 9 * time.Millisecond, Nodes: 2 * time.Millisecond, NodesMeasured: true, DB: time.Millisecond, DBMeasured: true, db: true}, 3, "node + postgres"},
		{cpuUse{Self: 2 * time.Millisecond, db: true}, 2, "bench process (postgres not seen: on another machine?)"},
	} {
		if got, scope := c.use.perDelivery(1000); got != c.want || scope != c.scope {
			t.Errorf("%+v: %.1f µs of %q, want %.1f of %q", c.use, got, scope, c.want, c.scope)
		}
	}
}

func TestIngestCeiling_DecodesLikeThePublishAPI(t *testing.T) {
	t.Parallel()
	ic, err := newIngestCeiling()
	if err != nil {
		t.Fatal(err)
	}
	defer ic.close()
	for _, c := range []struct {
		path, body string
		status     int
		want       string
	}{
		{"/v1/tenants/t/events", `{"id":"b-1","type":"a.b","data":{"x":1}}`, http.StatusAccepted, `"id":"b-1"`},
		{"/v1/tenants/t/events/batch", `{"events":[{"id":"b-1","type":"a.b","data":{}},{"id":"b-2","type":"a.b","data":{}}]}`, http.StatusAccepted, `"id":"b-2"`},
		{"/v1/tenants/t/events", `{"type":"a.b","data":[]}`, http.StatusUnprocessableEntity, "body.data"},
		{"/v1/tenants/t/events", `{"type":"a.b","data":{},"extra":1}`, http.StatusUnprocessableEntity, "body.extra"},
		{"/v1/tenants/t/events/batch", `{"events":[]}`, http.StatusUnprocessableEntity, "body.events"},
	} {
		resp, err := http.Post(ic.url+c.path, "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(string(b), c.want) {
			t.Errorf("POST %s %s = %d %s, want %d with %s", c.path, c.body, resp.StatusCode, b, c.status, c.want)
		}
	}
}

// userReceiver stands for a user's own receiver: it records the webhook-id of each request and
// answers with status.
type userReceiver struct {
	mu     sync.Mutex
	ids    map[string]int
	status int
}

func (u *userReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	u.mu.Lock()
	u.ids[r.Header.Get("webhook-id")]++
	u.mu.Unlock()
	w.WriteHeader(u.status)
}

func TestRun_CompareDeliversToTheGivenReceiver(t *testing.T) {
	t.Parallel()
	u := &userReceiver{ids: map[string]int{}, status: http.StatusOK}
	srv := httptest.NewServer(u)
	defer srv.Close()
	cfg := Config{Name: "compare", Events: 200, Publishers: 4, Endpoints: 1, Batch: 10, ReceiverURL: srv.URL + "/hooks"}
	r, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.DeliveriesPerSec <= 0 || r.CeilingPerSec <= 0 || r.Ratio <= 0 || r.CPUPerDelivery <= 0 {
		t.Fatalf("result = %+v", r)
	}
	if r.P50 != 0 || r.P99 != 0 {
		t.Errorf("latencies p50 %s p99 %s: the bench cannot see arrivals at the user's receiver", r.P50, r.P99)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	// Herald's deliveries carry the published ids (b-0 …); the ceiling's are c-1 …; each event
	// arrived, and the ceiling posted as many requests to the same receiver.
	var herald, ceiling int
	for id := range u.ids {
		switch {
		case strings.HasPrefix(id, "b-"):
			herald++
		case strings.HasPrefix(id, "c-"):
			ceiling++
		}
	}
	if herald != cfg.Events || ceiling != cfg.Events {
		t.Fatalf("the receiver got %d of Herald's events and %d ceiling requests, want %d of each", herald, ceiling, cfg.Events)
	}
	var out strings.Builder
	Table(&out, []*Result{r})
	if !strings.Contains(out.String(), "| compare | 200 | 10 |") || !strings.Contains(out.String(), "CPU µs/delivery") {
		t.Errorf("table:\n%s", out.String())
	}
}

func TestRun_CompareStopsWhenTheReceiverFails(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(&userReceiver{ids: map[string]int{}, status: http.StatusServiceUnavailable})
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := Run(ctx, Config{Events: 20, Publishers: 2, ReceiverURL: srv.URL})
	if err == nil || !strings.Contains(err.Error(), "must answer 2xx") {
		t.Fatalf("err = %v, want the receiver's failures named", err)
	}
	if _, err := Run(ctx, Config{Events: 20, Drain: true, ReceiverURL: srv.URL}); err == nil {
		t.Error("a drain delivering to the user's receiver must be refused")
	}
}

// On PostgreSQL the CPU figure includes the postgres server processes when they run on this
// machine (as in CI); elsewhere it says they were not seen.
func TestRun_PostgresCPUIsCounted(t *testing.T) {
	url := os.Getenv("HERALD_TEST_DATABASE_URL")
	if url == "" {
		t.Skip("HERALD_TEST_DATABASE_URL is unset")
	}
	t.Parallel()
	r, err := Run(context.Background(), Config{Events: 200, Publishers: 4, DatabaseURL: url})
	if err != nil {
		t.Fatal(err)
	}
	if r.Missing != 0 || r.CPUPerDelivery <= 0 {
		t.Fatalf("result = %+v", r)
	}
	if len(commCPU("postgres")) == 0 {
		if !strings.Contains(r.CPUScope, "postgres not seen") {
			t.Fatalf("CPU of %q, want it to say postgres was not seen", r.CPUScope)
		}
		return
	}
	if r.CPUScope != "bench process + postgres" || r.DBCPU <= 0 {
		t.Fatalf("CPU of %q, postgres %s: want the postgres processes counted", r.CPUScope, r.DBCPU)
	}
}

func TestRunBatching_ReportsCPUPerEvent(t *testing.T) {
	t.Parallel()
	b, err := RunBatching(context.Background(), BatchingConfig{Events: 300, Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []BatchingRun{b.Off, b.On} {
		if r.EventsPerSec <= 0 || r.CPUPerEvent <= 0 {
			t.Fatalf("run %+v: want events/s and CPU per event", r)
		}
	}
	// Batching sends fewer requests for the same events.
	if b.On.Requests >= b.Off.Requests || b.Ceiling <= 0 {
		t.Fatalf("requests with batching %d, without %d; ceiling %.0f", b.On.Requests, b.Off.Requests, b.Ceiling)
	}
	var out strings.Builder
	b.Print(&out)
	if !strings.Contains(out.String(), "CPU µs/event (bench process)") {
		t.Errorf("the printout lacks the CPU column:\n%s", out.String())
	}
}

func TestSocketPorts_FindsThisProcesssConnections(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	// A connection of this process to the server: both its ends are this process's sockets.
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().(*net.TCPAddr).Port
	if ports := socketPorts([]int{os.Getpid()}, uint16(port)); !ports[local] || ports[port] {
		if _, err := os.Stat("/proc/net/tcp"); err != nil {
			t.Skipf("no /proc/net/tcp here: %v", err)
		}
		t.Fatalf("socketPorts to port %d = %v, want the client end %d and not the listener", port, ports, local)
	}
	if ports := socketPorts([]int{os.Getpid()}, 0); !ports[port] || !ports[local] {
		if _, err := os.Stat("/proc/net/tcp"); err != nil {
			t.Skipf("no /proc/net/tcp here: %v", err)
		}
		t.Fatalf("socketPorts = %v, want this process's listener %d among them", ports, port)
	}
}

func TestPgCPUSince_CountsTheServerAndOurBackendsOnly(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	before := map[int]pgProc{1: {10 * ms, 0}, 2: {10 * ms, 5000}, 3: {10 * ms, 6000}, 4: {10 * ms, -1}}
	after := map[int]pgProc{
		1: {15 * ms, 0},    // the server's own: +5
		2: {17 * ms, 5000}, // ours: +7
		3: {90 * ms, 6000}, // another client's
		4: {90 * ms, -1},   // a Unix-socket client's
		5: {3 * ms, 5001},  // ours, connected during the run: +3
	}
	if backends, shared := pgCPUSince(before, after, map[int]bool{5000: true, 5001: true}); backends != 10*ms || shared != 5*ms {
		t.Fatalf("pgCPUSince = %s, %s; want 10ms of our backends, 5ms of the server's own", backends, shared)
	}
	for title, want := range map[string]int{
		"postgres: 15/main: postgres test 127.0.0.1(38610) INSERT": 38610,
		"postgres: 15/main: walwriter":                             0,
		"postgres: 15/main: postgres test [local] idle":            -1,
	} {
		if got := backendPort([]byte(title)); got != want {
			t.Errorf("client port of %q = %d, want %d", title, got, want)
		}
	}
}
