package main

// One herald process, killed with SIGKILL three times at random moments while events are published
// and delivered, and restarted each time on the same store and port: every event acknowledged with
// a 2xx must reach the receiver. The same test runs on a SQLite data directory and, when
// HERALD_TEST_DATABASE_URL is set, on a PostgreSQL schema of its own.

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestCrash_RepeatedSIGKILLLosesNothing(t *testing.T) {
	needBinary(t)
	// The two stores run side by side: each run is mostly waiting (for readiness, for deliveries).
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		// 10 s: under -race on two cores a receiver slow to be scheduled must not count as failing.
		crashLoop(t, 10, nil)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		url, schema := pgSchema(t)
		// Leases and lanes live in rows here: a restarted process is a new node, which takes the
		// endpoint's lane over only when the killed one's ends, the endpoint's timeout + the lease
		// margin after its last renewal. Both are short, so that three kills fit in the test.
		crashLoop(t, 5, []string{"--database-url", url, "--database-schema", schema, "--lease-margin", "1s"})
	})
}

// crashLoop is the test's body; storeFlags choose the store (none: SQLite in the data directory)
// and timeout is the endpoint's, in seconds. The data directory is kept across restarts either
// way: it holds the encryption key.
func crashLoop(t *testing.T, timeout int, storeFlags []string) {
	// How long a kill waits for a delivery by the process to be killed (see the kills below).
	deliveringWithin := 20 * time.Second
	if storeFlags != nil {
		deliveringWithin = 8 * time.Second
	}
	const (
		kills      = 3
		publishers = 2
		tick       = 25 * time.Millisecond // each publisher sends one request per tick: up to ~450 events/s in all
		batchSize  = 8                     // events in a batch request; a third of the requests are single events
	)

	// The moments of the kills and the mix of requests come from the seed; HERALD_CRASH_SEED replays
	// a run (the scheduling of processes is not replayed, so a replay is close, not identical).
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("HERALD_CRASH_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("HERALD_CRASH_SEED=%q: %v", s, err)
		}
		seed = n
	}
	t.Logf("seed %d (set HERALD_CRASH_SEED=%d to replay)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	dir := t.TempDir()
	addr := freeAddr(t) // the same port at every restart, as an operator's unit file would have
	env := []string{"HERALD_API_KEY=" + testKey}
	secret := newSecret(t)
	// The receiver takes 2–10 ms to answer, so that a kill usually lands with requests in flight.
	rcv := newPacedReceiver(t, secret, 2, 9)

	start := func(name string) *proc {
		t.Helper()
		p := run(t, name, env, append([]string{"serve", "--addr", addr, "--data-dir", dir, "--dev"}, storeFlags...)...)
		p.addr = addr
		p.waitReady()
		waitFor(t, readyWithin, name+" ready", func() bool { return p.call("GET", "/readyz", "", nil).status == http.StatusOK }, p)
		return p
	}

	h := start("start 1")
	setUp(h, map[string]any{
		"url": rcv.url(), "secret": secret, "max_concurrency": 10,
		"timeout_seconds": timeout,
		// Short retries: a failed attempt must not push a delivery past the end of the test.
		"retry_schedule": []int{0, 1, 1, 1, 2, 2, 2, 5, 5, 5, 5, 5},
	})

	single, err := json.Marshal(map[string]any{"type": "a.happened", "data": map[string]any{"sku": "sku_42", "qty": 3}})
	if err != nil {
		t.Fatal(err)
	}
	evs := make([]map[string]any, batchSize)
	for i := range evs {
		evs[i] = map[string]any{"type": "a.happened", "data": map[string]any{"n": i, "sku": "sku_42"}}
	}
	batch, err := json.Marshal(map[string]any{"events": evs})
	if err != nil {
		t.Fatal(err)
	}

	var (
		mu        sync.Mutex
		ids       []string // every acknowledged event id
		connErrs  atomic.Int64
		serverErr atomic.Int64 // 5xx answers: not acknowledged, retried
		wg        sync.WaitGroup
	)
	stop := make(chan struct{})
	var stopOnce sync.Once
	stopPublishing := func() {
		stopOnce.Do(func() { close(stop) })
		wg.Wait()
	}
	t.Cleanup(stopPublishing) // before the processes are killed at cleanup
	for i := range publishers {
		// Each publisher has its own generator, seeded from the test's: rand.Rand is not safe for
		// concurrent use.
		prng := rand.New(rand.NewPCG(rng.Uint64(), uint64(i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			ticker := time.NewTicker(tick)
			defer ticker.Stop()
			for {
				select {
				case <-stop:
					return
				case <-ticker.C:
				}
				isBatch := prng.IntN(3) > 0
				path, body := "/v1/tenants/acme/events", single
				if isBatch {
					path, body = "/v1/tenants/acme/events/batch", batch
				}
				// Retry until acknowledged: a request cut by a kill may or may not have been stored,
				// but only a 2xx acknowledges it, and only its ids are counted.
				for {
					status, answer, err := postJSON(addr, path, body)
					if err != nil {
						connErrs.Add(1)
					} else if status/100 == 2 {
						var got []string
						if isBatch {
							var out struct {
								Events []struct {
									ID string `json:"id"`
								} `json:"events"`
							}
							if err := json.Unmarshal(answer, &out); err != nil || len(out.Events) != batchSize {
								t.Errorf("batch answered %d: %s (%v), want %d events", status, answer, err, batchSize)
								return
							}
							for _, e := range out.Events {
								got = append(got, e.ID)
							}
						} else {
							var out struct {
								ID string `json:"id"`
							}
							if err := json.Unmarshal(answer, &out); err != nil || out.ID == "" {
								t.Errorf("publish answered %d: %s (%v), want an event id", status, answer, err)
								return
							}
							got = append(got, out.ID)
						}
						mu.Lock()
						ids = append(ids, got...)
						mu.Unlock()
						break
					} else if status/100 == 5 {
						serverErr.Add(1)
					} else {
						t.Errorf("publish answered %d: %s", status, answer)
						return
					}
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
			}
		}()
	}
	acked := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(ids)
	}
	arrived := func() int {
		_, total, _ := rcv.counts(nil)
		return total
	}

	began := time.Now()
	for k := 1; k <= kills; k++ {
		// A random moment 0.4–2 s after the start, once events have been acknowledged and delivered
		// since it: the process then holds leases, requests in flight and unwritten results.
		wait := 400*time.Millisecond + time.Duration(rng.Int64N(int64(1600*time.Millisecond)))
		ackedBefore, arrivedBefore := acked(), arrived()
		time.Sleep(wait)
		waitFor(t, 20*time.Second, "events acknowledged before the kill", func() bool { return acked() > ackedBefore }, h)
		// Deliveries too, when they come: on PostgreSQL a restarted process is a new node, which
		// may wait up to the lease margin + 30 s for the lane of the node it replaces to end (its
		// last heartbeat may have been sized for the longest timeout). It is then killed while
		// it publishes only, rather than making the test wait that long at each kill.
		delivering := true
		for until := time.Now().Add(deliveringWithin); arrived() <= arrivedBefore; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(until) {
				if storeFlags == nil {
					t.Fatalf("no delivery arrived within %v of %s%s", deliveringWithin, h.name, h.logs())
				}
				delivering = false
				break
			}
		}
		ackedNow, arrivedNow := acked(), arrived()
		h.signal(syscall.SIGKILL)
		if code := h.waitExit(10 * time.Second); code != -1 {
			t.Fatalf("%s exited with %d after SIGKILL, want -1 (killed by a signal)", h.name, code)
		}
		t.Logf("kill %d, %v after %s was ready (delivering: %v): %d events acknowledged, %d deliveries arrived so far",
			k, wait.Round(time.Millisecond), h.name, delivering, ackedNow, arrivedNow)
		h = start("start " + strconv.Itoa(k+1))
	}
	// Publish a little longer against the last process, so that it too takes new events.
	time.Sleep(time.Second)
	stopPublishing()
	if t.Failed() {
		t.FailNow()
	}
	published := time.Since(began)
	mu.Lock()
	ackIDs := append([]string(nil), ids...)
	mu.Unlock()
	t.Logf("publishing done after %v: %d events acknowledged; %d connection errors and %d 5xx answers retried",
		published.Round(time.Millisecond), len(ackIDs), connErrs.Load(), serverErr.Load())

	// Generous: the test is about what arrives, not how fast.
	deadline := time.Now().Add(2 * time.Minute)
	rcv.waitDelivered(t, ackIDs, time.Until(deadline), h, func() string {
		var st clusterStats
		h.must("GET", "/v1/tenants/acme/stats?since=1h", testKey, nil, http.StatusOK, &st)
		return fmt.Sprintf("stats %+v (seed %d)", st, seed)
	})
	complete := time.Since(began)

	// The store agrees: nothing pending or dead, every stored event's delivery succeeded (events
	// stored by a request cut by a kill count too: they were committed, though not acknowledged).
	st := storeAgrees(h, rcv, len(ackIDs), time.Until(deadline)+10*time.Second)

	distinct, total, _ := rcv.counts(nil)
	rcv.mu.Lock()
	ackedDup := 0
	for _, id := range ackIDs {
		if n := rcv.arrivals[id]; n > 1 {
			ackedDup += n - 1
		}
	}
	rcv.mu.Unlock()
	t.Logf("events acknowledged: %d; stored: %d (%d from requests cut by a kill); deliveries succeeded: %d; attempts: %d",
		len(ackIDs), st.Events, st.Events-len(ackIDs), st.Succeeded, st.Attempts)
	t.Logf("requests received: %d for %d distinct events: %d duplicates (%d of them of acknowledged events)",
		total, distinct, total-distinct, ackedDup)
	t.Logf("time: publishing done at %v, every acknowledged event delivered at %v, stats settled at %v",
		published.Round(time.Millisecond), complete.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	h.stop()
}
