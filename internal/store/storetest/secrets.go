package storetest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/seal"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/webhook"
)

// Database is one database that the secrets suite opens stores on again and again, with other
// keys each time: what a restart with a new configuration does.
type Database struct {
	// Open opens a store on the database with keys (nil: as a version before encryption at rest
	// did). The suite closes each store before it opens the next.
	Open func(t *testing.T, keys *seal.Keyring) store.Store
	// Raw returns what the database holds as it holds it: the database files and their WAL, or
	// every row of every table as text. The suite looks for secrets in it.
	Raw func(t *testing.T) []byte
}

// NewDatabase makes a fresh, empty Database for one test.
type NewDatabase func(t *testing.T) Database

// RunSecrets runs the conformance tests of secrets at rest: encryption, master key rotation and
// the upgrade of plaintext secrets written by earlier versions.
func RunSecrets(t *testing.T, newDB NewDatabase) {
	tests := map[string]func(*testing.T, *reopener){
		"SecretsAreEncryptedAtRest":   testSecretsEncrypted,
		"WrongKeyIsRefused":           testSecretsWrongKey,
		"OldKeysReadRekeyMovesToNew":  testSecretsRotation,
		"PlaintextFromEarlierVersion": testSecretsPlaintextUpgrade,
		"SourceSecretsAreEncrypted":   testSourceSecretsEncrypted,
		"SourcesRekeyMovesToNewKey":   testSourceSecretsRekey,
		"SettingsSecretsAreEncrypted": testSettingsSecretsEncrypted,
		"BrokerSourceSettingsSealed":  testBrokerSourceSettingsEncrypted,
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := &reopener{t: t, db: newDB(t)}
			t.Cleanup(r.close)
			fn(t, r)
		})
	}
}

// reopener holds the store open on a Database, closing it before opening another.
type reopener struct {
	t  *testing.T
	db Database
	s  store.Store
}

func (r *reopener) open(keys *seal.Keyring) store.Store {
	r.t.Helper()
	r.close()
	r.s = r.db.Open(r.t, keys)
	return r.s
}

func (r *reopener) close() {
	if r.s != nil {
		if err := r.s.Close(); err != nil {
			r.t.Errorf("close store: %v", err)
		}
		r.s = nil
	}
}

func newKeyring(t *testing.T) (*seal.Keyring, []byte) {
	t.Helper()
	k, err := seal.GenerateKey()
	must(t, err)
	kr, err := seal.NewKeyring(k)
	must(t, err)
	return kr, k
}

func keyringOf(t *testing.T, current []byte, old ...[]byte) *seal.Keyring {
	t.Helper()
	kr, err := seal.NewKeyring(current, old...)
	must(t, err)
	return kr
}

// secretEndpoint makes an endpoint in the middle of a rotation from an HMAC secret to an
// Ed25519 key: every kind of credential Herald stores.
func secretEndpoint(t *testing.T, s store.Store, tenantID, id string) *store.Endpoint {
	t.Helper()
	hmacKey, err := webhook.NewSecret()
	must(t, err)
	edKey, _, err := webhook.NewSigningKey()
	must(t, err)
	n := now()
	expires := n.Add(time.Hour)
	e := &store.Endpoint{
		ID: id, TenantID: tenantID, URL: "https://example.com/" + id, EventTypes: []string{"*"},
		Secrets: []store.Secret{{Key: edKey}, {Key: hmacKey, ExpiresAt: &expires}}, Timeout: 10 * time.Second,
		MaxConcurrency: 10, Enabled: true, CreatedAt: n, UpdatedAt: n,
	}
	must(t, s.CreateEndpoint(ctx, e))
	return e
}

