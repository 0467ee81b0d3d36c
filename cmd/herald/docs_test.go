package main

// TestDocs runs the shell examples of README.md and docs/**/*.md against the real binary, so that
// the documentation cannot drift from what Herald does. The conventions it reads are described in
// docs/api.md#how-these-examples-are-tested; in short:
//
//   - A runnable block is a ```sh or ```bash fence holding a curl command. Each file runs in one
//     bash process (set -euo pipefail), its runnable blocks in order, against a fresh
//     `herald serve --dev` on a free 127.0.0.1 port with its own data directory.
//   - "<!-- docs-test: skip — reason -->" right before a fence leaves that block out; the reason
//     is required. "<!-- docs-test: setup" … "-->" holds commands run at that place but not shown.
//   - curl is a shell function: it fails the run when the answer's status is 400 or more, unless the
//     command's comment (on its line, or a "# → …" line right after it) names the statuses it
//     expects ("# 201, 409 if the id exists", "# → 422 …"): then the status must be one of them.
//     A JSON answer must parse, and the "key":"value" pairs (strings without "…", booleans) of
//     the comment's JSON must be in it; a GET is asked again for up to 90 s until they are,
//     for what happens asynchronously (a delivery that succeeds).
//   - The documented addresses are replaced: localhost:8080 and 127.0.0.1:8080 by the test
//     server's, localhost:3000 and 127.0.0.1:3000 by a free port for a receiver the doc starts
//     itself, and https://…example.com by a local sink answering 204, so that no traffic leaves
//     the machine. "hk_admin_…" is the test server's admin key; "go run ./cmd/herald" is the
//     built binary, and so are "herald" and "./herald". A `herald serve` command in a runnable block is not run:
//     its flags are added to the test server's.
//   - For files under docs/, the variables of api.md's first block are set beforehand (HERALD,
//     AUTH, JSON, and ADMIN_KEY), as the docs assume the reader has them.
//   - Every herald command the docs show (in any code block or inline code) must be a command of
//     the binary with flags it has ("herald flags").

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// docsKey is the admin key of the test server when a file names none of its own.
	docsKey = "hk_admin_docs_test_key_0123456789"
	// docsFileTimeout bounds one file's run, generous for a loaded machine.
	docsFileTimeout = 4 * time.Minute
)

func TestDocs(t *testing.T) {
	needBinary(t)
	for _, tool := range []string{"bash", "curl", "jq", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("TestDocs needs %s on PATH (.ci/run installs it): %v", tool, err)
		}
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	files, err := docFiles(root)
	if err != nil {
		t.Fatal(err)
	}

	// A sink for the documented https://…example.com endpoints: every request answers 204.
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(sink.Close)

	// "herald" on the docs' PATH is the binary under test.
	binDir := t.TempDir()
	if err := os.Symlink(heraldBin, filepath.Join(binDir, "herald")); err != nil {
		t.Fatal(err)
	}

	var ran, skipped int
	for _, rel := range files {
		text, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		doc, errs := parseDoc(string(text))
		for _, e := range errs {
			t.Errorf("%s: %s", rel, e)
		}
		skipped += doc.skipped
		if len(doc.blocks) == 0 {
			continue
		}
		ran += len(doc.blocks)
		t.Run(rel, func(t *testing.T) {
			runDoc(t, rel, strings.Split(string(text), "\n"), doc, binDir, sink.URL)
		})
	}
	t.Run("herald flags", func(t *testing.T) { checkHeraldFlags(t, root, files) })
	t.Logf("ran %d blocks of %d files, skipped %d marked blocks", ran, len(files), skipped)
	if ran == 0 {
		t.Fatal("no runnable block found: the parser or the docs are broken")
	}
}

// docFiles is README.md, then every .md under docs/ in sorted order.
func docFiles(root string) ([]string, error) {
	files := []string{"README.md"}
	var docs []string
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			docs = append(docs, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list docs: %w", err)
	}
	sort.Strings(docs)
	return append(files, docs...), nil
}

// docBlock is one runnable block: its shell text and the line of its first line in the file.
type docBlock struct {
	line  int // 1-based line of the block's first content line
	lines []string
	setup bool // from a docs-test: setup comment
}

type parsedDoc struct {
	blocks     []docBlock
	skipped    int
	key        string   // the admin key the file uses, if it names one
	serveFlags []string // flags of the `herald serve` commands in runnable blocks
}

