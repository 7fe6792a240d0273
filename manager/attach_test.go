package manager

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/proc"
	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// child starts a process that sleeps and is reaped at cleanup.
func child(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// exitSignal waits for cmd and returns the signal that ended it (0 if none).
func exitSignal(t *testing.T, cmd *exec.Cmd) syscall.Signal {
	t.Helper()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(testWait):
		t.Fatalf("pid %d did not exit within %s", cmd.Process.Pid, testWait)
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return ws.Signal()
	}
	return 0
}

// nonRoot is a non-root caller whose process is this test.
func nonRoot() Caller { return Caller{UID: 4242, GID: 4242, PID: os.Getpid()} }

func attachSpec(name string, pid int) wire.AttachSpec {
	return wire.AttachSpec{Type: "server", Name: name, Port: 7070, PID: pid}
}

func TestAttachValidation(t *testing.T) {
	m, _ := newTestManager(t)
	other := child(t).Process.Pid
	tests := []struct {
		name   string
		caller Caller
		spec   wire.AttachSpec
		class  error
		msg    string
	}{
		{"unknown type", me(), wire.AttachSpec{Type: "daemon", Name: "a", Port: 1, PID: os.Getpid()}, ErrInvalid, "unknown type"},
		{"port 0", me(), wire.AttachSpec{Type: "server", Name: "a", Port: 0, PID: os.Getpid()}, ErrInvalid, "out of range"},
		{"port 65536", me(), wire.AttachSpec{Type: "server", Name: "a", Port: 65536, PID: os.Getpid()}, ErrInvalid, "out of range"},
		{"bad name", me(), wire.AttachSpec{Type: "server", Name: "a b", Port: 1, PID: os.Getpid()}, ErrInvalid, "invalid runtime name"},
		{"pid 0", me(), wire.AttachSpec{Type: "server", Name: "a", Port: 1, PID: 0}, ErrInvalid, "not a process id"},
		{"no such process (root)", Caller{PID: os.Getpid()}, attachSpec("a", 1<<22+12345), ErrInvalid, "no process"},
		{"another process (non-root)", nonRoot(), attachSpec("a", other), ErrDenied, "is not the calling process"},
		{"managed: unknown runtime", me(), wire.AttachSpec{Type: "server", Name: "nope", Port: 1, PID: os.Getpid(), Managed: true}, ErrNotFound, "no managed runtime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.attach(t.Context(), tt.caller, tt.spec)
			if !errors.Is(err, tt.class) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v, want %v mentioning %q", err, tt.class, tt.msg)
			}
			if replyCode(err) != wire.CodeInvalid {
				t.Fatalf("reply code %d, want 1", replyCode(err))
			}
		})
	}
	if n := len(m.list(false)); n != 0 {
		t.Fatalf("rejected attaches left %d entries", n)
	}
}