// assertNoSecrets fails if the raw database holds any of the keys, whole or as their base64 body
// (the part after whsec_ / whsk_).
func assertNoSecrets(t *testing.T, raw []byte, secrets []store.Secret) {
	t.Helper()
	for _, sec := range secrets {
		_, body, _ := strings.Cut(sec.Key, "_")
		for _, needle := range []string{sec.Key, body} {
			if bytes.Contains(raw, []byte(needle)) {
				t.Fatalf("the database holds the secret %.12s… in clear", needle)
			}
		}
		if key, err := base64.StdEncoding.DecodeString(body); err == nil && bytes.Contains(raw, key) {
			t.Fatalf("the database holds the bytes of the secret %.12s… in clear", sec.Key)
		}
	}
}

func assertSecrets(t *testing.T, s store.Store, tenantID, id string, want []store.Secret) {
	t.Helper()
	got, err := s.GetEndpoint(ctx, tenantID, id)
	must(t, err)
	byID, err := s.EndpointByID(ctx, id)
	must(t, err)
	list, _, err := s.ListEndpoints(ctx, tenantID, store.Page{})
	must(t, err)
	i := slices.IndexFunc(list, func(e store.Endpoint) bool { return e.ID == id })
	if i < 0 {
		t.Fatalf("endpoint %s not listed", id)
	}
	for _, secrets := range [][]store.Secret{got.Secrets, byID.Secrets, list[i].Secrets} {
		if len(secrets) != len(want) {
			t.Fatalf("endpoint %s has %d secrets, want %d", id, len(secrets), len(want))
		}
		for j := range want {
			if secrets[j].Key != want[j].Key {
				t.Fatalf("endpoint %s secret %d = %.12s…, want %.12s…", id, j, secrets[j].Key, want[j].Key)
			}
			if (secrets[j].ExpiresAt == nil) != (want[j].ExpiresAt == nil) ||
				(want[j].ExpiresAt != nil && !secrets[j].ExpiresAt.Equal(*want[j].ExpiresAt)) {
				t.Fatalf("endpoint %s secret %d expires %v, want %v", id, j, secrets[j].ExpiresAt, want[j].ExpiresAt)
			}
		}
	}
}

func testSecretsEncrypted(t *testing.T, r *reopener) {
	keys, _ := newKeyring(t)
	s := r.open(keys)
	tenant(t, s, "acme")
	e := secretEndpoint(t, s, "acme", "ep_1")
	raw := r.db.Raw(t)
	assertNoSecrets(t, raw, e.Secrets)
	if !bytes.Contains(raw, []byte("enc:v1:"+keys.ID()+":")) {
		t.Fatal("the database holds no value sealed with the current key: is Raw looking in the right place?")
	}
	assertSecrets(t, s, "acme", "ep_1", e.Secrets)

	// A rotation stores the new secret sealed as well.
	fresh, err := webhook.NewSecret()
	must(t, err)
	e.Secrets = append([]store.Secret{{Key: fresh}}, e.Secrets...)
	e.UpdatedAt = now()
	must(t, s.UpdateEndpoint(ctx, e))
	assertNoSecrets(t, r.db.Raw(t), e.Secrets)
	assertSecrets(t, s, "acme", "ep_1", e.Secrets)

	// After a restart with the same key, everything reads back.
	s = r.open(keys)
	assertSecrets(t, s, "acme", "ep_1", e.Secrets)
	if n, _, err := s.RekeySecrets(ctx, store.Page{}); err != nil || n != 0 {
		t.Fatalf("rekey with nothing to do rewrote %d endpoints: %v", n, err)
	}
}