var (
	fenceRe     = regexp.MustCompile("^(\\s*)(```+)\\s*([A-Za-z0-9_+-]*)")
	markerRe    = regexp.MustCompile(`^\s*<!--\s*docs-test:\s*([a-z-]+)(.*?)(-->)?\s*$`)
	curlWordRe  = regexp.MustCompile(`(^|[\s(|;&$])curl(\s|$)`)
	concreteKey = regexp.MustCompile(`hk_admin_[A-Za-z0-9_]{8,}`)
	serveCmdRe  = regexp.MustCompile(`^\s*(?:[A-Z_]+=\S+\s+)*(?:go run \./cmd/herald|herald|\./herald)\s+serve(\s.*)?$`)
)

// parseDoc finds the runnable blocks of a Markdown file and checks its docs-test markers.
func parseDoc(text string) (parsedDoc, []string) {
	var doc parsedDoc
	var errs []string
	if m := concreteKey.FindString(text); m != "" {
		doc.key = m
	}
	lines := strings.Split(text, "\n")
	lastNonBlank := -1 // index of the last non-blank line outside fences
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if m := markerRe.FindStringSubmatch(line); m != nil {
			switch m[1] {
			case "skip":
				if m[3] == "" {
					errs = append(errs, fmt.Sprintf("line %d: a docs-test marker must end on its line with -->", i+1))
				}
			case "setup":
				// Multi-line: everything up to the closing --> is shell.
				start := i + 1
				j := start
				for j < len(lines) && !strings.Contains(lines[j], "-->") {
					j++
				}
				if j == len(lines) {
					errs = append(errs, fmt.Sprintf("line %d: docs-test: setup without a closing -->", i+1))
					return doc, errs
				}
				doc.blocks = append(doc.blocks, docBlock{line: start + 1, lines: lines[start:j], setup: true})
				i = j
				lastNonBlank = -1
				continue
			default:
				errs = append(errs, fmt.Sprintf("line %d: unknown docs-test marker %q (known: skip, setup)", i+1, m[1]))
			}
		}
		fm := fenceRe.FindStringSubmatch(line)
		if fm == nil {
			if strings.TrimSpace(line) != "" {
				lastNonBlank = i
			}
			continue
		}
		indent, fence, lang := fm[1], fm[2], fm[3]
		start := i + 1
		j := start
		for j < len(lines) && strings.TrimSpace(lines[j]) != fence {
			j++
		}
		body := make([]string, 0, j-start)
		for _, l := range lines[start:min(j, len(lines))] {
			body = append(body, strings.TrimPrefix(l, indent))
		}
		runnable := (lang == "sh" || lang == "bash") && curlWordRe.MatchString(strings.Join(body, "\n"))
		var marker []string
		if lastNonBlank >= 0 {
			marker = markerRe.FindStringSubmatch(lines[lastNonBlank])
		}
		switch {
		case marker != nil && marker[1] == "skip":
			reason := strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(marker[2]), "—–-:"))
			if reason == "" {
				errs = append(errs, fmt.Sprintf("line %d: docs-test: skip needs a reason (<!-- docs-test: skip — why -->)", lastNonBlank+1))
			}
			if !runnable {
				errs = append(errs, fmt.Sprintf("line %d: docs-test: skip before a block that would not run anyway", lastNonBlank+1))
			}
			doc.skipped++
		case runnable:
			b := docBlock{line: start + 1, lines: body}
			doc.blocks = append(doc.blocks, b)
			for _, l := range body {
				if m := serveCmdRe.FindStringSubmatch(l); m != nil {
					doc.serveFlags = append(doc.serveFlags, strings.Fields(stripComment(m[1]))...)
				}
			}
		}
		i = j
		lastNonBlank = -1
	}
	return doc, errs
}

// stripComment cuts a shell line at a # that starts a comment (outside quotes, after a blank).
func stripComment(s string) string {
	if i := commentStart(s); i >= 0 {
		return s[:i]
	}
	return s
}

// commentStartIn is the index of the # starting a comment on one line, or -1, and the quote
// character open at the line's end; quote is the one open at its start, or 0.
func commentStartIn(s string, quote byte) (int, byte) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			}
		case quote == '"':
			if c == '\\' {
				i++
			} else if c == '"' {
				quote = 0
			}
		case c == '\\':
			i++
		case c == '\'' || c == '"':
			quote = c
		case c == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t'):
			return i, quote
		}
	}
	return -1, quote
}