func TestAttachUnmanagedLifecycle(t *testing.T) {
	m, _ := newTestManager(t)
	ctx := t.Context()
	// A non-root process attaches itself.
	self := userChild(t, 4242).Process.Pid
	selfCaller := Caller{UID: 4242, GID: 4242, PID: self}
	res, err := m.attach(ctx, selfCaller, attachSpec("self", self))
	if err != nil {
		t.Fatal(err)
	}
	r := res.Runtimes[0]
	if r.Status != wire.StatusRunning || r.PID != self || r.Type != "server" || r.Port != 7070 || r.Managed || r.OwnerUID != 4242 {
		t.Fatalf("after attach: %+v", r)
	}
	if ps := m.list(true); len(ps) != 1 || ps[0].Name != "self" {
		t.Fatalf("ps: %+v", ps)
	}
	// The same process may attach again (new port).
	if _, err := m.attach(ctx, selfCaller, wire.AttachSpec{Type: "proxy", Name: "self", Port: 8080, PID: self}); err != nil {
		t.Fatalf("re-attach by the same process: %v", err)
	}
	if v := m.view("self"); v.Port != 8080 || v.Type != "proxy" {
		t.Fatalf("re-attach not recorded: %+v", v)
	}

	// Root attaches another live process; a third may not take its name.
	c := child(t)
	if _, err := m.attach(ctx, me(), attachSpec("worker", c.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.attach(ctx, me(), attachSpec("worker", os.Getpid())); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "runtime already exists: worker") {
		t.Fatalf("duplicate name of a live process: %v", err)
	}
	// stop sends SIGTERM; the entry stays until the process is gone, then one
	// tick forgets it.
	if _, err := m.stop(ctx, me(), []string{"worker"}); err != nil {
		t.Fatal(err)
	}
	if sig := exitSignal(t, c); sig != syscall.SIGTERM {
		t.Fatalf("stop: process ended by %v, want SIGTERM", sig)
	}
	if v := m.view("worker"); v.Status != wire.StatusStopped || v.PID != 0 {
		t.Fatalf("dead attached process: %+v", v)
	}
	m.tick(ctx)
	if _, ok := m.entry("worker"); ok {
		t.Fatal("entry of an exited process survived a tick")
	}
	// Re-attach under the same name after the old process died.
	c2 := child(t)
	if _, err := m.attach(ctx, me(), attachSpec("worker", c2.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	_ = c2.Process.Kill()
	_ = exitSignal(t, c2)
	if _, err := m.attach(ctx, me(), attachSpec("worker", os.Getpid())); err != nil {
		t.Fatalf("re-attach after the old pid died: %v", err)
	}

	// A managed runtime's name is not available to an unmanaged attach.
	if _, err := m.add(ctx, me(), wire.AddSpec{Name: "svc", Path: exe(t, t.TempDir(), "svc")}, false, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := m.attach(ctx, me(), attachSpec("svc", os.Getpid())); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "managed") {
		t.Fatalf("unmanaged attach over a managed name: %v", err)
	}
	// The registry persisted the attached entries (they survive a daemon restart).
	reg, err := m.store.Load()
	if err != nil || reg.at("self") == nil || reg.at("self").StartTime == 0 || !allUID(reg.at("self").UIDs, 4242) {
		t.Fatalf("persisted: %v %+v", err, reg.at("self"))
	}
}

func TestDetachNeverSignals(t *testing.T) {
	m, _ := newTestManager(t)
	ctx := t.Context()
	// The attached process itself removes its entry: detach.
	if _, err := m.attach(ctx, me(), attachSpec("self", os.Getpid())); err != nil {
		t.Fatal(err)
	}
	res, err := m.remove(ctx, me(), []string{"self"})
	if err != nil || !strings.Contains(res.Message, "detached self") {
		t.Fatalf("detach: %v %+v", err, res)
	}
	if _, ok := m.entry("self"); ok {
		t.Fatal("detach left the entry")
	}
	// A helper run by the attached process (its child) detaches it too.
	if _, err := m.attach(ctx, me(), attachSpec("self", os.Getpid())); err != nil {
		t.Fatal(err)
	}
	helper := child(t)
	res, err = m.remove(ctx, Caller{UID: os.Getuid(), PID: helper.Process.Pid}, []string{"self"})
	if err != nil || !strings.Contains(res.Message, "detached self") {
		t.Fatalf("detach through a child: %v %+v", err, res)
	}
	// Anyone else's remove (the owner from a shell) terminates the process.
	c := child(t)
	if _, err := m.attach(ctx, me(), attachSpec("other", c.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.remove(ctx, me(), []string{"other"}); err != nil {
		t.Fatal(err)
	}
	if sig := exitSignal(t, c); sig != syscall.SIGTERM {
		t.Fatalf("remove by the owner: ended by %v, want SIGTERM", sig)
	}
}

func TestStopNeverSignalsAReusedPID(t *testing.T) {
	m, _ := newTestManager(t)
	c := child(t)
	if _, err := m.attach(t.Context(), me(), attachSpec("w", c.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	// Pretend the pid now belongs to another process: its start time differs.
	if err := m.update(func(r *Registry) error { r.mod("w").StartTime++; return nil }); err != nil {
		t.Fatal(err)
	}
	_, err := m.stop(t.Context(), me(), []string{"w"})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "gone") {
		t.Fatalf("stop of a reused pid: %v, want not found (gone)", err)
	}
	// Had stop signalled, the SIGTERM would be queued by now: the daemon
	// signals synchronously, before stop returns, and a default-fatal signal
	// to a process that neither blocks nor handles it (sleep) sets its exit
	// status at the kill itself. Our SIGKILL comes later, so the process
	// ends by SIGKILL only if stop sent nothing.
	if err := c.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if sig := exitSignal(t, c); sig != syscall.SIGKILL {
		t.Fatalf("the process holding the reused pid was signalled: it ended by %v, want our SIGKILL", sig)
	}
}

func TestAttachParentOfCaller(t *testing.T) {
	if os.Getuid() != 0 {
		testenv.Skip(t, "needs root to run processes as another user")
	}
	m, _ := newTestManager(t)
	// sh (uid 65534) runs sleep (uid 65534): the sleep attaches its parent,
	// as `socketley attach` in a script does.
	// sh prints the child's pid once it has forked it.
	sh := exec.Command("sh", "-c", "sleep 1000 >/dev/null & echo $!; wait")
	sh.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := sh.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sh.Process.Kill(); _ = sh.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the pid of sh's child: %v", err)
	}
	kid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || kid <= 0 {
		t.Fatalf("the pid of sh's child: %q", line)
	}
	t.Cleanup(func() { _ = syscall.Kill(kid, syscall.SIGKILL) })
	if _, err := m.attach(t.Context(), Caller{UID: 65534, GID: 65534, PID: kid}, attachSpec("script", sh.Process.Pid)); err != nil {
		t.Fatalf("attach of the caller's parent (same uid): %v", err)
	}
	// Another uid may not attach that parent, nor this test process (root's).
	if _, err := m.attach(t.Context(), Caller{UID: 4242, PID: kid}, attachSpec("script2", sh.Process.Pid)); !errors.Is(err, ErrDenied) {
		t.Fatalf("attach of a parent running as another uid: %v, want denied", err)
	}
	if _, err := m.attach(t.Context(), Caller{UID: 65534, PID: sh.Process.Pid}, attachSpec("me", os.Getpid())); !errors.Is(err, ErrDenied) {
		t.Fatalf("attach of an unrelated root process: %v, want denied", err)
	}
}

func TestAttachManaged(t *testing.T) {
	m, f := newTestManager(t)
	ctx := t.Context()
	// The attach timeout is out of reach: "starting" must not turn into
	// "unhealthy" however slowly this test runs.
	if _, err := m.add(ctx, me(), wire.AddSpec{Name: "web", Path: exe(t, t.TempDir(), "web"), Start: true, ExpectAttach: true,
		AttachTimeout: wire.Duration(time.Hour)}, false, 0); err != nil {
		t.Fatal(err)
	}
	mainPID := f.Snapshot()["web"].MainPID
	if v := m.view("web"); v.Status != wire.StatusStarting {
		t.Fatalf("before attach: %s, want starting", v.Status)
	}
	spoofs := []struct {
		name   string
		caller Caller
		pid    int
	}{
		{"caller outside the unit names the main pid", Caller{UID: 4242, PID: os.Getpid()}, mainPID},
		{"caller in the unit names an outside pid", Caller{UID: 4242, PID: mainPID}, os.Getpid()},
		{"root outside the unit", Caller{PID: os.Getpid()}, mainPID},
	}
	for _, tt := range spoofs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.attach(ctx, tt.caller, wire.AttachSpec{Type: "server", Name: "web", Port: 80, PID: tt.pid, Managed: true})
			if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "refused") || replyCode(err) != wire.CodeInvalid {
				t.Fatalf("got %v, want a refusal with code 1", err)
			}
		})
	}
	if v := m.view("web"); v.Type != "" || v.AttachPID != 0 {
		t.Fatalf("a refused attach changed the entry: %+v", v)
	}
	// From inside the unit: accepted, recorded, running.
	if _, err := m.attach(ctx, Caller{UID: 4242, PID: mainPID}, wire.AttachSpec{Type: "cache", Name: "web", Port: 6379, PID: mainPID, Managed: true}); err != nil {
		t.Fatal(err)
	}
	v := m.view("web")
	if v.Status != wire.StatusRunning || v.Type != "cache" || v.Port != 6379 || v.AttachPID != mainPID || v.AttachedAt.IsZero() {
		t.Fatalf("after managed attach: %+v", v)
	}
	// A managed attach under the name of a runtime without a unit process.
	if _, err := m.attach(ctx, Caller{PID: mainPID}, wire.AttachSpec{Type: "server", Name: "web2", Port: 1, PID: mainPID, Managed: true}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("managed attach of an unknown runtime: %v", err)
	}

	// After a restart the new process is starting until it re-attaches.
	st := f.Snapshot()["web"]
	st.MainPID = mainPID + 100
	st.ExecMainStart = time.Now()
	f.set(st)
	if v := m.view("web"); v.Status != wire.StatusStarting || v.Type != "cache" {
		t.Fatalf("after a restart: %s (type %q), want starting with the old type", v.Status, v.Type)
	}
	if _, err := m.attach(ctx, Caller{PID: st.MainPID}, wire.AttachSpec{Type: "cache", Name: "web", Port: 6379, PID: mainPID, Managed: true}); !errors.Is(err, ErrDenied) {
		t.Fatalf("the old pid re-attaching: %v, want denied (not in the unit)", err)
	}
	if _, err := m.attach(ctx, Caller{PID: st.MainPID}, wire.AttachSpec{Type: "cache", Name: "web", Port: 6379, PID: st.MainPID, Managed: true}); err != nil {
		t.Fatal(err)
	}
	if v := m.view("web"); v.Status != wire.StatusRunning || v.AttachPID != st.MainPID || v.PID != st.MainPID {
		t.Fatalf("after re-attach: %+v", v)
	}
	// The attach is persisted: after a daemon restart the entry still counts
	// as attached by the same main process.
	reg, err := m.store.Load()
	if err != nil || reg.at("web").AttachPID != st.MainPID || reg.at("web").Type != "cache" {
		t.Fatalf("persisted attach: %v %+v", err, reg.at("web"))
	}
}

// TestAttachDuringAddWait is the regression test for add -s --wait holding
// the runtime's lock while waiting for the attach that needs it.
//
// With that bug the attach blocks until the wait gives up, and add fails
// with "still unattached"; so the test needs no clock: it attaches once the
// unit has started and expects add --wait to succeed.
func TestAttachDuringAddWait(t *testing.T) {
	m, f := newTestManager(t)
	ctx := t.Context()
	started := make(chan int, 1)
	f.onStart = func(st units.Status) { started <- st.MainPID }
	done := make(chan error, 1)
	go func() {
		_, err := m.add(ctx, me(), wire.AddSpec{Name: "web", Path: exe(t, t.TempDir(), "web"), Start: true, ExpectAttach: true,
			AttachTimeout: wire.Duration(time.Hour)}, true, testWait)
		done <- err
	}()
	var pid int
	select {
	case pid = <-started:
	case err := <-done:
		t.Fatalf("add --wait returned before the unit started: %v", err)
	}
	if _, err := m.attach(ctx, Caller{PID: pid}, wire.AttachSpec{Type: "server", Name: "web", Port: 80, PID: pid, Managed: true}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("add --wait: %v (the attach waited for the lock add --wait held)", err)
	}
}

func TestAuthorizeConn(t *testing.T) {
	m, _ := newTestManager(t)
	uid := os.Getuid()
	tests := []struct {
		name string
		c    Caller
		ok   bool
	}{
		{"user mode: same uid", Caller{UID: uid, GID: 1}, true},
		{"user mode: root", Caller{UID: 0}, true},
		{"user mode: another uid", Caller{UID: uid + 4242, GID: uid + 4242}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := m.authorizeConn(tt.c)
			if (err == nil) != tt.ok {
				t.Fatalf("got %v, want ok=%v", err, tt.ok)
			}
			if err != nil && (!errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "socketley daemon --user")) {
				t.Fatalf("refusal %q lacks the class or the hint", err)
			}
		})
	}

	// System mode: root or a member of the socket group.
	g, err := user.LookupGroupId("65534")
	if err != nil {
		testenv.Skipf(t, "no group 65534: %v", err)
	}
	gid := 65534
	sys, _ := newTestManager(t)
	sys.cfg.Mode = paths.System
	sys.cfg.SocketGroup = g.Name
	sysTests := []struct {
		name string
		c    Caller
		ok   bool
	}{
		{"root", Caller{UID: 0, GID: 0}, true},
		{"primary group", Caller{UID: 4242, GID: gid}, true},
		{"supplementary group", Caller{UID: 4242, GID: 4242, Groups: []int{10, gid}}, true},
		{"not a member", Caller{UID: 4242, GID: 4242, Groups: []int{10}}, false},
	}
	for _, tt := range sysTests {
		t.Run("system: "+tt.name, func(t *testing.T) {
			err := sys.authorizeConn(tt.c)
			if (err == nil) != tt.ok {
				t.Fatalf("got %v, want ok=%v", err, tt.ok)
			}
			if err != nil && (!errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "usermod -aG "+g.Name)) {
				t.Fatalf("refusal %q lacks the class or the hint", err)
			}
		})
	}
	missing, _ := newTestManager(t)
	missing.cfg.Mode = paths.System
	missing.cfg.SocketGroup = "socketley-no-such-group"
	if err := missing.authorizeConn(Caller{UID: 4242, GID: 4242}); !errors.Is(err, ErrDenied) {
		t.Fatalf("missing group: %v, want denied", err)
	}
	if err := missing.authorizeConn(Caller{}); err != nil {
		t.Fatalf("missing group, root: %v", err)
	}
}

