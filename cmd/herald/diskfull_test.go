package main

// herald on SQLite when its disk fills up, and when its file system turns read-only, while events
// are published and webhooks received: it must refuse new work with 503 and Retry-After (never 500),
// lose nothing it acknowledged, and take new work again once space returns. The data directory is
// a small file system mounted for the test (root only): an ext4 image on a loop device, or tmpfs
// where loop devices are missing (then the read-only half is skipped).

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// smallFS is a file system of a few MiB mounted for one test.
type smallFS struct {
	t     *testing.T
	dir   string // the mount point
	kind  string // "ext4" or "tmpfs"
	image string // the ext4 image file
	dev   string // its loop device, such as /dev/loop3
}

// mountSmallFS mounts an ext4 image of size MiB on a loop device (so that it can be made
// read-only under a running process, as the kernel does after an I/O error), or else tmpfs. It
// skips the test when neither can be mounted.
func mountSmallFS(t *testing.T, size int) *smallFS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small file system needs root")
	}
	base := t.TempDir()
	fs := &smallFS{t: t, dir: filepath.Join(base, "mnt"), image: filepath.Join(base, "fs.img")}
	if err := os.Mkdir(fs.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	sh := func(name string, args ...string) error {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
		}
		return nil
	}
	var ext4Err error
	if f, err := os.Create(fs.image); err != nil {
		ext4Err = err
	} else {
		ext4Err = errors.Join(f.Truncate(int64(size)<<20), f.Close())
	}
	if ext4Err == nil {
		// No reserved blocks: root would get them anyway. A small journal leaves room for data.
		ext4Err = sh("mkfs.ext4", "-q", "-F", "-m", "0", "-J", "size=1", fs.image)
	}
	if ext4Err == nil {
		ext4Err = sh("mount", "-o", "loop,errors=remount-ro", fs.image, fs.dir)
	}
	if ext4Err == nil {
		fs.kind = "ext4"
		out, err := exec.Command("findmnt", "-n", "-o", "SOURCE", fs.dir).Output()
		if err == nil {
			fs.dev = strings.TrimSpace(string(out))
		}
	} else if err := sh("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm,mode=0700", size), "tmpfs", fs.dir); err == nil {
		fs.kind = "tmpfs"
		t.Logf("no ext4 on a loop device (%v): tmpfs instead, without the read-only half", ext4Err)
	} else {
		t.Skipf("cannot mount a small file system: %v; %v", ext4Err, err)
	}
	// Registered before herald starts, so it runs after herald is killed at cleanup.
	t.Cleanup(fs.unmount)
	return fs
}

func (fs *smallFS) unmount() {
	if fs.dir == "" {
		return
	}
	if out, err := exec.Command("umount", fs.dir).CombinedOutput(); err != nil {
		// Still busy: detach it now, the kernel frees it when the last user goes.
		if out2, err2 := exec.Command("umount", "-l", fs.dir).CombinedOutput(); err2 != nil {
			fs.t.Errorf("umount %s: %v: %s; %v: %s", fs.dir, err, out, err2, out2)
		}
	}
	fs.dir = ""
}

