package charttest

import (
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// want is what a rendering must show for its values.
type want struct {
	fullname       string
	postgres       bool
	replicas       int32
	secret         string // the Secret the pods read
	chartSecret    bool   // the chart renders that Secret
	adminKey       bool   // HERALD_API_KEY is set from the Secret
	image          string
	persistentSize string // sqlite: the claim template's size; "" without one
	existingClaim  string
	serviceMonitor bool
	pdb            bool
	metricsOff     bool
	env            map[string]string // plain environment variables the container must have
}

var chartCases = []struct {
	name    string
	release string
	values  map[string]any
	want    want
}{
	{
		name: "sqlite defaults", release: "herald",
		values: values(nil),
		want: want{fullname: "herald", replicas: 1, secret: "herald", chartSecret: true,
			image: "herald:0.1.0", persistentSize: "10Gi",
			env: map[string]string{"HERALD_ADDR": ":8080", "HERALD_DATA_DIR": "/data", "HERALD_LOG_FORMAT": "json"}},
	},
	{
		name: "sqlite with an admin key, ServiceMonitor, flags and no volume", release: "hooks",
		values: values(map[string]any{
			"secrets":        map[string]any{"adminApiKey": "hk_admin_chart_test_0123456789"},
			"persistence":    map[string]any{"enabled": false},
			"metrics":        map[string]any{"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "prometheus"}}},
			"containerPort":  9000,
			"service":        map[string]any{"port": 80, "type": "LoadBalancer"},
			"image":          map[string]any{"repository": "registry.example.com/herald", "tag": "1.2.3"},
			"replicaCount":   5, // ignored: SQLite runs one pod
			"extraEnv":       []any{map[string]any{"name": "TZ", "value": "UTC"}},
			"podAnnotations": map[string]any{"example.com/team": "hooks"},
			"config": map[string]any{
				"public-url": "https://hooks.example.com", "retention": "2160h", "max-in-flight": 4000,
				"publish-bytes-rate": 16777216, "allow-cidr": []any{"10.1.0.0/16", "10.2.0.0/16"},
				"egress-proxy-enforcing": false, "log-level": nil,
			},
		}),
		want: want{fullname: "hooks-herald", replicas: 1, secret: "hooks-herald", chartSecret: true, adminKey: true,
			image: "registry.example.com/herald:1.2.3", serviceMonitor: true,
			env: map[string]string{
				"HERALD_ADDR": ":9000", "HERALD_PUBLIC_URL": "https://hooks.example.com", "HERALD_RETENTION": "2160h",
				"HERALD_MAX_IN_FLIGHT": "4000", "HERALD_PUBLISH_BYTES_RATE": "16777216",
				"HERALD_ALLOW_CIDR": "10.1.0.0/16,10.2.0.0/16", "HERALD_EGRESS_PROXY_ENFORCING": "false", "TZ": "UTC",
			}},
	},
	{
		name: "sqlite with an existing Secret and claim", release: "herald",
		values: map[string]any{
			"secrets":     map[string]any{"existingSecret": "herald-keys"},
			"persistence": map[string]any{"existingClaim": "herald-data"},
		},
		want: want{fullname: "herald", replicas: 1, secret: "herald-keys", adminKey: true,
			image: "herald:0.1.0", existingClaim: "herald-data"},
	},
	{
		name: "postgres", release: "herald",
		values: values(map[string]any{
			"database":     map[string]any{"type": "postgres", "url": "postgres://herald:pw@db:5432/herald?sslmode=require", "schema": "hooks", "migrateOnStart": false},
			"replicaCount": 3,
			"secrets":      map[string]any{"adminApiKey": "hk_admin_chart_test_0123456789"},
			"metrics":      map[string]any{"serviceMonitor": map[string]any{"enabled": true}},
		}),
		want: want{fullname: "herald", postgres: true, replicas: 3, secret: "herald", chartSecret: true, adminKey: true,
			image: "herald:0.1.0", pdb: true, serviceMonitor: true,
			env: map[string]string{"HERALD_DATABASE_SCHEMA": "hooks", "HERALD_NO_MIGRATE": "true"}},
	},
	{
		name: "postgres with an existing Secret, no PDB, no metrics, a digest", release: "prod",
		values: map[string]any{
			"database":            map[string]any{"type": "postgres"},
			"secrets":             map[string]any{"existingSecret": "prod-herald-keys", "keys": map[string]any{"databaseUrl": "url"}},
			"podDisruptionBudget": map[string]any{"enabled": false},
			"metrics":             map[string]any{"enabled": false},
			"fullnameOverride":    "webhooks",
			"image":               map[string]any{"digest": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
			"serviceAccount":      map[string]any{"create": false, "name": "webhooks-sa"},
		},
		want: want{fullname: "webhooks", postgres: true, replicas: 2, secret: "prod-herald-keys", adminKey: true,
			image: "herald@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", metricsOff: true,
			env: map[string]string{"HERALD_NO_METRICS": "true"}},
	},
}

func TestChart_RendersValidManifestsInBothModes(t *testing.T) {
	for _, c := range chartCases {
		t.Run(c.name, func(t *testing.T) {
			r := mustRender(t, c.release, c.values)
			checkRelease(t, r, c.values, c.want)
			lintChart(t, c.values)
		})
	}
}

// checkRelease checks one rendering against w and its internal consistency: every reference
// (selector, port name, Secret key, volume, service account) points at something that exists.
func checkRelease(t *testing.T, r *release, vals map[string]any, w want) {
	t.Helper()
	seen := map[string]bool{}
	for _, o := range r.objects {
		m, err := metaOf(o)
		if err != nil {
			t.Fatal(err)
		}
		gvk := o.GetObjectKind().GroupVersionKind()
		key := gvk.Kind + "/" + m.GetName()
		if seen[key] {
			t.Errorf("%s rendered twice", key)
		}
		seen[key] = true
		if errs := validation.IsDNS1123Subdomain(m.GetName()); len(errs) > 0 {
			t.Errorf("%s: name: %v", key, errs)
		}
		for k, v := range m.GetLabels() {
			if errs := append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...); len(errs) > 0 {
				t.Errorf("%s: label %s=%s: %v", key, k, v, errs)
			}
		}
		if m.GetLabels()["app.kubernetes.io/instance"] != r.name {
			t.Errorf("%s: label app.kubernetes.io/instance is %q, want %q", key, m.GetLabels()["app.kubernetes.io/instance"], r.name)
		}
	}

	wl, selector, tpl := workload(t, r)
	if wl.GetName() != w.fullname {
		t.Errorf("workload named %q, want %q", wl.GetName(), w.fullname)
	}
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil || sel.Empty() {
		t.Fatalf("workload selector %v: %v (empty: %v)", selector, err, sel.Empty())
	}
	podLabels := labels.Set(tpl.Labels)
	if !sel.Matches(podLabels) {
		t.Errorf("workload selector %v does not select its own pods %v", selector, podLabels)
	}

	if w.postgres {
		d := one[*appsv1.Deployment](t, r, w.fullname)
		if d.Spec.Replicas == nil || *d.Spec.Replicas != w.replicas {
			t.Errorf("Deployment replicas %v, want %d", d.Spec.Replicas, w.replicas)
		}
		if got := all[*corev1.PersistentVolumeClaim](r); len(got) != 0 {
			t.Errorf("postgres mode renders %d PersistentVolumeClaims", len(got))
		}
	} else {
		s := one[*appsv1.StatefulSet](t, r, w.fullname)
		if s.Spec.Replicas == nil || *s.Spec.Replicas != 1 {
			t.Errorf("StatefulSet replicas %v, want 1: SQLite has one writer", s.Spec.Replicas)
		}
		headless := one[*corev1.Service](t, r, s.Spec.ServiceName)
		if headless.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("StatefulSet's serviceName %q is not headless (clusterIP %q)", s.Spec.ServiceName, headless.Spec.ClusterIP)
		}
		checkStatefulSetData(t, s, w)
	}
	checkPod(t, r, tpl, w)
	checkService(t, r, tpl, w)

	pdbs := all[*policyv1.PodDisruptionBudget](r)
	if w.pdb {
		if len(pdbs) != 1 {
			t.Fatalf("want one PodDisruptionBudget, found %d", len(pdbs))
		}
		s, err := metav1.LabelSelectorAsSelector(pdbs[0].Spec.Selector)
		if err != nil || s.Empty() || !s.Matches(podLabels) {
			t.Errorf("PodDisruptionBudget selector %v does not select the pods (%v)", pdbs[0].Spec.Selector, err)
		}
		if pdbs[0].Spec.MaxUnavailable == nil && pdbs[0].Spec.MinAvailable == nil {
			t.Error("PodDisruptionBudget sets neither maxUnavailable nor minAvailable")
		}
	} else if len(pdbs) != 0 {
		t.Errorf("want no PodDisruptionBudget, found %d", len(pdbs))
	}

	checkServiceMonitor(t, r, w)

	if !strings.Contains(r.notes, w.fullname) || !strings.Contains(r.notes, map[bool]string{true: "PostgreSQL", false: "SQLite"}[w.postgres]) {
		t.Errorf("NOTES do not name the release and its mode:\n%s", r.notes)
	}
	if strings.Contains(r.notes, encryptionKey) || strings.Contains(r.notes, "hk_admin_chart_test") {
		t.Errorf("NOTES show a secret:\n%s", r.notes)
	}
}

func metaOf(o any) (metav1.Object, error) {
	m, ok := o.(metav1.Object)
	if !ok {
		return nil, &unexpected{o}
	}
	return m, nil
}

type unexpected struct{ o any }

func (u *unexpected) Error() string { return "object without metadata" }

func checkStatefulSetData(t *testing.T, s *appsv1.StatefulSet, w want) {
	t.Helper()
	claims := s.Spec.VolumeClaimTemplates
	if w.persistentSize == "" {
		if len(claims) != 0 {
			t.Errorf("want no volumeClaimTemplates, found %d", len(claims))
		}
		return
	}
	if len(claims) != 1 || claims[0].Name != "data" {
		t.Fatalf("want one volumeClaimTemplate named data, found %v", claims)
	}
	got := claims[0].Spec.Resources.Requests[corev1.ResourceStorage]
	if got.Cmp(resource.MustParse(w.persistentSize)) != 0 {
		t.Errorf("claim size %s, want %s", got.String(), w.persistentSize)
	}
	if !slices.Contains(claims[0].Spec.AccessModes, corev1.ReadWriteOnce) {
		t.Errorf("claim access modes %v, want ReadWriteOnce", claims[0].Spec.AccessModes)
	}
	if p := s.Spec.PersistentVolumeClaimRetentionPolicy; p == nil || p.WhenDeleted != appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
		t.Errorf("claims are not retained when the release is deleted: %v", p)
	}
}

