package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCLI_EventTypes(t *testing.T) {
	needBinary(t)
	t.Parallel()
	h := serve(t, "serve", t.TempDir(), []string{"HERALD_API_KEY=" + testKey}, "--dev")
	env := apiEnv(h)
	cli := func(stdin string, args ...string) string {
		t.Helper()
		out, errOut, code := runCLI(t, stdin, env, args...)
		if code != 0 {
			t.Fatalf("herald %v: exit %d; stdout %q, stderr %q%s", args, code, out, errOut, h.logs())
		}
		return out
	}
	dir := t.TempDir()
	example := filepath.Join(dir, "example.json")
	if err := os.WriteFile(example, []byte(`{"amount": 42}`), 0o600); err != nil {
		t.Fatal(err)
	}

	var et struct {
		Name     string            `json:"name"`
		Version  int               `json:"version"`
		Trigger  string            `json:"trigger"`
		Sunset   string            `json:"sunset"`
		Examples []json.RawMessage `json:"examples"`
	}
	out := cli(`{"type":"object","required":["amount"],"properties":{"amount":{"type":"integer"}}}`,
		"event-types", "create", "invoice.paid", "--description", "Paid.", "--trigger", "An invoice settles.",
		"--schema-file", "-", "--example-file", example, "-o", "json")
	if err := json.Unmarshal([]byte(out), &et); err != nil || et.Trigger != "An invoice settles." || len(et.Examples) != 1 {
		t.Fatalf("create: %v %s", err, out)
	}
	cli("", "event-types", "create", "invoice.paid.v2")
	out = cli("", "event-types", "update", "invoice.paid", "--deprecated", "--sunset", "2027-03-01", "-o", "json")
	if err := json.Unmarshal([]byte(out), &et); err != nil || et.Sunset != "2027-03-01" {
		t.Fatalf("update: %v %s", err, out)
	}
	rows := tableRows(t, cli("", "event-types", "list"), "NAME VERSION DEPRECATED SUNSET DESCRIPTION")
	if len(rows) != 2 || !strings.Contains(rows[0], "2027-03-01") || !strings.HasPrefix(rows[1], "invoice.paid.v2 ") {
		t.Errorf("list rows: %q", rows)
	}
	out = cli("", "event-types", "get", "invoice.paid")
	for _, want := range []string{"trigger: An invoice settles.", "other versions of invoice.paid: invoice.paid.v2", `"amount": 42`} {
		if !strings.Contains(out, want) {
			t.Errorf("get lacks %q:\n%s", want, out)
		}
	}
	if md := cli("", "event-types", "docs"); !strings.Contains(md, "**Deprecated: no longer sent after 2027-03-01.**") {
		t.Errorf("docs (markdown):\n%s", md)
	}
	if page := cli("", "event-types", "docs", "--format", "html", "--include-deprecated=false"); !strings.HasPrefix(page, "<!doctype html>") ||
		strings.Contains(page, `id="type-invoice.paid"`) {
		t.Errorf("docs --format html --include-deprecated=false:\n%.400s", page)
	}
	// A bad example is the API's 422, shown with its location.
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"amount": "many"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runCLI(t, "", env, "event-types", "update", "invoice.paid", "--example-file", bad)
	if code != 1 || !strings.Contains(errOut, "body.examples[0].amount") {
		t.Errorf("bad example: exit %d, stderr %q", code, errOut)
	}
	if _, _, code := runCLI(t, "", env, "event-types", "update", "invoice.paid"); code != 2 {
		t.Errorf("update without flags: exit %d, want 2", code)
	}
}
