// Package testreport reads the event stream of `go test -json` and summarises
// it: which tests failed (with their output), which were skipped and why, and,
// for repeated runs (-count=N), how many times each package's tests ran and
// failed. scripts/test.sh and scripts/stress.sh use it through
// internal/testreport/cmd/testreport, so that a skip is never silent and a
// flaky test is named.
package testreport

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"
)

// Event is one line of `go test -json` (see `go doc test2json`).
type Event struct {
	Time       time.Time
	Action     string
	Package    string
	Test       string
	Elapsed    float64
	Output     string
	ImportPath string // build-output and build-fail events
}

// PackageTest names a test, or the package itself when Test is empty (a build
// failure, a panic outside a test, a timeout).
type PackageTest struct {
	Package string
	Test    string
}

// String is "pkg TestName", or "pkg (package)" for the package itself.
func (p PackageTest) String() string {
	if p.Test == "" {
		return p.Package + " (package)"
	}
	return p.Package + " " + p.Test
}

// Skip is a skipped test and the reason its t.Skip gave.
type Skip struct {
	PackageTest
	Reason string
}

// Failure is one failed run of a test, with the output of that run.
type Failure struct {
	PackageTest
	Output string
}

// PackageStats counts a package's test runs (every run of every test,
// subtests included, over all -count repetitions) and failed runs.
type PackageStats struct {
	Package  string
	Runs     int
	Failures int
	// Failing maps a failing test's name to how many of its runs failed.
	Failing map[string]int
	// NoTests is set when the package has no tests at all.
	NoTests bool
}

// Report is what a `go test -json` stream said.
type Report struct {
	Packages map[string]*PackageStats
	Skips    []Skip
	Failures []Failure
	// Malformed counts input lines that were not JSON events (e.g. a crash of
	// the go command itself); they are passed to the Echo writer as they are.
	Malformed int
}

// Failed reports whether any test or package failed.
func (r *Report) Failed() bool { return len(r.Failures) > 0 }

// Options controls Read.
type Options struct {
	// Echo, if not nil, receives a readable log while the stream is read:
	// package result lines ("ok", "FAIL"), the full output of every failed
	// test, and every non-JSON line.
	Echo io.Writer
}

// Read consumes a `go test -json` stream until EOF.
func Read(r io.Reader, opt Options) (*Report, error) {
	rep := &Report{Packages: map[string]*PackageStats{}}
	out := map[PackageTest]*strings.Builder{} // output of the current run of each test
	open := map[PackageTest]bool{}            // tests that started and have not ended
	echo := func(s string) {
		if opt.Echo != nil {
			_, _ = io.WriteString(opt.Echo, s)
		}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev Event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			rep.Malformed++
			echo(string(line) + "\n")
			continue
		}
		if ev.Package == "" {
			if ev.Action == "build-output" {
				echo(ev.Output) // compiler errors: the package's fail event follows
			}
			continue
		}
		ps := rep.Packages[ev.Package]
		if ps == nil {
			ps = &PackageStats{Package: ev.Package, Failing: map[string]int{}}
			rep.Packages[ev.Package] = ps
		}
		key := PackageTest{ev.Package, ev.Test}
		switch ev.Action {
		case "start":
		case "run":
			ps.Runs++
			out[key] = &strings.Builder{}
			open[key] = true
		case "output":
			b := out[key]
			if b == nil {
				b = &strings.Builder{}
				out[key] = b
			}
			b.WriteString(ev.Output)
			if ev.Test == "" && isResultLine(ev.Output) {
				echo(ev.Output)
			}
		case "skip":
			if ev.Test == "" {
				ps.NoTests = true
				break
			}
			rep.Skips = append(rep.Skips, Skip{key, skipReason(out[key].String())})
			delete(out, key)
			delete(open, key)
		case "pass":
			delete(out, key)
			delete(open, key)
		case "fail":
			text := ""
			if b := out[key]; b != nil {
				text = b.String()
			}
			if ev.Test == "" {
				// The package failed. Tests still running were cut off (a
				// timeout or a panic in another goroutine): each counts as a
				// failed run. If no test failed at all, the cause is in the
				// package's own output (build error, TestMain, timeout).
				var cut []PackageTest
				for k := range open {
					if k.Package == ev.Package {
						cut = append(cut, k)
					}
				}
				sort.Slice(cut, func(i, j int) bool { return cut[i].Test < cut[j].Test })
				for _, k := range cut {
					ps.Failures++
					ps.Failing[k.Test]++
					f := Failure{k, out[k].String() + text}
					rep.Failures = append(rep.Failures, f)
					echo(fmt.Sprintf("--- FAIL %s (cut off when the package failed)\n%s", k, indent(f.Output)))
					delete(out, k)
					delete(open, k)
				}
				if ps.Failures == 0 {
					rep.Failures = append(rep.Failures, Failure{key, text})
					ps.Failures++
					ps.Failing["(package)"]++
				}
				if ps.Failing["(package)"] > 0 {
					echo(fmt.Sprintf("--- FAIL %s\n%s", key, indent(text)))
				}
				delete(out, key)
				break
			}
			ps.Failures++
			ps.Failing[ev.Test]++
			rep.Failures = append(rep.Failures, Failure{key, text})
			echo(fmt.Sprintf("--- FAIL %s\n%s", key, indent(text)))
			delete(out, key)
			delete(open, key)
		}
	}
	if err := sc.Err(); err != nil {
		return rep, fmt.Errorf("read go test -json stream: %w", err)
	}
	return rep, nil
}