func testSecretsWrongKey(t *testing.T, r *reopener) {
	keys, _ := newKeyring(t)
	s := r.open(keys)
	tenant(t, s, "acme")
	secretEndpoint(t, s, "acme", "ep_1")

	other, _ := newKeyring(t)
	s = r.open(other)
	if _, err := s.GetEndpoint(ctx, "acme", "ep_1"); !errors.Is(err, seal.ErrUnknownKey) {
		t.Fatalf("GetEndpoint with another key = %v, want ErrUnknownKey", err)
	}
	if _, err := s.EndpointByID(ctx, "ep_1"); !errors.Is(err, seal.ErrUnknownKey) {
		t.Fatalf("EndpointByID with another key = %v, want ErrUnknownKey", err)
	}
	if _, _, err := s.ListEndpoints(ctx, "acme", store.Page{}); !errors.Is(err, seal.ErrUnknownKey) {
		t.Fatalf("ListEndpoints with another key = %v, want ErrUnknownKey", err)
	}
	if _, _, err := s.RekeySecrets(ctx, store.Page{}); !errors.Is(err, seal.ErrUnknownKey) {
		t.Fatalf("RekeySecrets with another key = %v, want ErrUnknownKey", err)
	}
	s = r.open(nil)
	if _, err := s.GetEndpoint(ctx, "acme", "ep_1"); !errors.Is(err, store.ErrNoEncryptionKey) {
		t.Fatalf("GetEndpoint without keys = %v, want ErrNoEncryptionKey", err)
	}
	if _, _, err := s.RekeySecrets(ctx, store.Page{}); !errors.Is(err, store.ErrNoEncryptionKey) {
		t.Fatalf("RekeySecrets without keys = %v, want ErrNoEncryptionKey", err)
	}
}

// rekeyAll runs passes of small pages until the end, as herald rekey does, and returns how
// many endpoints were rewritten.
func rekeyAll(t *testing.T, s store.Store, pageSize int) int {
	t.Helper()
	total, cursor := 0, ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("rekey does not end")
		}
		n, next, err := s.RekeySecrets(ctx, store.Page{Limit: pageSize, Cursor: cursor})
		must(t, err)
		total += n
		if next == "" {
			return total
		}
		cursor = next
	}
}

func testSecretsRotation(t *testing.T, r *reopener) {
	_, oldKey := newKeyring(t)
	k, err := seal.GenerateKey()
	must(t, err)
	s := r.open(keyringOf(t, oldKey))
	tenant(t, s, "acme")
	tenant(t, s, "globex")
	var eps []*store.Endpoint
	for i, tn := range []string{"acme", "globex", "acme", "globex", "acme"} {
		eps = append(eps, secretEndpoint(t, s, tn, "ep_old_"+string(rune('a'+i))))
	}

	// The new key is current; the old one still opens what it sealed.
	rotated := keyringOf(t, k, oldKey)
	s = r.open(rotated)
	for _, e := range eps {
		assertSecrets(t, s, e.TenantID, e.ID, e.Secrets)
	}
	fresh := secretEndpoint(t, s, "acme", "ep_new")
	raw := r.db.Raw(t)
	if !bytes.Contains(raw, []byte("enc:v1:"+rotated.ID()+":")) {
		t.Fatal("a new endpoint is not sealed with the current key")
	}
	if got := rekeyAll(t, s, 2); got != len(eps) {
		t.Fatalf("rekey rewrote %d endpoints, want %d", got, len(eps))
	}
	if got := rekeyAll(t, s, 2); got != 0 {
		t.Fatalf("a second rekey rewrote %d endpoints, want 0", got)
	}
	assertNoSecrets(t, r.db.Raw(t), fresh.Secrets)

	// The old key can now be retired: everything opens with the new key alone.
	s = r.open(keyringOf(t, k))
	for _, e := range append(eps, fresh) {
		assertSecrets(t, s, e.TenantID, e.ID, e.Secrets)
	}
}

