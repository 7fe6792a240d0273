package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/socketley/socketley/internal/wire"
)

// evil is text with terminal control sequences: set the window title, clear
// the screen, a one-byte CSI, a carriage return that overwrites the line.
const evil = "\x1b]0;owned\x07\x1b[2J\u009b31m\rfake\n"

// fakeDaemon answers every request on a socket of its own with code and
// res (a line-format request with res.Message as text), and returns the
// socket's path.
func fakeDaemon(t *testing.T, code byte, res wire.Result) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "d.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	payload, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			} else if err != nil {
				continue
			}
			go func() {
				defer c.Close()
				line, err := wire.ReadLine(bufio.NewReader(c))
				switch {
				case err != nil:
				case strings.HasPrefix(line, "{"):
					_ = wire.WriteReply(c, code, payload)
				default:
					// A line-format request (ls, ps): the table as text.
					_ = wire.WriteReply(c, code, []byte(res.Message))
				}
			}()
		}
	}()
	return path
}

// TestTextOutputIsEscaped: names, states, messages and errors from the
// daemon reach the terminal with their control characters escaped.
func TestTextOutputIsEscaped(t *testing.T) {
	rt := wire.Runtime{Name: "n" + evil, Unit: "u" + evil, Status: "s" + evil, PID: 7, Managed: true}
	ok := wire.Result{Runtimes: []wire.Runtime{rt}, Message: "m" + evil}
	tests := []struct {
		name string
		args []string
		code byte
		res  wire.Result
	}{
		{"add", []string{"add", "/bin/sh", "--name", "x", "-s"}, 0, ok},
		{"add without start", []string{"add", "/bin/sh", "--name", "x"}, 0, ok},
		{"start", []string{"start", "x"}, 0, ok},
		{"stop", []string{"stop", "x"}, 0, ok},
		{"restart", []string{"restart", "x"}, 0, ok},
		{"remove", []string{"remove", "x"}, 0, ok},
		{"attach", []string{"attach", "server", "x", "80", "--pid", "1"}, 0, ok},
		{"ls", []string{"ls"}, 0, ok},
		{"ps", []string{"ps"}, 0, ok},
		{"show", []string{"show", "x"}, 0, ok},
		{"error reply", []string{"stop", "x"}, 1, wire.Result{Error: "e" + evil}},
		{"version", []string{"version"}, 0, wire.Result{Version: &wire.VersionInfo{Version: "v" + evil, Commit: "c" + evil, Date: "d" + evil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SOCKETLEY_SOCKET", fakeDaemon(t, tt.code, tt.res))
			var out, errb bytes.Buffer
			Main(t.Context(), tt.args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
			all := out.String() + errb.String()
			if !strings.Contains(all, `\x1b]0;owned\a\x1b[2J\u009b31m\rfake`) {
				t.Errorf("the daemon's text is not shown escaped:\n%s", all)
			}
			for i, r := range all {
				if r != '\n' && (r == utf8.RuneError || unicode.IsControl(r)) {
					t.Fatalf("control character %U at byte %d of the output:\n%q", r, i, all)
				}
			}
		})
	}
}
