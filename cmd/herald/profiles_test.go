package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMaskKey(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ key, want string }{
		{"hk_admin_local_dev_key_123", "hk_admin_****_123"},
		{"hk_tenant_abcdefghijklmnopqrstuvwxyz", "hk_tenant_****wxyz"},
		{"hk_admin_short", "hk_admin_****"},
		{"some-other-key-of-any-length-1234", "****1234"},
		{"tiny", "****"},
	} {
		if got := maskKey(c.key); got != c.want {
			t.Errorf("maskKey(%q) = %q, want %q", c.key, got, c.want)
		}
	}
}

// TestResolve_Precedence: flag (or variable, which bindEnv makes a flag value) > profile >
// default, per field, and a profile's key only with its own server.
func TestResolve_Precedence(t *testing.T) {
	cfgHome := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfgHome)
	cfg := &cliConfig{Profiles: map[string]profile{
		"default": {APIURL: "http://127.0.0.1:9001", APIKey: "hk_admin_default_key_0000000000"},
		"prod":    {APIURL: "https://herald.example.com/", APIKey: "hk_admin_prod_key_00000000000000"},
	}}
	if err := cfg.save(filepath.Join(cfgHome, "herald", "config.json")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name              string
		flags             apiFlags
		wantURL, wantKey  string
		wantErr, wantNote string
	}{
		{"default profile", apiFlags{}, "http://127.0.0.1:9001", "hk_admin_default_key_0000000000", "", ""},
		{"named profile", apiFlags{profile: "prod"}, "https://herald.example.com/", "hk_admin_prod_key_00000000000000", "", ""},
		{"key flag over profile", apiFlags{key: "hk_admin_flag"}, "http://127.0.0.1:9001", "hk_admin_flag", "", ""},
		{"url flag, same server", apiFlags{url: "https://herald.example.com", profile: "prod"}, "https://herald.example.com", "hk_admin_prod_key_00000000000000", "", ""},
		{"url flag, other server, named profile", apiFlags{url: "http://127.0.0.1:9999", profile: "prod"}, "", "", "profile prod is for", ""},
		{"url flag, other server", apiFlags{url: "http://127.0.0.1:9999"}, "", "", "missing --api-key", ""},
		{"unknown profile", apiFlags{profile: "nosuch"}, "", "", `no profile "nosuch"`, ""},
		{"bad profile name", apiFlags{profile: "../x"}, "", "", "--profile", ""},
	} {
		var notes bytes.Buffer
		got, err := c.flags.resolve(&notes)
		switch {
		case c.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: err %v, want one containing %q", c.name, err, c.wantErr)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case got.url != c.wantURL || got.key != c.wantKey:
			t.Errorf("%s: %s with %s, want %s with %s", c.name, got.url, got.key, c.wantURL, c.wantKey)
		}
	}

	// No profile at all: the default server, named on the notes writer.
	if err := os.Remove(filepath.Join(cfgHome, "herald", "config.json")); err != nil {
		t.Fatal(err)
	}
	var notes bytes.Buffer
	got, err := (&apiFlags{key: "hk_admin_k"}).resolve(&notes)
	if err != nil || got.url != defaultAPIURL || !strings.Contains(notes.String(), "using "+defaultAPIURL) {
		t.Errorf("without a profile: %+v, %v, notes %q", got, err, notes.String())
	}
}
