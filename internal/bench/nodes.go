package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/node"
)

// nodes are the Herald nodes of a run: in this process (node.Start), or, with Config.Process,
// each a `herald serve` child process, the user's view of a server.
type nodes struct {
	apis     []*client
	pids     []int // the child processes; none when the nodes run in this process
	children []*child
	closers  []func()
}

// close stops every node, the last started first.
func (ns *nodes) close() {
	for i := len(ns.closers) - 1; i >= 0; i-- {
		ns.closers[i]()
	}
}

// peakRSSMB is the largest resident set a child reached (VmHWM), or this process's when the nodes
// run here.
func (ns *nodes) peakRSSMB() float64 {
	if len(ns.children) == 0 {
		return peakRSS()
	}
	var peak float64
	for _, c := range ns.children {
		peak = max(peak, procStatusOf(c.cmd.Process.Pid, "VmHWM:"))
	}
	return peak
}

// startNodes starts cfg's nodes on dir (SQLite) or the schema (PostgreSQL), with room for
// maxInFlight attempts each.
func startNodes(ctx context.Context, cfg Config, dir, schema string, maxInFlight int) (*nodes, error) {
	ns := &nodes{}
	for i := range max(cfg.Nodes, 1) {
		var base string
		if cfg.Process {
			ccfg := cfg
			if i > 0 {
				ccfg.PprofAddr = "" // one listener: the first node's
			}
			c, err := startChild(ctx, ccfg, dir, schema, maxInFlight)
			if err != nil {
				ns.close()
				return nil, fmt.Errorf("node %d: %w", i+1, err)
			}
			ns.closers = append(ns.closers, c.stop)
			ns.children = append(ns.children, c)
			ns.pids = append(ns.pids, c.cmd.Process.Pid)
			base = c.url
		} else {
			n, err := node.Start(ctx, node.Config{
				Addr: "127.0.0.1:0", DataDir: dir, Dev: true, APIKey: benchKey, Logger: cfg.Logger,
				DatabaseURL: cfg.DatabaseURL, DatabaseSchema: schema,
				SQLiteSynchronous: cfg.Synchronous, Retention: -1,
				Dispatch: dispatch.Config{MaxInFlight: maxInFlight, QueueDepth: cfg.QueueDepth, Logger: cfg.Logger},
			})
			if err != nil {
				ns.close()
				return nil, fmt.Errorf("node %d: %w", i+1, err)
			}
			ns.closers = append(ns.closers, func() {
				c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_ = n.Close(c)
			})
			base = n.URL()
		}
		ns.apis = append(ns.apis, &client{base: base, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Publishers * 2}}})
	}
	return ns, nil
}

// child is a `herald serve` process started by the bench.
type child struct {
	cmd    *exec.Cmd
	url    string
	exited chan struct{}
	logs   *tail
}

// startChild runs `herald serve` (Config.Binary, or this executable) with the settings an
// in-process node gets: dev mode, the bench's admin key (in the environment, never on the command
// line), no retention, no API rate limits, on a free loopback port it reports in its log.
func startChild(ctx context.Context, cfg Config, dir, schema string, maxInFlight int) (*child, error) {
	if cfg.QueueDepth > 0 {
		return nil, errors.New("a queue depth cannot be set on a node in its own process (herald serve has no such flag)")
	}
	bin := cfg.Binary
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("the herald executable: %w", err)
		}
		bin = exe
	}
	args := []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dir, "--dev", "--retention", "0",
		"--api-rate", "0", "--max-in-flight", strconv.Itoa(maxInFlight), "--log-format", "json"}
	if cfg.Synchronous != "" {
		args = append(args, "--sqlite-synchronous", cfg.Synchronous)
	}
	if cfg.DatabaseURL != "" {
		args = append(args, "--database-url", cfg.DatabaseURL, "--database-schema", schema)
	}
	if cfg.PprofAddr != "" {
		args = append(args, "--pprof-addr", cfg.PprofAddr)
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = childAttr()
	// The node is configured by its flags alone: the user's HERALD_ variables stay out.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HERALD_API_KEY="+benchKey)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("herald serve: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s serve: %w", bin, err)
	}
	c := &child{cmd: cmd, exited: make(chan struct{}), logs: &tail{}}
	addr := make(chan string, 1)
	go c.readLog(stderr, addr)
	go func() {
		_ = cmd.Wait()
		close(c.exited)
	}()
	select {
	case a := <-addr:
		c.url = "http://" + a
		return c, nil
	case <-c.exited:
		return nil, fmt.Errorf("herald serve exited before it served: %s", c.logs.String())
	case <-time.After(60 * time.Second):
		c.stop()
		return nil, fmt.Errorf("herald serve did not serve within 60 s: %s", c.logs.String())
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	}
}