// TestOwnerOnly checks that a non-root caller may change only its own
// runtimes, in system mode, through the handlers.
func TestOwnerOnly(t *testing.T) {
	if _, err := user.LookupId("65534"); err != nil {
		testenv.Skipf(t, "no user 65534: %v", err)
	}
	m, f := newTestManager(t)
	m.cfg.Mode = paths.System
	ctx := t.Context()
	alice := Caller{UID: 65534, GID: 65534, PID: os.Getpid()}
	bob := Caller{UID: 4242, GID: 4242, PID: os.Getpid()}
	bin := exe(t, openTempDir(t), "svc") // alice must reach it
	if _, err := m.add(ctx, alice, wire.AddSpec{Name: "alice-web", Path: bin, Start: true}, false, 0); err != nil {
		t.Fatal(err)
	}
	nobody, _ := user.LookupId("65534")
	if u := f.specs["alice-web"].User; u != nobody.Username {
		t.Fatalf("unit User=%q, want the caller's user %q", u, nobody.Username)
	}
	for _, op := range []struct {
		verb string
		run  func(Caller) error
	}{
		{"stop", func(c Caller) error { _, err := m.stop(ctx, c, []string{"alice-web"}); return err }},
		{"start", func(c Caller) error { _, err := m.start(ctx, c, []string{"alice-web"}, false, 0); return err }},
		{"restart", func(c Caller) error { _, err := m.restart(ctx, c, []string{"alice-web"}, false, 0); return err }},
		{"remove", func(c Caller) error { _, err := m.remove(ctx, c, []string{"alice-*"}); return err }},
	} {
		t.Run(op.verb, func(t *testing.T) {
			err := op.run(bob)
			if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "belongs to uid 65534") {
				t.Fatalf("%s by another user: %v, want denied", op.verb, err)
			}
		})
	}
	if _, ok := m.entry("alice-web"); !ok || f.Snapshot()["alice-web"].ActiveState != "active" {
		t.Fatal("a denied request changed the runtime")
	}
	// The owner and root may.
	if _, err := m.stop(ctx, alice, []string{"alice-web"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.remove(ctx, Caller{PID: os.Getpid()}, []string{"alice-web"}); err != nil {
		t.Fatal(err)
	}

	// --run-as: root only, an existing user, system mode only.
	tests := []struct {
		name   string
		caller Caller
		runAs  string
		class  error
	}{
		{"non-root", bob, "root", ErrDenied},
		{"root, unknown user", Caller{}, "socketley-no-such-user", ErrInvalid},
		{"root, existing user", Caller{}, nobody.Username, nil},
	}
	for i, tt := range tests {
		t.Run("run-as "+tt.name, func(t *testing.T) {
			name := "ra" + strconv.Itoa(i)
			_, err := m.add(ctx, tt.caller, wire.AddSpec{Name: name, Path: bin, Start: true, RunAs: tt.runAs}, false, 0)
			if tt.class == nil {
				if err != nil || f.specs[name].User != tt.runAs {
					t.Fatalf("got %v, User=%q", err, f.specs[name].User)
				}
				return
			}
			if !errors.Is(err, tt.class) {
				t.Fatalf("got %v, want %v", err, tt.class)
			}
		})
	}
	// Root's own runtime runs as root (no User=) unless --run-as is given.
	if _, err := m.add(ctx, Caller{}, wire.AddSpec{Name: "rootsvc", Path: bin, Start: true}, false, 0); err != nil || f.specs["rootsvc"].User != "" {
		t.Fatalf("root's runtime: %v, User=%q", err, f.specs["rootsvc"].User)
	}
}

func TestProcHelpers(t *testing.T) {
	ppid, err := procParent(os.Getpid())
	if err != nil || ppid != os.Getppid() {
		t.Fatalf("procParent = %d, %v; want %d", ppid, err, os.Getppid())
	}
	uids, err := proc.UIDs(os.Getpid())
	if err != nil || len(uids) != 4 || uids[0] != os.Getuid() || uids[1] != os.Geteuid() {
		t.Fatalf("proc.UIDs = %v, %v", uids, err)
	}
	if _, err := procParent(1 << 30); err == nil {
		t.Fatal("procParent of a missing pid succeeded")
	}
	// A process whose name has spaces and parentheses.
	dir := t.TempDir()
	odd := filepath.Join(dir, "a) (b c")
	if err := os.Symlink("/bin/sleep", odd); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(odd, "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if p, err := procParent(cmd.Process.Pid); err != nil || p != os.Getpid() {
		t.Fatalf("procParent of an oddly named process = %d, %v", p, err)
	}
}

// testWait bounds a wait for an event that comes at once (a signal's effect,
// a reply): reaching it means the event never came, not that the machine is
// busy, so it is generous.
const testWait = time.Minute

// eventually polls cond until it holds or testWait passes; only for a
// condition nothing announces.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStopLetsTheProcessDetach: stop of an attached process waits for it to
// exit, but without the runtime's lock, so the process can detach (remove
// NAME) on its way out, as the C++ SDK does at exit.
//
// Without that the detach waits for the lock, stop's wait for the exit
// runs out (attachedStopWait) and its reply says "still running": the reply
// is the check, no clock is needed.
func TestStopLetsTheProcessDetach(t *testing.T) {
	m, _ := newTestManager(t)
	ctx := t.Context()
	// The process says "ready" once its trap is set (a SIGTERM before that
	// would kill sh), and exits only after its detach was answered.
	c := exec.Command("sh", "-c", `trap 'echo term; read x; exit 0' TERM; echo ready; while :; do sleep 0.05; done`)
	stdin, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	pid := c.Process.Pid
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); line != "ready\n" || err != nil {
		t.Fatalf("waiting for the trap to be set: %q, %v", line, err)
	}
	if _, err := m.attach(ctx, me(), attachSpec("sdk", pid)); err != nil {
		t.Fatal(err)
	}
	detached := make(chan error, 1)
	go func() {
		// On SIGTERM the process says so, detaches, and only then exits.
		if line, err := out.ReadString('\n'); line != "term\n" || err != nil {
			detached <- fmt.Errorf("read %q: %v", line, err)
			return
		}
		_, err := m.remove(ctx, Caller{UID: os.Getuid(), PID: pid}, []string{"sdk"})
		_, _ = stdin.Write([]byte("bye\n"))
		detached <- err
	}()
	res, err := m.stop(ctx, me(), []string{"sdk"})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-detached; err != nil {
		t.Fatalf("detach during stop: %v", err)
	}
	if !strings.Contains(res.Message, "exited after SIGTERM") || res.Runtimes[0].Status != wire.StatusStopped {
		t.Fatalf("stop reply: %+v", res)
	}
}
