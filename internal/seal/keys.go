package seal

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeyFileName is the key file Herald creates in its data directory when no key is configured.
const KeyFileName = "encryption.key"

// GenerateKey returns a new random master key.
func GenerateKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("seal: generate key: %w", err)
	}
	return k, nil
}

// EncodeKey is the text form of a master key: standard base64, as HERALD_ENCRYPTION_KEY and
// key files hold it.
func EncodeKey(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

// ParseKey reads a master key in standard or URL-safe base64, padded or not, around which
// white space is ignored. Errors never include the key.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("seal: key is %d bytes, want %d (base64 of 32 random bytes: openssl rand -base64 32)", len(k), KeySize)
			}
			return k, nil
		}
	}
	return nil, errors.New("seal: key is not base64 (want base64 of 32 random bytes: openssl rand -base64 32)")
}

// ParseKeys reads a comma-separated list of keys; empty items are skipped.
func ParseKeys(list string) ([][]byte, error) {
	var keys [][]byte
	for i, item := range strings.Split(list, ",") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		k, err := ParseKey(item)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i+1, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// ReadKeyFile reads a key file: the key in base64, optionally followed by a newline.
func ReadKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// LoadOrCreateKeyFile reads the key file at path, or creates it with a new key (mode 0600) when
// there is none. The file appears complete or not at all (written aside, then linked into
// place), so that two processes starting together agree on one key.
func LoadOrCreateKeyFile(path string) (key []byte, created bool, err error) {
	if k, err := ReadKeyFile(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create key file directory: %w", err)
	}
	k, err := GenerateKey()
	if err != nil {
		return nil, false, err
	}
	tmp, err := os.CreateTemp(dir, KeyFileName+".new-*")
	if err != nil {
		return nil, false, fmt.Errorf("create key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600; Chmod states it rather than relying on that.
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return nil, false, fmt.Errorf("create key file: %w", err)
	}
	if _, err := tmp.WriteString(EncodeKey(k) + "\n"); err != nil {
		_ = tmp.Close()
		return nil, false, fmt.Errorf("write key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return nil, false, fmt.Errorf("write key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, false, fmt.Errorf("write key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) { // another process created it first: use its key
			k, err := ReadKeyFile(path)
			return k, false, err
		}
		return nil, false, fmt.Errorf("create key file: %w", err)
	}
	if d, err := os.Open(dir); err == nil { // make the new name durable
		_ = d.Sync()
		_ = d.Close()
	}
	return k, true, nil
}

// Config says where the master keys come from.
type Config struct {
	// Key is the current key in base64 (HERALD_ENCRYPTION_KEY).
	Key string
	// KeyFile names a file holding the current key (--encryption-key-file); it must exist.
	KeyFile string
	// OldKeys is a comma-separated list of keys in base64 that only open values
	// (HERALD_ENCRYPTION_OLD_KEYS), while values sealed with them are re-encrypted.
	OldKeys string
	// DataDir is where the key file KeyFileName is read, or created on first start, when
	// neither Key nor KeyFile is set.
	DataDir string
}

// Load builds the keyring the configuration describes. It also returns where the current key
// came from, to log (never the key itself).
func Load(c Config) (*Keyring, string, error) {
	var current []byte
	var source string
	var err error
	switch {
	case c.Key != "" && c.KeyFile != "":
		return nil, "", errors.New("set HERALD_ENCRYPTION_KEY or --encryption-key-file, not both")
	case c.Key != "":
		if current, err = ParseKey(c.Key); err != nil {
			return nil, "", fmt.Errorf("HERALD_ENCRYPTION_KEY: %w", err)
		}
		source = "HERALD_ENCRYPTION_KEY"
	case c.KeyFile != "":
		if current, err = ReadKeyFile(c.KeyFile); err != nil {
			return nil, "", fmt.Errorf("--encryption-key-file: %w", err)
		}
		source = c.KeyFile
	default:
		path := filepath.Join(c.DataDir, KeyFileName)
		var created bool
		if current, created, err = LoadOrCreateKeyFile(path); err != nil {
			return nil, "", err
		}
		source = path
		if created {
			source += " (created)"
		}
	}
	old, err := ParseKeys(c.OldKeys)
	if err != nil {
		return nil, "", fmt.Errorf("HERALD_ENCRYPTION_OLD_KEYS: %w", err)
	}
	k, err := NewKeyring(current, old...)
	if err != nil {
		return nil, "", err
	}
	return k, source, nil
}
