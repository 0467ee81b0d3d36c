package charttest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// dockerfile is what the final stage of the repository's Dockerfile sets up.
type dockerfile struct {
	env         map[string]string
	user        string
	volumes     []string
	expose      []string
	healthcheck []string // the HEALTHCHECK's CMD, exec form
	entrypoint  []string
	cmd         []string
	build       string // the build stage's instructions
}

// readDockerfile reads the instructions the chart and this test rely on. It knows the few forms
// the Dockerfile uses (continued lines, JSON exec form, ENV k=v), not the whole syntax.
func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	var cur strings.Builder
	for line := range strings.SplitSeq(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if s, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	exec := func(t *testing.T, s string) []string {
		var out []string
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			t.Fatalf("Dockerfile: %q is not the exec (JSON) form: %v", s, err)
		}
		return out
	}
	d := dockerfile{env: map[string]string{}}
	final := false
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			final = !strings.Contains(rest, " AS ")
		}
		if !final {
			d.build += l + "\n"
			continue
		}
		switch strings.ToUpper(instr) {
		case "ENV":
			for kv := range strings.FieldsSeq(rest) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("Dockerfile: ENV %q: want k=v", rest)
				}
				d.env[k] = v
			}
		case "USER":
			d.user = rest
		case "VOLUME":
			d.volumes = exec(t, rest)
		case "EXPOSE":
			d.expose = strings.Fields(rest)
		case "HEALTHCHECK":
			_, c, ok := strings.Cut(rest, "CMD ")
			if !ok {
				t.Fatalf("Dockerfile: HEALTHCHECK %q has no CMD", rest)
			}
			d.healthcheck = exec(t, c)
		case "ENTRYPOINT":
			d.entrypoint = exec(t, rest)
		case "CMD":
			d.cmd = exec(t, rest)
		}
	}
	return d
}

