package manager

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// TestReplace: add with Replace changes a runtime in place: the old unit
// is stopped and the new one started from the new settings, while the
// restart count, history and creation time stay. A new unit systemd
// refuses brings the old settings back, running as before; refused
// replacements (not found, another user's, a bad file) call systemd for
// nothing.
func TestReplace(t *testing.T) {
	m, f := newTestManager(t)
	ctx := t.Context()
	bin := exe(t, t.TempDir(), "svc")
	if _, err := m.add(ctx, me(), wire.AddSpec{Name: "web", Path: bin, Args: []string{"-a"}, Start: true}, false, 0); err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	history := []wire.RestartRecord{{Time: created, Kind: wire.EventRestarted, Cause: "exited (KILL)"}}
	if err := m.update(func(r *Registry) error {
		e := r.mod("web")
		e.Restarts, e.Created, e.History = 3, created, history
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	replace := func(s wire.AddSpec) (int, string) {
		t.Helper()
		s.Name = "web"
		return dispatchJSON(t, m, me(), wire.Request{Cmd: wire.CmdAdd, Add: &s, Replace: true})
	}
	kept := func(what string) {
		t.Helper()
		e, _ := m.entry("web")
		if e.Restarts != 3 || !e.Created.Equal(created) || !slices.Equal(e.History, history) {
			t.Fatalf("%s: restarts %d, created %v, history %v: not kept", what, e.Restarts, e.Created, e.History)
		}
	}

	calls := len(f.callsSince(0))
	if code, out := replace(wire.AddSpec{Path: bin, Args: []string{"-b"}, Start: true, Env: []string{"A=1"}}); code != 0 || !strings.Contains(out, "replaced web") {
		t.Fatalf("replace: code %d: %s", code, out)
	}
	if got := f.callsSince(calls); !slices.Equal(got, []string{"stop web", "start web"}) {
		t.Fatalf("replace called %v, want the old unit stopped, the new one started", got)
	}
	if spec := f.specOf("web"); !slices.Equal(spec.Args, []string{"-b"}) || !slices.Contains(spec.Env, "A=1") {
		t.Fatalf("the new unit: args %v env %v", spec.Args, spec.Env)
	}
	kept("replace")

	// systemd refuses the new unit: the old settings come back, running.
	f.startErrFor = func(s units.Spec) error {
		if slices.Contains(s.Args, "-bad") {
			return fmt.Errorf("start: %w", units.ErrInvalid)
		}
		return nil
	}
	calls = len(f.callsSince(0))
	code, out := replace(wire.AddSpec{Path: bin, Args: []string{"-bad"}, Start: true})
	if code != 1 || !strings.Contains(out, "systemd refused the new unit") || !strings.Contains(out, "the old settings are back, running again") {
		t.Fatalf("a refused new unit: code %d: %s", code, out)
	}
	if got := f.callsSince(calls); !slices.Equal(got, []string{"stop web", "start web", "start web"}) {
		t.Fatalf("a refused new unit called %v", got)
	}
	if e, _ := m.entry("web"); !slices.Equal(e.Args, []string{"-b"}) || e.Desired != DesiredRunning || !slices.Equal(f.specOf("web").Args, []string{"-b"}) {
		t.Fatalf("after the refused replacement: args %v desired %s, unit args %v", e.Args, e.Desired, f.specOf("web").Args)
	}
	kept("a refused replacement")
	f.startErrFor = nil

	// Without start: replaced and stopped.
	calls = len(f.callsSince(0))
	if code, out := replace(wire.AddSpec{Path: bin, Args: []string{"-c"}}); code != 0 || !strings.Contains(out, "replaced web (stopped)") {
		t.Fatalf("replace stopped: code %d: %s", code, out)
	}
	if got := f.callsSince(calls); !slices.Equal(got, []string{"stop web"}) {
		t.Fatalf("replace stopped called %v", got)
	}
	if e, _ := m.entry("web"); e.Desired != DesiredStopped || !slices.Equal(e.Args, []string{"-c"}) {
		t.Fatalf("replace stopped: desired %s args %v", e.Desired, e.Args)
	}
	kept("replace stopped")

	calls = len(f.callsSince(0))
	tests := []struct {
		name   string
		caller Caller
		spec   wire.AddSpec
		want   error
	}{
		{"not there", me(), wire.AddSpec{Name: "nosuch", Path: bin}, ErrNotFound},
		{"another user's", nonRoot(), wire.AddSpec{Name: "web", Path: bin}, ErrDenied},
		{"a missing file", me(), wire.AddSpec{Name: "web", Path: "/nonexistent/svc"}, ErrInvalid},
		{"a bad name", me(), wire.AddSpec{Name: "we b", Path: bin}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.replace(ctx, tt.caller, tt.spec)
			if !errors.Is(err, tt.want) {
				t.Fatalf("replace: %v, want %v", err, tt.want)
			}
		})
	}
	if got := f.callsSince(calls); len(got) != 0 {
		t.Fatalf("refused replacements called systemd: %v", got)
	}
}

// dispatchJSON sends req as the CLI does and returns the reply's code and
// payload.
func dispatchJSON(t *testing.T, m *Manager, caller Caller, req wire.Request) (int, string) {
	t.Helper()
	b, err := req.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	code, payload := m.dispatch(t.Context(), caller, string(b))
	return int(code), string(payload)
}

// TestReplaceOwner: in system mode, root replacing another user's runtime
// keeps that user as its owner and runs it as that user; when root names
// another user with run_as, root owns the runtime from then on, so that no
// user owns a unit that runs as someone else.
func TestReplaceOwner(t *testing.T) {
	m, f := newTestManager(t)
	m.cfg.Mode = paths.System
	root := Caller{PID: os.Getpid()}
	nobody := 65534 // in /etc/passwd on Debian: nobody
	// A directory nobody may reach: the replacement is checked as its
	// owner would add it.
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := exe(t, dir, "svc")
	rootOnly := filepath.Join(dir, "root.env")
	if err := os.WriteFile(rootOnly, []byte("TOKEN=s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := m.add(t.Context(), root, wire.AddSpec{Name: "web", Path: bin, RunAs: "nobody", Start: true}, false, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.update(func(r *Registry) error { r.mod("web").OwnerUID = nobody; return nil }); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		runAs     string
		wantOwner int
		wantUser  string
		wantNote  string
	}{
		{"no run_as: the owner's user", "", nobody, "nobody", ""},
		{"the owner's user", "nobody", nobody, "nobody", ""},
		{"another user: root owns it", "root", 0, "root", "belongs to uid 0 now, no longer to uid 65534"},
	}
	// Kept by its owner, it may get only what the owner could give it.
	code, out := dispatchJSON(t, m, root, wire.Request{Cmd: wire.CmdAdd, Replace: true,
		Add: &wire.AddSpec{Name: "web", Path: bin, EnvFiles: []string{rootOnly}, Start: true}})
	if code != int(wire.CodeInvalid) || !strings.Contains(out, "it stays uid 65534's, who could not add it so") {
		t.Fatalf("a root-only env file for nobody's runtime: code %d: %s", code, out)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := dispatchJSON(t, m, root, wire.Request{Cmd: wire.CmdAdd, Replace: true,
				Add: &wire.AddSpec{Name: "web", Path: bin, Args: []string{tt.name}, RunAs: tt.runAs, Start: true}})
			if code != 0 || !strings.Contains(out, tt.wantNote) {
				t.Fatalf("replace: code %d: %s", code, out)
			}
			e, _ := m.entry("web")
			if e.OwnerUID != tt.wantOwner || e.User != tt.wantUser || f.specOf("web").User != tt.wantUser {
				t.Fatalf("owner %d user %q (unit %q), want %d %q", e.OwnerUID, e.User, f.specOf("web").User, tt.wantOwner, tt.wantUser)
			}
		})
	}
}

