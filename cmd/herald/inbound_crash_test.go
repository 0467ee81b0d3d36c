package main

// A source receives signed webhooks from four concurrent senders; herald is killed with SIGKILL
// while they post, so the last answers it gave were 200s written moments before the kill. After a
// restart on the same directory, every request answered 200 must be listed as received and its
// event forwarded to the endpoint.

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestInbound_SIGKILLAfter200LosesNothing(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	env := []string{"HERALD_API_KEY=" + testKey}
	secret := newSecret(t)
	// Nothing is forwarded before the kill: what arrives afterwards can only come from the store.
	rcv := newReceiver(t, secret, modeFail)

	start := func(name string) *proc {
		t.Helper()
		p := run(t, name, env, "serve", "--addr", addr, "--data-dir", dir, "--dev")
		p.addr = addr
		p.waitReady()
		return p
	}
	h := start("before SIGKILL")
	h.must("POST", "/v1/tenants", testKey, map[string]any{"id": "acme", "name": "Acme Inc"}, http.StatusCreated, nil)
	h.must("POST", "/v1/tenants/acme/endpoints", testKey, map[string]any{
		"url": rcv.url(), "secret": secret, "event_types": []string{"*"},
		"retry_schedule": []int{0, 1, 1, 1, 1, 1, 1, 1, 1, 1},
	}, http.StatusCreated, nil)
	ingestURL := createGitHubSource(h)
	if !strings.HasPrefix(ingestURL, "http://"+addr+"/in/") {
		t.Fatalf("ingest_url %q is not on this server", ingestURL)
	}

	var (
		mu      sync.Mutex
		events  []string // the event of every request answered 200
		wg      sync.WaitGroup
		next    = make(chan int)
		badAnsw []string
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range next {
				a := postGitHub(ingestURL, githubSecret, int64(n), "")
				mu.Lock()
				switch {
				case a.err != nil && a.status == 0:
					// The connection died with the process: not acknowledged, the sender retries.
				case a.err != nil:
					badAnsw = append(badAnsw, a.err.Error())
				case a.status == http.StatusOK:
					events = append(events, a.event)
				case a.status < 500:
					badAnsw = append(badAnsw, fmt.Sprintf("request %d answered %d", n, a.status))
				}
				mu.Unlock()
			}
		}()
	}
	killed := make(chan struct{})
	go func() {
		// Enough requests for the kill to land in the middle of the stream.
		for n := 0; ; n++ {
			select {
			case next <- n:
			case <-killed:
				close(next)
				return
			}
		}
	}()
	waitFor(t, 30*time.Second, "200 acknowledged requests", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) >= 200
	}, h)
	h.signal(syscall.SIGKILL)
	h.waitExit(10 * time.Second)
	close(killed)
	wg.Wait()
	if len(badAnsw) > 0 {
		t.Fatalf("unexpected answers: %v", badAnsw)
	}
	t.Logf("%d requests answered 200 before SIGKILL", len(events))

	rcv.mode.Store(modeAccept)
	h = start("after SIGKILL")
	waitFor(t, 60*time.Second, "every acknowledged request forwarded", func() bool {
		_, _, accepted := rcv.counts(events)
		return accepted == len(events)
	}, h)
	// And the API lists each of them as received and accepted.
	seen := map[string]bool{}
	cursor := ""
	for {
		var page struct {
			Data []struct {
				Status  string `json:"status"`
				EventID string `json:"event_id"`
			} `json:"data"`
			NextCursor string `json:"next_cursor"`
		}
		h.must("GET", "/v1/tenants/acme/received-requests?status=accepted&limit=250&cursor="+cursor, testKey, nil, http.StatusOK, &page)
		for _, r := range page.Data {
			seen[r.EventID] = true
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	for _, ev := range events {
		if !seen[ev] {
			t.Errorf("event %s was acknowledged but is not among the received requests", ev)
		}
	}
	if n := rcv.badSigs.Load(); n != 0 {
		t.Errorf("%d forwarded requests had a signature that does not verify", n)
	}
	h.stop()
}
