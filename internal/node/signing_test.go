package node_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/internal/seal"
	"github.com/heraldhq/herald/webhook"
)

type secretInfo struct {
	Key             string `json:"key"`
	SignatureScheme string `json:"signature_scheme"`
	Previous        []struct {
		Key             string    `json:"key"`
		SignatureScheme string    `json:"signature_scheme"`
		ExpiresAt       time.Time `json:"expires_at"`
	} `json:"previous"`
}

// verifyV1a checks every v1a signature of a delivery against the public keys, with nothing but
// crypto/ed25519 and the Standard Webhooks definition of the signed content (id.timestamp.body),
// and returns how many distinct keys verified one.
func verifyV1a(t *testing.T, r received, publicKeys ...string) int {
	t.Helper()
	content := []byte(r.header.Get("webhook-id") + "." + r.header.Get("webhook-timestamp") + ".")
	content = append(content, r.body...)
	verified := 0
	for _, pk := range publicKeys {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(pk, "whpk_"))
		if err != nil || len(raw) != ed25519.PublicKeySize {
			t.Fatalf("public key %q: %v", pk, err)
		}
		for _, sig := range strings.Fields(r.header.Get("webhook-signature")) {
			b64, ok := strings.CutPrefix(sig, "v1a,")
			if !ok {
				continue
			}
			s, err := base64.StdEncoding.DecodeString(b64)
			if err == nil && ed25519.Verify(raw, content, s) {
				verified++
				break
			}
		}
	}
	return verified
}

