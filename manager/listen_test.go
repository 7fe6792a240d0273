package manager

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
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

// freeListen returns "127.0.0.1:PORT" for a port nobody listened on a
// moment ago.
func freeListen(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// callsSince returns the fake's calls from index i on.
func (f *fakeSystemd) callsSince(i int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls[i:])
}

func (f *fakeSystemd) ncalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func (f *fakeSystemd) specOf(name string) units.Spec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.specs[name]
}

// TestAddListen: add --listen -s opens the socket (its service created from
// the listen spec: ExecStart is the exe link, no start limit, and on the
// daemon's backoff Restart=no) and starts the service; the view shows the
// addresses; restart keeps the socket; stop closes it before stopping the
// service; start opens it again; remove closes both and drops the exe link.
func TestAddListen(t *testing.T) {
	m, f := newTestManager(t)
	ctx := t.Context()
	bin := exe(t, t.TempDir(), "srv")
	addr := freeListen(t)
	creds := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(creds, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := m.add(ctx, me(), wire.AddSpec{Name: "web", Path: bin, Start: true, Listen: []string{addr, addr},
		StopTimeout: wire.Duration(3 * time.Second), Credentials: []wire.Credential{{ID: "tok", Path: creds}}}, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.callsSince(0); !slices.Equal(got, []string{"start-socket web", "start-loaded web"}) {
		t.Fatalf("calls %v, want the socket, then the service", got)
	}
	if got := f.socket("web"); !slices.Equal(got, []string{addr}) {
		t.Fatalf("socket listens on %v, want [%s] (duplicates dropped)", got, addr)
	}
	spec := f.specOf("web")
	link := filepath.Join(m.cfg.StateDir, "exe", "web")
	if spec.Path != link || spec.Restart != wire.RestartNo || !spec.NoStartLimit || spec.StartLimitBurst != 0 ||
		spec.StopTimeout != 3*time.Second || len(spec.Credentials) != 1 {
		t.Fatalf("service spec %+v; want ExecStart %s, Restart=no, no start limit, the stop timeout and the credential", spec, link)
	}
	if target, err := os.Readlink(link); err != nil || target != bin {
		t.Fatalf("exe link -> %q, %v; want %s", target, err, bin)
	}
	if r := m.view("web"); !slices.Equal(r.Listen, []string{addr}) || r.Status != wire.StatusRunning {
		t.Fatalf("view: listen %v, status %s", r.Listen, r.Status)
	}

	n := f.ncalls()
	if _, err := m.restart(ctx, me(), []string{"web"}, false, 0); err != nil {
		t.Fatal(err)
	}
	if got := f.callsSince(n); !slices.Equal(got, []string{"stop web", "start-loaded web"}) {
		t.Fatalf("restart: calls %v; want the service stopped and started under the socket", got)
	}
	if f.socket("web") == nil {
		t.Fatal("restart closed the socket")
	}

	n = f.ncalls()
	if _, err := m.stop(ctx, me(), []string{"web"}); err != nil {
		t.Fatal(err)
	}
	if got := f.callsSince(n); !slices.Equal(got, []string{"stop-socket web", "stop web"}) {
		t.Fatalf("stop: calls %v; want the socket closed first", got)
	}
	n = f.ncalls()
	if _, err := m.start(ctx, me(), []string{"web"}, false, 0); err != nil {
		t.Fatal(err)
	}
	if got := f.callsSince(n); !slices.Equal(got, []string{"start-socket web", "start-loaded web"}) {
		t.Fatalf("start: calls %v", got)
	}
	n = f.ncalls()
	if _, err := m.remove(ctx, me(), []string{"web"}); err != nil {
		t.Fatal(err)
	}
	if got := f.callsSince(n); !slices.Equal(got, []string{"stop-socket web", "stop web"}) {
		t.Fatalf("remove: calls %v", got)
	}
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("exe link after remove: %v", err)
	}
	if _, ok := f.Snapshot()["web"]; ok {
		t.Fatal("service still loaded after remove")
	}
}

// TestAddListenNative: under systemd's own backoff the listen service keeps
// the runtime's Restart= policy and its steps, without a start limit.
func TestAddListenNative(t *testing.T) {
	m, f := newTestManager(t)
	m.native = true
	bin := exe(t, t.TempDir(), "srv")
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "n", Path: bin, Start: true, Listen: []string{freeListen(t)}}, false, 0); err != nil {
		t.Fatal(err)
	}
	spec := f.specOf("n")
	if spec.Restart != "on-failure" || spec.RestartSteps == 0 || !spec.NoStartLimit || spec.StartLimitBurst != 0 {
		t.Fatalf("native listen spec %+v; want Restart=on-failure with RestartSteps and no start limit", spec)
	}
}

