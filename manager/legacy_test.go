package manager

import (
	"errors"
	"reflect"
	"testing"

	"github.com/socketley/socketley/internal/wire"
)

func TestParseLegacy(t *testing.T) {
	tests := []struct {
		line string
		want wire.Request
		err  bool
	}{
		// Byte sequences the C++ SDK sends (attach.h / control.h).
		{"attach server echo 7070 --pid 1234 --managed", wire.Request{Cmd: "attach", Attach: &wire.AttachSpec{Type: "server", Name: "echo", Port: 7070, PID: 1234, Managed: true}}, false},
		{"attach\tcache  c1\t6379 --pid 9", wire.Request{Cmd: "attach", Attach: &wire.AttachSpec{Type: "cache", Name: "c1", Port: 6379, PID: 9}}, false},
		{"remove echo", wire.Request{Cmd: "remove", Names: []string{"echo"}}, false},
		{"ls", wire.Request{Cmd: "ls"}, false},
		{"ps", wire.Request{Cmd: "ps"}, false},
		{"stop web-* api", wire.Request{Cmd: "stop", Names: []string{"web-*", "api"}}, false},
		{"start a --wait", wire.Request{Cmd: "start", Names: []string{"a"}, Wait: true}, false},
		{"add /bin/x --name y -s --env A=1 -- -p 1", wire.Request{Cmd: "add", Add: &wire.AddSpec{Name: "y", Path: "/bin/x", Start: true, Env: []string{"A=1"}, Args: []string{"-p", "1"}}}, false},
		{"attach server echo 7070", wire.Request{}, true},              // no --pid
		{"attach server echo port --pid 1", wire.Request{}, true},      // bad port
		{"attach server echo 1 --pid 1 --bogus", wire.Request{}, true}, // unknown flag
		{"stop", wire.Request{}, true},
		{"stop -x a", wire.Request{}, true},
		{"ls extra", wire.Request{}, true},
		{"frobnicate", wire.Request{}, true},
		{"add", wire.Request{}, true},
		{"add /bin/x extra", wire.Request{}, true},
		{"add /bin/x --name", wire.Request{}, true},
		{"add /bin/x --restart-sec soon", wire.Request{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, err := parseLegacy(tt.line)
			if tt.err {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("got %+v, %v; want ErrInvalid", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// FuzzParseLegacy checks the line parser never panics and that every error it
// returns is a bad-input error (exit code 1).
func FuzzParseLegacy(f *testing.F) {
	for _, s := range []string{"attach server x 1 --pid 2 --managed", "add /x -- a b", "ls", "stop a*", "add /x --env", "\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		_, err := parseLegacy(line)
		if err != nil && replyCode(err) != wire.CodeInvalid {
			t.Fatalf("parseLegacy(%q) error %v has code %d, want 1", line, err, replyCode(err))
		}
	})
}
