package verify_test

import (
	"bytes"
	"testing"

	"github.com/heraldhq/herald/internal/inbound/verify"
)

// BenchmarkVerify measures one verification of a genuine 1 KiB request per
// scheme, the cost every inbound request pays before it is stored. The
// "rotating" variants hold two secrets and match the second, the worst case
// during a rotation.
func BenchmarkVerify(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	for _, f := range fixtures() {
		for _, rotating := range []bool{false, true} {
			name := f.name
			secrets := []string{f.secrets[0]}
			signWith := f.secrets[0]
			if rotating {
				name += "/rotating"
				secrets = []string{f.secrets[0], f.secrets[1]}
				signWith = f.secrets[1]
			}
			b.Run(name, func(b *testing.B) {
				v := mustNew(b, f.config(secrets...), verify.WithClock(fixedClock))
				req := f.signWith(b, signWith, testNow, body)
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					if _, err := v.Verify(req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkVerify_Forged measures a request whose signature matches no
// secret: what an attacker can make Herald spend.
func BenchmarkVerify_Forged(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	for _, f := range fixtures() {
		b.Run(f.name, func(b *testing.B) {
			v := mustNew(b, f.config(f.secrets[0], f.secrets[1]), verify.WithClock(fixedClock))
			req := f.signWith(b, f.secrets[2], testNow, body)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(req); err == nil {
					b.Fatal("forged request accepted")
				}
			}
		})
	}
}
