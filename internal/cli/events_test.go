package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/wire"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 6, 16, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"10m", now.Add(-10 * time.Minute), false},
		{"1h30m", now.Add(-90 * time.Minute), false},
		{"2026-12-06T15:00:00Z", time.Date(2026, 12, 6, 15, 0, 0, 0, time.UTC), false},
		{"2026-12-06T15:00:00.5+01:00", time.Date(2026, 12, 6, 14, 0, 0, 5e8, time.UTC), false},
		{"", time.Time{}, true},
		{"yesterday", time.Time{}, true},
		{"-10m", time.Time{}, true},
		{"0s", time.Time{}, true},
		{"10", time.Time{}, true},
		{"2026-12-06", time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSince(tt.in, now)
			if tt.err {
				if err == nil || !strings.Contains(err.Error(), "--since") || !strings.Contains(err.Error(), "RFC 3339") {
					t.Fatalf("got %v, %v; want an error naming --since and the syntax", got, err)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestEventLine(t *testing.T) {
	code := 3
	ev := wire.Event{Time: time.Unix(0, 0), Name: "api", Kind: wire.EventExited, Reason: "exit code 3\x1b[2J", ExitCode: &code, PID: 7}
	line := eventLine(ev)
	if !strings.Contains(line, "api") || !strings.Contains(line, "exited") || !strings.Contains(line, "exit code 3") || !strings.Contains(line, "pid 7") {
		t.Fatalf("line %q", line)
	}
	if strings.ContainsRune(line, '\x1b') {
		t.Fatalf("line %q writes an escape sequence to the terminal", line)
	}
}