// checkPod checks the pod template: the container, its probes, its security, its environment
// against the real "herald serve" flags, and that every Secret and volume it names exists.
func checkPod(t *testing.T, r *release, tpl corev1.PodTemplateSpec, w want) {
	t.Helper()
	spec := tpl.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("want one container, found %d", len(spec.Containers))
	}
	c := spec.Containers[0]
	if c.Image != w.image {
		t.Errorf("image %q, want %q", c.Image, w.image)
	}
	if !slices.Equal(c.Args, []string{"serve"}) {
		t.Errorf("args %q, want [serve]", c.Args)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		if errs := validation.IsValidPortName(p.Name); len(errs) > 0 {
			t.Errorf("container port name %q: %v", p.Name, errs)
		}
		ports[p.Name] = p.ContainerPort
	}
	if ports["http"] == 0 {
		t.Fatalf("no container port named http: %v", c.Ports)
	}

	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"startup", c.StartupProbe, "/healthz"},
		{"liveness", c.LivenessProbe, "/healthz"},
		{"readiness", c.ReadinessProbe, "/readyz"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe: want an httpGet, got %v", p.name, p.probe)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s probe GETs %s, want %s", p.name, p.probe.HTTPGet.Path, p.path)
		}
		if port := p.probe.HTTPGet.Port.StrVal; ports[port] == 0 {
			t.Errorf("%s probe port %v is not a port of the container", p.name, p.probe.HTTPGet.Port)
		}
		// /readyz waits up to 2 s for the store: a shorter timeout would fail healthy pods.
		if p.probe.TimeoutSeconds < 3 {
			t.Errorf("%s probe timeout %d s, want at least 3", p.name, p.probe.TimeoutSeconds)
		}
	}

	psc, sc := spec.SecurityContext, c.SecurityContext
	switch {
	case psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot:
		t.Error("pod securityContext: want runAsNonRoot")
	case psc.RunAsUser == nil || *psc.RunAsUser != 65532 || psc.FSGroup == nil || *psc.FSGroup != 65532:
		t.Errorf("pod securityContext: want runAsUser and fsGroup 65532 (the image's user), got %v", psc)
	case sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("container securityContext: want readOnlyRootFilesystem")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("container securityContext: want allowPrivilegeEscalation false")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}):
		t.Errorf("container securityContext: want every capability dropped, got %v", sc.Capabilities)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token; Herald never talks to the Kubernetes API")
	}
	if sas := all[*corev1.ServiceAccount](r); len(sas) > 0 {
		if len(sas) != 1 || sas[0].Name != spec.ServiceAccountName {
			t.Errorf("pod runs as service account %q; the chart renders %d: %v", spec.ServiceAccountName, len(sas), sas)
		}
	}
	if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds < 60 {
		t.Errorf("terminationGracePeriodSeconds %v: a graceful stop takes up to 45 s", spec.TerminationGracePeriodSeconds)
	}
	if _, ok := c.Resources.Requests[corev1.ResourceMemory]; !ok {
		t.Error("no memory request")
	}

	// Volumes: every mount has its volume; /data and /tmp are writable mounts.
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	var claimTemplates []string
	if s := all[*appsv1.StatefulSet](r); len(s) == 1 {
		for _, c := range s[0].Spec.VolumeClaimTemplates {
			claimTemplates = append(claimTemplates, c.Name)
		}
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		if _, ok := volumes[m.Name]; !ok && !slices.Contains(claimTemplates, m.Name) {
			t.Errorf("volume mount %q names no volume", m.Name)
		}
		if _, ok := volumes[m.Name]; ok && slices.Contains(claimTemplates, m.Name) {
			t.Errorf("volume %q is both a pod volume and a claim template", m.Name)
		}
		if m.ReadOnly {
			t.Errorf("mount %s is read-only", m.MountPath)
		}
		mounts[m.MountPath] = m.Name
	}
	if mounts["/data"] == "" || mounts["/tmp"] == "" {
		t.Errorf("want /data and /tmp mounted, got %v", mounts)
	}
	if w.existingClaim != "" {
		v := volumes[mounts["/data"]]
		if v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != w.existingClaim {
			t.Errorf("/data is %v, want the claim %q", v.VolumeSource, w.existingClaim)
		}
	}

	checkEnv(t, r, c, w)
}