// fill writes a file until the file system is full and returns how much it wrote.
func (fs *smallFS) fill(name string) int64 {
	fs.t.Helper()
	f, err := os.Create(filepath.Join(fs.dir, name))
	if err != nil {
		fs.t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	var n int64
	for {
		m, err := f.Write(chunk)
		n += int64(m)
		if errors.Is(err, syscall.ENOSPC) {
			// ext4 reserves blocks for delayed allocation: flush and top up.
			if err := f.Sync(); err != nil && !errors.Is(err, syscall.ENOSPC) {
				fs.t.Fatal(err)
			}
			for _, sz := range []int{4096, 512, 1} {
				for {
					m, err := f.Write(chunk[:sz])
					n += int64(m)
					if err != nil {
						break
					}
				}
			}
			return n
		}
		if err != nil {
			fs.t.Fatal(err)
		}
	}
}

// breakFS turns an ext4 file system read-only under its users, as the kernel does when it finds
// an error with errors=remount-ro: every write then fails with EROFS.
func (fs *smallFS) breakFS() {
	fs.t.Helper()
	p := filepath.Join("/sys/fs/ext4", filepath.Base(fs.dev), "trigger_fs_error")
	if err := os.WriteFile(p, []byte("herald test: read-only\n"), 0o200); err != nil {
		fs.t.Fatalf("make %s read-only: %v", fs.dir, err)
	}
}

// repair unmounts the broken file system, checks it, and mounts it again read-write: what an
// operator does after such an error.
func (fs *smallFS) repair() {
	fs.t.Helper()
	dir := fs.dir
	fs.unmount()
	// e2fsck exits 1 when it fixed something, which is expected after an error.
	out, err := exec.Command("e2fsck", "-f", "-y", fs.image).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		fs.t.Fatalf("e2fsck: %v: %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop,errors=remount-ro", fs.image, dir).CombinedOutput(); err != nil {
		fs.t.Fatalf("mount again: %v: %s", err, out)
	}
	fs.dir = dir
}

// answer is the fate of one request of a client of the test.
type answer struct {
	kind       string // publish, inbound
	at         time.Time
	status     int // 0: no answer
	retryAfter string
	event      string // the event acknowledged, if any
	err        error
}

// postGitHub sends push number i to a source's ingest URL, signed as GitHub signs it with
// secret, and reports the answer: a 200 must carry the accepted event's id.
func postGitHub(ingestURL, secret string, i int64, pad string) answer {
	a := answer{kind: "inbound", at: time.Now()}
	body := []byte(fmt.Sprintf(`{"ref":"refs/heads/main","n":%d,"pad":%q}`, i, pad))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req, err := http.NewRequest("POST", ingestURL, bytes.NewReader(body))
	if err != nil {
		a.err = err
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("delivery-%d", i))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := client.Do(req)
	if err != nil {
		a.err = err
		return a
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a.status, a.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
	if resp.StatusCode == http.StatusOK {
		var out struct {
			Status  string `json:"status"`
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal(b, &out); err != nil || out.Status != "accepted" || out.EventID == "" {
			a.err = fmt.Errorf("200 without an accepted event: %s", b)
		}
		a.event = out.EventID
	}
	return a
}

func TestSQLite_DiskFullAndReadOnly(t *testing.T) {
	needBinary(t)
	fs := mountSmallFS(t, 24)
	// A reserve the operator frees when repairing the file system (step 3), as one frees space
	// before restarting a service: after the read-only turn, what herald wrote while space was
	// back (its log's frames not yet checkpointed into the database) may leave too little room
	// for the restart's first writes, which the test is not about.
	reserve := filepath.Join(fs.dir, "reserve")
	if err := os.WriteFile(reserve, make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(fs.dir, "data")
	addr := freeAddr(t)
	env := []string{"HERALD_API_KEY=" + testKey}
	start := func(name string) *proc {
		t.Helper()
		p := run(t, name, env, "serve", "--addr", addr, "--data-dir", data, "--dev", "--api-rate", "0")
		p.addr = addr
		p.waitReady()
		return p
	}
	h := start("herald")

	secret := newSecret(t)
	rcv := newPacedReceiver(t, secret, 1, 5)
	h.must("POST", "/v1/tenants", testKey, map[string]any{"id": "acme", "name": "Acme Inc"}, http.StatusCreated, nil)
	h.must("POST", "/v1/event-types", testKey, map[string]any{"name": "a.happened"}, http.StatusCreated, nil)
	h.must("POST", "/v1/tenants/acme/endpoints", testKey, map[string]any{
		"url": rcv.url(), "secret": secret, "event_types": []string{"*"}, "max_concurrency": 10, "timeout_seconds": 10,
		"retry_schedule": []int{0, 1, 1, 1, 2, 2, 2, 5, 5, 5, 5, 5},
	}, http.StatusCreated, nil)
	ingestURL := createGitHubSource(h)

	// Two kinds of client, each posting on a tick: the publish API and a signed inbound webhook.
	// Bodies carry some weight, so that the disk fills within seconds when nothing is freed.
	pad := strings.Repeat("x", 2048)
	pubBody, err := json.Marshal(map[string]any{"type": "a.happened", "data": map[string]any{"sku": "sku_42", "pad": pad}})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		answers []answer
		n       atomic.Int64
		wg      sync.WaitGroup
	)
	publish := func() answer {
		a := answer{kind: "publish", at: time.Now()}
		req, err := http.NewRequest("POST", "http://"+addr+"/v1/tenants/acme/events", bytes.NewReader(pubBody))
		if err != nil {
			a.err = err
			return a
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testKey)
		resp, err := client.Do(req)
		if err != nil {
			a.err = err
			return a
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		a.status, a.retryAfter, a.err = resp.StatusCode, resp.Header.Get("Retry-After"), err
		if err == nil && a.status/100 == 2 {
			var out struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(body, &out); err != nil || out.ID == "" {
				a.err = fmt.Errorf("2xx without an event id: %s", body)
			}
			a.event = out.ID
		}
		return a
	}
	receive := func() answer {
		return postGitHub(ingestURL, githubSecret, n.Add(1), pad)
	}
	stop := make(chan struct{})
	var stopOnce sync.Once
	stopClients := func() {
		stopOnce.Do(func() { close(stop) })
		wg.Wait()
	}
	t.Cleanup(stopClients)
	for _, c := range []func() answer{publish, publish, receive} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ticker := time.NewTicker(20 * time.Millisecond)
			defer ticker.Stop()
			for {
				select {
				case <-stop:
					return
				case <-ticker.C:
				}
				a := c()
				mu.Lock()
				answers = append(answers, a)
				mu.Unlock()
			}
		}()
	}
	// count counts the answers of a kind (any kind if empty) with a status since a moment.
	count := func(kind string, status int, since time.Time) int {
		mu.Lock()
		defer mu.Unlock()
		k := 0
		for _, a := range answers {
			if (kind == "" || a.kind == kind) && a.status == status && !a.at.Before(since) {
				k++
			}
		}
		return k
	}
	refused := func(since time.Time) func() bool {
		return func() bool {
			return count("publish", http.StatusServiceUnavailable, since) > 0 && count("inbound", http.StatusServiceUnavailable, since) > 0
		}
	}
	accepting := func(since time.Time) func() bool {
		return func() bool {
			return count("publish", http.StatusAccepted, since)+count("publish", http.StatusOK, since) > 0 &&
				count("inbound", http.StatusOK, since) > 0
		}
	}
	began := time.Now()
	waitFor(t, 10*time.Second, "publishes and inbound webhooks accepted", accepting(began), h)
	time.Sleep(time.Second)

	// 1. The disk fills up.
	fullAt := time.Now()
	filled := fs.fill("filler")
	waitFor(t, 20*time.Second, "503 for a publish and for an inbound webhook once the disk is full", refused(fullAt), h)
	refusedAfter := time.Since(fullAt)
	time.Sleep(2 * time.Second)
	ready := h.call("GET", "/readyz", "", nil).status
	// 2. Space returns.
	if err := os.Remove(filepath.Join(fs.dir, "filler")); err != nil {
		t.Fatal(err)
	}
	// The removal is made durable (ext4 commits its journal every 5 s): otherwise the read-only
	// turn below may come first, and the repair bring the filler back, the disk full again.
	syscall.Sync()
	freedAt := time.Now()
	waitFor(t, 20*time.Second, "publishes and inbound webhooks accepted again once space is back", accepting(freedAt), h)
	if ready != http.StatusServiceUnavailable {
		t.Errorf("/readyz answered %d while the disk was full, want 503", ready)
	}
	waitFor(t, 20*time.Second, "/readyz 200 once space is back", func() bool { return h.call("GET", "/readyz", "", nil).status == http.StatusOK }, h)
	t.Logf("%s: disk filled with %d KiB: first 503s after %v (/readyz %d meanwhile); accepting again %v after space was freed",
		fs.kind, filled>>10, refusedAfter.Round(time.Millisecond), ready, time.Since(freedAt).Round(time.Millisecond))
	time.Sleep(time.Second)

	// 3. The file system turns read-only under herald; the operator repairs it and restarts herald.
	var roAt time.Time
	if fs.kind == "ext4" && fs.dev != "" {
		roAt = time.Now()
		fs.breakFS()
		waitFor(t, 20*time.Second, "503 for a publish and for an inbound webhook on a read-only file system", refused(roAt), h)
		t.Logf("read-only: first 503s after %v (/readyz %d)", time.Since(roAt).Round(time.Millisecond), h.call("GET", "/readyz", "", nil).status)
		time.Sleep(time.Second)
		stopClients()
		stoppedAt := time.Now()
		h.signal(syscall.SIGTERM)
		code := h.waitExit(60 * time.Second)
		t.Logf("SIGTERM on a read-only file system: exit status %d after %v", code, time.Since(stoppedAt).Round(time.Millisecond))
		fs.repair()
		if _, err := os.Stat(filepath.Join(fs.dir, "filler")); err == nil {
			t.Log("the repair brought the filler back")
		}
		if err := os.Remove(reserve); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Log("read-only half skipped: it needs ext4 on a loop device")
		stopClients()
		h.stop()
	}
	first := h
	h = start("herald after the repair")

	mu.Lock()
	all := slices.Clone(answers)
	mu.Unlock()
	var acked []string
	byStatus := map[string]int{}
	for _, a := range all {
		switch {
		case a.err != nil:
			t.Errorf("%s at %v: %v (status %d)", a.kind, a.at.Sub(began).Round(time.Millisecond), a.err, a.status)
		case a.status/100 == 2:
			acked = append(acked, a.event)
		case a.status == http.StatusServiceUnavailable:
			if a.retryAfter == "" {
				t.Errorf("inbound at %v: 503 without Retry-After", a.at.Sub(began).Round(time.Millisecond))
			}
		default:
			t.Errorf("%s at %v answered %d, want 2xx or 503", a.kind, a.at.Sub(began).Round(time.Millisecond), a.status)
		}
		byStatus[fmt.Sprintf("%s %d", a.kind, a.status)]++
	}
	t.Logf("answers: %v; result batches kept and written again: %d, given up: %d", byStatus,
		strings.Count(first.stderr.String(), "record delivery results: store unavailable, will try again"),
		strings.Count(first.stderr.String(), `msg="record delivery results"`))

	// Nothing acknowledged is lost: every event, published or received, reaches the endpoint.
	rcv.waitDelivered(t, acked, 90*time.Second, h, nil)
	st := storeAgrees(h, rcv, len(acked), 30*time.Second)
	if st.Events < len(acked) {
		// Which acknowledged events the store lacks, and when they were acknowledged.
		phase := func(at time.Time) string {
			switch {
			case !roAt.IsZero() && !at.Before(roAt):
				return fmt.Sprintf("%v after the read-only turn", at.Sub(roAt).Round(time.Millisecond))
			case !at.Before(freedAt):
				return fmt.Sprintf("%v after space was freed", at.Sub(freedAt).Round(time.Millisecond))
			case !at.Before(fullAt):
				return fmt.Sprintf("%v after the disk filled", at.Sub(fullAt).Round(time.Millisecond))
			}
			return fmt.Sprintf("%v before the disk filled", fullAt.Sub(at).Round(time.Millisecond))
		}
		for _, a := range all {
			if a.status/100 == 2 && a.event != "" && h.call("GET", "/v1/tenants/acme/events/"+a.event, testKey, nil).status == http.StatusNotFound {
				t.Errorf("acknowledged but not in the store: %s event %s, acknowledged %s", a.kind, a.event, phase(a.at))
			}
		}
	}
	distinct, total, _ := rcv.counts(nil)
	t.Logf("events acknowledged: %d; stored: %d; attempts: %d; requests received: %d for %d distinct events: %d duplicates; all done %v after the start",
		len(acked), st.Events, st.Attempts, total, distinct, total-distinct, time.Since(began).Round(time.Millisecond))
	h.stop()
}