func commentStart(s string) int {
	i, _ := commentStartIn(s, 0)
	return i
}

var (
	statusRe  = regexp.MustCompile(`\b[1-5][0-9][0-9]\b`)
	addrRe    = regexp.MustCompile(`\b(localhost|127\.0\.0\.1):8080\b`)
	recvRe    = regexp.MustCompile(`\b(localhost|127\.0\.0\.1):3000\b`)
	exampleRe = regexp.MustCompile(`https?://([A-Za-z0-9-]+\.)*example\.com\b`)
	// localBinRe is ./herald as a command: a binary the reader built with go build.
	localBinRe = regexp.MustCompile(`(^|[\s;&|(])\./herald\b`)
	fragRe     = regexp.MustCompile(`"([A-Za-z0-9_]+)"\s*:\s*("(?:[^"\\…]|\\.)*"|true|false)`)
)

// expectations reads a curl command's comment: the statuses it names (before any JSON), and the
// "key":value pairs its JSON shows with a complete value.
func expectations(comment string) (statuses []string, frags []string, showsJSON bool) {
	head := comment
	if i := strings.IndexAny(head, "{[\""); i >= 0 {
		head = head[:i]
		showsJSON = comment[i] == '{' || comment[i] == '['
	}
	for _, st := range statusRe.FindAllString(head, -1) {
		if !slices.Contains(statuses, st) {
			statuses = append(statuses, st)
		}
	}
	for _, m := range fragRe.FindAllStringSubmatch(comment, -1) {
		frags = append(frags, `"`+m[1]+`":`+m[2])
	}
	return statuses, frags, showsJSON
}

// shellQuote quotes s for bash as one word.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// script turns a file's blocks into one bash script: before each command that calls curl, the
// line it is on and what its comment expects.
func (doc parsedDoc) script(rel, addr, recvAddr, sinkURL, key string) string {
	var b strings.Builder
	b.WriteString(docsPrelude)
	if strings.HasPrefix(rel, "docs/") {
		fmt.Fprintf(&b, "HERALD=http://%s\nADMIN_KEY=%s\nAUTH=\"Authorization: Bearer $ADMIN_KEY\"\nJSON=\"Content-Type: application/json\"\n",
			addr, shellQuote(key))
	}
	subst := func(s string) string {
		s = strings.ReplaceAll(s, "go run ./cmd/herald", "herald")
		s = localBinRe.ReplaceAllString(s, "${1}herald")
		s = strings.ReplaceAll(s, "hk_admin_…", key)
		s = addrRe.ReplaceAllString(s, addr)
		s = recvRe.ReplaceAllString(s, recvAddr)
		return exampleRe.ReplaceAllString(s, sinkURL)
	}
	for _, blk := range doc.blocks {
		fmt.Fprintf(&b, "\n# --- %s line %d\n", rel, blk.line)
		var quote byte
		inCmd := false // inside a command that continues on the next line
		heredoc := ""
		for k := 0; k < len(blk.lines); k++ {
			line := blk.lines[k]
			if heredoc != "" {
				b.WriteString(line + "\n")
				if strings.TrimSpace(line) == heredoc {
					heredoc = ""
				}
				continue
			}
			if !inCmd {
				if serveCmdRe.MatchString(line) {
					fmt.Fprintf(&b, ": the test server runs instead of line %d\n", blk.line+k)
					continue
				}
				// A new command: find its lines, its comment, and the "# → …" line after it.
				end, q := k, quote
				var comment strings.Builder
				for {
					ci, q2 := commentStartIn(blk.lines[end], q)
					q = q2
					if ci >= 0 {
						comment.WriteString(blk.lines[end][ci:] + " ")
					}
					code := blk.lines[end]
					if ci >= 0 {
						code = code[:ci]
					}
					if q == 0 && !continues(code) || end+1 == len(blk.lines) {
						break
					}
					end++
				}
				if end+1 < len(blk.lines) && strings.HasPrefix(strings.TrimSpace(blk.lines[end+1]), "# →") {
					comment.WriteString(blk.lines[end+1])
				}
				cmd := strings.Join(blk.lines[k:end+1], "\n")
				if curlWordRe.MatchString(cmd) {
					statuses, frags, showsJSON := expectations(comment.String())
					quoted := make([]string, len(frags))
					for i, f := range frags {
						quoted[i] = shellQuote(f)
					}
					wantJSON := 0
					if showsJSON {
						wantJSON = 1
					}
					fmt.Fprintf(&b, "__docs_line=%d; __docs_expect=%s; __docs_frags=(%s); __docs_json=%d\n",
						blk.line+k, shellQuote(strings.Join(statuses, " ")), strings.Join(quoted, " "), wantJSON)
				} else if strings.TrimSpace(line) != "" && !strings.HasPrefix(strings.TrimSpace(line), "#") {
					fmt.Fprintf(&b, "__docs_line=%d\n", blk.line+k)
				}
			}
			if m := regexp.MustCompile(`<<-?\s*'?"?([A-Za-z_]+)`).FindStringSubmatch(stripComment(line)); m != nil {
				heredoc = m[1]
			}
			b.WriteString(subst(line) + "\n")
			ci, q := commentStartIn(line, quote)
			quote = q
			code := line
			if ci >= 0 {
				code = line[:ci]
			}
			inCmd = quote != 0 || continues(code)
		}
	}
	b.WriteString("\n__docs_line=end\n")
	return b.String()
}

