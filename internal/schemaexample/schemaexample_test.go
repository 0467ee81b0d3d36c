package schemaexample_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/inbound/schema"
	"github.com/heraldhq/herald/internal/schemaexample"
)

// valid fails the test unless example satisfies doc, checked by the validator sources use.
func valid(t *testing.T, doc string, example []byte) {
	t.Helper()
	s, err := schema.Compile([]byte(doc))
	if err != nil {
		t.Fatalf("test schema does not compile: %v", err)
	}
	if err := s.Validate(example); err != nil {
		t.Errorf("example %s does not satisfy its schema: %v", example, err)
	}
}

func TestGenerate_ExamplesSatisfyTheirSchema(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, schema, want string
	}{
		{
			name: "keywords and types, required first",
			schema: `{"type":"object","required":["id","created_at"],"properties":{
				"id":{"type":"string","format":"uuid"},
				"created_at":{"type":"string","format":"date-time"},
				"email":{"type":"string","format":"email"},
				"website":{"type":"string","format":"uri"},
				"name":{"type":"string"},
				"count":{"type":"integer","minimum":3},
				"ratio":{"type":"number"},
				"active":{"type":"boolean"},
				"nothing":{"type":"null"},
				"status":{"enum":["open","closed"]},
				"kind":{"const":"invoice"},
				"currency":{"type":"string","default":"eur"},
				"amount":{"type":"integer","examples":[1200,5]},
				"tags":{"type":"array","items":{"type":"string"}},
				"nickname":{"type":["string","null"]}}}`,
			want: `{"id":"3fa85f64-5717-4562-b3fc-2c963f66afa6","created_at":"2025-01-01T12:00:00Z","active":true,` +
				`"amount":1200,"count":3,"currency":"eur","email":"user@example.com","kind":"invoice","name":"string",` +
				`"nickname":"string","nothing":null,"ratio":0,"status":"open","tags":["string"],"website":"https://example.com"}`,
		},
		{
			name: "refs to $defs",
			schema: `{"type":"object","required":["customer"],"properties":{
				"customer":{"$ref":"#/$defs/customer"},
				"lines":{"type":"array","items":{"$ref":"#/$defs/line"}}},
				"$defs":{
					"customer":{"type":"object","required":["id"],"properties":{"id":{"type":"string"},"address":{"$ref":"#/$defs/address"}}},
					"address":{"type":"object","properties":{"city":{"type":"string","example":"Lisbon"}}},
					"line":{"type":"object","required":["sku","quantity"],"properties":{"sku":{"type":"string"},"quantity":{"type":"integer","exclusiveMinimum":0}}}}}`,
			want: `{"customer":{"id":"string","address":{"city":"Lisbon"}},"lines":[{"sku":"string","quantity":1}]}`,
		},
		{
			name: "draft-07 definitions and string lengths",
			schema: `{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","required":["total"],
				"properties":{"total":{"$ref":"#/definitions/money"}},
				"definitions":{"money":{"type":"object","required":["amount","currency"],"properties":{
					"amount":{"type":"integer","minimum":1},"currency":{"type":"string","minLength":3,"maxLength":3}}}}}`,
			want: `{"total":{"amount":1,"currency":"str"}}`,
		},
		{
			name: "recursive tree: the recursion ends in an empty array",
			schema: `{"$ref":"#/$defs/node","$defs":{"node":{"type":"object","required":["name","children"],"properties":{
				"name":{"type":"string"},"children":{"type":"array","items":{"$ref":"#/$defs/node"}}}}}}`,
			want: `{"name":"string","children":[]}`,
		},
		{
			name: "recursive list: the recursion ends in the alternative that is not recursive",
			schema: `{"$ref":"#/$defs/node","$defs":{"node":{"type":"object","required":["value","next"],"properties":{
				"value":{"type":"integer"},"next":{"anyOf":[{"$ref":"#/$defs/node"},{"type":"null"}]}}}}}`,
			want: `{"value":0,"next":null}`,
		},
		{
			name:   "a reference to the root is an optional property left out",
			schema: `{"type":"object","properties":{"name":{"type":"string"},"parent":{"$ref":"#"}}}`,
			want:   `{"name":"string"}`,
		},
		{
			name: "allOf merges objects",
			schema: `{"allOf":[{"type":"object","required":["id"],"properties":{"id":{"type":"string"}}},
				{"type":"object","required":["amount"],"properties":{"amount":{"type":"number","minimum":0.5}}}]}`,
			want: `{"id":"string","amount":0.5}`,
		},
		{
			name: "oneOf takes the first alternative that accepts something, merged with the own properties",
			schema: `{"type":"object","required":["kind"],"properties":{"kind":{"type":"string"}},
				"oneOf":[false,{"required":["card"],"properties":{"card":{"type":"string","pattern":"^[0-9]+$","examples":["4242"]}}}]}`,
			want: `{"kind":"string","card":"4242"}`,
		},
		{
			name: "arrays: tuples, minItems, maxItems 0",
			schema: `{"type":"object","required":["pair","many","none"],"properties":{
				"pair":{"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"items":false},
				"many":{"type":"array","minItems":3,"items":{"type":"integer","multipleOf":5,"minimum":7}},
				"none":{"type":"array","maxItems":0}}}`,
			want: `{"pair":["string",0],"many":[10,10,10],"none":[]}`,
		},
		{
			name:   "numbers: below zero, exclusive bounds",
			schema: `{"type":"object","required":["neg","ex"],"properties":{"neg":{"type":"integer","maximum":-3},"ex":{"type":"number","exclusiveMinimum":2.5}}}`,
			want:   `{"neg":-3,"ex":3.5}`,
		},
		{name: "empty schema", schema: `{}`, want: `{}`},
		{name: "true", schema: `true`, want: `{}`},
		{
			name:   "an optional property that accepts nothing is left out",
			schema: `{"type":"object","properties":{"never":false,"id":{"type":"string"}}}`,
			want:   `{"id":"string"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := schemaexample.Generate([]byte(tt.schema))
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("Generate =\n%s\nwant\n%s", got, tt.want)
			}
			valid(t, tt.schema, got)
		})
	}
}

func TestGenerate_NoFiniteExample(t *testing.T) {
	t.Parallel()
	for name, doc := range map[string]string{
		"requires itself":  `{"type":"object","required":["next"],"properties":{"next":{"$ref":"#"}}}`,
		"accepts nothing":  `false`,
		"required false":   `{"type":"object","required":["x"],"properties":{"x":false}}`,
		"outside document": `{"type":"object","required":["x"],"properties":{"x":{"$ref":"https://example.com/s.json"}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := schemaexample.Generate([]byte(doc))
			if !errors.Is(err, schemaexample.ErrNoExample) {
				t.Fatalf("Generate = %s, %v; want ErrNoExample", got, err)
			}
		})
	}
}

// A schema whose every level refers twice to the next describes documents that double in size
// with each level: the example stops at the bounds and still satisfies the schema.
func TestGenerate_BoundedOnExponentialSchemas(t *testing.T) {
	t.Parallel()
	const levels = 40
	var defs []string
	for i := range levels {
		next := fmt.Sprintf(`{"$ref":"#/$defs/l%d"}`, i+1)
		defs = append(defs, fmt.Sprintf(`"l%d":{"type":"object","properties":{"a":%s,"b":%s}}`, i, next, next))
	}
	defs = append(defs, fmt.Sprintf(`"l%d":{"type":"string"}`, levels))
	doc := `{"$ref":"#/$defs/l0","$defs":{` + strings.Join(defs, ",") + `}}`
	got, err := schemaexample.Generate([]byte(doc))
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if len(got) > 1<<20 {
		t.Fatalf("example is %d bytes", len(got))
	}
	valid(t, doc, got)
}
