package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchRow reads the row of scenario from herald bench's Markdown table, by column name.
func benchRow(t *testing.T, out, scenario string) map[string]string {
	t.Helper()
	var header []string
	for line := range strings.SplitSeq(out, "\n") {
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		switch {
		case strings.HasPrefix(line, "| scenario |"):
			header = cells
		case header != nil && len(cells) == len(header) && cells[0] == scenario:
			row := map[string]string{}
			for i, h := range header {
				row[h] = cells[i]
			}
			return row
		}
	}
	t.Fatalf("no row %q in the output:\n%s", scenario, out)
	return nil
}

// positive parses a figure of the table and requires it above zero.
func positive(t *testing.T, row map[string]string, column string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(strings.TrimSuffix(row[column], " ms"), 64)
	if err != nil || v <= 0 {
		t.Fatalf("%s = %q, want a positive figure (row %v)", column, row[column], row)
	}
	return v
}

// TestBench_ProcessModeDeliversEveryEvent runs herald bench with the node as its own process
// (herald serve, started by the bench): every event is delivered, and the CPU figure is the
// node's, read from /proc. On PostgreSQL it includes the postgres server processes.
func TestBench_ProcessModeDeliversEveryEvent(t *testing.T) {
	needBinary(t)
	t.Parallel()
	runs := map[string][]string{"sqlite": nil}
	if url := os.Getenv("HERALD_TEST_DATABASE_URL"); url != "" {
		runs["postgres"] = []string{"--database-url", url}
	}
	for name, flags := range runs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"bench", "--process", "--events", "300", "--publishers", "4", "--sqlite-synchronous", "NORMAL"}, flags...)
			stdout, stderr, code := runCLI(t, "", nil, args...)
			if code != 0 {
				t.Fatalf("herald bench --process: exit %d\n%s%s", code, stdout, stderr)
			}
			if !strings.Contains(stderr, "the node in its own process") {
				t.Errorf("stderr does not say where the node ran:\n%s", stderr)
			}
			row := benchRow(t, stdout, "custom")
			if row["deliveries"] != "300" {
				t.Fatalf("deliveries = %s, want 300", row["deliveries"])
			}
			for _, col := range []string{"deliveries/s", "p50", "p99", "ceiling/s", "ratio", "ingest ceiling/s", "ingest ratio", "CPU µs/delivery", "peak RSS MB"} {
				positive(t, row, col)
			}
			want := "node"
			if name == "postgres" {
				want = "node + postgres"
			}
			if row["CPU of"] != want {
				t.Errorf("CPU of = %q, want %q", row["CPU of"], want)
			}
		})
	}
}

// TestBench_ProcessModeServesProfiles: with --pprof-addr the node the bench started serves its
// profiles there while the scenario runs.
func TestBench_ProcessModeServesProfiles(t *testing.T) {
	needBinary(t)
	t.Parallel()
	addr := freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, heraldBin, "bench", "--process", "--pprof-addr", addr, "--events", "3000", "--publishers", "4", "--rate", "500")
	cmd.Env = childEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	served := false
	for !served {
		select {
		case err := <-done:
			t.Fatalf("the bench ended (%v) before its node served profiles on %s:\n%s", err, addr, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		status, body := pprofGet(t, "http://"+addr+"/debug/pprof/")
		served = status == 200 && strings.Contains(body, "goroutine")
	}
	if err := <-done; err != nil {
		t.Fatalf("herald bench: %v\n%s", err, out.String())
	}
}

func TestBench_RefusesFlagsThatDoNotApply(t *testing.T) {
	needBinary(t)
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--pprof-addr", "127.0.0.1:0"}, "add --process"},
		{[]string{"--process", "--cpuprofile", "x.prof"}, "--pprof-addr"},
		{[]string{"--process", "--scenario", "batching"}, "apply to"},
		{[]string{"--compare", "http://127.0.0.1:1/", "--soak", "1s", "--rate", "1"}, "drop --compare"},
		{[]string{"--compare", "http://127.0.0.1:1/", "--drain"}, "bench's own receiver"},
	} {
		_, stderr, code := runCLI(t, "", nil, append([]string{"bench"}, c.args...)...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("herald bench %v: exit %d, stderr %q; want a refusal with %q", c.args, code, stderr, c.want)
		}
	}
}
