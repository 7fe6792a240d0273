package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/wire"
)

// topRuntimes: a, b, c with usage, idle without.
func topRuntimes() []wire.Runtime {
	at := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	u := func(cpu float64, mem uint64, tasks int) *wire.Usage {
		return &wire.Usage{CPUPercent: cpu, MemoryBytes: mem, Tasks: tasks, Source: wire.UsageProc, At: at}
	}
	return []wire.Runtime{
		{Name: "idle", Status: wire.StatusStopped, Restarts: 9},
		{Name: "b", Status: wire.StatusRunning, PID: 20, Restarts: 1, Usage: u(50, 1<<20, 8)},
		{Name: "c", Status: wire.StatusRunning, PID: 30, Restarts: 0, Usage: u(0.04, 300<<20, 1)},
		{Name: "a", Status: wire.StatusRunning, PID: 10, Restarts: 2, Usage: u(50, 2<<20, 3)},
	}
}

func names(rts []wire.Runtime) string {
	var n []string
	for _, r := range rts {
		n = append(n, r.Name)
	}
	return strings.Join(n, " ")
}

// TestSortTop: each sort key, largest first, runtimes without a sample
// last, ties by name.
func TestSortTop(t *testing.T) {
	tests := []struct{ key, want string }{
		{"cpu", "a b c idle"}, // a and b tie at 50%: by name
		{"mem", "c a b idle"},
		{"tasks", "b a c idle"},
		{"restarts", "idle a b c"},
		{"name", "a b c idle"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			rts := topRuntimes()
			sortTop(rts, tt.key)
			if got := names(rts); got != tt.want {
				t.Fatalf("sorted by %s: %s, want %s", tt.key, got, tt.want)
			}
		})
	}
}

// TestRenderTop: the header line and the table, with - for what has no
// sample or no process; on a screen, cleared first and with the keys.
func TestRenderTop(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 5, 0, time.UTC)
	var b bytes.Buffer
	if err := writeTop(&b, "table", topRuntimes(), "cpu", now, false); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"socketley top - " + now.Format("15:04:05") + " - 4 runtimes, 3 running - cpu 100.0%, memory 303M - sorted by cpu\n" +
		"NAME  STATUS   CPU%  MEM   TASKS  RESTARTS  PID\n" +
		"a     running  50.0  2.0M  3      2         10\n" +
		"b     running  50.0  1.0M  8      1         20\n" +
		"c     running  0.0   300M  1      0         30\n" +
		"idle  stopped  -     -     -      9         -\n"
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := writeTop(&b, "table", nil, "name", now, true); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); !strings.HasPrefix(got, "\x1b[H\x1b[2Jsocketley top - ") ||
		!strings.Contains(got, "0 runtimes, 0 running - cpu 0.0%, memory 0B - sorted by name (keys: c m t n r sort, q quits)\n") ||
		!strings.HasSuffix(got, "\nNAME  STATUS  CPU%  MEM  TASKS  RESTARTS  PID\n") {
		t.Fatalf("screen frame of nothing: %q", got)
	}
}

// TestTopJSON: -o json is one array per refresh on one line, sorted.
func TestTopJSON(t *testing.T) {
	var b bytes.Buffer
	for range 2 {
		if err := writeTop(&b, "json", topRuntimes(), "mem", time.Now(), true); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), b.String())
	}
	for _, l := range lines {
		var rts []wire.Runtime
		if err := json.Unmarshal([]byte(l), &rts); err != nil {
			t.Fatal(err)
		}
		if got := names(rts); got != "c a b idle" || rts[0].Usage == nil || rts[0].Usage.MemoryBytes != 300<<20 {
			t.Fatalf("json line: %s", l)
		}
	}
	b.Reset()
	if err := writeTop(&b, "json", nil, "cpu", time.Now(), false); err != nil || b.String() != "[]\n" {
		t.Fatalf("nothing: %q, %v", b.String(), err)
	}
}

// TestTopKeys: the keys that change the sort (either case) and the others.
func TestTopKeys(t *testing.T) {
	tests := []struct {
		key  byte
		want string
	}{{'c', "cpu"}, {'M', "mem"}, {'t', "tasks"}, {'n', "name"}, {'r', "restarts"}, {'x', ""}, {'q', ""}, {' ', ""}}
	for _, tt := range tests {
		t.Run(string(tt.key), func(t *testing.T) {
			if got := topSortKey(tt.key | 0x20); got != tt.want {
				t.Fatalf("key %q: %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}

// TestTopBadFlags: bad values are refused before the daemon is asked,
// with exit 1 and the flag named.
func TestTopBadFlags(t *testing.T) {
	sock := t.TempDir() + "/none.sock" // nothing listens: a flag error must come first
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"zero interval", []string{"--interval", "0s"}, "top: --interval 0s: give a duration from 100ms to 1h0m0s"},
		{"long interval", []string{"--interval", "2h"}, "top: --interval 2h0m0s: give a duration from 100ms to 1h0m0s"},
		{"interval syntax", []string{"--interval", "soon"}, `--interval "soon" is not valid`},
		{"sort", []string{"--sort", "pid"}, `top: --sort "pid" is not a column to sort by: use cpu, mem, tasks, name, restarts`},
		{"output", []string{"-o", "yaml"}, `top: -o/--output "yaml" is not a format: use table or json`},
		{"argument", []string{"web"}, "top"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(t.Context(), append([]string{"--socket", sock, "top", "--once"}, tt.args...), Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
			if code != 1 || !strings.Contains(errb.String(), tt.want) || out.Len() != 0 {
				t.Fatalf("exit %d, stderr %q, stdout %q; want exit 1 and %q", code, errb.String(), out.String(), tt.want)
			}
		})
	}
}