func checkEnv(t *testing.T, r *release, c corev1.Container, w want) {
	t.Helper()
	flags, err := heraldServeFlags()
	if err != nil {
		t.Fatal(err)
	}
	var chartSecret *corev1.Secret
	for _, s := range all[*corev1.Secret](r) {
		if s.Name == w.secret {
			chartSecret = s
		}
	}
	if w.chartSecret != (chartSecret != nil) {
		t.Fatalf("chart renders the Secret %q: %v, want %v", w.secret, chartSecret != nil, w.chartSecret)
	}
	if n := len(all[*corev1.Secret](r)); n > 1 || (!w.chartSecret && n > 0) {
		t.Errorf("the chart renders %d Secrets", n)
	}

	env := map[string]string{}
	fromSecret := map[string]bool{}
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup || fromSecret[e.Name] {
			t.Errorf("environment variable %s set twice", e.Name)
		}
		if errs := validation.IsEnvVarName(e.Name); len(errs) > 0 {
			t.Errorf("environment variable %q: %v", e.Name, errs)
		}
		// Every HERALD_ variable must set a real flag of "herald serve" (HERALD_ENCRYPTION_KEY is
		// the one that is an environment variable only, so the key never shows in the process list).
		if f := envFlag(e.Name); f != "" && !flags[f] && e.Name != "HERALD_ENCRYPTION_KEY" {
			t.Errorf("%s sets --%s, which herald serve does not have", e.Name, f)
		}
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		if ref == nil {
			t.Errorf("%s: valueFrom is not a secretKeyRef", e.Name)
			continue
		}
		fromSecret[e.Name] = true
		if ref.Name != w.secret {
			t.Errorf("%s reads Secret %q, want %q", e.Name, ref.Name, w.secret)
		}
		if errs := validation.IsConfigMapKey(ref.Key); len(errs) > 0 {
			t.Errorf("%s: Secret key %q: %v", e.Name, ref.Key, errs)
		}
		if chartSecret != nil {
			if _, ok := chartSecret.Data[ref.Key]; !ok {
				t.Errorf("%s reads key %q, which the chart's Secret lacks (it has %v)", e.Name, ref.Key, keys(chartSecret.Data))
			}
		}
		optional := ref.Optional != nil && *ref.Optional
		if optional != (e.Name == "HERALD_API_KEY" && chartSecret == nil) {
			t.Errorf("%s: optional %v; only the admin key of an existing Secret may be missing", e.Name, optional)
		}
	}
	for name, required := range map[string]bool{
		"HERALD_ENCRYPTION_KEY": true, "HERALD_DATABASE_URL": w.postgres, "HERALD_API_KEY": w.adminKey,
	} {
		if fromSecret[name] != required {
			t.Errorf("%s from the Secret: %v, want %v", name, fromSecret[name], required)
		}
	}
	for name, value := range w.env {
		if env[name] != value {
			t.Errorf("%s=%q, want %q", name, env[name], value)
		}
	}
	if _, ok := env["HERALD_DEV"]; ok {
		t.Error("the chart sets HERALD_DEV")
	}
	if (env["HERALD_NO_METRICS"] == "true") != w.metricsOff {
		t.Errorf("HERALD_NO_METRICS=%q, want metrics off: %v", env["HERALD_NO_METRICS"], w.metricsOff)
	}
	if chartSecret != nil {
		if got := string(chartSecret.Data["encryption-key"]); got != encryptionKey {
			t.Errorf("the Secret's encryption-key is %q, want the value given", got)
		}
		if _, ok := chartSecret.Data["database-url"]; ok != w.postgres {
			t.Errorf("the Secret holds a database-url: %v, want %v", ok, w.postgres)
		}
	}
}