// TestInterruptedReplace: a daemon that dies after a replace switched the
// settings but before it recorded the new unit as started (here: that
// write fails) restores the old settings at its next start: the new unit
// is stopped and the old one started.
func TestInterruptedReplace(t *testing.T) {
	m, f := newTestManager(t)
	bin := exe(t, t.TempDir(), "svc")
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "web", Path: bin, Args: []string{"-a"}, Start: true}, false, 0); err != nil {
		t.Fatal(err)
	}
	failRecord(m, "web", finishedReplace)
	if _, err := m.replace(t.Context(), me(), wire.AddSpec{Name: "web", Path: bin, Args: []string{"-b"}, Start: true}); err == nil ||
		!strings.Contains(err.Error(), "recording that it is done failed") || !strings.Contains(err.Error(), "gives web its old settings back") {
		t.Fatalf("replace whose last write failed: %v", err)
	}
	if !slices.Equal(f.specOf("web").Args, []string{"-b"}) {
		t.Fatalf("the new unit: %v", f.specOf("web").Args)
	}
	calls := len(f.callsSince(0))
	m2 := restartDaemon(t, m, f)
	e, _ := m2.entry("web")
	if e.Prev != nil || !slices.Equal(e.Args, []string{"-a"}) || e.Desired != DesiredRunning {
		t.Fatalf("after the restart: args %v desired %s prev %v", e.Args, e.Desired, e.Prev != nil)
	}
	if got := f.callsSince(calls); !slices.Contains(got, "stop web") || !slices.Equal(f.specOf("web").Args, []string{"-a"}) {
		t.Fatalf("the reconcile called %v; the unit runs %v", got, f.specOf("web").Args)
	}
}

