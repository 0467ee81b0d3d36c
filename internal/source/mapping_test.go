package source

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestMapping(t *testing.T) {
	msg := func(subject, body string, h map[string][]string, id string) *Message {
		return &Message{Subject: subject, Body: []byte(body), Header: h, ID: id}
	}
	cases := []struct {
		name, mapping, schema string
		msg                   *Message
		wantType, wantID      string // wantID "bmsg_" means derived
		wantData, quarantine  string
	}{
		{"subject with prefix", `{"event_type":{"from":"subject","prefix":"orders."}}`, "",
			msg("orders.order.created", `{"a":1}`, nil, "S:1"), "order.created", "bmsg_", `{"a":1}`, ""},
		{"header type and id", `{"event_type":{"from":"header","name":"ce-type"},"event_id":{"from":"header","name":"ce-id"}}`, "",
			msg("x", `{"a":1}`, map[string][]string{"Ce-Type": {"invoice.paid"}, "Ce-Id": {"evt_42"}}, "S:2"), "invoice.paid", "evt_42", `{"a":1}`, ""},
		{"field type and id", `{"event_type":{"from":"field","path":"meta.type"},"event_id":{"from":"field","path":"id"}}`, "",
			msg("x", `{"id":7,"meta":{"type":"user.created"}}`, nil, ""), "user.created", "7", `{"id":7,"meta":{"type":"user.created"}}`, ""},
		{"fixed type", `{"event_type":{"from":"fixed","value":"thing.happened"}}`, "",
			msg("whatever", `{}`, nil, "S:3"), "thing.happened", "bmsg_", `{}`, ""},
		{"text body wrapped", `{"event_type":{"from":"fixed","value":"t"}}`, "",
			msg("s", `hello`, map[string][]string{"Content-Type": {"text/plain"}}, "S:4"), "t", "bmsg_", `{"body":"hello","content_type":"text/plain"}`, ""},
		{"array body wrapped", `{"event_type":{"from":"fixed","value":"t"}}`, "",
			msg("s", `[1,2]`, nil, "S:5"), "t", "bmsg_", `{"body":"[1,2]","content_type":""}`, ""},
		{"missing header type quarantined", `{"event_type":{"from":"header","name":"ce-type"}}`, "",
			msg("s", `{}`, nil, "S:6"), "", "bmsg_", `{}`, "mapping: no event type in the message's header ce-type"},
		{"schema failure quarantined", `{"event_type":{"from":"fixed","value":"t"}}`, `{"type":"object","required":["id"]}`,
			msg("s", `{"x":1}`, nil, "S:7"), "t", "bmsg_", `{"x":1}`, "schema: "},
		{"id not usable is hashed", `{"event_type":{"from":"fixed","value":"t"},"event_id":{"from":"header","name":"id"}}`, "",
			msg("s", `{}`, map[string][]string{"Id": {"has space"}}, "S:8"), "t", "bmsg_", `{}`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, errs := CheckMapping(json.RawMessage(c.mapping))
			if len(errs) > 0 {
				t.Fatalf("CheckMapping: %v", errs[0])
			}
			mp, err := NewMapper("bsrc_1", m, json.RawMessage(c.schema))
			if err != nil {
				t.Fatal(err)
			}
			ev := mp.Map(c.msg)
			if ev.Type != c.wantType {
				t.Errorf("type = %q, want %q", ev.Type, c.wantType)
			}
			if c.wantID == "bmsg_" {
				if !strings.HasPrefix(ev.ID, "bmsg_") || !idRe.MatchString(ev.ID) {
					t.Errorf("id = %q, want a derived bmsg_ id", ev.ID)
				}
				if again := mp.Map(c.msg); again.ID != ev.ID {
					t.Errorf("the same message got ids %q and %q", ev.ID, again.ID)
				}
			} else if ev.ID != c.wantID {
				t.Errorf("id = %q, want %q", ev.ID, c.wantID)
			}
			if string(ev.Data) != c.wantData {
				t.Errorf("data = %s, want %s", ev.Data, c.wantData)
			}
			if (c.quarantine == "") != (ev.Quarantine == "") || !strings.HasPrefix(ev.Quarantine, c.quarantine) {
				t.Errorf("quarantine = %q, want %q…", ev.Quarantine, c.quarantine)
			}
		})
	}
	// Derived ids differ by source and by message.
	m, _ := CheckMapping(nil)
	a, _ := NewMapper("bsrc_a", m, nil)
	b, _ := NewMapper("bsrc_b", m, nil)
	x := &Message{Subject: "s", Body: []byte(`{}`), ID: "S:1"}
	y := &Message{Subject: "s", Body: []byte(`{}`), ID: "S:2"}
	if a.Map(x).ID == b.Map(x).ID || a.Map(x).ID == a.Map(y).ID {
		t.Error("derived ids collide across sources or messages")
	}
	// Without a broker id, the body decides.
	first, second := a.Map(&Message{Body: []byte(`{"k":1}`)}), a.Map(&Message{Body: []byte(`{"k":1}`)})
	if first.ID != second.ID || first.ID == a.Map(&Message{Body: []byte(`{"k":2}`)}).ID {
		t.Error("without a broker id, the body does not decide the id")
	}
}

func TestCheckMappingErrors(t *testing.T) {
	cases := map[string]string{
		`{"event_type":{"from":"header"}}`:            "mapping.event_type.name",
		`{"event_type":{"from":"field"}}`:             "mapping.event_type.path",
		`{"event_type":{"from":"fixed"}}`:             "mapping.event_type.value",
		`{"event_type":{"from":"moon"}}`:              "mapping.event_type.from",
		`{"event_id":{"from":"header"}}`:              "mapping.event_id.name",
		`{"event_id":{"from":"field"}}`:               "mapping.event_id.path",
		`{"event_id":{"from":"dice"}}`:                "mapping.event_id.from",
		`{"event_type":{"from":"subject"},"extra":1}`: "mapping",
	}
	for in, field := range cases {
		_, errs := CheckMapping(json.RawMessage(in))
		if len(errs) != 1 || errs[0].Field != field || errs[0].Message == "" {
			t.Errorf("%s: errors %v, want one at %s", in, errs, field)
		}
	}
	m, errs := CheckMapping(nil)
	if len(errs) != 0 || m.EventType.From != TypeFromSubject || m.EventID.From != IDFromMessage {
		t.Errorf("defaults = %+v %v", m, errs)
	}
}