func keys[V any](m map[string]V) []string {
	return slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
}

// checkService checks that the API Service reaches the pods' http port.
func checkService(t *testing.T, r *release, tpl corev1.PodTemplateSpec, w want) {
	t.Helper()
	svc := one[*corev1.Service](t, r, w.fullname)
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(tpl.Labels)) || len(svc.Spec.Selector) == 0 {
		t.Errorf("Service selector %v does not select the pods %v", svc.Spec.Selector, tpl.Labels)
	}
	if errs := validation.IsDNS1035Label(svc.Name); len(errs) > 0 {
		t.Errorf("Service name %q: %v", svc.Name, errs)
	}
	if len(svc.Spec.Ports) != 1 {
		t.Fatalf("Service ports %v, want one", svc.Spec.Ports)
	}
	p := svc.Spec.Ports[0]
	found := false
	for _, cp := range tpl.Spec.Containers[0].Ports {
		found = found || (cp.Name == p.TargetPort.StrVal)
	}
	if !found {
		t.Errorf("Service targetPort %v is not a container port", p.TargetPort)
	}
}

func checkServiceMonitor(t *testing.T, r *release, w want) {
	t.Helper()
	sms := all[*monitoringv1.ServiceMonitor](r)
	if !w.serviceMonitor {
		if len(sms) != 0 {
			t.Errorf("want no ServiceMonitor, found %d", len(sms))
		}
		return
	}
	if len(sms) != 1 {
		t.Fatalf("want one ServiceMonitor, found %d", len(sms))
	}
	sm := sms[0]
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil || sel.Empty() {
		t.Fatalf("ServiceMonitor selector %v: %v", sm.Spec.Selector, err)
	}
	// It must select the API Service alone (not the headless one too, or each pod is scraped twice).
	var selected []*corev1.Service
	for _, s := range all[*corev1.Service](r) {
		if sel.Matches(labels.Set(s.Labels)) {
			selected = append(selected, s)
		}
	}
	if len(selected) != 1 || selected[0].Name != w.fullname {
		t.Fatalf("ServiceMonitor selects %d Services, want only %q", len(selected), w.fullname)
	}
	if !slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{namespace}) {
		t.Errorf("ServiceMonitor namespaces %v, want [%s]", sm.Spec.NamespaceSelector.MatchNames, namespace)
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("ServiceMonitor endpoints %v, want one", sm.Spec.Endpoints)
	}
	ep := sm.Spec.Endpoints[0]
	if ep.Path != "/metrics" || ep.Port != selected[0].Spec.Ports[0].Name {
		t.Errorf("ServiceMonitor scrapes port %q path %q, want the Service's port %q and /metrics", ep.Port, ep.Path, selected[0].Spec.Ports[0].Name)
	}
}

