// Package sdk_test runs the SDKs' own test suites (sdk/typescript with Node's test runner,
// sdk/python with unittest) from `go test ./...`, against a herald binary built from this
// checkout, so that CI tests the SDKs with the server they ship beside. Each suite is skipped
// only when its toolchain (node and npm, python3) is not installed.
package sdk_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// heraldBin is the binary TestMain builds for the suites (HERALD_BIN).
var heraldBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "herald-sdk-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	heraldBin = filepath.Join(dir, "herald")
	build := exec.Command("go", "build", "-o", heraldBin, "../cmd/herald")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build herald:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// need skips the test when a tool is not installed.
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
}

// run runs a command in dir with HERALD_BIN set and fails the test with its output if it fails.
func run(t *testing.T, dir string, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HERALD_BIN="+heraldBin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v in %s: %v\n%s", name, args, dir, err, out)
	}
	t.Logf("%s %v: ok", name, args)
}

// The TypeScript SDK's suite: build, the tests against a real herald serve --dev, and the drift
// check of the generated types.
func TestTypeScriptSDK(t *testing.T) {
	t.Parallel()
	need(t, "node", "npm")
	run(t, "typescript", "npm", "ci", "--no-audit", "--no-fund")
	run(t, "typescript", "npm", "test")
}

// The Python client's suite (standard library only) against a real herald serve --dev.
func TestPythonClient(t *testing.T) {
	t.Parallel()
	need(t, "python3")
	run(t, "python", "python3", "-m", "unittest", "discover", "-s", "tests", "-t", ".", "-v")
}