func testSecretsPlaintextUpgrade(t *testing.T, r *reopener) {
	// An earlier version stored secrets in plaintext.
	s := r.open(nil)
	tenant(t, s, "acme")
	var eps []*store.Endpoint
	for _, id := range []string{"ep_1", "ep_2", "ep_3"} {
		eps = append(eps, secretEndpoint(t, s, "acme", id))
	}
	if !bytes.Contains(r.db.Raw(t), []byte(eps[0].Secrets[0].Key)) {
		t.Fatal("a store without keys did not write plaintext: is Raw looking in the right place?")
	}

	keys, _ := newKeyring(t)
	s = r.open(keys)
	for _, e := range eps {
		assertSecrets(t, s, "acme", e.ID, e.Secrets)
	}
	if got := rekeyAll(t, s, 2); got != len(eps) {
		t.Fatalf("rekey rewrote %d endpoints, want %d", got, len(eps))
	}
	// What was replaced is gone from the database, not only from its live rows.
	raw := r.db.Raw(t)
	for _, e := range eps {
		assertNoSecrets(t, raw, e.Secrets)
		assertSecrets(t, s, "acme", e.ID, e.Secrets)
	}
	s = r.open(keys)
	for _, e := range eps {
		assertSecrets(t, s, "acme", e.ID, e.Secrets)
	}
}

// secretSource makes a source whose token and verification secret are marked by tag, so that
// the raw database can be searched for them.
func secretSource(t *testing.T, s store.Store, tenantID, id, tag string) *store.Source {
	t.Helper()
	n := now()
	src := &store.Source{ID: id, TenantID: tenantID, Name: "GitHub", Token: "src_tok_" + tag + "_b3JkZXJz", Enabled: true,
		Settings:  store.SourceSettings{Verification: []byte(`{"scheme":"github","secrets":["gh-secret-` + tag + `"]}`)},
		CreatedAt: n, UpdatedAt: n}
	must(t, s.CreateSource(ctx, src))
	return src
}

// assertNoSourceSecrets fails if the raw database holds a source's token or a verification
// secret of its settings in clear.
func assertNoSourceSecrets(t *testing.T, raw []byte, src *store.Source, secrets ...string) {
	t.Helper()
	for _, needle := range append([]string{src.Token}, secrets...) {
		if bytes.Contains(raw, []byte(needle)) {
			t.Fatalf("the database holds the source secret %.14s… in clear", needle)
		}
	}
}

func assertSource(t *testing.T, s store.Store, want *store.Source) {
	t.Helper()
	got, err := s.GetSource(ctx, want.TenantID, want.ID)
	must(t, err)
	byToken, err := s.SourceByToken(ctx, want.Token)
	must(t, err)
	list, _, err := s.ListSources(ctx, want.TenantID, store.Page{})
	must(t, err)
	i := slices.IndexFunc(list, func(x store.Source) bool { return x.ID == want.ID })
	if i < 0 {
		t.Fatalf("source %s not listed", want.ID)
	}
	for _, g := range []*store.Source{got, byToken, &list[i]} {
		if g.Token != want.Token || !sameJSON(g.Settings.Verification, want.Settings.Verification) {
			t.Fatalf("source %s reads back token %.14s… and verification %s", want.ID, g.Token, g.Settings.Verification)
		}
	}
}

func testSourceSecretsEncrypted(t *testing.T, r *reopener) {
	keys, _ := newKeyring(t)
	s := r.open(keys)
	tenant(t, s, "acme")
	src := secretSource(t, s, "acme", "src_1", "XYZ")
	raw := r.db.Raw(t)
	assertNoSourceSecrets(t, raw, src, "gh-secret-XYZ")
	if !bytes.Contains(raw, []byte("enc:v1:"+keys.ID()+":")) {
		t.Fatal("the database holds no value sealed with the current key: is Raw looking in the right place?")
	}
	assertSource(t, s, src)

	// A new token and secret are stored sealed as well.
	old := src.Token
	src.Token = "src_tok_ROTATED_b3JkZXJz"
	src.Settings.Verification = []byte(`{"scheme":"github","secrets":["gh-secret-NEW","gh-secret-XYZ"]}`)
	src.UpdatedAt = now()
	must(t, s.UpdateSource(ctx, src))
	assertNoSourceSecrets(t, r.db.Raw(t), src, "gh-secret-NEW", "gh-secret-XYZ", old)
	assertSource(t, s, src)

	// After a restart with the same key, everything reads back; with another key or none, the
	// source does not open.
	s = r.open(keys)
	assertSource(t, s, src)
	other, _ := newKeyring(t)
	s = r.open(other)
	if _, err := s.GetSource(ctx, "acme", "src_1"); !errors.Is(err, seal.ErrUnknownKey) {
		t.Fatalf("GetSource with another key = %v, want ErrUnknownKey", err)
	}
	if _, err := s.SourceByToken(ctx, src.Token); !errors.Is(err, seal.ErrUnknownKey) {
		t.Fatalf("SourceByToken with another key = %v, want ErrUnknownKey", err)
	}
	s = r.open(nil)
	if _, err := s.GetSource(ctx, "acme", "src_1"); !errors.Is(err, store.ErrNoEncryptionKey) {
		t.Fatalf("GetSource without keys = %v, want ErrNoEncryptionKey", err)
	}
}

