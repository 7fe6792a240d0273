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
			if err := Attach(t.Context(), tt.argName, TypeServer, 7070); err != nil {
				t.Fatal(err)
			}
			if got := d.next(t); got != tt.want {
				t.Fatalf("daemon got %q, want %q", got, tt.want)
			}
			if err := Detach(t.Context()); err != nil {
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
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		err := Attach(ctx, "x", TypeServer, 1)
		if !errors.Is(err, ErrUnreachable) || errors.Is(err, ErrRefused) {
			t.Fatalf("got %v, want ErrUnreachable", err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		d := newFakeDaemon(t, func(string) (byte, string) { return 1, "runtime already exists: x\n" })
		t.Setenv(EnvSocket, d.path)
		err := Attach(t.Context(), "x", TypeServer, 1)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "already exists") {
			t.Fatalf("got %v, want ErrRefused with the daemon's words", err)
		}
	})
	// The daemon's rules are checked before connecting (wire.AttachSpec.Check):
	// class invalid, and no request is sent (the socket does not exist).
	t.Setenv(EnvSocket, filepath.Join(t.TempDir(), "none.sock"))
	for _, tt := range []struct {
		name, runtime, typ string
		port               int
		msg                string
	}{
		{"spaces", "a b", TypeServer, 1, "invalid runtime name"},
		{"empty name", "", TypeServer, 1, "empty runtime name"},
		{"unknown type", "x", "database", 1, `unknown type "database"`},
		{"port 0", "x", TypeServer, 0, "port 0 out of range"},
		{"port too big", "x", TypeCache, 70000, "port 70000 out of range"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Attach(t.Context(), tt.runtime, tt.typ, tt.port)
			if !errors.Is(err, ErrInvalid) || errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v, want ErrInvalid mentioning %q", err, tt.msg)
			}
		})
	}
}

// TestClient: the typed methods send the JSON form; a refusal is a
// *ReplyError with the daemon's words; a command that failed for one of
// its runtimes returns the runtimes with the error, that one marked; a done
// context fails the request.
func TestClient(t *testing.T) {
	d := newFakeDaemon(t, func(line string) (byte, string) {
		switch {
		case strings.Contains(line, `"cmd":"show"`):
			return 1, `{"error":"unknown runtime \"nope\"","class":"not-found"}`
		case strings.Contains(line, `"cmd":"start"`):
			return 1, `{"error":"start b: b exited","class":"failed","runtimes":[` +
				`{"name":"a","status":"running","pid":7,"restarts":0,"owner_uid":0},` +
				`{"name":"b","status":"failed","failed":"b exited","failed_class":"failed","restarts":0,"owner_uid":0}]}`
		case strings.Contains(line, `"cmd":"remove"`):
			return 0, `{"message":"removed a"}`
		}
		return 0, `{"runtimes":[{"name":"a","status":"running","pid":7,"restarts":0,"owner_uid":0}]}`
	})
	c := NewClient(d.path)
	rts, err := c.List(t.Context())
	if err != nil || len(rts) != 1 || rts[0].PID != 7 || rts[0].Status != StatusRunning {
		t.Fatalf("List = %+v, %v", rts, err)
	}
	if l := d.next(t); !strings.HasPrefix(l, `{"cmd":"ls"`) {
		t.Fatalf("request %q is not the JSON form", l)
	}

	_, err = c.Show(t.Context(), "nope")
	var re *ReplyError
	if !errors.As(err, &re) || re.Code != 1 || re.Class != ClassNotFound || !errors.Is(err, ErrRefused) ||
		!errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "unknown runtime") {
		t.Fatalf("Show error = %v", err)
	}
	d.next(t)

	rts, err = c.Start(t.Context(), StartOptions{Wait: true}, "a", "b")
	if !errors.Is(err, ErrFailed) || len(rts) != 2 || rts[0].Failed != "" || rts[1].Failed != "b exited" || rts[1].FailedClass != ClassFailed {
		t.Fatalf("Start = %+v, %v; want both runtimes, b marked failed, and ErrFailed", rts, err)
	}
	if l := d.next(t); !strings.Contains(l, `"wait":true`) {
		t.Fatalf("Start sent %q, without the wait", l)
	}

	if err := c.Remove(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	if l := d.next(t); !strings.HasPrefix(l, `{"cmd":"remove","names":["a"]`) {
		t.Fatalf("Remove sent %q", l)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.List(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled context gave %v", err)
	}
}