// The chart assumes what the image provides: its user, its port, its data volume, its binary.
func TestDockerfile_AgreesWithTheChart(t *testing.T) {
	d := readDockerfile(t)
	r := mustRender(t, "herald", values(nil))
	_, _, tpl := workload(t, r)
	c := tpl.Spec.Containers[0]

	if uid := strconv.FormatInt(*tpl.Spec.SecurityContext.RunAsUser, 10); d.user != uid+":"+uid {
		t.Errorf("Dockerfile USER %q, the chart runs as %s", d.user, uid)
	}
	if port := strconv.Itoa(int(c.Ports[0].ContainerPort)); len(d.expose) != 1 || d.expose[0] != port ||
		d.env["HERALD_ADDR"] != ":"+port {
		t.Errorf("Dockerfile EXPOSE %v, HERALD_ADDR %q; the chart's port is %s", d.expose, d.env["HERALD_ADDR"], port)
	}
	mounts := map[string]bool{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = true
	}
	if len(d.volumes) != 1 || d.env["HERALD_DATA_DIR"] != d.volumes[0] || !mounts[d.volumes[0]] {
		t.Errorf("Dockerfile VOLUME %v, HERALD_DATA_DIR %q; the chart mounts %v", d.volumes, d.env["HERALD_DATA_DIR"], mounts)
	}
	// The chart gives the container args only: the image's entry point must be the binary.
	if len(d.entrypoint) != 1 || !slicesEqual(d.cmd, c.Args) {
		t.Errorf("Dockerfile ENTRYPOINT %q CMD %q; the chart runs args %q on the entry point", d.entrypoint, d.cmd, c.Args)
	}
	if len(d.healthcheck) < 2 || d.healthcheck[0] != d.entrypoint[0] || d.healthcheck[1] != "healthcheck" {
		t.Errorf("Dockerfile HEALTHCHECK %q: want the image's herald healthcheck (there is no shell)", d.healthcheck)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-s -w`, "GOPROXY=off", "go mod download"} {
		if !strings.Contains(d.build, want) {
			t.Errorf("the Dockerfile's build stage lacks %q", want)
		}
	}
}

func slicesEqual(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

// The environment a pod gets (the image's ENV, then the container's env with the Secret's values)
// starts the real Herald, which then answers the probes, the image's HEALTHCHECK command and the
// admin key; and it stops within the grace period. Only the address and the data directory are
// changed, to a loopback port and a temporary directory.
func TestChart_PodEnvironmentStartsHerald(t *testing.T) {
	const adminKey = "hk_admin_chart_pod_env_0123456789"
	cases := []struct {
		name   string
		values map[string]any
	}{
		{"sqlite", values(map[string]any{
			"secrets": map[string]any{"adminApiKey": adminKey},
			"config": map[string]any{
				"retention": "2160h", "max-in-flight": 4000, "publish-bytes-rate": 16777216,
				"allow-cidr": []any{"10.1.0.0/16", "10.2.0.0/16"}, "public-url": "https://hooks.example.com",
			},
		})},
	}
	if url := os.Getenv("HERALD_TEST_DATABASE_URL"); url != "" {
		schema := "charttest_" + strings.ToLower(rand.Text()[:10])
		t.Cleanup(func() { dropSchema(t, url, schema) })
		cases = append(cases, struct {
			name   string
			values map[string]any
		}{"postgres", values(map[string]any{
			"database": map[string]any{"type": "postgres", "url": url, "schema": schema},
			"secrets":  map[string]any{"adminApiKey": adminKey},
		})})
	} else {
		t.Log("HERALD_TEST_DATABASE_URL is not set: the PostgreSQL mode's environment is not run")
	}
	bin, err := heraldBin.get()
	if err != nil {
		t.Fatal(err)
	}
	d := readDockerfile(t)

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := mustRender(t, "herald", c.values)
			_, _, tpl := workload(t, r)
			ctr := tpl.Spec.Containers[0]
			env := podEnv(t, d, ctr, all[*corev1.Secret](r))
			addr := freeAddr(t)
			env["HERALD_ADDR"] = addr
			env["HERALD_DATA_DIR"] = t.TempDir()

			var stderr syncBuffer
			cmd := exec.Command(bin, ctr.Args...)
			cmd.Env = envList(env)
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			t.Cleanup(func() {
				if cmd.ProcessState == nil {
					_ = cmd.Process.Kill()
					<-exited
				}
				if t.Failed() {
					t.Logf("herald's stderr:\n%s", stderr.String())
				}
			})

			base := "http://" + addr
			waitStatus(t, base+ctr.StartupProbe.HTTPGet.Path, "", http.StatusOK, exited)
			waitStatus(t, base+ctr.ReadinessProbe.HTTPGet.Path, "", http.StatusOK, exited)
			if got := status(t, base+ctr.LivenessProbe.HTTPGet.Path, ""); got != http.StatusOK {
				t.Errorf("liveness probe %s: %d", ctr.LivenessProbe.HTTPGet.Path, got)
			}
			// The admin key came from the Secret through HERALD_API_KEY.
			if got := status(t, base+"/v1/tenants", adminKey); got != http.StatusOK {
				t.Errorf("GET /v1/tenants with the Secret's admin key: %d, want 200", got)
			}
			// The image's HEALTHCHECK, as Docker runs it: no shell, the image's environment.
			hc := exec.Command(bin, d.healthcheck[1:]...)
			hc.Env = envList(map[string]string{"HERALD_ADDR": addr, "PATH": os.Getenv("PATH")})
			if out, err := hc.CombinedOutput(); err != nil {
				t.Errorf("the Dockerfile's HEALTHCHECK %q: %v\n%s", d.healthcheck, err, out)
			}
			for _, want := range []string{`"msg":"herald is serving"`} {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("herald's log lacks %s (log-format json from the chart's config)", want)
				}
			}

			// Kubernetes stops a pod with SIGTERM and kills it after the grace period.
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			grace := time.Duration(*tpl.Spec.TerminationGracePeriodSeconds) * time.Second
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("herald exited with %v after SIGTERM, want 0", err)
				}
			case <-time.After(grace):
				t.Fatalf("herald still running %v after SIGTERM, the chart's grace period", grace)
			}
		})
	}
}

// podEnv is the environment of the container: the image's ENV, overridden by the container's
// env, with secretKeyRefs read from the rendered Secret (or left out when optional and missing).
func podEnv(t *testing.T, d dockerfile, c corev1.Container, secrets []*corev1.Secret) map[string]string {
	t.Helper()
	env := map[string]string{"PATH": os.Getenv("PATH"), "HOME": t.TempDir()}
	for k, v := range d.env {
		env[k] = v
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		found := false
		for _, s := range secrets {
			if s.Name == ref.Name {
				if v, ok := s.Data[ref.Key]; ok {
					env[e.Name], found = string(v), true
				}
			}
		}
		if !found {
			t.Fatalf("%s: Secret %s has no key %s", e.Name, ref.Name, ref.Key)
		}
	}
	return env
}

func envList(env map[string]string) []string {
	var out []string
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

// client talks to the local herald only, never through a proxy.
var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

// status GETs u (with key as Bearer if set) and returns the status, 0 when there was no answer.
func status(t *testing.T, u, key string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// waitStatus polls u until it answers want, for as long as the chart's startup probe would.
func waitStatus(t *testing.T, u, key string, want int, exited <-chan error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("herald exited before %s answered %d: %v", u, want, err)
		default:
		}
		got := status(t, u, key)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s answered %d, want %d", u, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dropSchema removes the PostgreSQL schema a test made, with Debian's psql (the nested module
// has no PostgreSQL driver of its own).
func dropSchema(t *testing.T, url, schema string) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Logf("psql not found: schema %s left in the test database", schema)
		return
	}
	out, err := exec.Command(psql, url, "-v", "ON_ERROR_STOP=1", "-qc", fmt.Sprintf(`DROP SCHEMA IF EXISTS %q CASCADE`, schema)).CombinedOutput()
	if err != nil {
		t.Errorf("drop schema %s: %v\n%s", schema, err, out)
	}
}

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