// Sources are re-encrypted by the same pass as endpoints: plaintext from a store without keys,
// then values sealed with a key being retired.
func testSourceSecretsRekey(t *testing.T, r *reopener) {
	s := r.open(nil)
	tenant(t, s, "acme")
	tenant(t, s, "globex")
	plain := secretSource(t, s, "acme", "src_plain", "PLAIN")
	if !bytes.Contains(r.db.Raw(t), []byte(plain.Token)) {
		t.Fatal("a store without keys did not write plaintext: is Raw looking in the right place?")
	}
	plainBroker := brokerSource(t, s, "acme", "bsrc_plain")
	if !bytes.Contains(r.db.Raw(t), []byte("nats-pw-bsrc_plain")) {
		t.Fatal("a store without keys did not write the broker source's settings in clear")
	}

	_, oldKey := newKeyring(t)
	s = r.open(keyringOf(t, oldKey))
	assertSource(t, s, plain)
	ep := secretEndpoint(t, s, "acme", "ep_1")
	sealed := []*store.Source{secretSource(t, s, "acme", "src_a", "AAA"), secretSource(t, s, "globex", "src_b", "BBB"),
		secretSource(t, s, "acme", "src_c", "CCC")}
	brokers := []*store.BrokerSource{brokerSource(t, s, "acme", "bsrc_a"), brokerSource(t, s, "globex", "bsrc_b"),
		brokerSource(t, s, "acme", "bsrc_c")}
	if got := rekeyAll(t, s, 2); got != 2 {
		t.Fatalf("rekey rewrote %d, want 2 (the plaintext source and broker source)", got)
	}
	assertNoSourceSecrets(t, r.db.Raw(t), plain, "gh-secret-PLAIN", "nats-pw-bsrc_plain")

	k, err := seal.GenerateKey()
	must(t, err)
	s = r.open(keyringOf(t, k, oldKey))
	if got := rekeyAll(t, s, 2); got != 1+4+4 {
		t.Fatalf("rekey rewrote %d, want 9 (an endpoint, four sources and four broker sources)", got)
	}
	if got := rekeyAll(t, s, 2); got != 0 {
		t.Fatalf("a second rekey rewrote %d, want 0", got)
	}

	// The old key can now be retired.
	s = r.open(keyringOf(t, k))
	assertSecrets(t, s, "acme", "ep_1", ep.Secrets)
	for _, src := range append(sealed, plain) {
		assertSource(t, s, src)
	}
	for _, b := range append(brokers, plainBroker) {
		got, err := s.GetBrokerSource(ctx, b.TenantID, b.ID)
		must(t, err)
		if !sameJSON(got.Settings, b.Settings) {
			t.Fatalf("broker source %s reads back settings %s, want %s", b.ID, got.Settings, b.Settings)
		}
	}
	if raw := r.db.Raw(t); bytes.Contains(raw, []byte("nats-pw-")) || bytes.Contains(raw, []byte("enc:v1:"+keyringOf(t, oldKey).ID()+":")) {
		t.Fatal("after the rekey the database still holds a broker source's password in clear, or a value sealed with the old key")
	}
}
