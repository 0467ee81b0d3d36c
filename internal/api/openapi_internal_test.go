package api

import (
	"encoding/json"
	"testing"
)

// A nil slice anywhere in an answer is written as [] (the document declares no array nullable).
func TestFillSlices_NilSlicesBecomeEmpty(t *testing.T) {
	t.Parallel()
	type inner struct {
		Names []string `json:"names"`
		Raw   json.RawMessage
	}
	type body struct {
		Top   []int              `json:"top"`
		Items []inner            `json:"items"`
		Ptr   *inner             `json:"ptr"`
		ByKey map[string][]int   `json:"by_key"`
		Vals  map[string]inner   `json:"vals"`
		Skip  []string           `json:"skip,omitempty"`
		Free  any                `json:"free"`
		Set   []string           `json:"set"`
		Deep  map[string]*inner  `json:"deep"`
		Nest  [][]string         `json:"nest"`
		Keep  map[string]float64 `json:"keep"`
	}
	in := body{
		Items: []inner{{}, {Names: []string{"a"}}},
		Ptr:   &inner{},
		ByKey: map[string][]int{"x": nil},
		Vals:  map[string]inner{"v": {}},
		Set:   []string{"kept"},
		Deep:  map[string]*inner{"d": {}},
		Nest:  [][]string{nil},
	}
	for _, v := range []any{in, &in} {
		out, err := fillSlices(nil, "200", v)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		want := `{"top":[],"items":[{"names":[],"Raw":null},{"names":["a"],"Raw":null}],"ptr":{"names":[],"Raw":null},"by_key":{"x":[]},"vals":{"v":{"names":[],"Raw":null}},"free":null,"set":["kept"],"deep":{"d":{"names":[],"Raw":null}},"nest":[[]],"keep":null}`
		if string(b) != want {
			t.Errorf("%T:\n got %s\nwant %s", v, b, want)
		}
	}
}
