//go:build integration

package main_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// docBlock is one ```console block of the documentation whose output is
// checked: the commands ("$ " lines) and the output printed after each.
type docBlock struct {
	file, at string
	steps    []docStep
}

type docStep struct {
	cmd  string
	want []string
}

// checkedBlocks returns the console blocks of file that follow a line
// naming TestDocExamples.
func checkedBlocks(t *testing.T, file string) []docBlock {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []docBlock
	var cur *docBlock
	marked := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case cur == nil && strings.Contains(l, "TestDocExamples"):
			marked = true
		case cur == nil && marked && l == "```console":
			cur = &docBlock{file: file, at: fmt.Sprintf("%s:%d", filepath.Base(file), n)}
		case cur != nil && l == "```":
			blocks = append(blocks, *cur)
			cur, marked = nil, false
		case cur != nil && strings.HasPrefix(l, "$ "):
			cur.steps = append(cur.steps, docStep{cmd: strings.TrimPrefix(l, "$ ")})
		case cur != nil && l != "" && len(cur.steps) > 0:
			s := &cur.steps[len(cur.steps)-1]
			s.want = append(s.want, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

var (
	pidRE  = regexp.MustCompile(`\bpid [0-9]+\b`)
	failRE = regexp.MustCompile(`^(socketley: add \S+:) .*?(exit code|exited with status) ([0-9]+)[^;]*;`)
)

// normalize makes output comparable across runs: pids, ports, uptimes
// and usage figures in tables and replies are placeholders, table columns single-spaced, a
// line repeated at once is kept once (a failing program runs once or
// more before the reply, printing the same line each time), and
// the first line of a failure keeps the verb, the name and the exit status
// (whether the exit was seen by --wait, at the reply or as the start job's
// failure, and the status of the moment, vary).
func normalize(lines []string, sock string) string {
	var out []string
	var cols map[int]bool
	for _, l := range lines {
		f := strings.Fields(l)
		switch {
		case len(f) > 0 && f[0] == "NAME" && f[len(f)-1] == "PID":
			cols = map[int]bool{}
			for i, h := range f {
				switch h {
				case "PORT", "UPTIME", "CPU", "MEM", "TASKS", "PID":
					cols[i] = true
				}
			}
		case cols != nil && len(f) > 0:
			for i := range f {
				if cols[i] {
					f[i] = "#"
				}
			}
		default:
			cols = nil
		}
		if cols != nil {
			l = strings.Join(f, " ")
		}
		l = strings.ReplaceAll(l, sock, docSocket)
		l = pidRE.ReplaceAllString(l, "pid #")
		l = failRE.ReplaceAllString(l, "$1 … exit $3 …;")
		l = strings.TrimRight(l, " ")
		if len(out) > 0 && out[len(out)-1] == l {
			continue // a line the program printed on each of its runs
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// docSocket is the socket the examples show (the user daemon's, as uid
// 1000); the test's daemon listens elsewhere.
const docSocket = "/run/user/1000/socketley/socketley.sock"

// readOnly commands are retried until their output matches: they show a
// state that, once reached, stays (running after a start, a new pid after a
// crash).
var readOnly = regexp.MustCompile(`^socketley (ls|ps|show)\b`)

// skipped commands set up or follow (the build, the daemon the test runs
// itself, systemctl, logs -f).
var skipped = regexp.MustCompile(`^(make |go |systemctl |socketley daemon)|\s-f\b`)

// The output examples in README.md and docs/cli.md that are marked as
// checked are the real output: each command of the block runs (socketley
// against this test's daemon, in a directory with the programs the examples
// use), and its normalized stdout and stderr must equal the example's.
func TestDocExamples(t *testing.T) {
	e := newEnv(t)
	// The programs the examples name.
	real := filepath.Join(e.dir, "echo-service.real")
	if out, err := exec.Command("go", "build", "-o", real, "../../examples/echo-service").CombinedOutput(); err != nil {
		t.Fatalf("build the echo service: %v\n%s", err, out)
	}
	if err := os.MkdirAll(filepath.Join(e.dir, "bin", "examples"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.script("bin/examples/echo-service", fmt.Sprintf("exec %s -port %d", real, unassignedPort(t)))
	e.script("echo3", "echo 'listen tcp :7070: bind: address already in use' >&2\nexit 1")
	e.script("exit3", "echo 'config.toml: no such file' >&2\nexit 3")
	e.script("myapp", "exec sleep 1000")
	// socketley on $PATH is this binary, talking to this test's daemon.
	wrap := filepath.Join(e.dir, "path")
	if err := os.MkdirAll(wrap, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(wrap, "socketley"), []byte(fmt.Sprintf("#!/bin/sh\nexec %s --socket %s \"$@\"\n", binPath, e.sock)), 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PATH="+wrap+":"+os.Getenv("PATH"))

	var blocks []docBlock
	for _, f := range []string{"../../README.md", "../../docs/cli.md"} {
		blocks = append(blocks, checkedBlocks(t, f)...)
	}
	if len(blocks) < 4 {
		t.Fatalf("%d checked blocks in README.md and docs/cli.md, want at least 4", len(blocks))
	}
	run := func(cmdline string) string {
		c := exec.Command("sh", "-c", cmdline)
		c.Dir, c.Env = e.dir, env
		out, _ := c.CombinedOutput() // the exit status is not what is documented
		return strings.TrimRight(string(out), "\n")
	}
	for _, b := range blocks {
		if strings.Contains(strings.Join(b.steps[len(b.steps)-1].want, "\n"), "already exists: taken") {
			e.ok("add", "./myapp", "--name", "taken") // what the example adds again
		}
		for _, s := range b.steps {
			if skipped.MatchString(s.cmd) {
				continue
			}
			want := normalize(s.want, e.sock)
			got := run(s.cmd)
			if readOnly.MatchString(s.cmd) {
				deadline := time.Now().Add(waitTimeout)
				for normalize(strings.Split(got, "\n"), e.sock) != want && time.Now().Before(deadline) {
					time.Sleep(25 * time.Millisecond)
					got = run(s.cmd)
				}
			}
			if g := normalize(strings.Split(got, "\n"), e.sock); g != want {
				t.Errorf("%s: $ %s\nprints:\n%s\nthe example says:\n%s\n(normalized: got\n%s\nwant\n%s)", b.at, s.cmd, got, strings.Join(s.want, "\n"), g, want)
			}
		}
	}
}