// TestAddListenRefused: a bad address, a port in use, too many addresses,
// and a socket systemd cannot open register nothing.
func TestAddListenRefused(t *testing.T) {
	m, f := newTestManager(t)
	bin := exe(t, t.TempDir(), "srv")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	many := make([]string, wire.MaxListen+1)
	for i := range many {
		many[i] = fmt.Sprint(40000 + i)
	}
	tests := []struct {
		name   string
		listen []string
		msg    string
	}{
		{"host name", []string{"localhost:80"}, "the host must be an IP address"},
		{"bad port", []string{"70000"}, "the port must be"},
		{"in use", []string{busy.Addr().String()}, "cannot listen there: bind: address already in use"},
		{"too many", many, "at most 16 are accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.add(t.Context(), me(), wire.AddSpec{Name: "x", Path: bin, Start: true, Listen: tt.listen}, false, 0)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("add: %v; want ErrInvalid mentioning %q", err, tt.msg)
			}
		})
	}
	if m.reg.len() != 0 || len(f.callsSince(0)) != 0 {
		t.Fatalf("refused adds left %d entries, calls %v", m.reg.len(), f.callsSince(0))
	}

	// The probe passed, but systemd could not listen (taken meanwhile).
	f.socketErr = &units.JobError{Unit: units.SocketName("x"), Job: "start", Result: units.JobFailed}
	_, err = m.add(t.Context(), me(), wire.AddSpec{Name: "x", Path: bin, Start: true, Listen: []string{freeListen(t)}}, false, 0)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "systemd could not listen") || replyCode(err) != wire.CodeInvalid {
		t.Fatalf("add with a socket systemd cannot open: %v", err)
	}
	if m.reg.len() != 0 {
		t.Fatal("the runtime stayed registered after its socket failed")
	}
	if _, err := os.Lstat(m.exeLink("x")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("exe link after a failed add: %v", err)
	}
}

// TestListenPrivilegedPort: the system daemon's systemd binds as root, so
// a non-root caller may not have it listen on a privileged port.
func TestListenPrivilegedPort(t *testing.T) {
	m, _ := newTestManager(t)
	m.cfg.Mode = paths.System
	s := wire.AddSpec{Name: "x", Listen: []string{"80"}}
	if err := m.validateListen(nonRoot(), &s); !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "port 80 is privileged") {
		t.Fatalf("non-root --listen 80 on the system daemon: %v", err)
	}
}