// dataFiles is every byte of the SQLite store on disk: the database, its WAL and shared memory.
func dataFiles(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	for _, name := range []string{"herald.db", "herald.db-wal", "herald.db-shm"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func TestDelivery_Ed25519EndpointSignsV1aWithTheKeyTheAPIShows(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	rc := newReceiver(t, nil)
	h.setup("acme", "invoice.paid")
	var ep struct {
		ID              string `json:"id"`
		Secret          string `json:"secret"`
		SignatureScheme string `json:"signature_scheme"`
		PublicKey       string `json:"public_key"`
	}
	h.must(201, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": rc.URL, "event_types": []string{"*"}, "signature_scheme": "ed25519"}, &ep)
	if ep.SignatureScheme != "ed25519" || ep.Secret != "" || !strings.HasPrefix(ep.PublicKey, "whpk_") {
		t.Fatalf("created endpoint = %+v; want scheme ed25519, a whpk_ public key and no secret", ep)
	}
	var raw json.RawMessage
	h.must(200, "GET", "/v1/tenants/acme/endpoints/"+ep.ID+"/secret", nil, &raw)
	if bytes.Contains(raw, []byte("whsk_")) {
		t.Fatalf("the secret route shows the private key: %s", raw)
	}
	var sec secretInfo
	if err := json.Unmarshal(raw, &sec); err != nil {
		t.Fatal(err)
	}
	if sec.Key != ep.PublicKey || sec.SignatureScheme != "ed25519" {
		t.Fatalf("secret route = %s; want the public key %s", raw, ep.PublicKey)
	}
	h.must(200, "GET", "/v1/tenants/acme/endpoints/"+ep.ID, nil, &raw)
	if bytes.Contains(raw, []byte("whsk_")) {
		t.Fatalf("the endpoint shows the private key: %s", raw)
	}

	p := h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{"amount": 1200}})
	eventually(t, 5*time.Second, "the webhook", func() bool { return rc.count() == 1 })
	got := rc.got()[0]
	if sig := got.header.Get("webhook-signature"); !strings.HasPrefix(sig, "v1a,") || strings.Contains(sig, " ") {
		t.Fatalf("webhook-signature = %q; want one v1a signature", sig)
	}
	if got.header.Get("webhook-id") != p.ID {
		t.Fatalf("webhook-id = %q, want %s", got.header.Get("webhook-id"), p.ID)
	}
	if verifyV1a(t, got, sec.Key) != 1 {
		t.Fatal("the v1a signature does not verify with the public key from the API")
	}
	v, err := webhook.NewVerifier(sec.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(got.body, got.header); err != nil {
		t.Fatalf("Herald's verifier rejects the delivery: %v", err)
	}
	if ts, _ := strconv.ParseInt(got.header.Get("webhook-timestamp"), 10, 64); time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
		t.Fatalf("webhook-timestamp %d is not now", ts)
	}
	// Neither the private key nor anything in clear that names one is on disk.
	if files := dataFiles(t, h.dir); bytes.Contains(files, []byte("whsk_")) || !bytes.Contains(files, []byte("enc:v1:")) {
		t.Fatal("the SQLite files hold a whsk_ private key in clear, or no sealed value")
	}

	// Rotation to a new Ed25519 key: both keys sign until the old one expires.
	var rotated secretInfo
	h.must(200, "POST", "/v1/tenants/acme/endpoints/"+ep.ID+"/secret/rotate", map[string]any{}, &rotated)
	if rotated.SignatureScheme != "ed25519" || !strings.HasPrefix(rotated.Key, "whpk_") || rotated.Key == sec.Key ||
		len(rotated.Previous) != 1 || rotated.Previous[0].Key != sec.Key || rotated.Previous[0].SignatureScheme != "ed25519" {
		t.Fatalf("rotate = %+v", rotated)
	}
	h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{}})
	eventually(t, 5*time.Second, "the second webhook", func() bool { return rc.count() == 2 })
	second := rc.got()[1]
	if n := len(strings.Fields(second.header.Get("webhook-signature"))); n != 2 {
		t.Fatalf("%d signatures during the overlap, want 2: %q", n, second.header.Get("webhook-signature"))
	}
	if verifyV1a(t, second, rotated.Key, sec.Key) != 2 {
		t.Fatal("during the overlap, the delivery does not verify with both the new and the old public key")
	}

	// Switching back to HMAC is a rotation too: the receiver can verify either until it moves.
	var switched struct {
		SignatureScheme string `json:"signature_scheme"`
		PublicKey       string `json:"public_key"`
	}
	h.must(200, "PATCH", "/v1/tenants/acme/endpoints/"+ep.ID, map[string]any{"signature_scheme": "hmac-sha256"}, &switched)
	if switched.SignatureScheme != "hmac-sha256" || switched.PublicKey != "" {
		t.Fatalf("after the switch: %+v", switched)
	}
	var hmacSec secretInfo
	h.must(200, "GET", "/v1/tenants/acme/endpoints/"+ep.ID+"/secret", nil, &hmacSec)
	if !strings.HasPrefix(hmacSec.Key, "whsec_") || hmacSec.SignatureScheme != "hmac-sha256" || len(hmacSec.Previous) != 2 {
		t.Fatalf("secret after the switch = %+v", hmacSec)
	}
	h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{}})
	eventually(t, 5*time.Second, "the third webhook", func() bool { return rc.count() == 3 })
	third := rc.got()[2]
	wh, err := standardwebhooks.NewWebhook(hmacSec.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(third.body, third.header); err != nil {
		t.Fatalf("the official library rejects the new HMAC signature: %v", err)
	}
	if verifyV1a(t, third, rotated.Key) != 1 {
		t.Fatal("during the overlap the Ed25519 key the receiver holds no longer verifies")
	}
}