// TestReplaceListen: a --listen runtime replaced with other addresses
// gets a socket on the new ones only; replaced with none, its socket is
// stopped and its exe link removed, and it runs as a plain unit.
func TestReplaceListen(t *testing.T) {
	m, f := newTestManager(t)
	ctx := t.Context()
	bin := exe(t, t.TempDir(), "srv")
	a, b := freeListen(t), freeListen(t)
	if _, err := m.add(ctx, me(), wire.AddSpec{Name: "web", Path: bin, Start: true, Listen: []string{a}}, false, 0); err != nil {
		t.Fatal(err)
	}
	calls := len(f.callsSince(0))
	if _, err := m.replace(ctx, me(), wire.AddSpec{Name: "web", Path: bin, Start: true, Listen: []string{b}}); err != nil {
		t.Fatal(err)
	}
	if got := f.callsSince(calls); !slices.Equal(got, []string{"stop-socket web", "stop web", "start-socket web", "start-loaded web"}) {
		t.Fatalf("replace with other addresses called %v", got)
	}
	if got := f.socket("web"); !slices.Equal(got, []string{b}) {
		t.Fatalf("the socket listens on %v, want [%s]", got, b)
	}
	if _, err := os.Lstat(m.exeLink("web")); err != nil {
		t.Fatalf("exe link of a listen runtime: %v", err)
	}

	calls = len(f.callsSince(0))
	if _, err := m.replace(ctx, me(), wire.AddSpec{Name: "web", Path: bin, Start: true}); err != nil {
		t.Fatal(err)
	}
	if got := f.callsSince(calls); !slices.Equal(got, []string{"stop-socket web", "stop web", "start web"}) {
		t.Fatalf("replace without addresses called %v", got)
	}
	if got := f.socket("web"); len(got) != 0 {
		t.Fatalf("a socket is left: %v", got)
	}
	if _, err := os.Lstat(m.exeLink("web")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the exe link is left: %v", err)
	}
	if spec := f.specOf("web"); spec.Path != bin {
		t.Fatalf("the plain unit runs %s, want %s", spec.Path, bin)
	}
}

