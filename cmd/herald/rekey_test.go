package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/seal"
)

// rekey runs "herald rekey" to its end and returns its output and exit error.
func rekey(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, heraldBin, append([]string{"rekey"}, args...)...)
	cmd.Env = childEnv(env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The documented rotation on SQLite: stop serve, rekey with the new key current and the old one
// kept for reading, after which the old key is not needed; serve starts with the new key alone.
func TestRekey_RotatesTheMasterKeyOfAStoppedStore(t *testing.T) {
	t.Parallel()
	needBinary(t)
	dir := t.TempDir()
	env := []string{"HERALD_API_KEY=" + testKey}
	p := serve(t, "first", dir, env, "--dev")
	p.must("POST", "/v1/tenants", testKey, map[string]any{"id": "acme", "name": "Acme"}, 201, nil)
	var ep struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	p.must("POST", "/v1/tenants/acme/endpoints", testKey, map[string]any{"url": "http://127.0.0.1:9/x", "event_types": []string{"*"}}, 201, &ep)
	p.stop()

	oldKey, err := seal.ReadKeyFile(filepath.Join(dir, seal.KeyFileName))
	if err != nil {
		t.Fatalf("serve created no key file in the data directory: %v", err)
	}
	newKey, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	current := "HERALD_ENCRYPTION_KEY=" + seal.EncodeKey(newKey)
	if out, err := rekey(t, []string{current}, "--data-dir", dir); err == nil || !strings.Contains(out, "unknown master key") {
		t.Fatalf("rekey without the old key: %v\n%s", err, out)
	}
	out, err := rekey(t, []string{current, "HERALD_ENCRYPTION_OLD_KEYS=" + seal.EncodeKey(oldKey)}, "--data-dir", dir)
	if err != nil || !strings.Contains(out, "secrets of 1 endpoints") {
		t.Fatalf("rekey: %v\n%s", err, out)
	}
	if strings.Contains(out, seal.EncodeKey(newKey)) || strings.Contains(out, seal.EncodeKey(oldKey)) {
		t.Fatalf("rekey printed a key:\n%s", out)
	}
	if out, err := rekey(t, []string{current}, "--data-dir", dir); err != nil || !strings.Contains(out, "secrets of 0 endpoints") {
		t.Fatalf("rekey with the new key alone: %v\n%s", err, out)
	}
	db, err := os.ReadFile(filepath.Join(dir, "herald.db"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(db), ep.Secret) {
		t.Fatal("the database file holds the secret in clear")
	}

	p = serve(t, "second", dir, append(env, current), "--dev")
	var sec struct {
		Key string `json:"key"`
	}
	p.must("GET", "/v1/tenants/acme/endpoints/"+ep.ID+"/secret", testKey, nil, 200, &sec)
	if sec.Key != ep.Secret {
		t.Fatalf("secret after the rotation = %q, want %q", sec.Key, ep.Secret)
	}
	p.stop()
	if out, err := rekey(t, []string{"HERALD_ENCRYPTION_KEY=c2hvcnQ="}, "--data-dir", dir); err == nil || !strings.Contains(out, "HERALD_ENCRYPTION_KEY") {
		t.Fatalf("a bad key: %v\n%s", err, out)
	}
}
