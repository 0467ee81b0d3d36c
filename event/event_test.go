package event_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/event"
)

// The struct tags the OpenAPI document is made of repeat the package's rules as literals: they
// must say what the constants say.
func TestInput_TagsStateThePackagesRules(t *testing.T) {
	t.Parallel()
	typ := reflect.TypeFor[event.Input]()
	tag := func(field, key string) string {
		f, ok := typ.FieldByName(field)
		if !ok {
			t.Fatalf("Input has no field %s", field)
		}
		return f.Tag.Get(key)
	}
	for _, c := range []struct {
		field, key, want string
	}{
		{"ID", "pattern", event.IDPattern},
		{"ID", "maxLength", strconv.Itoa(event.MaxIDLength)},
		{"Type", "maxLength", strconv.Itoa(event.MaxTypeLength)},
		{"Source", "maxLength", strconv.Itoa(event.MaxSourceLength)},
		{"Priority", "enum", strings.Join([]string{event.PriorityHigh, event.PriorityNormal, event.PriorityLow}, ",")},
	} {
		if got := tag(c.field, c.key); got != c.want {
			t.Errorf("Input.%s tag %s = %q, want %q", c.field, c.key, got, c.want)
		}
	}
}

func valid() event.Input {
	return event.Input{ID: "ord_1:created", Type: "order.created", Data: event.Object(`{"total":12}`), Source: "shop",
		Resource: &event.Resource{ID: "ord_1", Type: "order", URL: "https://shop.example.com/orders/1"}, Priority: "high"}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	type want struct{ loc, msg string }
	for _, c := range []struct {
		name   string
		change func(*event.Input)
		want   []want
	}{
		{"valid", func(*event.Input) {}, nil},
		{"no id, no priority, no resource", func(in *event.Input) { in.ID, in.Priority, in.Resource = "", "", nil }, nil},
		{"id at the limit", func(in *event.Input) { in.ID = strings.Repeat("a", event.MaxIDLength) }, nil},
		{"id too long", func(in *event.Input) { in.ID = strings.Repeat("a", event.MaxIDLength+1) },
			[]want{{"body.id", "expected length <= 128"}}},
		{"id with a space", func(in *event.Input) { in.ID = "a b" },
			[]want{{"body.id", "expected string to match pattern ^[A-Za-z0-9_.:-]+$"}}},
		{"type at the limit in characters", func(in *event.Input) { in.Type = strings.Repeat("é", event.MaxTypeLength) }, nil},
		{"type too long", func(in *event.Input) { in.Type = strings.Repeat("t", event.MaxTypeLength+1) },
			[]want{{"body.type", "expected length <= 128"}}},
		{"data an array", func(in *event.Input) { in.Data = event.Object(`[1]`) }, []want{{"body.data", "expected object"}}},
		{"data a string", func(in *event.Input) { in.Data = event.Object(`"{}"`) }, []want{{"body.data", "expected object"}}},
		{"data absent", func(in *event.Input) { in.Data = nil }, []want{{"body.data", "expected object"}}},
		{"data with leading space", func(in *event.Input) { in.Data = event.Object(" \n{}") }, nil},
		{"source too long", func(in *event.Input) { in.Source = strings.Repeat("s", event.MaxSourceLength+1) },
			[]want{{"body.source", "expected length <= 200"}}},
		{"source with NUL", func(in *event.Input) { in.Source = "a\x00" }, []want{{"body.source", "must not contain NUL characters"}}},
		{"unknown priority", func(in *event.Input) { in.Priority = "urgent" },
			[]want{{"body.priority", `expected value to be one of "high, normal, low"`}}},
		{"resource without id", func(in *event.Input) { in.Resource.ID = "" },
			[]want{{"body.resource", "resource needs an id (at most 200 characters); type at most 200, url at most 2048"}}},
		{"resource url too long", func(in *event.Input) { in.Resource.URL = strings.Repeat("u", event.MaxResourceURLLength+1) },
			[]want{{"body.resource", "resource needs an id (at most 200 characters); type at most 200, url at most 2048"}}},
		{"resource with NUL", func(in *event.Input) { in.Resource.Type = "\x00" }, []want{{"body.resource", "must not contain NUL characters"}}},
		{"several at once", func(in *event.Input) { in.ID, in.Priority, in.Source = "?", "x", "\x00" },
			[]want{{"body.id", "expected string to match pattern ^[A-Za-z0-9_.:-]+$"}, {"body.priority", `expected value to be one of "high, normal, low"`},
				{"body.source", "must not contain NUL characters"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := valid()
			c.change(&in)
			var got []want
			for _, p := range in.Check("body") {
				got = append(got, want{p.Location, p.Message})
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("Check = %v, want %v", got, c.want)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{
		"evt_1": true, "a.b:c-d_e": true, strings.Repeat("x", 128): true,
		"": false, strings.Repeat("x", 129): false, "a/b": false, "é": false, "a\n": false,
	} {
		if got := event.ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestValidPriority(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{"": true, "high": true, "normal": true, "low": true, "HIGH": false, "urgent": false} {
		if got := event.ValidPriority(name); got != want {
			t.Errorf("ValidPriority(%q) = %v, want %v", name, got, want)
		}
	}
}

var idShape = regexp.MustCompile(`^evt_[0-9a-hjkmnp-tv-z]{26}$`)

func TestNewID(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	seen := map[string]bool{}
	prev := ""
	for i := range 1000 {
		id := event.NewID(t0.Add(time.Duration(i) * time.Millisecond))
		if !idShape.MatchString(id) || !event.ValidID(id) {
			t.Fatalf("id %q: want evt_ and 26 lowercase base32 characters, a valid event id", id)
		}
		if seen[id] {
			t.Fatalf("id %q made twice", id)
		}
		seen[id] = true
		if id <= prev {
			t.Fatalf("id %q made a millisecond after %q sorts before it", id, prev)
		}
		prev = id
	}
	// Ids of the same millisecond differ by their random part.
	if a, b := event.NewID(t0), event.NewID(t0); a == b || a[:13] != b[:13] {
		t.Errorf("ids of one millisecond %q, %q: want the same time part, different random parts", a, b)
	}
	if id := event.NewPrefixedID("req", t0); !strings.HasPrefix(id, "req_") || len(id) != len("req_")+26 {
		t.Errorf("NewPrefixedID = %q", id)
	}
}

func TestEnvelope_EncodeAndDecode(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 11, 30, 1, 2, 3, 456789000, time.UTC)
	env := event.Envelope{ID: "evt_1", Type: "order.created", Timestamp: ts, Data: json.RawMessage("{\"a\": \"<x>\",\n \"n\": [1, 2]}"),
		Source: "shop", Resource: &event.Resource{ID: "ord_1", Type: "order"}}
	b, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"evt_1","type":"order.created","timestamp":"2026-11-30T01:02:03.456789Z","data":{"a":"<x>","n":[1,2]},"source":"shop","resource":{"id":"ord_1","type":"order"}}`
	if string(b) != want {
		t.Errorf("Encode\n got %s\nwant %s", b, want)
	}
	// The same bytes encoding/json writes for the struct, HTML unescaped, without a newline.
	std, err := event.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	if string(std) != want {
		t.Errorf("Marshal\n got %s\nwant %s", std, want)
	}
	back, err := event.DecodeEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.ID != env.ID || back.Type != env.Type || !back.Timestamp.Equal(ts) || string(back.Data) != `{"a":"<x>","n":[1,2]}` ||
		back.Source != env.Source || *back.Resource != *env.Resource || back.Inbound != nil {
		t.Errorf("round trip: %+v", back)
	}
	again, err := back.Encode()
	if err != nil || string(again) != want {
		t.Errorf("decoded and encoded again: %s, %v", again, err)
	}

	// The gateway's form: data byte for byte, no source or resource, the request it came from.
	gw := event.Envelope{ID: "evt_2", Type: "stripe.invoice.paid", Timestamp: ts, Data: json.RawMessage(`{"a": 1}`),
		Inbound: &event.Origin{RequestID: "req_1"}}
	b, err = gw.EncodeVerbatim()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"evt_2","type":"stripe.invoice.paid","timestamp":"2026-11-30T01:02:03.456789Z","data":{"a": 1},"inbound":{"request_id":"req_1"}}`; string(b) != want {
		t.Errorf("EncodeVerbatim\n got %s\nwant %s", b, want)
	}
	if _, err := (&event.Envelope{ID: "x", Data: json.RawMessage(`{"a":`)}).Encode(); err == nil {
		t.Error("Encode took data that is not JSON")
	}
	if _, err := event.DecodeEnvelope([]byte(`[]`)); err == nil {
		t.Error("DecodeEnvelope took an array")
	}
}

func TestTimestamp(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	if got := event.Timestamp(now); !got.Equal(time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)) {
		t.Errorf("Timestamp = %v", got)
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	in, ps := event.Decode([]byte(`{"id":"ord_1","type":"order.created","data":{"total": 12},"source":"shop",`+
		`"resource":{"id":"ord_1","url":"https://x"},"priority":"low"}`), "body.events[3]")
	if len(ps) != 0 {
		t.Fatalf("problems %v", ps)
	}
	if in.ID != "ord_1" || in.Type != "order.created" || string(in.Data) != `{"total": 12}` || in.Source != "shop" ||
		*in.Resource != (event.Resource{ID: "ord_1", URL: "https://x"}) || in.Priority != "low" {
		t.Errorf("input %+v", in)
	}
	for _, c := range []struct {
		body string
		want []string // "location: message"
	}{
		{`[]`, []string{"body.events[3]: expected object"}},
		{`{"type":"a"`, []string{"body.events[3]: not valid JSON: unexpected EOF"}},
		{`{"type":"a","data":{}} {}`, []string{"body.events[3]: not valid JSON: data after the object"}},
		{`{}`, []string{"body.events[3]: expected required property type to be present", "body.events[3]: expected required property data to be present"}},
		{`{"type":1,"data":[],"extra":true}`, []string{"body.events[3].type: expected string", "body.events[3].data: expected object",
			"body.events[3].extra: unexpected property"}},
		{`{"type":"a","data":{},"source":null}`, []string{"body.events[3].source: expected string"}},
		{`{"type":"a","data":{},"id":"a b","priority":"urgent"}`, []string{"body.events[3].id: expected string to match pattern ^[A-Za-z0-9_.:-]+$",
			`body.events[3].priority: expected value to be one of "high, normal, low"`}},
		{`{"type":"a","data":{},"resource":{"type":"order","color":"red"}}`, []string{"body.events[3].resource.color: unexpected property",
			"body.events[3].resource: expected required property id to be present"}},
		{`{"type":"a","data":{},"resource":"ord_1"}`, []string{"body.events[3].resource: expected object"}},
		{`{"type":"a","data":{},"resource":{"id":""}}`, []string{"body.events[3].resource: resource needs an id (at most 200 characters); type at most 200, url at most 2048"}},
	} {
		_, ps := event.Decode([]byte(c.body), "body.events[3]")
		var got []string
		for _, p := range ps {
			got = append(got, p.Error())
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("Decode(%s)\n got %q\nwant %q", c.body, got, c.want)
		}
	}
}

func ExampleEnvelope_Encode() {
	env := event.Envelope{ID: event.NewID(time.Now())[:4] + "example", Type: "order.created",
		Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Data: json.RawMessage(`{"total": 12}`)}
	b, _ := env.Encode()
	fmt.Println(string(b))
	// Output: {"id":"evt_example","type":"order.created","timestamp":"2026-01-02T03:04:05Z","data":{"total":12}}
}