func isResultLine(s string) bool {
	return strings.HasPrefix(s, "ok  \t") || strings.HasPrefix(s, "FAIL\t") ||
		strings.HasPrefix(s, "?   \t") || strings.HasPrefix(s, "FAIL ")
}

// skipReason takes the lines a skipped test printed, minus the framing lines
// that go test adds ("=== RUN", "--- SKIP"), and joins them.
func skipReason(s string) string {
	var parts []string
	for l := range strings.SplitSeq(s, "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		parts = append(parts, t)
	}
	if len(parts) == 0 {
		return "(no reason given)"
	}
	return strings.Join(parts, " / ")
}

func indent(s string) string {
	var b strings.Builder
	for l := range strings.SplitSeq(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

// WriteSkips prints every skipped test with its reason, sorted, one per line.
func (r *Report) WriteSkips(w io.Writer) {
	skips := slices.Clone(r.Skips)
	sort.Slice(skips, func(i, j int) bool { return skips[i].String() < skips[j].String() })
	// With -count=N a skip repeats N times: print it once, with the count.
	for i := 0; i < len(skips); {
		j := i
		for j < len(skips) && skips[j] == skips[i] {
			j++
		}
		n := ""
		if j-i > 1 {
			n = fmt.Sprintf(" (×%d)", j-i)
		}
		fmt.Fprintf(w, "  SKIP %s%s: %s\n", skips[i].PackageTest, n, skips[i].Reason)
		i = j
	}
}

// WriteStats prints a table of packages: runs, failures and the failing
// tests with their failure counts.
func (r *Report) WriteStats(w io.Writer) {
	names := make([]string, 0, len(r.Packages))
	for n := range r.Packages {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "%-55s %7s %8s  %s\n", "PACKAGE", "RUNS", "FAILURES", "FAILING TESTS")
	for _, n := range names {
		ps := r.Packages[n]
		if ps.NoTests && ps.Runs == 0 {
			continue
		}
		var failing []string
		for t, c := range ps.Failing {
			failing = append(failing, fmt.Sprintf("%s (%d)", t, c))
		}
		sort.Strings(failing)
		fmt.Fprintf(w, "%-55s %7d %8d  %s\n", n, ps.Runs, ps.Failures, strings.Join(failing, ", "))
	}
}