// TestListenCrashAndGiveUp: on the daemon's backoff a crashed listen
// service is started again by the backoff with its socket kept; a runtime
// given up on (--max-restarts) has its socket closed, and start opens it
// again.
func TestListenCrashAndGiveUp(t *testing.T) {
	m, f := newTestManager(t)
	ctx := t.Context()
	bin := exe(t, t.TempDir(), "srv")
	if _, err := m.add(ctx, me(), wire.AddSpec{Name: "c", Path: bin, Start: true, MaxRestarts: 1, Listen: []string{freeListen(t)}}, false, 0); err != nil {
		t.Fatal(err)
	}
	crash := func() {
		st := f.Snapshot()["c"]
		st.ActiveState, st.SubState, st.MainPID = units.ActiveFailed, units.SubFailed, 0
		st.Result, st.ExecMainCode, st.ExecMainStatus = "signal", units.CodeKilled, 9
		f.set(st)
	}
	crash()
	m.supervise(ctx) // first failure: a start at once
	m.heals.Wait()
	if st := f.Snapshot()["c"]; st.ActiveState != units.ActiveActive || f.socket("c") == nil {
		t.Fatalf("after a crash: service %s, socket %v; want it started again under its socket", st.ActiveState, f.socket("c"))
	}
	crash()
	m.supervise(ctx) // second failure in a row: more than --max-restarts 1
	m.heals.Wait()
	if e, _ := m.entry("c"); !gaveUp(e) || f.socket("c") != nil {
		t.Fatalf("given up: %v, socket %v; want the socket closed", e.Backoff, f.socket("c"))
	}
	if _, err := m.start(ctx, me(), []string{"c"}, false, 0); err != nil {
		t.Fatal(err)
	}
	if f.socket("c") == nil || f.Snapshot()["c"].ActiveState != units.ActiveActive {
		t.Fatal("start did not open the socket and start the service")
	}
}

// TestListenAlwaysRestartsACleanExit: Restart=always of a listen runtime
// on the daemon's backoff (its unit has Restart=no) restarts a clean exit.
func TestListenAlwaysRestartsACleanExit(t *testing.T) {
	m, f := newTestManager(t)
	ctx := t.Context()
	bin := exe(t, t.TempDir(), "srv")
	if _, err := m.add(ctx, me(), wire.AddSpec{Name: "a", Path: bin, Start: true, Restart: "always", Listen: []string{freeListen(t)}}, false, 0); err != nil {
		t.Fatal(err)
	}
	st := f.Snapshot()["a"]
	st.ActiveState, st.SubState, st.MainPID = units.ActiveInactive, units.SubDead, 0
	f.set(st)
	m.supervise(ctx)
	m.heals.Wait()
	if st := f.Snapshot()["a"]; st.ActiveState != units.ActiveActive {
		t.Fatalf("after a clean exit under Restart=always: %s, want started again", st.ActiveState)
	}
}

