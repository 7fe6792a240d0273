package testreport

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The testdata files are real `go test -json` streams of a throw-away package:
// mixed.json (-count=2: a pass, a skip, a failure, a failing subtest),
// timeout.json (a test cut off by -timeout), buildfail.json (a compile
// error) and mainpanic.json (TestMain panics before any test).
func TestRead(t *testing.T) {
	tests := []struct {
		file         string
		runs         int
		failures     int
		failing      map[string]int
		skips        int
		skipReason   string
		echoContains []string
	}{
		{
			file: "mixed.json", runs: 12, failures: 6,
			failing:      map[string]int{"TestFail": 2, "TestSub": 2, "TestSub/b": 2},
			skips:        2,
			skipReason:   "a_test.go:4: needs systemd: no bus",
			echoContains: []string{"--- FAIL trx TestFail", "a_test.go:5: boom", "FAIL\ttrx"},
		},
		{
			file: "timeout.json", runs: 1, failures: 1,
			failing:      map[string]int{"TestHang": 1},
			echoContains: []string{"--- FAIL trx TestHang (cut off", "test timed out"},
		},
		{
			file: "buildfail.json", runs: 0, failures: 1,
			failing:      map[string]int{"(package)": 1},
			echoContains: []string{"undefined: undefined"},
		},
		{
			file: "mainpanic.json", runs: 0, failures: 1,
			failing:      map[string]int{"(package)": 1},
			echoContains: []string{"panic: no daemon"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var echo bytes.Buffer
			rep, err := Read(f, Options{Echo: &echo})
			if err != nil {
				t.Fatal(err)
			}
			ps := rep.Packages["trx"]
			if ps == nil {
				t.Fatalf("no stats for package trx: %+v", rep.Packages)
			}
			if ps.Runs != tt.runs || ps.Failures != tt.failures {
				t.Errorf("runs/failures = %d/%d, want %d/%d", ps.Runs, ps.Failures, tt.runs, tt.failures)
			}
			if len(ps.Failing) != len(tt.failing) {
				t.Errorf("failing = %v, want %v", ps.Failing, tt.failing)
			}
			for name, n := range tt.failing {
				if ps.Failing[name] != n {
					t.Errorf("failing[%s] = %d, want %d (all: %v)", name, ps.Failing[name], n, ps.Failing)
				}
			}
			if rep.Failed() != (tt.failures > 0) {
				t.Errorf("Failed() = %v", rep.Failed())
			}
			if len(rep.Skips) != tt.skips {
				t.Errorf("skips = %+v, want %d", rep.Skips, tt.skips)
			}
			if tt.skipReason != "" && (len(rep.Skips) == 0 || rep.Skips[0].Reason != tt.skipReason) {
				t.Errorf("skip reason = %+v, want %q", rep.Skips, tt.skipReason)
			}
			for _, want := range tt.echoContains {
				if !strings.Contains(echo.String(), want) {
					t.Errorf("echo lacks %q:\n%s", want, echo.String())
				}
			}
		})
	}
}

func TestWriteSkipsFoldsRepeats(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "mixed.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := Read(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	rep.WriteSkips(&b)
	want := "  SKIP trx TestSkip (×2): a_test.go:4: needs systemd: no bus\n"
	if b.String() != want {
		t.Errorf("WriteSkips = %q, want %q", b.String(), want)
	}
	b.Reset()
	rep.WriteStats(&b)
	if !strings.Contains(b.String(), "TestFail (2), TestSub (2), TestSub/b (2)") {
		t.Errorf("WriteStats lacks the failing tests:\n%s", b.String())
	}
}

func TestReadPassesThroughNonJSON(t *testing.T) {
	in := "go: downloading x v1\n" + `{"Action":"start","Package":"p"}` + "\n"
	var echo bytes.Buffer
	rep, err := Read(strings.NewReader(in), Options{Echo: &echo})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Malformed != 1 || !strings.Contains(echo.String(), "go: downloading") {
		t.Errorf("malformed=%d echo=%q", rep.Malformed, echo.String())
	}
}
