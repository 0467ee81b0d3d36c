package seal_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/heraldhq/herald/internal/seal"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	k, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func keyring(t *testing.T, current []byte, old ...[]byte) *seal.Keyring {
	t.Helper()
	k, err := seal.NewKeyring(current, old...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSeal_RoundTripHidesPlaintext(t *testing.T) {
	t.Parallel()
	k := keyring(t, newKey(t))
	secret := []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	a, err := k.Seal(secret, []byte("ep_1"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := k.Seal(secret, []byte("ep_1"))
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("two seals of one value are equal: the nonce must be fresh each time")
	}
	if strings.Contains(a, "whsec_") || strings.Contains(a, "MfKQ9r8G") {
		t.Fatalf("sealed value shows the plaintext: %s", a)
	}
	if !seal.IsSealed(a) || !strings.HasPrefix(a, "enc:v1:"+k.ID()+":") {
		t.Fatalf("sealed value %q lacks the marker and key id %s", a, k.ID())
	}
	got, err := k.Open(a, []byte("ep_1"))
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
}

func TestOpen_TamperingIsDetected(t *testing.T) {
	t.Parallel()
	k := keyring(t, newKey(t))
	sealed, err := k.Seal([]byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), []byte("ep_1"))
	if err != nil {
		t.Fatal(err)
	}
	header := "enc:v1:" + k.ID() + ":"
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(sealed, header))
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw { // every byte: nonce, ciphertext and tag
		flipped := bytes.Clone(raw)
		flipped[i] ^= 0x01
		if _, err := k.Open(header+base64.RawURLEncoding.EncodeToString(flipped), []byte("ep_1")); !errors.Is(err, seal.ErrCorrupt) {
			t.Fatalf("byte %d flipped: Open = %v, want ErrCorrupt", i, err)
		}
	}
	cases := map[string]string{
		"truncated":         sealed[:len(sealed)-4],
		"extended":          sealed + "AAAA",
		"not base64":        header + "!!!!",
		"too short":         header + "AAAA",
		"no body":           header,
		"malformed key id":  "enc:v1:xyz:" + strings.TrimPrefix(sealed, header),
		"missing separator": "enc:v1:" + k.ID(),
	}
	for name, v := range cases {
		if _, err := k.Open(v, []byte("ep_1")); !errors.Is(err, seal.ErrCorrupt) {
			t.Errorf("%s: Open = %v, want ErrCorrupt", name, err)
		}
	}
	// The context is authenticated: a value copied to another endpoint does not open.
	if _, err := k.Open(sealed, []byte("ep_2")); !errors.Is(err, seal.ErrCorrupt) {
		t.Fatalf("other context: Open = %v, want ErrCorrupt", err)
	}
	if _, err := k.Open("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", nil); !errors.Is(err, seal.ErrNotSealed) {
		t.Fatalf("plaintext: Open = %v, want ErrNotSealed", err)
	}
}

