package main

// A cluster of three herald processes on one PostgreSQL schema, one of them killed with SIGKILL
// while events are being published and delivered: every event acknowledged with a 202, by any node,
// must reach every subscribed endpoint.

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/webhook"
)

// pgSchema gives the test a PostgreSQL schema of its own, dropped at cleanup (after the herald
// processes started later are killed: cleanups run last-registered first). It skips the test when
// HERALD_TEST_DATABASE_URL is not set.
func pgSchema(t *testing.T) (url, schema string) {
	t.Helper()
	return pgtest.Schema(t, "herald_e2e_")
}

// postJSON posts body to a herald node without failing the test: publishers run in goroutines and
// some of their requests are expected to fail (those to the node that is killed).
func postJSON(addr, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest("POST", "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// missing counts the ids that never arrived at r (answered 200).
func (r *receiver) missing(ids []string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, id := range ids {
		if r.accepted[id] == 0 {
			n++
		}
	}
	return n
}

// waitDelivered waits until the receiver has accepted every one of ids, logging progress every
// 5 s, and fails the test as LOST after d with how many never arrived, the details detail gives
// (if not nil) and p's logs.
func (r *receiver) waitDelivered(t *testing.T, ids []string, d time.Duration, p *proc, detail func() string) {
	t.Helper()
	began := time.Now()
	lastLog := began
	for {
		missing := r.missing(ids)
		if missing == 0 {
			return
		}
		if time.Since(began) > d {
			extra := ""
			if detail != nil {
				extra = "; " + detail()
			}
			t.Fatalf("LOST: %d of %d acknowledged events never reached the receiver%s%s", missing, len(ids), extra, p.logs())
		}
		if time.Since(lastLog) > 5*time.Second {
			lastLog = time.Now()
			t.Logf("after %v: %d acknowledged events not yet delivered", time.Since(began).Round(time.Millisecond), missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clusterStats is GET /v1/tenants/{t}/stats.
type clusterStats struct {
	Events     int `json:"events"`
	Deliveries int `json:"deliveries"`
	Succeeded  int `json:"succeeded"`
	Pending    int `json:"pending"`
	Dead       int `json:"dead"`
	Attempts   int `json:"attempts"`
}

// senders tells which herald child sent each webhook, by the TCP connection it came on: the
// connection's client socket is looked up in /proc/net/tcp and then among the children's open
// files (Linux only; elsewhere every sender is unknown). Connections are kept alive, so a lookup
// is made once per connection.
type senders struct {
	procs []*proc
	ok    bool // /proc can be read

	mu     sync.Mutex
	byConn map[string]int // remote address -> index in procs, or len(procs) for unknown

	sent []atomic.Int64 // requests from each proc, then from unknown senders
	last []atomic.Int64 // when each last sent one (unix nanoseconds)
}

func newSenders(procs []*proc) *senders {
	_, err := os.Stat("/proc/net/tcp")
	return &senders{procs: procs, ok: err == nil, byConn: map[string]int{},
		sent: make([]atomic.Int64, len(procs)+1), last: make([]atomic.Int64, len(procs)+1)}
}

// saw counts a request that came from remote to the server's address local.
func (s *senders) saw(local net.Addr, remote string) {
	s.mu.Lock()
	i, ok := s.byConn[remote]
	s.mu.Unlock()
	if !ok {
		i = s.lookup(local, remote)
		s.mu.Lock()
		s.byConn[remote] = i
		s.mu.Unlock()
	}
	s.sent[i].Add(1)
	s.last[i].Store(time.Now().UnixNano())
}

func (s *senders) closed(remote string) {
	s.mu.Lock()
	delete(s.byConn, remote)
	s.mu.Unlock()
}

// lookup finds the child whose socket is the client end of the connection remote -> local.
func (s *senders) lookup(local net.Addr, remote string) int {
	unknown := len(s.procs)
	if !s.ok || local == nil {
		return unknown
	}
	_, rport, err1 := net.SplitHostPort(remote)
	_, lport, err2 := net.SplitHostPort(local.String())
	if err1 != nil || err2 != nil {
		return unknown
	}
	port := func(p string) string {
		n, _ := strconv.Atoi(p)
		return fmt.Sprintf(":%04X", n)
	}
	// The client's socket: its local port is the remote port seen here, its peer is our port.
	inode := ""
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) > 9 && strings.HasSuffix(fs[1], port(rport)) && strings.HasSuffix(fs[2], port(lport)) {
				inode = fs[9]
			}
		}
	}
	if inode == "" {
		return unknown
	}
	want := "socket:[" + inode + "]"
	for i, p := range s.procs {
		dir := fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid)
		fds, _ := os.ReadDir(dir)
		for _, fd := range fds {
			if l, _ := os.Readlink(filepath.Join(dir, fd.Name())); l == want {
				return i
			}
		}
	}
	return unknown
}

// recent says whether proc i sent a webhook within d.
func (s *senders) recent(i int, d time.Duration) bool {
	return time.Since(time.Unix(0, s.last[i].Load())) < d
}

func (s *senders) String() string {
	var parts []string
	for i, p := range s.procs {
		parts = append(parts, fmt.Sprintf("%s %d", p.name, s.sent[i].Load()))
	}
	return strings.Join(append(parts, fmt.Sprintf("unknown %d", s.sent[len(s.procs)].Load())), ", ")
}

// startClusterNodes starts n herald nodes on one PostgreSQL schema, together (migrations take an
// advisory lock), with the admin key testKey and one encryption key (nodes sharing a database
// must share the key that encrypts its secrets), and waits until each is ready.
func startClusterNodes(t *testing.T, n int, url, schema string) []*proc {
	t.Helper()
	encKey := make([]byte, 32)
	_, _ = rand.Read(encKey)
	env := []string{"HERALD_API_KEY=" + testKey, "HERALD_ENCRYPTION_KEY=" + base64.StdEncoding.EncodeToString(encKey)}
	nodes := make([]*proc, n)
	for i := range nodes {
		addr := freeAddr(t)
		nodes[i] = run(t, fmt.Sprintf("node %d", i+1), env, "serve", "--addr", addr, "--data-dir", t.TempDir(),
			"--database-url", url, "--database-schema", schema, "--dev")
		nodes[i].addr = addr
	}
	for _, p := range nodes {
		p.waitReady()
	}
	return nodes
}

// arrivalTimes records when each request reached a receiver.
type arrivalTimes struct {
	mu sync.Mutex
	at []time.Time
}

func (a *arrivalTimes) add(t time.Time) {
	a.mu.Lock()
	a.at = append(a.at, t)
	a.mu.Unlock()
}

// longestGap is the longest time without an arrival from `from` to the last arrival (the
// arrivals are in order: each is recorded as it comes).
func (a *arrivalTimes) longestGap(from time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	var gap time.Duration
	prev := from
	for _, t := range a.at {
		if t.Before(from) {
			continue
		}
		gap = max(gap, t.Sub(prev))
		prev = t
	}
	return gap
}

// newClusterReceiver is newReceiver in accept mode, which also tells senders who sent what.
func newClusterReceiver(t *testing.T, secret string, from *senders, times *arrivalTimes) *receiver {
	t.Helper()
	v, err := webhook.NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{verifier: v, release: make(chan struct{}), arrivals: map[string]int{}, accepted: map[string]int{}}
	r.mode.Store(modeAccept)
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		local, _ := req.Context().Value(http.LocalAddrContextKey).(net.Addr)
		from.saw(local, req.RemoteAddr)
		times.add(time.Now())
		r.serve(w, req)
	}))
	r.srv.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateClosed || st == http.StateHijacked {
			from.closed(c.RemoteAddr().String())
		}
	}
	r.srv.Start()
	t.Cleanup(r.srv.Close)
	return r
}