func TestAPI_SignatureSchemeValidation(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	h.setup("acme", "invoice.paid")
	type problem struct {
		Status int `json:"status"`
		Errors []struct {
			Location string `json:"location"`
		} `json:"errors"`
	}
	check := func(method, path string, body any, location string) {
		t.Helper()
		var p problem
		if code := h.call(method, path, body, &p); code != 422 {
			t.Fatalf("%s %s %v = %d, want 422", method, path, body, code)
		}
		for _, e := range p.Errors {
			if e.Location == location {
				return
			}
		}
		t.Fatalf("%s %s %v: the problem does not name %s: %+v", method, path, body, location, p)
	}
	base := map[string]any{"url": "http://127.0.0.1:1/x", "event_types": []string{"*"}}
	with := func(extra map[string]any) map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	check("POST", "/v1/tenants/acme/endpoints", with(map[string]any{"signature_scheme": "rsa"}), "body.signature_scheme")
	check("POST", "/v1/tenants/acme/endpoints", with(map[string]any{"signature_scheme": "ed25519", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}), "body.secret")
	ep := h.endpoint("acme", with(map[string]any{"signature_scheme": "ed25519"}))
	check("PATCH", "/v1/tenants/acme/endpoints/"+ep.ID, map[string]any{"signature_scheme": "ED25519"}, "body.signature_scheme")
	check("POST", "/v1/tenants/acme/endpoints/"+ep.ID+"/secret/rotate", map[string]any{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "body.secret")
	check("POST", "/v1/tenants/acme/endpoints/"+ep.ID+"/secret/rotate", map[string]any{"signature_scheme": "hmac"}, "body.signature_scheme")
	// An own whsec_ secret is fine when rotating to HMAC.
	var sec secretInfo
	h.must(200, "POST", "/v1/tenants/acme/endpoints/"+ep.ID+"/secret/rotate",
		map[string]any{"signature_scheme": "hmac-sha256", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "overlap_seconds": 0}, &sec)
	if sec.Key != "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" || sec.SignatureScheme != "hmac-sha256" || len(sec.Previous) != 0 {
		t.Fatalf("rotate to an own HMAC secret without overlap = %+v", sec)
	}
}

// A first start creates the key file (0600) in the data directory; a new master key with the old
// one kept for reading takes over in the background pass at start, after which the old key can go.
func TestNode_MasterKeyRotationWithoutDowntime(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	keyFile := filepath.Join(h.dir, seal.KeyFileName)
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatalf("no key file in the data directory: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	oldKey, err := seal.ReadKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	oldKeys, err := seal.NewKeyring(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t, nil)
	h.setup("acme", "invoice.paid")
	ep := h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}})
	if files := dataFiles(t, h.dir); bytes.Contains(files, []byte(ep.Secret)) || !bytes.Contains(files, []byte("enc:v1:"+oldKeys.ID())) {
		t.Fatal("the secret is on disk in clear, or not sealed with the key file's key")
	}

	newKey, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	h.stop()
	h.cfg.Encryption = seal.Config{Key: seal.EncodeKey(newKey), OldKeys: seal.EncodeKey(oldKey)}
	h.boot()
	eventually(t, 10*time.Second, "the secrets re-encrypted with the new key", func() bool {
		return !bytes.Contains(dataFiles(t, h.dir), []byte("enc:v1:"+oldKeys.ID()))
	})
	h.stop()
	h.cfg.Encryption = seal.Config{Key: seal.EncodeKey(newKey)} // the old key is retired
	h.boot()
	var sec secretInfo
	h.must(200, "GET", "/v1/tenants/acme/endpoints/"+ep.ID+"/secret", nil, &sec)
	if sec.Key != ep.Secret {
		t.Fatalf("after the key rotation the secret reads %q, want %q", sec.Key, ep.Secret)
	}
	h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{}})
	eventually(t, 5*time.Second, "the webhook", func() bool { return rc.count() == 1 })
	wh, err := standardwebhooks.NewWebhook(ep.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(rc.got()[0].body, rc.got()[0].header); err != nil {
		t.Fatalf("signature after the key rotation: %v", err)
	}

	// A node given a wrong key cannot open the secrets: it fails the request (and logs the key ids)
	// rather than show or sign with anything else.
	h.stop()
	wrong, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	h.cfg.Encryption = seal.Config{Key: seal.EncodeKey(wrong)}
	h.boot()
	if code := h.call("GET", "/v1/tenants/acme/endpoints/"+ep.ID+"/secret", nil, nil); code != 500 {
		t.Fatalf("reading a secret sealed with an unknown key = %d, want 500", code)
	}
}