// readLog reads the child's JSON log until it ends, sends the address of its "herald is serving"
// line on addr, and keeps the last lines for error messages.
func (c *child) readLog(r io.Reader, addr chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		c.logs.add(string(line))
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "herald is serving" && rec.Addr != "" {
			select {
			case addr <- rec.Addr:
			default:
			}
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// stop asks the child to finish (SIGTERM) and kills it if it has not within 30 s.
func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// tail keeps the last lines of a child's log.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > 20 {
		t.lines = t.lines[len(t.lines)-20:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// successes is how many attempts the nodes have counted as delivered (the
// herald_deliveries_total counter of /metrics, outcome "success", summed over tenants and
// nodes): how a run that delivers to a receiver the bench does not see knows when it is done.
func (ns *nodes) successes(ctx context.Context) (delivered, failed int64, err error) {
	for _, c := range ns.apis {
		status, body, err := c.do(ctx, http.MethodGet, "/metrics", "")
		if err != nil {
			return 0, 0, err
		}
		if status != http.StatusOK {
			return 0, 0, fmt.Errorf("GET /metrics = %d", status)
		}
		for line := range strings.SplitSeq(string(body), "\n") {
			if !strings.HasPrefix(line, "herald_deliveries_total{") {
				continue
			}
			i := strings.LastIndexByte(line, ' ')
			v, err := strconv.ParseFloat(line[i+1:], 64)
			if err != nil {
				continue
			}
			if strings.Contains(line, `outcome="success"`) {
				delivered += int64(v)
			} else {
				failed += int64(v)
			}
		}
	}
	return delivered, failed, nil
}

// delivered polls the nodes' count of successful attempts until it reaches want, and then sends
// nil; it sends an error when the count cannot be read, or, with strict, as soon as an attempt
// failed (the receiver must answer 2xx: a retried delivery would be counted late and slow the
// figures down for a reason that is not Herald's).
func (ns *nodes) delivered(ctx context.Context, want int64, strict bool) <-chan error {
	out := make(chan error, 1)
	go func() {
		// Every 50 ms: a scrape costs the node some CPU, which the run would count as its own.
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			ok, failed, err := ns.successes(ctx)
			switch {
			case err != nil:
				out <- fmt.Errorf("counting deliveries: %w", err)
				return
			case strict && failed > 0:
				out <- fmt.Errorf("%d attempts to the receiver failed (it must answer 2xx at once); %d of %d delivered", failed, ok, want)
				return
			case ok >= want:
				out <- nil
				return
			}
			select {
			case <-ctx.Done():
				out <- ctx.Err()
				return
			case <-t.C:
			}
		}
	}()
	return out
}

// startBenchNode starts one node on SQLite in a temporary directory, for the scenarios that run
// their own receivers, and returns an API client for it and the function that closes the node
// and removes the directory.
func startBenchNode(ctx context.Context, logger *slog.Logger, synchronous string) (*client, func(), error) {
	dir, err := os.MkdirTemp("", "herald-bench-")
	if err != nil {
		return nil, nil, fmt.Errorf("temp dir: %w", err)
	}
	n, err := node.Start(ctx, node.Config{
		Addr: "127.0.0.1:0", DataDir: dir, Dev: true, APIKey: benchKey, Logger: logger,
		SQLiteSynchronous: synchronous, Retention: -1, Dispatch: dispatch.Config{Logger: logger},
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("node: %w", err)
	}
	closeNode := func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = n.Close(c)
		os.RemoveAll(dir)
	}
	api := &client{base: n.URL(), http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	return api, closeNode, nil
}
