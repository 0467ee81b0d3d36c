package seal_test

import (
	"bytes"
	"testing"

	"github.com/heraldhq/herald/internal/seal"
)

// Derived keys are stable for a master key, independent between purposes and master keys, and
// follow the current key only.
func TestKeyring_Derive(t *testing.T) {
	t.Parallel()
	a, b := bytes.Repeat([]byte{1}, seal.KeySize), bytes.Repeat([]byte{2}, seal.KeySize)
	ka, err := seal.NewKeyring(a)
	if err != nil {
		t.Fatal(err)
	}
	ka2, _ := seal.NewKeyring(a, b)
	kb, _ := seal.NewKeyring(b, a)
	d := ka.Derive("portal")
	switch {
	case len(d) != 32:
		t.Fatalf("derived %d bytes, want 32", len(d))
	case !bytes.Equal(d, ka.Derive("portal")), !bytes.Equal(d, ka2.Derive("portal")):
		t.Fatal("the same current key derived different keys")
	case bytes.Equal(d, ka.Derive("other")):
		t.Fatal("two purposes derived the same key")
	case bytes.Equal(d, kb.Derive("portal")):
		t.Fatal("two master keys derived the same key")
	case bytes.Contains(d, a[:8]):
		t.Fatal("the derived key shows the master key")
	}
}