// TestListenReconcile: after a reboot (no units) a desired-running listen
// runtime gets its socket and service back; a desired-stopped one whose
// socket survived (the daemon died between the two) has it closed.
func TestListenReconcile(t *testing.T) {
	m, f := newTestManager(t)
	ctx := t.Context()
	bin := exe(t, t.TempDir(), "srv")
	for _, n := range []string{"up", "down"} {
		if _, err := m.add(ctx, me(), wire.AddSpec{Name: n, Path: bin, Start: true, Listen: []string{freeListen(t)}}, false, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.update(func(r *Registry) error { r.mod("down").Desired = DesiredStopped; return nil }); err != nil {
		t.Fatal(err)
	}
	// "down" was stopped up to its socket: the service is down, the socket open.
	st := f.Snapshot()["down"]
	st.ActiveState, st.SubState, st.MainPID = units.ActiveInactive, units.SubDead, 0
	f.set(st)
	// A reboot drops "up"'s units, and its exe link must come back too.
	f.mu.Lock()
	delete(f.units, "up")
	delete(f.sockets, "up")
	f.mu.Unlock()
	if err := os.Remove(m.exeLink("up")); err != nil {
		t.Fatal(err)
	}
	m2 := restartDaemon(t, m, f)
	if f.socket("up") == nil || f.Snapshot()["up"].ActiveState != units.ActiveActive {
		t.Fatalf("up after the reboot: socket %v, service %+v", f.socket("up"), f.Snapshot()["up"])
	}
	if target, err := os.Readlink(m2.exeLink("up")); err != nil || target != bin {
		t.Fatalf("exe link after the reboot: %q, %v", target, err)
	}
	if f.socket("down") != nil {
		t.Fatal("the socket of a desired-stopped runtime is still open after the reconcile")
	}
}

// onStartFails makes the fake's started processes of the executable bad
// exit at once (exit code 3): the exe link of a listen unit, or the path.
func onStartFails(f *fakeSystemd, bad string) {
	f.onStart = func(st units.Status) {
		path := st.ExecStart[0]
		if t, err := os.Readlink(path); err == nil {
			path = t
		}
		if path != bad {
			return
		}
		st.ActiveState, st.SubState, st.MainPID = units.ActiveFailed, units.SubFailed, 0
		st.Result, st.ExecMainCode, st.ExecMainStatus = "exit-code", units.CodeExited, 3
		f.set(st)
	}
}

// TestUpgrade: upgrade switches the path and restarts (a listen runtime
// under its socket, through the exe link); a new executable that does not
// come up is switched back, and the error says why; nothing is left half
// done in the registry.
func TestUpgrade(t *testing.T) {
	for _, listen := range []bool{false, true} {
		t.Run(fmt.Sprintf("listen=%t", listen), func(t *testing.T) {
			m, f := newTestManager(t)
			ctx := t.Context()
			dir := t.TempDir()
			v1, v2, bad := exe(t, dir, "v1"), exe(t, dir, "v2"), exe(t, dir, "bad")
			spec := wire.AddSpec{Name: "u", Path: v1, Start: true}
			if listen {
				spec.Listen = []string{freeListen(t)}
			}
			if _, err := m.add(ctx, me(), spec, false, 0); err != nil {
				t.Fatal(err)
			}
			onStartFails(f, bad)
			res, err := m.upgrade(ctx, me(), []string{"u"}, v2, testWait)
			if err != nil {
				t.Fatal(err)
			}
			if r := res.Runtimes[0]; r.Path != v2 || r.Status != wire.StatusRunning {
				t.Fatalf("after upgrade: path %s, status %s", r.Path, r.Status)
			}
			if e, _ := m.entry("u"); e.Path != v2 || e.PrevPath != "" {
				t.Fatalf("entry after upgrade: path %s, prev %q", e.Path, e.PrevPath)
			}
			if listen {
				if target, _ := os.Readlink(m.exeLink("u")); target != v2 || f.socket("u") == nil {
					t.Fatalf("exe link -> %s, socket %v", target, f.socket("u"))
				}
			} else if got := f.Snapshot()["u"].ExecStart[0]; got != v2 {
				t.Fatalf("unit runs %s, want %s", got, v2)
			}

			_, err = m.upgrade(ctx, me(), []string{"u"}, bad, 2*time.Second)
			if !errors.Is(err, ErrFailed) || replyCode(err) != wire.CodeInvalid ||
				!strings.Contains(err.Error(), bad+" did not come up") || !strings.Contains(err.Error(), "exit code 3") ||
				!strings.Contains(err.Error(), "switched back to "+v2+", running again") {
				t.Fatalf("upgrade to a failing executable: %v", err)
			}
			if e, _ := m.entry("u"); e.Path != v2 || e.PrevPath != "" || e.Backoff != nil {
				t.Fatalf("entry after the switch back: path %s, prev %q, backoff %+v", e.Path, e.PrevPath, e.Backoff)
			}
			if st := f.Snapshot()["u"]; st.ActiveState != units.ActiveActive {
				t.Fatalf("after the switch back the unit is %s", st.ActiveState)
			}
		})
	}
}

// TestUpgradeRefused: bad input changes nothing.
func TestUpgradeRefused(t *testing.T) {
	m, f := newTestManager(t)
	dir := t.TempDir()
	v1 := exe(t, dir, "v1")
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "u", Path: v1}, false, 0); err != nil {
		t.Fatal(err)
	}
	n := f.ncalls()
	for _, tt := range []struct {
		names []string
		path  string
		class error
		msg   string
	}{
		{[]string{"u"}, filepath.Join(dir, "nope"), ErrInvalid, "no such file"},
		{[]string{"u"}, "rel", ErrInvalid, "not absolute"},
		{[]string{"u-*"}, v1, ErrInvalid, "one runtime name"},
		{[]string{"nope"}, v1, ErrNotFound, "unknown runtime"},
	} {
		if _, err := m.upgrade(t.Context(), me(), tt.names, tt.path, 0); !errors.Is(err, tt.class) || !strings.Contains(err.Error(), tt.msg) {
			t.Fatalf("upgrade %v %s: %v; want %v mentioning %q", tt.names, tt.path, err, tt.class, tt.msg)
		}
	}
	if _, err := m.upgrade(t.Context(), nonRoot(), []string{"u"}, v1, 0); !errors.Is(err, ErrDenied) {
		t.Fatalf("upgrade by another user: %v", err)
	}
	if e, _ := m.entry("u"); e.Path != v1 || e.PrevPath != "" || f.ncalls() != n {
		t.Fatalf("refused upgrades changed something: %+v, calls %v", e, f.callsSince(n))
	}
	// One upgrade at a time: another one under way (its wait releases the
	// runtime's lock) is refused.
	if err := m.update(func(r *Registry) error { r.mod("u").PrevPath = v1; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := m.upgrade(t.Context(), me(), []string{"u"}, v1, 0); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "an upgrade of u is under way") {
		t.Fatalf("upgrade during another: %v", err)
	}
}

// TestInterruptedUpgrade: a daemon that died after recording an upgrade
// (Path new, PrevPath old) switches back at its next start and restarts the
// unit that may run the new executable.
func TestInterruptedUpgrade(t *testing.T) {
	for _, listen := range []bool{false, true} {
		t.Run(fmt.Sprintf("listen=%t", listen), func(t *testing.T) {
			m, f := newTestManager(t)
			dir := t.TempDir()
			v1, v2 := exe(t, dir, "v1"), exe(t, dir, "v2")
			spec := wire.AddSpec{Name: "u", Path: v1, Start: true}
			if listen {
				spec.Listen = []string{freeListen(t)}
			}
			if _, err := m.add(t.Context(), me(), spec, false, 0); err != nil {
				t.Fatal(err)
			}
			// The switch was recorded and the new executable started, then the daemon died.
			if err := m.update(func(r *Registry) error { e := r.mod("u"); e.Path, e.PrevPath = v2, v1; return nil }); err != nil {
				t.Fatal(err)
			}
			if listen {
				if err := m.setExeLink("u", v2); err != nil {
					t.Fatal(err)
				}
			} else {
				st := f.Snapshot()["u"]
				st.ExecStart = []string{v2}
				f.set(st)
			}
			pid := f.Snapshot()["u"].MainPID
			m2 := restartDaemon(t, m, f)
			e, _ := m2.entry("u")
			if e.Path != v1 || e.PrevPath != "" {
				t.Fatalf("after the reconcile: path %s, prev %q; want %s and none", e.Path, e.PrevPath, v1)
			}
			st := f.Snapshot()["u"]
			if st.ActiveState != units.ActiveActive || st.MainPID == pid {
				t.Fatalf("unit %s pid %d (was %d): want restarted", st.ActiveState, st.MainPID, pid)
			}
			if listen {
				if target, _ := os.Readlink(m2.exeLink("u")); target != v1 || f.socket("u") == nil {
					t.Fatalf("exe link -> %s, socket %v", target, f.socket("u"))
				}
			} else if st.ExecStart[0] != v1 {
				t.Fatalf("unit runs %s", st.ExecStart[0])
			}
		})
	}
}

// TestExeLinksOfSimilarNames: the exe link of one runtime is never the temp
// file of another's ("api" and "api.new"), so setting one leaves the other
// pointing where it did.
func TestExeLinksOfSimilarNames(t *testing.T) {
	m, _ := newTestManager(t)
	for _, tt := range []struct{ name, path string }{
		{"api.new", "/usr/bin/new-one"}, {"api", "/usr/bin/old-one"}, {"api.tmp", "/usr/bin/third"}, {"api", "/usr/bin/old-two"},
	} {
		if err := m.setExeLink(tt.name, tt.path); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]string{"api.new": "/usr/bin/new-one", "api": "/usr/bin/old-two", "api.tmp": "/usr/bin/third"} {
		if got, err := os.Readlink(m.exeLink(name)); err != nil || got != want {
			t.Fatalf("exe link of %s: %q %v, want %q", name, got, err, want)
		}
	}
}

// TestCheckAdd: add with Check makes add's checks and changes nothing. A
// taken name is no problem (apply checks a replacement before it removes
// the runtime), and the addresses that runtime listens on are not probed,
// since its removal frees them; any other address in use is refused.
func TestCheckAdd(t *testing.T) {
	m, f := newTestManager(t)
	m.cfg.Mode = paths.System
	bin := exe(t, t.TempDir(), "srv")
	held := freeListen(t)
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "web", Path: bin, Listen: []string{held}}, false, 0); err != nil {
		t.Fatal(err)
	}
	// What the runtime's socket unit does: hold the address.
	ln, err := net.Listen("tcp", held)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// A name add would refuse: an unregistered unit's.
	f.set(units.Status{Name: "stray", Unit: units.Name("stray"), LoadState: "loaded", ActiveState: "active", SubState: "running", MainPID: 99999})
	calls := len(f.callsSince(0))
	tests := []struct {
		name   string
		caller Caller
		spec   wire.AddSpec
		want   string // "" = passes
	}{
		{"another user's runtime", nonRoot(), wire.AddSpec{Name: "web", Path: "/bin/sh"}, "runtime already exists: web"},
		{"an unregistered unit", me(), wire.AddSpec{Name: "stray", Path: bin}, "is the name of an unregistered unit"},
		{"a new runtime", me(), wire.AddSpec{Name: "api", Path: bin, Args: []string{"-v"}}, ""},
		{"a replacement on the address it holds", me(), wire.AddSpec{Name: "web", Path: bin, Args: []string{"-v"}, Listen: []string{held}}, ""},
		{"another runtime on that address", me(), wire.AddSpec{Name: "api", Path: bin, Listen: []string{held}}, "cannot listen there"},
		{"no such file", me(), wire.AddSpec{Name: "web", Path: "/nonexistent/srv"}, "no such file: /nonexistent/srv"},
		{"a bad limit", me(), wire.AddSpec{Name: "web", Path: bin, Limits: wire.LimitArgs{MemoryMax: "lots"}}, "--memory-max"},
		{"an unknown --run-as user", me(), wire.AddSpec{Name: "web", Path: bin, RunAs: "no-such-user-here"}, "unknown user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := json.Marshal(wire.Request{Cmd: wire.CmdAdd, Add: &tt.spec, Check: true})
			if err != nil {
				t.Fatal(err)
			}
			code, payload := m.dispatch(t.Context(), tt.caller, string(req))
			if tt.want == "" && (code != wire.CodeOK || !strings.Contains(string(payload), "every check passed; nothing was changed")) ||
				tt.want != "" && (code != wire.CodeInvalid || !strings.Contains(string(payload), tt.want)) {
				t.Fatalf("code %d: %s; want %q", code, payload, tt.want)
			}
		})
	}
	if got := f.callsSince(calls); len(got) != 0 {
		t.Fatalf("a check called systemd: %v", got)
	}
	var names []string
	for _, r := range m.list(false) {
		if !r.Orphan {
			names = append(names, r.Name)
		}
	}
	if !slices.Equal(names, []string{"web"}) {
		t.Fatalf("registered after the checks: %v", names)
	}
}
