package kafka

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/heraldhq/herald/internal/destination"
)

// A source's start values: where a consumer group that has no committed offset for a partition
// begins.
const (
	// StartNew: records produced since the source was created (the group's start is pinned to
	// the first of them, to the end when the creation time is unknown).
	StartNew = "new"
	// StartAll: the partition from its first record still held (offset reset to the start).
	StartAll = "all"

	maxSourceTopics = 64
)

// SourceSettings are a Kafka source's settings: the connection settings of a Kafka endpoint
// (same names: brokers, sasl, username, password, tls) and what the consumer group reads.
type SourceSettings struct {
	Conn
	// Topics are the topics the consumer group reads (1 to 64). They must exist: Herald never
	// creates a topic.
	Topics []string `json:"topics"`
	// Start is where the group begins on a partition it has no committed offset for: "new"
	// (the default) or "all". A partition with a committed offset resumes from it.
	Start string `json:"start"`
}

func sourceFields() destination.Decoding {
	w := connWant()
	w["topics"] = "a list of topic names"
	return destination.Decoding{Required: "brokers and topics", Known: "brokers, sasl, username, password, tls, topics, start", Hint: w}
}

// checkSource validates every field of a source's settings and fills the defaults. No I/O.
func checkSource(raw json.RawMessage) (*SourceSettings, []*destination.FieldError) {
	var s SourceSettings
	if fe := destination.DecodeSettings(raw, &s, sourceFields()); fe != nil {
		return nil, []*destination.FieldError{fe}
	}
	var errs []*destination.FieldError
	add := func(field, msg string, v any) {
		errs = append(errs, &destination.FieldError{Field: field, Message: msg, Value: v})
	}
	s.Conn.check(add)
	switch {
	case len(s.Topics) == 0:
		add("topics", "is required: list the topics to read, e.g. [\"orders\"] (they must exist: Herald never creates a topic)", nil)
	case len(s.Topics) > maxSourceTopics:
		add("topics", fmt.Sprintf("lists %d topics; at most %d are allowed", len(s.Topics), maxSourceTopics), nil)
	default:
		seen := make(map[string]int, len(s.Topics))
		for i, tp := range s.Topics {
			field := fmt.Sprintf("topics[%d]", i)
			if msg := checkTopic(tp); msg != "" {
				add(field, msg, tp)
				continue
			}
			if j, dup := seen[tp]; dup {
				add(field, fmt.Sprintf("repeats topics[%d]", j), tp)
				continue
			}
			seen[tp] = i
		}
	}
	s.Start = strings.ToLower(s.Start)
	switch s.Start {
	case "":
		s.Start = StartNew
	case StartNew, StartAll:
	default:
		add("start", `must be "new" (records produced from when the consumer group first reads a partition) or "all" (every record the topic still holds)`, s.Start)
	}
	if errs != nil {
		return nil, errs
	}
	return &s, nil
}
