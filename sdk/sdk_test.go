package sdk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
)

// fakeDaemon answers each request line with reply(line) and records the lines.
type fakeDaemon struct {
	path  string
	lines chan string
}

func newFakeDaemon(t *testing.T, reply func(line string) (byte, string)) *fakeDaemon {
	t.Helper()
	d := &fakeDaemon{lines: make(chan string, 16)}
	d.path = testenv.FakeDaemon(t, func(line string) (byte, []byte) {
		d.lines <- line
		code, text := reply(line)
		return code, []byte(text)
	})
	return d
}

// failsafe bounds waits for something that must happen; it only turns a
// hang into a failure, so it is far longer than any correct run needs.
const failsafe = time.Minute

func (d *fakeDaemon) next(t *testing.T) string {
	t.Helper()
	select {
	case l := <-d.lines:
		return l
	case <-time.After(failsafe):
		t.Fatalf("no request reached the daemon within %v", failsafe)
		return ""
	}
}

func TestAttach(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		argName string
		want    string
	}{
		{"unmanaged", nil, "web", fmt.Sprintf("attach server web 7070 --pid %d", os.Getpid())},
		{"managed: name from the environment", map[string]string{EnvManaged: "1", EnvName: "svc"}, "web",
			fmt.Sprintf("attach server svc 7070 --pid %d --managed", os.Getpid())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newFakeDaemon(t, func(string) (byte, string) { return 0, "attached\n" })
			t.Setenv(EnvSocket, d.path)
			t.Setenv(EnvManaged, "")
			t.Setenv(EnvName, "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			if err := Attach(tt.argName, TypeServer, 7070); err != nil {
				t.Fatal(err)
			}
			if got := d.next(t); got != tt.want {
				t.Fatalf("daemon got %q, want %q", got, tt.want)
			}
			if err := Detach(); err != nil {
				t.Fatal(err)
			}
			if Managed() {
				// Detach returns only after the daemon's reply, and the
				// daemon queues each request before it replies: anything
				// the managed Detach sent is in d.lines already.
				select {
				case l := <-d.lines:
					t.Fatalf("managed Detach sent %q; a unit's entry must not be removed", l)
				default:
				}
				return
			}
			if got := d.next(t); got != "remove "+tt.argName {
				t.Fatalf("detach sent %q, want %q", got, "remove "+tt.argName)
			}
		})
	}
}

func TestAttachErrors(t *testing.T) {
	t.Setenv(EnvManaged, "")
	t.Setenv(EnvName, "")
	t.Run("unreachable", func(t *testing.T) {
		t.Setenv(EnvSocket, filepath.Join(t.TempDir(), "none.sock"))
		err := Attach("x", TypeServer, 1)
		if !errors.Is(err, ErrUnreachable) || errors.Is(err, ErrRefused) {
			t.Fatalf("got %v, want ErrUnreachable", err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		d := newFakeDaemon(t, func(string) (byte, string) { return 1, "runtime already exists: x\n" })
		t.Setenv(EnvSocket, d.path)
		err := Attach("x", TypeServer, 1)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "already exists") {
			t.Fatalf("got %v, want ErrRefused with the daemon's words", err)
		}
	})
	t.Run("spaces", func(t *testing.T) {
		if err := Attach("a b", TypeServer, 1); !errors.Is(err, ErrRefused) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestClientDo(t *testing.T) {
	d := newFakeDaemon(t, func(line string) (byte, string) {
		if strings.Contains(line, `"cmd":"show"`) {
			return 1, `{"error":"unknown runtime \"nope\""}`
		}
		return 0, `{"runtimes":[{"name":"a","status":"running","pid":7,"restarts":0,"owner_uid":0}]}`
	})
	c := NewClient(d.path)
	rts, err := c.List(t.Context())
	if err != nil || len(rts) != 1 || rts[0].PID != 7 {
		t.Fatalf("List = %+v, %v", rts, err)
	}
	if l := d.next(t); !strings.HasPrefix(l, `{"cmd":"ls"`) {
		t.Fatalf("request %q is not the JSON form", l)
	}
	_, err = c.Show(t.Context(), "nope")
	var re *ReplyError
	if !errors.As(err, &re) || re.Code != 1 || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "unknown runtime") {
		t.Fatalf("Show error = %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.List(ctx); err == nil {
		t.Fatal("a cancelled context did not fail the request")
	}
}
