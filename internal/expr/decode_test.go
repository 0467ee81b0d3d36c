package expr

import (
	"bytes"
	"io"
	"testing"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

var decodeCases = []string{
	`{}`,
	`{"a":1,"b":-2,"c":1.5,"d":1e3,"e":1200.0,"f":-0,"g":9223372036854775807,"h":9223372036854775808,"i":1e400,"j":-1.25e-7}`,
	`{"s":"plain","t":"esc\"aped\\ \/ \n \u00e9 \ud83d\ude00","u":"","v":"caf\u00e9"}`,
	`{"l":[],"m":[1,"x",null,true,false,{"k":[[]]}],"n":{"o":{"p":{}}}}`,
	` { "spaced" : [ 1 , 2 ] , "x" : { } } `,
	`{"dup":1,"dup":2}`,
	"{\"bad\":\"\xff\xfe ok\"}",
}

var decodeInvalid = []string{
	``, `[]`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":+1}`,
	`{"a":tru}`, `{"a":nul}`, `{"a":"\x"}`, "{\"a\":\"\x01\"}", `{"a":[1,]}`, `{"a":[1 2]}`, `{"a":1} x`, `{"a":"unterminated}`,
	`{"a":1e}`, `{"a":1e+}`, `{"a":--1}`, `{"a":1-2}`,
}

func TestDecoder_AgreesWithEncodingJSON(t *testing.T) {
	for _, c := range decodeCases {
		in, err := NewInput([]byte(c))
		if err != nil {
			t.Errorf("%s: %v", c, err)
			continue
		}
		want, err := referenceDecode([]byte(c))
		if err != nil {
			t.Fatalf("reference %s: %v", c, err)
		}
		if eq := want.Equal(in.vars["event"].(ref.Val)); eq != types.True {
			t.Errorf("%s: decoded %v, want %v", c, in.vars["event"], want)
		}
	}
	for _, c := range decodeInvalid {
		if _, err := NewInput([]byte(c)); err == nil {
			t.Errorf("%q decoded without error", c)
		}
	}
}

func FuzzDecoder(f *testing.F) {
	for _, c := range append(decodeCases, decodeInvalid...) {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := NewInput(b)
		want, refErr := referenceDecode(b)
		_, isObject := want.(traits.Mapper)
		switch {
		case refErr != nil || !isObject:
			if err == nil {
				t.Fatalf("%q: decoded, but encoding/json refuses it (%v)", b, refErr)
			}
		case err != nil:
			t.Fatalf("%q: %v, but encoding/json decodes it", b, err)
		case want.Equal(in.vars["event"].(ref.Val)) != types.True:
			t.Fatalf("%q: decoded %v, want %v", b, in.vars["event"], want)
		}
	})
}