func TestOpen_WrongKeyIsRefused(t *testing.T) {
	t.Parallel()
	a, b := newKey(t), newKey(t)
	sealed, err := keyring(t, a).Seal([]byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keyring(t, b).Open(sealed, nil); !errors.Is(err, seal.ErrUnknownKey) {
		t.Fatalf("Open with another key = %v, want ErrUnknownKey", err)
	}
	// A value relabelled with the id of a key the keyring holds fails authentication: the key id
	// is part of the additional data.
	kb := keyring(t, b)
	id, _ := seal.KeyID(sealed)
	forged := strings.Replace(sealed, id, kb.ID(), 1)
	if _, err := kb.Open(forged, nil); !errors.Is(err, seal.ErrCorrupt) {
		t.Fatalf("relabelled value: Open = %v, want ErrCorrupt", err)
	}
}

func TestKeyring_OldKeysOpenCurrentKeySeals(t *testing.T) {
	t.Parallel()
	oldKey, currentKey := newKey(t), newKey(t)
	before := keyring(t, oldKey)
	sealedOld, err := before.Seal([]byte("secret"), []byte("ep"))
	if err != nil {
		t.Fatal(err)
	}
	after := keyring(t, currentKey, oldKey)
	if after.ID() == before.ID() {
		t.Fatal("two keys share an id")
	}
	if id, ok := seal.KeyID(sealedOld); !ok || id != before.ID() {
		t.Fatalf("KeyID = %q, %v; want %s", id, ok, before.ID())
	}
	if after.IsCurrent(sealedOld) {
		t.Fatal("a value of the old key is reported current")
	}
	got, err := after.Open(sealedOld, []byte("ep"))
	if err != nil || string(got) != "secret" {
		t.Fatalf("old key: Open = %q, %v", got, err)
	}
	sealedNew, err := after.Seal(got, []byte("ep"))
	if err != nil {
		t.Fatal(err)
	}
	if !after.IsCurrent(sealedNew) || before.IsCurrent(sealedNew) {
		t.Fatal("a new value is not sealed with the current key")
	}
	if _, err := before.Open(sealedNew, []byte("ep")); !errors.Is(err, seal.ErrUnknownKey) {
		t.Fatalf("a node without the new key: Open = %v, want ErrUnknownKey", err)
	}
	if ids := after.IDs(); len(ids) != 2 || ids[0] != after.ID() {
		t.Fatalf("IDs = %v", ids)
	}
	// Key ids are derived from the keys: the same key always has the same id.
	if keyring(t, oldKey).ID() != before.ID() {
		t.Fatal("key id is not stable")
	}
}

func TestNewKeyring_RefusesBadKeys(t *testing.T) {
	t.Parallel()
	if _, err := seal.NewKeyring(make([]byte, 16)); err == nil {
		t.Fatal("a 16-byte key was accepted")
	}
	if _, err := seal.NewKeyring(newKey(t), make([]byte, 31)); err == nil || !strings.Contains(err.Error(), "old key 1") {
		t.Fatalf("a short old key: %v", err)
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	for _, s := range []string{
		base64.StdEncoding.EncodeToString(k), base64.RawStdEncoding.EncodeToString(k),
		base64.URLEncoding.EncodeToString(k), " " + base64.StdEncoding.EncodeToString(k) + "\n",
	} {
		got, err := seal.ParseKey(s)
		if err != nil || !bytes.Equal(got, k) {
			t.Fatalf("ParseKey(%q) = %x, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "not base64!", base64.StdEncoding.EncodeToString(k[:16])} {
		if _, err := seal.ParseKey(s); err == nil {
			t.Fatalf("ParseKey(%q) accepted", s)
		}
	}
	keys, err := seal.ParseKeys(seal.EncodeKey(k) + ", ," + seal.EncodeKey(k))
	if err != nil || len(keys) != 2 {
		t.Fatalf("ParseKeys = %d keys, %v", len(keys), err)
	}
	if _, err := seal.ParseKeys(seal.EncodeKey(k) + ",bogus"); err == nil || !strings.Contains(err.Error(), "item 2") {
		t.Fatalf("ParseKeys with a bad item: %v", err)
	}
}

func TestLoadOrCreateKeyFile_CreatesOnceWithMode0600(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "data", seal.KeyFileName)
	var wg sync.WaitGroup
	keys := make([][]byte, 8)
	created := make([]bool, len(keys))
	errs := make([]error, len(keys))
	for i := range keys {
		wg.Go(func() { keys[i], created[i], errs[i] = seal.LoadOrCreateKeyFile(path) })
	}
	wg.Wait()
	n := 0
	for i := range keys {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatal("processes starting together got different keys")
		}
		if created[i] {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the key file was created %d times", n)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	again, created2, err := seal.LoadOrCreateKeyFile(path)
	if err != nil || created2 || !bytes.Equal(again, keys[0]) {
		t.Fatalf("second start: %x created=%v %v", again, created2, err)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil || len(entries) != 1 {
		t.Fatalf("data directory holds %v, want only the key file (%v)", entries, err)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	k1, k2 := newKey(t), newKey(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "key")
	if err := os.WriteFile(file, []byte(seal.EncodeKey(k2)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fromEnv, src, err := seal.Load(seal.Config{Key: seal.EncodeKey(k1), OldKeys: seal.EncodeKey(k2), DataDir: dir})
	if err != nil || src != "HERALD_ENCRYPTION_KEY" || fromEnv.ID() != keyring(t, k1).ID() || len(fromEnv.IDs()) != 2 {
		t.Fatalf("from env: %v %q %v", fromEnv, src, err)
	}
	fromFile, src, err := seal.Load(seal.Config{KeyFile: file, DataDir: dir})
	if err != nil || src != file || fromFile.ID() != keyring(t, k2).ID() {
		t.Fatalf("from file: %q %v", src, err)
	}
	if _, err := os.Stat(filepath.Join(dir, seal.KeyFileName)); !os.IsNotExist(err) {
		t.Fatal("a key file was created in the data directory although a key was configured")
	}
	created, src, err := seal.Load(seal.Config{DataDir: dir})
	if err != nil || !strings.HasSuffix(src, "(created)") {
		t.Fatalf("created: %q %v", src, err)
	}
	reloaded, _, err := seal.Load(seal.Config{DataDir: dir})
	if err != nil || reloaded.ID() != created.ID() {
		t.Fatalf("the data directory's key changed across starts: %v", err)
	}
	bad := []seal.Config{
		{Key: seal.EncodeKey(k1), KeyFile: file},
		{Key: "short"},
		{KeyFile: filepath.Join(dir, "missing")},
		{Key: seal.EncodeKey(k1), OldKeys: "bogus"},
	}
	for _, c := range bad {
		if _, _, err := seal.Load(c); err == nil {
			t.Errorf("Load(%+v) accepted", c)
		} else if strings.Contains(err.Error(), seal.EncodeKey(k1)) {
			t.Errorf("an error shows the key: %v", err)
		}
	}
}