func TestCluster_NodeKilledMidwayLosesNothing(t *testing.T) {
	needBinary(t)
	url, schema := pgSchema(t)

	const (
		// 20,000 events × 4 endpoints = 80,000 deliveries; under -race on 2 cores the whole test
		// takes well under 60 s (the herald children are not built with -race).
		totalEvents = 20000
		batchSize   = 500 // events per request (the API takes up to 1000): 40 requests
		publishers  = 3
		endpoints   = 4
		tenant      = "acme"
		eventType   = "order.created"
	)

	// The default lease margin: a killed node's endpoints are taken over by its missed
	// heartbeats (seconds), not when its leases (the timeout + 30 s) end.
	nodes := startClusterNodes(t, 3, url, schema)
	n1 := nodes[0]
	// The node killed is whichever is delivering when half the events are published: endpoints'
	// lanes go to the node that claims first, so which nodes deliver is not fixed in advance.
	var victimPtr atomic.Pointer[proc]
	from := newSenders(nodes)

	rcvs := make([]*receiver, endpoints)
	times := make([]*arrivalTimes, endpoints)
	n1.must("POST", "/v1/tenants", testKey, map[string]any{"id": tenant, "name": "Acme Inc"}, http.StatusCreated, nil)
	n1.must("POST", "/v1/event-types", testKey, map[string]any{"name": eventType}, http.StatusCreated, nil)
	for i := range rcvs {
		secret := newSecret(t)
		times[i] = &arrivalTimes{}
		rcvs[i] = newClusterReceiver(t, secret, from, times[i])
		n1.must("POST", "/v1/tenants/"+tenant+"/endpoints", testKey, map[string]any{
			// 10 s, not less: under CI both race-enabled test packages share the two cores, and a
			// receiver that is slow to be scheduled must not count as failing (breakers would open).
			"url": rcvs[i].url(), "secret": secret, "event_types": []string{"*"},
			"timeout_seconds": 10, "max_concurrency": 10,
		}, http.StatusCreated, nil)
	}
	arrived := func() (total, distinct int) {
		for _, r := range rcvs {
			d, n, _ := r.counts(nil)
			total += n
			distinct += d
		}
		return total, distinct
	}

	// The request bodies, built before the clock starts.
	batches := make([][]byte, totalEvents/batchSize)
	for b := range batches {
		evs := make([]map[string]any, batchSize)
		for i := range evs {
			evs[i] = map[string]any{"type": eventType, "data": map[string]any{"n": b*batchSize + i, "sku": "sku_42", "qty": 3}}
		}
		body, err := json.Marshal(map[string]any{"events": evs})
		if err != nil {
			t.Fatal(err)
		}
		batches[b] = body
	}

	start := time.Now()
	var (
		killed  atomic.Bool // set just before node 2 is killed: it is no longer sent requests
		next    atomic.Int64
		acked   atomic.Int64 // events acknowledged so far
		mu      sync.Mutex
		ids     []string // every acknowledged event id
		lostReq int      // requests to node 2 that got no 202 because it was killed
		lostEvs int
		wg      sync.WaitGroup
	)
	jobs := make(chan []byte)
	stop := make(chan struct{})
	go func() {
		defer close(jobs)
		for _, b := range batches {
			select {
			case jobs <- b:
			case <-stop:
				return
			}
		}
	}()
	// If the test stops early, the publishers stop too before the nodes are killed.
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
	})
	for range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range jobs {
				// Round-robin over the nodes, skipping node 2 once it is killed.
				var p *proc
				for p == nil || (p == victimPtr.Load() && killed.Load()) {
					p = nodes[next.Add(1)%int64(len(nodes))]
				}
				status, answer, err := postJSON(p.addr, "/v1/tenants/"+tenant+"/events/batch", body)
				if status/100 != 2 {
					if p == victimPtr.Load() && killed.Load() {
						// In flight when node 2 died: not acknowledged, so not counted.
						mu.Lock()
						lostReq++
						lostEvs += batchSize
						mu.Unlock()
						continue
					}
					t.Errorf("publish through %s: status %d, %v: %s", p.name, status, err, answer)
					continue
				}
				var out struct {
					Events []struct {
						ID         string `json:"id"`
						Deliveries int    `json:"deliveries"`
					} `json:"events"`
				}
				if err := json.Unmarshal(answer, &out); err != nil {
					t.Errorf("publish through %s: decode %s: %v", p.name, answer, err)
					continue
				}
				if len(out.Events) != batchSize {
					t.Errorf("publish through %s: %d events acknowledged, want %d", p.name, len(out.Events), batchSize)
				}
				mu.Lock()
				for _, e := range out.Events {
					if e.Deliveries != endpoints {
						t.Errorf("event %s has %d deliveries, want %d", e.ID, e.Deliveries, endpoints)
					}
					ids = append(ids, e.ID)
				}
				mu.Unlock()
				acked.Add(int64(len(out.Events)))
			}
		}()
	}

	// Kill node 2 halfway through, while it is delivering (so that it holds claims: in flight,
	// queued in its lanes, and results not yet written).
	if !from.ok {
		t.Log("/proc/net/tcp cannot be read: node 2 is killed without knowing whether it is delivering")
	}
	deadline := time.Now().Add(30 * time.Second)
	victimIdx := 1
	for {
		total, _ := arrived()
		delivering := -1
		for i := range nodes {
			if from.ok && from.recent(i, 100*time.Millisecond) {
				delivering = i
				break
			}
		}
		if acked.Load() >= totalEvents/2 && total > 0 && (!from.ok || delivering >= 0) {
			if delivering >= 0 {
				victimIdx = delivering
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %d events acknowledged, %d deliveries arrived (%s); want %d, some, and a node delivering",
				acked.Load(), total, from, totalEvents/2)
		}
		time.Sleep(5 * time.Millisecond)
	}
	victim := nodes[victimIdx]
	victimPtr.Store(victim)
	var live []*proc
	for i, n := range nodes {
		if i != victimIdx {
			live = append(live, n)
		}
	}
	killed.Store(true)
	ackedAtKill := acked.Load()
	arrivedAtKill, _ := arrived()
	killTime := time.Now()
	victim.signal(syscall.SIGKILL)
	if code := victim.waitExit(10 * time.Second); code != -1 {
		t.Fatalf("%s exited with %d after SIGKILL, want -1 (killed by a signal)", victim.name, code)
	}
	killedAt := time.Since(start)
	t.Logf("%s killed after %v: %d events acknowledged, %d deliveries arrived (sent by %s)",
		victim.name, killedAt.Round(time.Millisecond), ackedAtKill, arrivedAtKill, from)

	wg.Wait()
	published := time.Since(start)
	if t.Failed() {
		t.FailNow()
	}
	mu.Lock()
	ackIDs := append([]string(nil), ids...)
	mu.Unlock()
	t.Logf("publishing done after %v: %d events acknowledged; %d requests (%d events) in flight to %s when it died",
		published.Round(time.Millisecond), len(ackIDs), lostReq, lostEvs, victim.name)

	// Every acknowledged event at every receiver.
	// Generous: the test is about what arrives, not how fast; under the race detector on two
	// shared cores the whole run has taken from 26 s to over a minute.
	deadline = start.Add(3 * time.Minute)
	lastLog := time.Now()
	for {
		missing := 0
		for _, r := range rcvs {
			missing += r.missing(ackIDs)
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			for i, r := range rcvs {
				t.Errorf("receiver %d: %d of %d acknowledged events never arrived", i+1, r.missing(ackIDs), len(ackIDs))
			}
			var st clusterStats
			live[0].must("GET", "/v1/tenants/"+tenant+"/stats?since=1h", testKey, nil, http.StatusOK, &st)
			t.Fatalf("LOST: after %v, %d acknowledged deliveries are missing; stats %+v%s%s",
				time.Since(start).Round(time.Millisecond), missing, st, live[0].logs(), live[1].logs())
		}
		if time.Since(lastLog) > 5*time.Second {
			lastLog = time.Now()
			total, _ := arrived()
			t.Logf("after %v: %d deliveries arrived, %d acknowledged ones missing", time.Since(start).Round(time.Millisecond), total, missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
	complete := time.Since(start)

	// And the store agrees: nothing pending, nothing dead, every stored event's deliveries
	// succeeded. Events stored by node 2 whose 202 it never sent count too: they were committed.
	var st clusterStats
	for {
		live[0].must("GET", "/v1/tenants/"+tenant+"/stats?since=1h", testKey, nil, http.StatusOK, &st)
		if st.Pending == 0 && st.Dead == 0 && st.Succeeded == endpoints*st.Events {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the stats are %+v: want no pending or dead deliveries and %d × events succeeded%s%s",
				time.Since(start).Round(time.Millisecond), st, endpoints, live[0].logs(), live[1].logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	settled := time.Since(start)
	if st.Events < len(ackIDs) || st.Events > len(ackIDs)+lostEvs {
		t.Errorf("the store has %d events; want between %d acknowledged and %d (with the unacknowledged requests to node 2)",
			st.Events, len(ackIDs), len(ackIDs)+lostEvs)
	}
	var other clusterStats
	live[1].must("GET", "/v1/tenants/"+tenant+"/stats?since=1h", testKey, nil, http.StatusOK, &other)
	if other.Pending != 0 || other.Succeeded != st.Succeeded || other.Events != st.Events {
		t.Errorf("%s's stats %+v differ from %s's %+v", live[1].name, other, live[0].name, st)
	}
	for _, p := range live {
		var list struct {
			Data []json.RawMessage `json:"data"`
		}
		for _, state := range []string{"pending", "dead"} {
			p.must("GET", "/v1/tenants/"+tenant+"/deliveries?state="+state+"&limit=10", testKey, nil, http.StatusOK, &list)
			if len(list.Data) != 0 {
				t.Errorf("%s lists %s deliveries at the end: %s", p.name, state, list.Data[0])
			}
		}
	}

	total, distinct := arrived()
	var badSigs int32
	for _, r := range rcvs {
		badSigs += r.badSigs.Load()
	}
	if badSigs != 0 {
		t.Errorf("%d requests had a signature that does not verify", badSigs)
	}
	t.Logf("events acknowledged: %d (stored: %d; %d in unanswered requests to node 2)", len(ackIDs), st.Events, lostEvs)
	t.Logf("deliveries expected: %d (acknowledged events × %d endpoints); stored and succeeded: %d", endpoints*len(ackIDs), endpoints, st.Succeeded)
	t.Logf("deliveries received: %d, distinct (event, endpoint): %d, duplicates: %d; attempts recorded: %d; sent by %s",
		total, distinct, total-distinct, st.Attempts, from)
	t.Logf("time: %s killed at %v, publishing done at %v, every acknowledged event at every receiver at %v, stats settled at %v",
		victim.name, killedAt.Round(time.Millisecond), published.Round(time.Millisecond), complete.Round(time.Millisecond), settled.Round(time.Millisecond))
	// The gap: the longest an endpoint went without a delivery after the kill. The victim's
	// endpoints wait for its heartbeat to end (6 s, and 1 s of clock skew) and for a heartbeat
	// of another node to see it; without heartbeats they would wait for its leases, renewed
	// every 10 s and each the endpoint's 10 s timeout + the 30 s lease margin: 30 s or more.
	var gap time.Duration
	for i := range times {
		g := times[i].longestGap(killTime)
		gap = max(gap, g)
		t.Logf("receiver %d: longest time without a delivery after the kill: %v", i+1, g.Round(time.Millisecond))
	}
	t.Logf("GAP after the SIGKILL of 1 of 3 nodes: %v (target < 10 s); duplicates: %d", gap.Round(time.Millisecond), total-distinct)
	if gap >= 30*time.Second {
		t.Errorf("an endpoint went %v without a delivery after %s was killed: its work waited for the leases, not the heartbeats", gap, victim.name)
	}
}