// continues reports whether a shell line (without its comment) goes on on the next line.
func continues(code string) bool {
	c := strings.TrimRight(code, " \t")
	return strings.HasSuffix(c, "\\") || strings.HasSuffix(c, "|") || strings.HasSuffix(c, "&&") ||
		strings.HasSuffix(c, "||") || strings.HasSuffix(c, "(")
}

// docsPrelude is bash run before a file's blocks: the curl that checks answers, and the report of
// a failing command.
const docsPrelude = `set -euo pipefail
__docs_line=start; __docs_expect=""; __docs_frags=(); __docs_json=0
trap 'rc=$?; [[ $rc == 0 ]] || echo "DOCS-FAIL line $__docs_line: the shell stopped with status $rc" >&2; kill $(jobs -p) 2>/dev/null || true' EXIT
__docs_fail() {
  printf 'DOCS-FAIL line %s: %s\n' "$__docs_line" "$1" >&2
  printf '  curl %s\n' "$2" >&2
  printf '  answer: %s\n' "${3:0:2000}" >&2
}
curl() {
  local resp rc status ctype body compact missing frag get=1 try
  for a in "$@"; do
    case $a in -d|--data*|-X|--request|-F|--form|-T|--json|-I|--head) get=0;; esac
  done
  for try in $(seq 1 180); do
    rc=0
    resp=$(command curl "$@" -w '\n%{http_code} %{content_type}') || rc=$?
    if [[ $rc != 0 ]]; then
      __docs_fail "curl exited with $rc" "$*" "$resp"; return 1
    fi
    status=${resp##*$'\n'}; ctype=${status#* }; status=${status%% *}
    body=${resp%$'\n'*}
    [[ $resp == *$'\n'* ]] || body=""
    if [[ -n $__docs_expect ]]; then
      if [[ " $__docs_expect " != *" $status "* ]]; then
        __docs_fail "status $status, the doc expects $__docs_expect" "$*" "$body"; return 1
      fi
    elif (( status >= 400 )); then
      __docs_fail "status $status; the doc expects a success (a comment naming the status would declare an error)" "$*" "$body"; return 1
    fi
    missing=""
    if [[ $ctype == *json* ]]; then
      if ! compact=$(jq -c . <<<"$body" 2>/dev/null); then
        __docs_fail "the answer is not JSON ($ctype)" "$*" "$body"; return 1
      fi
      for frag in "${__docs_frags[@]}"; do
        [[ $compact == *"$frag"* ]] || missing="$missing $frag"
      done
    elif (( __docs_json || ${#__docs_frags[@]} > 0 )) && (( status < 300 )); then
      __docs_fail "the doc shows JSON, the answer is $ctype" "$*" "$body"; return 1
    fi
    if [[ -z $missing ]]; then
      printf '%s\n' "$body"; return 0
    fi
    (( get )) || break
    (( try > 1 )) || printf 'docs: line %s: asking again until the answer has%s\n' "$__docs_line" "$missing" >&2
    sleep 0.5
  done
  __docs_fail "the answer lacks what the doc shows:$missing" "$*" "$body"; return 1
}
`

