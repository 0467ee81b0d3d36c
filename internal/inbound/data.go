package inbound

import "net/http"

// EventData is the event data a received body becomes (see eventData): the body itself when it
// is JSON, a form body as an object of its fields, anything else wrapped as {"content_type",
// "body"} (or "body_base64"). Broker sources (internal/source) wrap message bodies the same way.
func EventData(header http.Header, body []byte) []byte { return eventData(header, body) }
