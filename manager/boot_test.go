package manager

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// reply sends one request line and returns the reply frame's code and text.
func reply(t *testing.T, sock, line string) (byte, string) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Errorf("dial %s: %v", sock, err)
		return 0, ""
	}
	defer c.Close()
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		t.Errorf("send %q: %v", line, err)
		return 0, ""
	}
	b, err := readFrame(c)
	if err != nil || len(b) < 2 {
		t.Errorf("%q: no reply: %v", line, err)
		return 0, ""
	}
	return b[0], string(b[1 : len(b)-1])
}

// bootState writes a registry with one desired-running managed entry per
// name (their units missing, as after a reboot) into dir.
func bootState(t *testing.T, dir string, names ...string) {
	t.Helper()
	reg := newRegistry()
	for _, n := range names {
		reg.put(&Entry{Name: n, Managed: true, Path: "/bin/true", Desired: DesiredRunning, Started: true})
	}
	if err := (&Store{dir: dir}).Save(reg); err != nil {
		t.Fatal(err)
	}
}

// TestRunServesWhileBooting: the socket accepts before the daemon has
// connected to systemd; version is answered at once, ls once connected, a
// managed attach of the runtime the reconcile is starting as soon as that
// start returns, and a command that changes the registry (an unmanaged
// attach) after the reconcile. Nothing is refused. Every step waits for the event it checks.
func TestRunServesWhileBooting(t *testing.T) {
	dir := t.TempDir()
	bootState(t, dir, "app")
	f := newFake()
	f.nextPID = os.Getpid() - 1 // the started unit's main pid is this test process
	dialing, dial := make(chan struct{}), make(chan struct{})
	starting, start := make(chan struct{}), make(chan struct{})
	f.onStart = func(units.Status) { close(starting); <-start }
	sock := filepath.Join(dir, "run", "s.sock")
	m, err := New(Config{Mode: paths.User, Socket: sock, StateDir: dir,
		Dial: func(ctx context.Context) (Systemd, error) {
			close(dialing)
			select {
			case <-dial:
				return f, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var runErr error
	ran := make(chan struct{})
	go func() { runErr = m.Run(ctx); close(ran) }()
	t.Cleanup(func() { cancel(); <-ran })

	<-dialing // the socket listens before the daemon dials systemd
	if code, text := reply(t, sock, "version"); code != wire.CodeOK {
		t.Fatalf("version while connecting: code %d %q", code, text)
	}
	type answer struct {
		code byte
		text string
	}
	ask := func(line string) <-chan answer {
		ch := make(chan answer, 1)
		go func() { c, s := reply(t, sock, line); ch <- answer{c, s} }()
		return ch
	}
	ls := ask("ls")
	close(dial)
	<-starting // the reconcile is starting "app" and holds its lock
	if a := <-ls; a.code != wire.CodeOK {
		t.Fatalf("ls during the reconcile: code %d %q", a.code, a.text)
	}
	attach := ask(fmt.Sprintf("attach server app 8080 --pid %d --managed", os.Getpid()))
	other := ask(fmt.Sprintf("attach client other 8081 --pid %d", os.Getpid()))
	close(start)
	if a := <-attach; a.code != wire.CodeOK || !strings.Contains(a.text, "attached app") {
		t.Fatalf("managed attach during the reconcile: code %d %q", a.code, a.text)
	}
	if a := <-other; a.code != wire.CodeOK {
		t.Fatalf("unmanaged attach sent during the reconcile: code %d %q", a.code, a.text)
	}
	f.mu.Lock()
	calls := strings.Join(f.calls, ",")
	f.mu.Unlock()
	if calls != "start app" {
		t.Fatalf("systemd calls %q, want only the reconcile's start", calls)
	}
	cancel()
	<-ran
	if runErr != nil {
		t.Fatalf("Run: %v", runErr)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind after shutdown: %v", err)
	}
}

// TestRunRefusesBeforeTouchingSystemd: a socket that another daemon holds,
// or a socket path that is unsafe, stops Run before it dials systemd (so
// nothing is reconciled) and leaves the registry as it was. Stale temp
// files of an interrupted write are removed at start.
func TestRunRefusesBeforeTouchingSystemd(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, runDir string) // runDir is the socket's directory, missing
		msg   string
	}{
		{"socket taken by another daemon", func(t *testing.T, runDir string) {
			if err := os.Mkdir(runDir, 0o700); err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("unix", filepath.Join(runDir, "s.sock"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = ln.Close() })
		}, "already listening"},
		{"directory is a symlink", func(t *testing.T, runDir string) {
			if err := os.Symlink(t.TempDir(), runDir); err != nil {
				t.Fatal(err)
			}
		}, "is a symlink"},
		{"directory of another user", func(t *testing.T, runDir string) {
			if err := os.Mkdir(runDir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(runDir, os.Geteuid()+1, -1); err != nil {
				testenv.Skipf(t, "cannot chown (not root): %v", err)
			}
		}, "is owned by uid"},
		{"directory writable by others", func(t *testing.T, runDir string) {
			if err := os.Mkdir(runDir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(runDir, 0o777); err != nil {
				t.Fatal(err)
			}
		}, "writable by group or others"},
		{"socket path is a regular file", func(t *testing.T, runDir string) {
			if err := os.Mkdir(runDir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(runDir, "s.sock"), []byte("keep"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is not a socket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			state := filepath.Join(dir, "state")
			if err := os.Mkdir(state, 0o700); err != nil {
				t.Fatal(err)
			}
			bootState(t, state, "app")
			before, err := os.ReadFile(filepath.Join(state, stateFile))
			if err != nil {
				t.Fatal(err)
			}
			stale := filepath.Join(state, "."+stateFile+".tmp12345")
			if err := os.WriteFile(stale, []byte("half"), 0o600); err != nil {
				t.Fatal(err)
			}
			runDir := filepath.Join(dir, "run")
			tt.setup(t, runDir)
			var dialed atomic.Bool
			m, err := New(Config{Mode: paths.User, Socket: filepath.Join(runDir, "s.sock"), StateDir: state,
				Dial: func(context.Context) (Systemd, error) { dialed.Store(true); return newFake(), nil }})
			if err != nil {
				t.Fatal(err)
			}
			err = m.Run(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Run: %v, want an error mentioning %q", err, tt.msg)
			}
			if dialed.Load() {
				t.Fatal("Run dialed systemd before it had the socket")
			}
			if after, _ := os.ReadFile(filepath.Join(state, stateFile)); string(after) != string(before) {
				t.Fatal("registry changed")
			}
			if _, err := os.Lstat(stale); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("stale temp file not removed: %v", err)
			}
		})
	}
}

// TestStoreCleanTemp removes only the registry's temp files.
func TestStoreCleanTemp(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{".registry.json.tmp1", ".registry.json.tmp999", "registry.json", "daemon.lock", "other.tmp1"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := (&Store{dir: dir}).cleanTemp()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(removed, ","); got != ".registry.json.tmp1,.registry.json.tmp999" {
		t.Fatalf("removed %q", got)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 3 {
		t.Fatalf("%d files left, want 3", len(left))
	}
}
