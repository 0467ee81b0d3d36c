package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/heraldhq/herald/internal/api"
)

// Profiles keep, per named server, the API URL and key that herald login checked, in the user's
// configuration directory, so that switching between a local Herald and production is --profile
// rather than a set of environment variables.

// defaultProfile is the profile every API command uses when none is named.
const defaultProfile = "default"

// defaultAPIURL is the server an API command talks to when no flag, variable or profile names one.
const defaultAPIURL = "http://127.0.0.1:8080"

// profile is one saved server and key.
type profile struct {
	APIURL string `json:"api_url"`
	APIKey string `json:"api_key"`
	// Role and Tenant are what GET /v1/me said of the key at login, shown by profiles list.
	Role   string `json:"role,omitempty"`
	Tenant string `json:"tenant,omitempty"`
}

// cliConfig is the file config.json.
type cliConfig struct {
	Profiles map[string]profile `json:"profiles"`
}

// profileNameRe bounds profile names to what is safe to print and to type.
var profileNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func checkProfileName(name string) error {
	if !profileNameRe.MatchString(name) {
		return usageErrorf("--profile %q: want letters, digits, '.', '_' or '-' (at most 64)", name)
	}
	return nil
}

// configPath is os.UserConfigDir()/herald/config.json.
func configPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the user configuration directory: %w", err)
	}
	return filepath.Join(dir, "herald", "config.json"), nil
}

// loadConfig reads the configuration file; a missing file is an empty configuration.
func loadConfig() (*cliConfig, string, error) {
	path, err := configPath()
	if err != nil {
		return nil, "", err
	}
	c := &cliConfig{Profiles: map[string]profile{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, path, nil
	}
	if err != nil {
		return nil, path, fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, path, fmt.Errorf("%s is not a Herald configuration (fix or delete it): %w", path, err)
	}
	if c.Profiles == nil {
		c.Profiles = map[string]profile{}
	}
	return c, path, nil
}

// save writes the configuration, mode 0600 in a 0700 directory, replacing the file whole so
// that an interrupted write never leaves half a key behind.
func (c *cliConfig) save(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the configuration: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "config.json.new-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(append(b, '\n'))
	if err := errors.Join(werr, tmp.Chmod(0o600), tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// names lists the profiles in order, default first.
func (c *cliConfig) names() []string {
	var names []string
	for n := range c.Profiles {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == defaultProfile:
			return -1
		case b == defaultProfile:
			return 1
		}
		return strings.Compare(a, b)
	})
	return names
}

// maskKey shows enough of a key to tell keys apart, never enough to use it: its kind (hk_admin_,
// hk_tenant_) and last four characters.
func maskKey(key string) string {
	prefix := ""
	for _, p := range []string{api.AdminKeyPrefix, api.TenantKeyPrefix, api.PortalTokenPrefix} {
		if strings.HasPrefix(key, p) {
			prefix = p
		}
	}
	if len(key)-len(prefix) < 16 {
		return prefix + "****"
	}
	return prefix + "****" + key[len(key)-4:]
}