// runDoc runs one file's blocks against a fresh server.
func runDoc(t *testing.T, rel string, fileLines []string, doc parsedDoc, binDir, sinkURL string) {
	key := doc.key
	if key == "" {
		key = docsKey
	}
	flags := []string{"--dev"}
	for _, f := range doc.serveFlags {
		if f != "--dev" {
			flags = append(flags, f)
		}
	}
	srv := serve(t, "herald serve for "+rel, t.TempDir(), []string{"HERALD_API_KEY=" + key}, flags...)
	script := doc.script(rel, srv.addr, freeAddr(t), sinkURL, key)

	ctx, cancel := context.WithTimeout(context.Background(), docsFileTimeout)
	defer cancel()
	work := t.TempDir()
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", "-c", script)
	cmd.Dir = work
	cmd.Env = append(childEnv(), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		if testing.Verbose() && stderr.String() != "" {
			t.Logf("%s: the examples passed; their stderr:\n%s", rel, stderr.String())
		}
		return
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("not finished within %v (a command that runs until stopped needs & or a skip marker): %w", docsFileTimeout, err)
	}
	var report strings.Builder
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	for sc.Scan() {
		report.WriteString(sc.Text() + "\n")
	}
	where := "?"
	if m := regexp.MustCompile(`DOCS-FAIL line (\d+)`).FindStringSubmatch(stderr.String()); m != nil {
		where = m[1]
		if n, err := strconv.Atoi(m[1]); err == nil && n >= 1 && n <= len(fileLines) {
			where += ": " + strings.TrimSpace(fileLines[n-1])
		}
	}
	t.Errorf("%s: the examples failed at line %s\n(%v)\n%s\n--- stdout (last 3000 bytes) ---\n%s%s",
		rel, where, err, report.String(), tail(stdout.String(), 3000), srv.logs())
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

var (
	heraldCmdRe = regexp.MustCompile("(?:go run \\./cmd/herald|\\./herald|(?:^|[^\\w/.-])herald)\\s+([a-z][a-z-]*)((?:\\s+[a-z][a-z-]*)?)([^|;&#`]*)")
	inlineRe    = regexp.MustCompile("`([^`]+)`")
	helpFlagRe  = regexp.MustCompile(`(?m)^\s+(?:-[A-Za-z], )?(--[a-z0-9-]+)`)
	helpCmdRe   = regexp.MustCompile(`(?m)^  ([a-z][a-z-]*)\s`)
	flagWordRe  = regexp.MustCompile(`(?:^|\s)(--[a-z][a-z0-9-]*)`)
)

// checkHeraldFlags checks that every herald command the docs show, in a code block or in inline
// code, names a command that exists and flags that command has: the commands that the docs test
// does not run cannot drift either.
func checkHeraldFlags(t *testing.T, root string, files []string) {
	helps := map[string]string{}
	help := func(args ...string) string {
		key := strings.Join(args, " ")
		if h, ok := helps[key]; ok {
			return h
		}
		out, _ := exec.Command(heraldBin, append(args, "--help")...).CombinedOutput()
		helps[key] = string(out)
		return helps[key]
	}
	commands := map[string]bool{}
	for _, m := range helpCmdRe.FindAllStringSubmatch(help(), -1) {
		commands[m[1]] = true
	}
	if !commands["serve"] {
		t.Fatalf("herald --help lists no serve command:\n%s", help())
	}
	checked := 0
	for _, rel := range files {
		text, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		var snippets []string
		inBlock := false
		for _, line := range strings.Split(strings.ReplaceAll(string(text), "\\\n", " "), "\n") {
			if fenceRe.MatchString(line) {
				inBlock = !inBlock
				continue
			}
			if inBlock {
				snippets = append(snippets, stripComment(line))
				continue
			}
			for _, m := range inlineRe.FindAllStringSubmatch(line, -1) {
				snippets = append(snippets, m[1])
			}
		}
		for _, snip := range snippets {
			for _, m := range heraldCmdRe.FindAllStringSubmatch(snip, -1) {
				cmd := m[1]
				if !commands[cmd] {
					continue // a word after "herald" in prose, not a command
				}
				args := []string{cmd}
				if sub := strings.TrimSpace(m[2]); sub != "" && regexp.MustCompile(`(?m)^  `+regexp.QuoteMeta(sub)+`\s`).MatchString(help(cmd)) {
					args = append(args, sub)
				}
				known := map[string]bool{"--help": true}
				for _, f := range helpFlagRe.FindAllStringSubmatch(help(args...), -1) {
					known[f[1]] = true
				}
				for _, f := range flagWordRe.FindAllStringSubmatch(m[2]+m[3], -1) {
					checked++
					if !known[f[1]] {
						t.Errorf("%s: `herald %s` has no flag %s: %s", rel, strings.Join(args, " "), f[1], strings.TrimSpace(m[0]))
					}
				}
			}
		}
	}
	t.Logf("checked %d flags of herald commands in the docs", checked)
	if checked == 0 {
		t.Error("no herald command with a flag found in the docs: the parser is broken")
	}
}

// TestDocsParser checks the docs test's own reading of Markdown: which blocks run, the markers,
// and what a command's comment expects.
func TestDocsParser(t *testing.T) {
	md := "Intro.\n\n" +
		"```sh\nherald serve --ops-tenant ops   # in one terminal\nX=1\ncurl -sS $HERALD/a \\\n  -d '{\"a\": 1,\n  \"b\": \"# not a comment\"}'   # 201, 409 if it exists\n# → 201 {\"id\":\"ep_…\",\"state\":\"succeeded\",\"ok\":true,\"n\":3}\n```\n\n" +
		"<!-- docs-test: skip — needs a browser -->\n```sh\ncurl -N x\n```\n\n" +
		"<!-- docs-test: skip -->\n```bash\ncurl y\n```\n\n" +
		"<!-- docs-test: skip — nothing to skip -->\n```sh\nls\n```\n\n" +
		"<!-- docs-test: setup\ncurl -sS z\n-->\n" +
		"```json\n{\"curl\": 1}\n```\n" +
		"<!-- docs-test: bogus -->\n"
	doc, errs := parseDoc(md)
	if len(doc.blocks) != 2 || doc.blocks[0].line != 4 || !doc.blocks[1].setup {
		t.Fatalf("blocks = %+v, want the first sh block (from line 4) and the setup", doc.blocks)
	}
	if doc.skipped != 3 {
		t.Errorf("skipped = %d, want 3", doc.skipped)
	}
	wantErrs := []string{"skip needs a reason", "would not run anyway", `unknown docs-test marker "bogus"`}
	if len(errs) != len(wantErrs) {
		t.Fatalf("errors = %q, want %d", errs, len(wantErrs))
	}
	for i, w := range wantErrs {
		if !strings.Contains(errs[i], w) {
			t.Errorf("error %d = %q, want it to say %q", i, errs[i], w)
		}
	}
	if strings.Join(doc.serveFlags, " ") != "--ops-tenant ops" {
		t.Errorf("serve flags = %q", doc.serveFlags)
	}

	script := doc.script("docs/x.md", "127.0.0.1:1", "127.0.0.1:2", "http://127.0.0.1:3", docsKey)
	want := `__docs_line=6; __docs_expect='201 409'; __docs_frags=('"state":"succeeded"' '"ok":true'); __docs_json=1` + "\ncurl -sS $HERALD/a \\\n"
	if !strings.Contains(script, want) {
		t.Errorf("script lacks the expectation of the curl command:\n%s\nwant:\n%s", script, want)
	}
	if strings.Contains(script, "herald serve") || !strings.Contains(script, ": the test server runs instead of line 4") {
		t.Errorf("the serve command was not replaced:\n%s", script)
	}
	if strings.Contains(script, "__docs_line=7") || strings.Contains(script, "__docs_line=8") {
		t.Errorf("an expectation was put inside a multi-line command:\n%s", script)
	}
	if !strings.Contains(script, "HERALD=http://127.0.0.1:1\n") {
		t.Errorf("a docs/ file does not get api.md's variables:\n%s", script)
	}

	for _, c := range []struct {
		comment  string
		statuses string
		json     bool
	}{
		{"# 201, 409 if the id exists", "201 409", false},
		{"# revoke: 204", "204", false},
		{`# → 200 {"deleted":{"events":1200,"attempts":251}}`, "200", true},
		{"# the dead-letter queue", "", false},
		{`# → {"key":"whsec_…"}`, "", true},
	} {
		statuses, _, showsJSON := expectations(c.comment)
		if strings.Join(statuses, " ") != c.statuses || showsJSON != c.json {
			t.Errorf("expectations(%q) = %q, %v; want %q, %v", c.comment, statuses, showsJSON, c.statuses, c.json)
		}
	}
}