func TestChart_RefusesBadValues(t *testing.T) {
	pg := map[string]any{"type": "postgres", "url": "postgres://herald@db/herald"}
	for _, c := range []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"no encryption key", map[string]any{}, "secrets.encryptionKey is required"},
		{"short encryption key", map[string]any{"secrets": map[string]any{"encryptionKey": "c2hvcnQ="}}, "exactly 32 bytes"},
		{"encryption key not base64", map[string]any{"secrets": map[string]any{"encryptionKey": "not base64 at all!"}}, "exactly 32 bytes"},
		{"short admin key", values(map[string]any{"secrets": map[string]any{"adminApiKey": "short"}}), "at least 16 characters"},
		{"postgres without a URL", values(map[string]any{"database": map[string]any{"type": "postgres"}}), "database.url is required"},
		{"postgres with a URL that is not one", values(map[string]any{"database": map[string]any{"type": "postgres", "url": "mysql://db"}}), "database.url: want postgres://"},
		{"unknown database type", values(map[string]any{"database": map[string]any{"type": "mysql"}}), "/database/type"},
		{"a URL in sqlite mode", values(map[string]any{"database": map[string]any{"url": "postgres://db/h"}}), "database.type is sqlite"},
		{"no replicas", values(map[string]any{"database": pg, "replicaCount": 0}), "replicaCount"},
		{"ServiceMonitor without metrics", values(map[string]any{"metrics": map[string]any{"enabled": false, "serviceMonitor": map[string]any{"enabled": true}}}), "needs metrics.enabled"},
		{"config sets what the chart sets", values(map[string]any{"config": map[string]any{"data-dir": "/elsewhere"}}), "config.data-dir"},
		{"config turns dev mode on", values(map[string]any{"config": map[string]any{"dev": true}}), "local development only"},
		{"config key that is no flag name", values(map[string]any{"config": map[string]any{"HERALD_RETENTION": "1h"}}), "config.HERALD_RETENTION"},
		// values.schema.json: a misspelt or misplaced value is refused rather than ignored.
		{"misspelt value", values(map[string]any{"databse": map[string]any{"type": "postgres"}}), "databse"},
		{"misspelt nested value", values(map[string]any{"persistence": map[string]any{"sise": "1Gi"}}), "sise"},
		{"wrong type", values(map[string]any{"containerPort": "http"}), "containerPort"},
		{"unknown service type", values(map[string]any{"service": map[string]any{"type": "Ingress"}}), "service"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := render(t, "herald", c.values)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("render gave %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// A changed key must roll the pods (they read it at start only); the same values must not.
func TestChart_PodsRollWhenTheSecretChanges(t *testing.T) {
	checksum := func(vals map[string]any) string {
		_, _, tpl := workload(t, mustRender(t, "herald", vals))
		return tpl.Annotations["checksum/secret"]
	}
	a, b := checksum(values(nil)), checksum(values(nil))
	other := checksum(values(map[string]any{"secrets": map[string]any{"adminApiKey": "hk_admin_another_key_0123456789"}}))
	if a == "" || a != b || a == other {
		t.Errorf("checksum/secret: %q twice %q, %q after a change; want one stable value that changes with the Secret", a, b, other)
	}
}
