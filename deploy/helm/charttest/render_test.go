// Package charttest renders the Helm chart in deploy/helm/herald with Helm's own Go library, as
// "helm template" does, and checks every manifest strictly against the Kubernetes API types. It is
// a module of its own so that Helm's and Kubernetes' dependencies never enter Herald's module.
package charttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/yaml"
)

const (
	chartDir  = "../herald"
	repoRoot  = "../../.."
	namespace = "hooks"
	// kubeVersion is the oldest Kubernetes the chart's kubeVersion accepts: rendering for it checks
	// that claim (Helm's default capabilities say v1.20, which the chart refuses).
	kubeVersion = "v1.27.0"
)

// decoder decodes a manifest into its typed object by apiVersion and kind, strictly: an unknown or
// misspelt field (matched case-sensitively), a duplicate field or a wrong type is an error.
func decoder(t *testing.T) runtime.Decoder {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme, monitoringv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}

// release is one rendering of the chart.
type release struct {
	name    string
	objects []runtime.Object
	notes   string
}

// render renders the chart as "helm template <name> deploy/helm/herald -n hooks" with vals.
func render(t *testing.T, name string, vals map[string]any) (*release, error) {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load the chart: %v", err)
	}
	install := action.NewInstall(action.NewConfiguration())
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName = name
	install.Namespace = namespace
	install.Replace = true
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	install.KubeVersion = kv
	r, err := install.Run(ch, vals)
	if err != nil {
		return nil, err
	}
	rel, ok := r.(*releasev1.Release)
	if !ok {
		t.Fatalf("install returned a %T, want *release/v1.Release", r)
	}
	if len(rel.Hooks) != 0 {
		t.Errorf("the chart has %d hooks; this test checks the manifest only", len(rel.Hooks))
	}
	out := &release{name: name, notes: rel.Info.Notes}
	dec := decoder(t)
	for doc := range strings.SplitSeq(rel.Manifest, "\n---") {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		// Duplicate keys are refused here already: YAMLToJSONStrict, before the typed decoding.
		js, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			t.Fatalf("not YAML: %v\n%s", err, doc)
		}
		obj, _, err := dec.Decode(js, nil, nil)
		if err != nil {
			t.Fatalf("manifest does not decode strictly into its Kubernetes type: %v\n%s", err, doc)
		}
		out.objects = append(out.objects, obj)
	}
	return out, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func mustRender(t *testing.T, name string, vals map[string]any) *release {
	t.Helper()
	r, err := render(t, name, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return r
}

// all returns the objects of type T.
func all[T runtime.Object](r *release) []T {
	var out []T
	for _, o := range r.objects {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// one returns the only object of type T named name, failing if there is not exactly one.
func one[T interface {
	runtime.Object
	GetName() string
}](t *testing.T, r *release, name string) T {
	t.Helper()
	var found []T
	for _, o := range all[T](r) {
		if o.GetName() == name {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want one %T named %q, found %d", zero, name, len(found))
	}
	return found[0]
}

// encryptionKey is base64 of 32 bytes, as Herald wants.
const encryptionKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// values merges the given values over the ones every case needs.
func values(extra map[string]any) map[string]any {
	v := map[string]any{"secrets": map[string]any{"encryptionKey": encryptionKey}}
	return loader.MergeMaps(v, extra)
}

// heraldServeFlags are the flags "herald serve --help" lists, from the real binary built from
// the repository once per test run.
var heraldServeFlags = sync.OnceValues(func() (map[string]bool, error) {
	bin, err := heraldBin.get()
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(bin, "serve", "--help").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("herald serve --help: %w\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["data-dir"] || !flags["database-url"] {
		return nil, fmt.Errorf("herald serve --help lists no --data-dir or --database-url:\n%s", out)
	}
	return flags, nil
})

// heraldBin is the herald binary, built from the repository by the first test that needs it
// and removed by TestMain.
var heraldBin lazyBinary

type lazyBinary struct {
	once sync.Once
	path string
	err  error
}

func (b *lazyBinary) get() (string, error) {
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "herald-charttest-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "herald")
		build := exec.Command("go", "build", "-o", b.path, "./cmd/herald")
		build.Dir = repoRoot
		if out, err := build.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("build herald: %w\n%s", err, out)
		}
	})
	return b.path, b.err
}

func TestMain(m *testing.M) {
	code := m.Run()
	if heraldBin.path != "" {
		_ = os.RemoveAll(filepath.Dir(heraldBin.path))
	}
	os.Exit(code)
}

// envFlag is the serve flag an environment variable sets (HERALD_LOG_FORMAT: log-format), or ""
// for an environment variable that sets none.
func envFlag(name string) string {
	rest, ok := strings.CutPrefix(name, "HERALD_")
	if !ok {
		return ""
	}
	return strings.ToLower(strings.ReplaceAll(rest, "_", "-"))
}

// lintChart runs Helm's linter on the chart with vals and fails on any warning or error.
func lintChart(t *testing.T, vals map[string]any) {
	t.Helper()
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	l := lint.RunAll(chartDir, vals, namespace, lint.WithKubeVersion(kv))
	for _, m := range l.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint: %s", m)
		}
	}
}

func TestDecoder_RefusesWhatTheAPIServerWould(t *testing.T) {
	// The decoder is what makes every other test strict: show that it refuses what the API server
	// would (a misspelt field, a wrong type) rather than dropping it.
	dec := decoder(t)
	for _, c := range []struct{ name, manifest, want string }{
		{"unknown field", `{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"},"spec":{"porrts":[]}}`, "porrts"},
		{"field in the wrong case", `{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"},"spec":{"Type":"ClusterIP"}}`, "Type"},
		{"wrong type", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a"},"spec":{"replicas":"two"}}`, "replicas"},
		{"duplicate field", `{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"},"spec":{"type":"ClusterIP","type":"NodePort"}}`, "type"},
		{"unknown kind", `{"apiVersion":"v1","kind":"Servise","metadata":{"name":"a"}}`, "Servise"},
	} {
		_, _, err := dec.Decode([]byte(c.manifest), nil, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: decode gave %v, want an error naming %q", c.name, err, c.want)
		}
	}
}

// podSpec returns the workload of the release and its pod template; exactly one of a StatefulSet
// and a Deployment.
func workload(t *testing.T, r *release) (metav1.Object, *metav1.LabelSelector, corev1.PodTemplateSpec) {
	t.Helper()
	sts, deps := all[*appsv1.StatefulSet](r), all[*appsv1.Deployment](r)
	switch {
	case len(sts) == 1 && len(deps) == 0:
		return sts[0], sts[0].Spec.Selector, sts[0].Spec.Template
	case len(deps) == 1 && len(sts) == 0:
		return deps[0], deps[0].Spec.Selector, deps[0].Spec.Template
	}
	t.Fatalf("want one StatefulSet or one Deployment, found %d and %d", len(sts), len(deps))
	panic("unreachable")
}
