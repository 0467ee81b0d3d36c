package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// userDirs gives a command a home and configuration directory of its own, so that no test reads
// or writes the profiles of the user running it.
func userDirs(t *testing.T) (env []string, cfgDir string) {
	t.Helper()
	home := t.TempDir()
	cfgDir = filepath.Join(home, ".config")
	return []string{"HOME=" + home, "XDG_CONFIG_HOME=" + cfgDir}, cfgDir
}

// TestCLI_LoginProfilesAndPrecedence: herald login checks the key and saves a profile (0600 in a
// 0700 directory, the key never printed), every API command uses it, a flag beats the variable
// which beats the profile, a profile's key never goes to another server, and without any of
// them the default server is named on standard error.
func TestCLI_LoginProfilesAndPrecedence(t *testing.T) {
	needBinary(t)
	t.Parallel()
	p := serve(t, "serve", t.TempDir(), []string{"HERALD_API_KEY=" + testKey}, "--dev")
	apiURL := "http://" + p.addr
	home, cfgDir := userDirs(t)
	cli := func(env []string, stdin string, want int, args ...string) (string, string) {
		t.Helper()
		out, errOut, code := runCLI(t, stdin, append(append([]string{}, home...), env...), args...)
		if code != want {
			t.Fatalf("herald %v: exit %d, want %d; stdout %q, stderr %q", args, code, want, out, errOut)
		}
		return out, errOut
	}
	file := filepath.Join(cfgDir, "herald", "config.json")

	// Without a server anywhere, the default one is named on standard error.
	_, errOut := cli(nil, "", 2, "trigger", "invoice.paid", "--tenant", "acme")
	if !strings.Contains(errOut, "no --api-url, HERALD_API_URL or profile (herald login): using http://127.0.0.1:8080") ||
		!strings.Contains(errOut, "missing --api-key") {
		t.Errorf("trigger without server or key: stderr %q", errOut)
	}

	// A key the server refuses is not saved.
	_, errOut = cli(nil, "", 1, "login", "--api-url", apiURL, "--api-key", "hk_admin_not_the_key_0000000000")
	if !strings.Contains(errOut, "401") {
		t.Errorf("login with a wrong key: stderr %q", errOut)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("a refused login wrote %s (%v)", file, err)
	}

	out, _ := cli(nil, "", 0, "login", "--api-url", apiURL, "--api-key", testKey)
	if strings.Contains(out, testKey) || !strings.Contains(out, "profile default") || !strings.Contains(out, "admin key") {
		t.Errorf("login printed %q: want the profile and role, never the key", out)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	if di, err := os.Stat(filepath.Dir(file)); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("config directory: %v, mode %v; want 0700", err, di.Mode().Perm())
	}

	// The default profile serves every API command.
	cli(nil, "", 0, "tenants", "create", "acme")
	p.must("POST", "/v1/event-types", testKey, map[string]any{"name": "invoice.paid"}, http.StatusCreated, nil)
	out, errOut = cli(nil, "", 0, "trigger", "invoice.paid", "--tenant", "acme", "--data", `{"n":1}`)
	if !publishedRe.MatchString(out) || strings.Contains(errOut, "using http://127.0.0.1:8080") {
		t.Errorf("trigger with the default profile: stdout %q, stderr %q", out, errOut)
	}

	// A tenant key logged in as profile "shop" from standard input, chosen by HERALD_PROFILE or --profile.
	var key struct {
		Key string `json:"key"`
	}
	p.must("POST", "/v1/api-keys", testKey, map[string]any{"role": "tenant", "tenant_id": "acme"}, http.StatusCreated, &key)
	out, _ = cli(nil, key.Key+"\n", 0, "login", "--profile", "shop", "--api-url", apiURL)
	if strings.Contains(out, key.Key) || !strings.Contains(out, "tenant key of tenant acme") {
		t.Errorf("login of a tenant key printed %q", out)
	}
	out, _ = cli(nil, "", 0, "profiles", "list")
	rows := tableRows(t, out, "NAME API URL API KEY ROLE TENANT")
	if len(rows) != 2 || !strings.HasPrefix(rows[0], "default ") || !strings.HasPrefix(rows[1], "shop ") ||
		!strings.Contains(rows[0], "hk_admin_****"+testKey[len(testKey)-4:]) || !strings.Contains(rows[1], "tenant  acme") {
		t.Errorf("profiles list rows: %q", rows)
	}
	if strings.Contains(out, testKey) || strings.Contains(out, key.Key) {
		t.Errorf("profiles list shows a key in clear:\n%s", out)
	}
	_, errOut = cli([]string{"HERALD_PROFILE=shop"}, "", 1, "tenants", "list") // a tenant key may not list tenants
	if !strings.Contains(errOut, "403") {
		t.Errorf("tenants list with the tenant profile: stderr %q, want 403", errOut)
	}
	cli([]string{"HERALD_PROFILE=shop"}, "", 0, "tenants", "list", "--profile", "default") // the flag beats the variable
	cli(nil, "", 0, "events", "list", "--tenant", "acme", "--profile", "shop")
	_, errOut = cli(nil, "", 2, "tenants", "list", "--profile", "nosuch")
	if !strings.Contains(errOut, `no profile "nosuch"`) {
		t.Errorf("an unknown profile: stderr %q", errOut)
	}

	// flag > variable > profile, for the key.
	const wrong = "hk_admin_not_the_key_0000000000"
	_, errOut = cli([]string{"HERALD_API_KEY=" + wrong}, "", 1, "tenants", "list")
	if !strings.Contains(errOut, "401") {
		t.Errorf("HERALD_API_KEY over the profile: stderr %q, want 401", errOut)
	}
	cli([]string{"HERALD_API_KEY=" + wrong}, "", 0, "tenants", "list", "--api-key", testKey)

	// Another server named by the variable never gets a profile's key.
	var hits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(other.Close)
	_, errOut = cli([]string{"HERALD_API_URL=" + other.URL}, "", 2, "tenants", "list")
	if !strings.Contains(errOut, "missing --api-key") {
		t.Errorf("another server without a key: stderr %q", errOut)
	}
	_, errOut = cli([]string{"HERALD_API_URL=" + other.URL}, "", 2, "tenants", "list", "--profile", "shop")
	if !strings.Contains(errOut, "profile shop is for "+apiURL) {
		t.Errorf("another server with a named profile: stderr %q", errOut)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the other server got %d requests", n)
	}

	// trigger's old --url still works.
	out, errOut = cli(nil, "", 0, "trigger", "invoice.paid", "--tenant", "acme", "--url", apiURL, "--api-key", testKey, "--data", "{}")
	if !publishedRe.MatchString(out) || !strings.Contains(errOut, "--url has been deprecated") {
		t.Errorf("trigger --url: stdout %q, stderr %q", out, errOut)
	}

	// logout removes the profile, and the commands then have no key.
	out, _ = cli(nil, "", 0, "logout")
	if !strings.Contains(out, "profile default removed") {
		t.Errorf("logout: %q", out)
	}
	cli(nil, "", 2, "tenants", "list")
	var cfg struct {
		Profiles map[string]json.RawMessage `json:"profiles"`
	}
	b, err := os.ReadFile(file)
	if err != nil || json.Unmarshal(b, &cfg) != nil || len(cfg.Profiles) != 1 || cfg.Profiles["shop"] == nil {
		t.Errorf("config after logout: %s (%v)", b, err)
	}
	cli(nil, "", 1, "logout")
}

func TestCLI_VersionFlagPrintsTheVersionCommand(t *testing.T) {
	needBinary(t)
	t.Parallel()
	flag, _, code := runCLI(t, "", nil, "--version")
	cmd, _, code2 := runCLI(t, "", nil, "version")
	if code != 0 || code2 != 0 || flag != cmd || !strings.HasPrefix(flag, "herald ") {
		t.Errorf("herald --version: %q (exit %d); herald version: %q (exit %d)", flag, code, cmd, code2)
	}
}