// TestRequestFlagsOutOfPlace: mine, check and replace given to a command
// they do not apply to are refused, not ignored.
func TestRequestFlagsOutOfPlace(t *testing.T) {
	m, _ := newTestManager(t)
	add := &wire.AddSpec{Name: "web", Path: "/bin/sh"}
	tests := []struct {
		name string
		req  wire.Request
		want string
	}{
		{"mine on ps", wire.Request{Cmd: wire.CmdPS, Mine: true}, "mine is for ls only"},
		{"check on start", wire.Request{Cmd: wire.CmdStart, Names: []string{"web"}, Check: true}, "check and replace are for add only"},
		{"replace on stop", wire.Request{Cmd: wire.CmdStop, Names: []string{"web"}, Replace: true}, "check and replace are for add only"},
		{"replace with wait", wire.Request{Cmd: wire.CmdAdd, Add: add, Replace: true, Wait: true}, "add with replace does not wait"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := dispatchJSON(t, m, me(), tt.req)
			if code != int(wire.CodeInvalid) || !strings.Contains(out, tt.want) || !strings.Contains(out, `"class":"invalid"`) {
				t.Fatalf("code %d: %s; want invalid, %q", code, out, tt.want)
			}
		})
	}
}

// TestReplaceRecordFailedThenReconnect: when only the record of a finished
// replace failed, the daemon that made it keeps the new settings at a
// later reconcile (after a reconnect to systemd): it clears the stale
// Prev instead of rolling back (which would also start a runtime stopped
// since).
func TestReplaceRecordFailedThenReconnect(t *testing.T) {
	m, f := newTestManager(t)
	bin := exe(t, t.TempDir(), "svc")
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "web", Path: bin, Args: []string{"-a"}, Start: true}, false, 0); err != nil {
		t.Fatal(err)
	}
	m.booted.Store(true) // a running daemon, past its start's reconcile
	failRecord(m, "web", finishedReplace)
	if _, err := m.replace(t.Context(), me(), wire.AddSpec{Name: "web", Path: bin, Args: []string{"-b"}, Start: true}); err == nil {
		t.Fatal("replace whose last write failed: no error")
	}
	m.store.failSave = nil
	if _, err := m.stop(t.Context(), me(), []string{"web"}); err != nil {
		t.Fatal(err)
	}
	m.reconcile(t.Context())
	e, _ := m.entry("web")
	if e.Prev != nil || !slices.Equal(e.Args, []string{"-b"}) || e.Desired != DesiredStopped {
		t.Fatalf("after the reconcile: args %v desired %s prev %t; want -b, stopped, no prev", e.Args, e.Desired, e.Prev != nil)
	}
	if st, ok := f.Snapshot()["web"]; ok && st.ActiveState == "active" {
		t.Fatalf("the reconcile started the stopped runtime: %+v", st)
	}
}

// TestReplaceFirstWriteFails: when the new settings cannot be recorded,
// nothing is replaced, and the old unit, stopped already, runs again.
func TestReplaceFirstWriteFails(t *testing.T) {
	m, f := newTestManager(t)
	bin := exe(t, t.TempDir(), "svc")
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "web", Path: bin, Args: []string{"-a"}, Start: true}, false, 0); err != nil {
		t.Fatal(err)
	}
	failRecord(m, "web", func(e *Entry) bool { return e.Prev != nil })
	_, err := m.replace(t.Context(), me(), wire.AddSpec{Name: "web", Path: bin, Args: []string{"-b"}, Start: true})
	if err == nil || !strings.Contains(err.Error(), "nothing was replaced") || !strings.Contains(err.Error(), "running again") {
		t.Fatalf("replace whose first write failed: %v", err)
	}
	e, _ := m.entry("web")
	st := f.Snapshot()["web"]
	if !slices.Equal(e.Args, []string{"-a"}) || st.ActiveState != "active" || !slices.Equal(f.specOf("web").Args, []string{"-a"}) {
		t.Fatalf("after the failed replace: args %v, unit %s running %v", e.Args, st.ActiveState, f.specOf("web").Args)
	}
}

// failRecord makes every registry write fail (as on a full disk) whose
// entry name matches when.
func failRecord(m *Manager, name string, when func(*Entry) bool) {
	m.store.failSave = func(r *Registry) error {
		if e, ok := r.get(name); ok && when(e) {
			return errors.New("write: no space left on device")
		}
		return nil
	}
}

// finishedReplace matches the write that records a replace to -b as done.
func finishedReplace(e *Entry) bool { return e.Prev == nil && slices.Equal(e.Args, []string{"-b"}) }
