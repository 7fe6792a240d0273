package format

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/wire"
)

func TestTables(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	rts := []wire.Runtime{
		{Name: "a", Managed: true, Status: "running", PID: 42, Since: now.Add(-90 * time.Second), Type: "server", Port: 7070, Restarts: 1,
			Usage: &wire.Usage{CPUPercent: 12.46, MemoryBytes: 12_900_000, Tasks: 3, Source: wire.UsageCgroup, At: now}},
		{Name: "long-name", Status: "stopped"},
		{Name: "o", Orphan: true, Status: "orphan", PID: 7, Since: now},
	}
	var b bytes.Buffer
	if err := Table(&b, rts, now); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"NAME       MODE    TYPE    PORT  STATUS   RESTARTS  UPTIME  CPU    MEM    TASKS  PID\n" +
		"a          unit    server  7070  running  1         1m30s   12.5%  12.3M  3      42\n" +
		"long-name  attach  -       -     stopped  0         -       -      -      -      -\n" +
		"o          orphan  -       -     orphan   0         0s      -      -      -      7\n"
	if b.String() != want {
		t.Fatalf("ls table:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := PS(&b, rts[:1], now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if f := strings.Fields(lines[1]); f[len(f)-1] != "42" {
		t.Fatalf("ps: last column %q, want the pid", f[len(f)-1])
	}
	b.Reset()
	if err := Table(&b, nil, now); err != nil || strings.Count(b.String(), "\n") != 1 {
		t.Fatalf("empty table: %q", b.String())
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {-time.Second, "0s"}, {59 * time.Second, "59s"}, {61 * time.Second, "1m01s"},
		{3*time.Hour + 5*time.Minute, "3h05m"}, {50 * time.Hour, "2d02h"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := Duration(tt.d); got != tt.want {
				t.Fatalf("Duration(%v) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
}

func TestListen(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	rts := []wire.Runtime{
		{Name: "c", Unit: "socketley-c.service", Managed: true, Status: "running", PID: 9, Since: now, Listen: []string{"127.0.0.1:7070", "[::1]:7070"}},
		{Name: "go", Unit: "socketley-go.service", Managed: true, Status: "running", PID: 8, Since: now, Type: "server", Port: 7071, Listen: []string{"7071"}},
	}
	var b bytes.Buffer
	if err := Table(&b, rts, now); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"NAME  MODE  TYPE    PORT                        STATUS   RESTARTS  UPTIME  CPU  MEM  TASKS  PID\n" +
		"c     unit  -       127.0.0.1:7070,[::1]:7070*  running  0         0s      -    -    -      9\n" +
		"go    unit  server  7071                        running  0         0s      -    -    -      8\n"
	if b.String() != want {
		t.Fatalf("ls table:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := PS(&b, rts[:1], now); err != nil || !strings.Contains(b.String(), "127.0.0.1:7070,[::1]:7070*") {
		t.Fatalf("ps: %q, %v", b.String(), err)
	}
	b.Reset()
	if err := Show(&b, rts[:1], now); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Listen:    127.0.0.1:7070 [::1]:7070 (held by systemd: socketley-c.socket)\n") {
		t.Fatalf("show:\n%s", b.String())
	}
}

func TestSize(t *testing.T) {
	tests := []struct {
		b    uint64
		want string
	}{
		{0, "0B"}, {1023, "1023B"}, {1024, "1.0K"}, {1536, "1.5K"}, {12_900_000, "12.3M"},
		{99 << 20, "99.0M"}, {100 << 20, "100M"}, {1023 << 20, "1023M"}, {2 << 30, "2.0G"}, {5 << 40, "5.0T"},
		{1<<64 - 1, "16.0E"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := Size(tt.b); got != tt.want {
				t.Fatalf("Size(%d) = %q, want %q", tt.b, got, tt.want)
			}
		})
	}
}

// TestShowUsage: show's Usage line names where the figures come from, and
// is left out without a sample.
func TestShowUsage(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	u := func(src string) *wire.Usage {
		return &wire.Usage{CPUPercent: 1.23, MemoryBytes: 12_900_000, Tasks: 3, Source: src, At: now}
	}
	tests := []struct {
		name string
		r    wire.Runtime
		want string // "" = no Usage line
	}{
		{"cgroup", wire.Runtime{Name: "a", Managed: true, PID: 1, Usage: u(wire.UsageCgroup)},
			"Usage: cpu 1.2%, memory 12.3M, tasks 3 (from the unit's cgroup)\n"},
		{"managed, proc", wire.Runtime{Name: "a", Managed: true, PID: 1, Usage: u(wire.UsageProc)},
			"Usage: cpu 1.2%, memory 12.3M, tasks 3 (from /proc: the cgroup controllers are not available)\n"},
		{"attached", wire.Runtime{Name: "a", PID: 1, Usage: u(wire.UsageProc)},
			"Usage: cpu 1.2%, memory 12.3M, tasks 3 (from /proc)\n"},
		{"no sample", wire.Runtime{Name: "a", Managed: true}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := Show(&b, []wire.Runtime{tt.r}, now); err != nil {
				t.Fatal(err)
			}
			got := ""
			for _, l := range strings.SplitAfter(b.String(), "\n") {
				if v, ok := strings.CutPrefix(l, "Usage:"); ok {
					got = "Usage: " + strings.TrimLeft(v, " ")
				}
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q in\n%s", got, tt.want, b.String())
			}
		})
	}
}

// TestShowRestarts: show's Restarts line says how many of the restarts the
// health check made, when it made any.
func TestShowRestarts(t *testing.T) {
	for _, tt := range []struct {
		name string
		r    wire.Runtime
		want string
	}{
		{"none by health", wire.Runtime{Name: "a", Managed: true, Restarts: 3}, "Restarts: 3\n"},
		{"some by health", wire.Runtime{Name: "a", Managed: true, Restarts: 4, HealthRestarts: 1},
			"Restarts: 4 (1 by the health check; socketley why a says why)\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := Show(&b, []wire.Runtime{tt.r}, time.Now()); err != nil {
				t.Fatal(err)
			}
			for _, l := range strings.SplitAfter(b.String(), "\n") {
				if v, ok := strings.CutPrefix(l, "Restarts:"); ok {
					if got := "Restarts: " + strings.TrimLeft(v, " "); got != tt.want {
						t.Fatalf("got %q, want %q", got, tt.want)
					}
					return
				}
			}
			t.Fatalf("no Restarts line:\n%s", b.String())
		})
	}
}
