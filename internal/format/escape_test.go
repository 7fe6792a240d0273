package format

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/socketley/socketley/internal/wire"
)

func TestEscape(t *testing.T) {
	tests := []struct {
		name, in, want, lines string // lines: EscapeLines(in)
	}{
		{"plain", "web-1", "web-1", "web-1"},
		{"empty", "", "", ""},
		{"printable unicode", "héllo wörld ✓ 日本", "héllo wörld ✓ 日本", "héllo wörld ✓ 日本"},
		{"backslash kept", `a\b`, `a\b`, `a\b`},
		{"ESC sequence", "x\x1b[2J\x1b]0;pwned\x07y", `x\x1b[2J\x1b]0;pwned\ay`, `x\x1b[2J\x1b]0;pwned\ay`},
		{"newline, tab, CR", "a\nb\tc\rd", `a\nb\tc\rd`, "a\nb\\tc\\rd"},
		{"NUL and other C0", "\x00\x01\x08\x1f", `\x00\x01\b\x1f`, `\x00\x01\b\x1f`},
		{"DEL", "a\x7fb", `a\x7fb`, `a\x7fb`},
		{"C1 (CSI, OSC)", "a\u009b2Jb\u009d", `a\u009b2Jb\u009d`, `a\u009b2Jb\u009d`},
		{"bidi override", "abc\u202edef", `abc\u202edef`, `abc\u202edef`},
		{"invalid UTF-8", "a\xffb\xc2", `a\xffb\xc2`, `a\xffb\xc2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Escape(tt.in); got != tt.want {
				t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got := EscapeLines(tt.in); got != tt.lines {
				t.Errorf("EscapeLines(%q) = %q, want %q", tt.in, got, tt.lines)
			}
		})
	}
}

// hostile is a runtime whose every text field carries terminal control
// sequences, as a daemon (or another user's registry entry) could send.
func hostile() wire.Runtime {
	const evil = "\x1b]0;owned\x07\x1b[2J\u009b31m\r\n"
	return wire.Runtime{
		Name: "n" + evil, Unit: "u" + evil, Status: "running" + evil, Reason: "r" + evil, Desired: "d" + evil,
		ActiveState: "a" + evil, SubState: "s" + evil, LastExit: "e" + evil, Type: "t" + evil,
		Path: "/p" + evil, Args: []string{"--x" + evil, "plain"}, Env: []string{"K=v" + evil}, WorkDir: "/w" + evil,
		User: "user" + evil, Restart: "always", PID: 7, Port: 80, Managed: true,
		Credentials: []wire.Credential{{ID: "i" + evil, Path: "/c" + evil}},
	}
}

// checkClean fails if out holds a control character other than a newline
// (a line break of the output itself).
func checkClean(t *testing.T, what, out string) {
	t.Helper()
	for i, r := range out {
		if r == '\n' {
			continue
		}
		if r == utf8.RuneError || unicode.IsControl(r) || r == '\u202e' {
			t.Fatalf("%s: control character %U at byte %d:\n%q", what, r, i, out)
		}
	}
}

func TestOutputIsEscaped(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	rts := []wire.Runtime{hostile(), {Name: "ok", Status: "stopped"}}
	tests := []struct {
		name  string
		write func(*bytes.Buffer) error
		lines int
	}{
		{"ls", func(b *bytes.Buffer) error { return Table(b, rts, now) }, 3},
		{"ps", func(b *bytes.Buffer) error { return PS(b, rts, now) }, 3},
		{"show", func(b *bytes.Buffer) error { return Show(b, rts[:1], now) }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.write(&b); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			checkClean(t, tt.name, out)
			if !strings.Contains(out, `n\x1b]0;owned\a\x1b[2J\u009b31m\r\n`) {
				t.Errorf("%s: the name is not shown escaped:\n%s", tt.name, out)
			}
			if tt.lines > 0 && strings.Count(out, "\n") != tt.lines {
				t.Errorf("%s: %d lines, want %d (a newline in a field broke a row):\n%s", tt.name, strings.Count(out, "\n"), tt.lines, out)
			}
		})
	}
}
