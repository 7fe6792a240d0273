package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/proc"
	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// newTestManager returns a manager wired to a fake systemd, with its state in
// a temp dir, without a socket.
func newTestManager(t testing.TB) (*Manager, *fakeSystemd) {
	t.Helper()
	dir := t.TempDir()
	f := newFake()
	m, err := New(Config{Mode: paths.User, Socket: filepath.Join(dir, "s.sock"), StateDir: dir,
		Dial: func(context.Context) (Systemd, error) { return f, nil }})
	if err != nil {
		t.Fatal(err)
	}
	m.reg = loadForTest(t, m.store)
	m.sd, m.watch = f, f
	return m, f
}

// exe writes an executable script into dir and returns its path.
func exe(t testing.TB, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexec sleep 1000\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func me() Caller { return Caller{UID: os.Getuid(), GID: os.Getgid(), PID: os.Getpid()} }

func TestAddRejectsBadInput(t *testing.T) {
	m, f := newTestManager(t)
	dir := t.TempDir()
	good := exe(t, dir, "good")
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "taken", Path: good}, false, 0); err != nil {
		t.Fatal(err)
	}
	before, err := stateBytes(m.store)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		spec  wire.AddSpec
		class error
		msg   string
	}{
		{"missing file", wire.AddSpec{Name: "a", Path: filepath.Join(dir, "nope")}, ErrInvalid, "no such file"},
		{"directory", wire.AddSpec{Name: "a", Path: dir}, ErrInvalid, "is a directory"},
		{"not executable", wire.AddSpec{Name: "a", Path: plain}, ErrInvalid, "not executable"},
		{"relative path", wire.AddSpec{Name: "a", Path: "good"}, ErrInvalid, "not absolute"},
		{"invalid name", wire.AddSpec{Name: "-bad", Path: good}, ErrInvalid, "invalid runtime name"},
		{"duplicate", wire.AddSpec{Name: "taken", Path: good}, ErrExists, "add: runtime already exists: taken; choose another --name, or socketley remove taken first"},
		{"bad restart", wire.AddSpec{Name: "a", Path: good, Restart: "sometimes"}, ErrInvalid, "--restart \"sometimes\""},
		{"env without =", wire.AddSpec{Name: "a", Path: good, Env: []string{"NOEQ"}}, ErrInvalid, "KEY=VALUE"},
		{"reserved env", wire.AddSpec{Name: "a", Path: good, Env: []string{"SOCKETLEY_NAME=x"}}, ErrInvalid, "reserved"},
		{"bad workdir", wire.AddSpec{Name: "a", Path: good, WorkDir: filepath.Join(dir, "none")}, ErrInvalid, "--workdir"},
		{"run-as in user mode", wire.AddSpec{Name: "a", Path: good, RunAs: "root"}, ErrInvalid, "system daemon"},
		{"negative stop timeout", wire.AddSpec{Name: "a", Path: good, StopTimeout: wire.Duration(-time.Second)}, ErrInvalid, "--stop-timeout -1s"},
		{"stop timeout too long", wire.AddSpec{Name: "a", Path: good, StopTimeout: wire.Duration(time.Hour)}, ErrInvalid, "up to 5m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.add(t.Context(), me(), tt.spec, false, 0)
			if !errors.Is(err, tt.class) {
				t.Fatalf("got %v, want class %v", err, tt.class)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %q, want it to mention %q", err, tt.msg)
			}
			if replyCode(err) != wire.CodeInvalid {
				t.Fatalf("reply code %d, want 1", replyCode(err))
			}
			after, _ := stateBytes(m.store)
			if string(after) != string(before) {
				t.Fatalf("state file changed by a rejected add")
			}
			if m.reg.len() != 1 {
				t.Fatalf("registry has %d entries, want 1", m.reg.len())
			}
		})
	}
	if len(f.calls) != 0 {
		t.Fatalf("systemd was called for rejected input: %v", f.calls)
	}
}

// Every unit gets the runtime's stop timeout (TimeoutStopSec=), 10 s unless
// add says otherwise; show reports it.
func TestStopTimeoutInSpecAndView(t *testing.T) {
	tests := []struct {
		name string
		add  time.Duration
		want time.Duration
	}{
		{"default", 0, DefaultStopTimeout},
		{"given", 1500 * time.Millisecond, 1500 * time.Millisecond},
	}
	// The default is persisted too: an entry without one predates stop
	// timeouts (its unit may have systemd's 90 s).
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, f := newTestManager(t)
			if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "x", Path: exe(t, t.TempDir(), "x"), Start: true,
				StopTimeout: wire.Duration(tt.add)}, false, 0); err != nil {
				t.Fatal(err)
			}
			if got := f.specs["x"].StopTimeout; got != tt.want {
				t.Errorf("unit TimeoutStopSec %s, want %s", got, tt.want)
			}
			if got := time.Duration(m.view("x").StopTimeout); got != tt.want {
				t.Errorf("view stop timeout %s, want %s", got, tt.want)
			}
			reg, _ := m.store.Load()
			if got := time.Duration(reg.at("x").StopTimeout); got != tt.want {
				t.Errorf("persisted stop timeout %s, want %s", got, tt.want)
			}
		})
	}
}

func TestLifecycleWithFake(t *testing.T) {
	m, f := newTestManager(t)
	bin := exe(t, t.TempDir(), "svc")
	ctx := t.Context()
	res, err := m.add(ctx, me(), wire.AddSpec{Name: "web", Path: bin, Start: true, Args: []string{"--port", "70 70"}}, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Runtimes[0]; got.Status != wire.StatusRunning || got.PID == 0 {
		t.Fatalf("after add -s: status %q pid %d, want running with a pid", got.Status, got.PID)
	}
	spec := f.specs["web"]
	wantEnv := []string{"SOCKETLEY_MANAGED=1", "SOCKETLEY_NAME=web", "SOCKETLEY_SOCKET=" + m.cfg.Socket}
	for i, w := range wantEnv {
		if spec.Env[i] != w {
			t.Fatalf("env[%d] = %q, want %q", i, spec.Env[i], w)
		}
	}
	if spec.Restart != "on-failure" || spec.RestartSec != DefaultRestartSec || spec.Args[1] != "70 70" {
		t.Fatalf("spec = %+v", spec)
	}
	if _, err := m.add(ctx, me(), wire.AddSpec{Name: "api", Path: bin}, false, 0); err != nil {
		t.Fatal(err)
	}
	if v := m.view("api"); v.Status != wire.StatusCreated {
		t.Fatalf("added without -s: status %q, want created", v.Status)
	}

	// Persisted before acknowledged: a fresh load sees both, with desired states.
	reg, err := m.store.Load()
	if err != nil {
		t.Fatal(err)
	}
	if reg.at("web").Desired != DesiredRunning || reg.at("api").Desired != DesiredStopped {
		t.Fatalf("persisted desired states wrong: %+v %+v", reg.at("web"), reg.at("api"))
	}

	if _, err := m.stop(ctx, me(), []string{"w*"}); err != nil {
		t.Fatal(err)
	}
	if v := m.view("web"); v.Status != wire.StatusStopped || v.PID != 0 {
		t.Fatalf("after stop: %q pid %d", v.Status, v.PID)
	}
	if _, err := m.start(ctx, me(), []string{"web", "api"}, false, 0); err != nil {
		t.Fatal(err)
	}
	ls := m.list(false)
	if len(ls) != 2 || ls[0].Name != "api" || ls[1].Name != "web" {
		t.Fatalf("ls not sorted by name: %+v", ls)
	}
	pid := m.view("web").PID
	if _, err := m.restart(ctx, me(), []string{"web"}, false, 0); err != nil {
		t.Fatal(err)
	}
	if n := m.view("web").PID; n == pid || n == 0 {
		t.Fatalf("restart kept pid %d (new %d)", pid, n)
	}
	// stop must come before start in a restart: no overlap.
	calls := strings.Join(f.calls, ",")
	if !strings.Contains(calls, "stop web,start web") {
		t.Fatalf("restart did not stop before start: %s", calls)
	}
	if _, err := m.remove(ctx, me(), []string{"*"}); err != nil {
		t.Fatal(err)
	}
	if len(m.list(false)) != 0 || len(f.Snapshot()) != 0 {
		t.Fatalf("remove left entries or units: %v %v", m.list(false), f.Snapshot())
	}
	reg, _ = m.store.Load()
	if reg.len() != 0 {
		t.Fatalf("state file still has %d entries", reg.len())
	}
}

// add -s whose start fails keeps the entry (desired running) and says why:
// the unit is left to systemd's Restart= and the crash backoff. Only a start
// that created nothing (an invalid spec, a name taken by a foreign unit) is
// undone.
func TestAddStartFailureKeeps(t *testing.T) {
	exited3 := &units.JobError{Unit: "socketley-x.service", Job: "start", Result: "failed",
		Status: units.Status{ExecMainCode: units.CodeExited, ExecMainStatus: 3}}
	tests := []struct {
		name    string
		err     error
		restart wire.RestartPolicy
		code    byte
		keep    bool
		msg     []string
	}{
		{"program exited", exited3, "on-failure", wire.CodeInvalid, true,
			[]string{"registered, but its start failed", "exited with status 3", "restarts it with the crash backoff", "socketley remove x"}},
		{"program exited, --restart no", exited3, "no", wire.CodeInvalid, true,
			[]string{"exited with status 3", "not restarted (--restart no)", "socketley start x"}},
		{"systemd failed", &units.JobError{Unit: "socketley-x.service", Job: "start", Result: "failed"}, "on-failure",
			wire.CodeFatal, true, []string{"registered, but its start failed", "job failed"}},
		{"invalid spec", fmt.Errorf("start socketley-x.service: %w: bad", units.ErrInvalid), "on-failure",
			wire.CodeFatal, false, []string{"bad"}},
		{"foreign unit", fmt.Errorf("start socketley-x.service: %w", units.ErrUnitExists), "on-failure",
			wire.CodeFatal, false, []string{"unit exists"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, f := newTestManager(t)
			f.startErr = tt.err
			res, err := m.add(t.Context(), me(), wire.AddSpec{Name: "x", Path: exe(t, t.TempDir(), "x"), Start: true, Restart: tt.restart}, false, 0)
			if err == nil {
				t.Fatal("add -s succeeded although the start failed")
			}
			if got := replyCode(err); got != tt.code {
				t.Errorf("code %d, want %d (%v)", got, tt.code, err)
			}
			for _, want := range tt.msg {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message %q lacks %q", err, want)
				}
			}
			e, ok := m.entry("x")
			if ok != tt.keep {
				t.Fatalf("entry kept: %v, want %v", ok, tt.keep)
			}
			if !tt.keep {
				return
			}
			if e.Desired != DesiredRunning {
				t.Errorf("desired %s, want running", e.Desired)
			}
			if res == nil || len(res.Runtimes) != 1 || res.Runtimes[0].Name != "x" {
				t.Errorf("reply lacks the runtime's view: %+v", res)
			}
			reg, _ := m.store.Load()
			if !reg.has("x") {
				t.Error("the kept entry is not persisted")
			}
		})
	}
}

// add -s whose wait for the start job ends early (its deadline, or the
// daemon shutting down) keeps the entry: systemd may still run the job, and
// an unregistered running unit must never be left behind (issue 11 item 3).
func TestAddStartNotConfirmedKeeps(t *testing.T) {
	tests := []struct {
		name string
		ctx  func(t *testing.T) (context.Context, context.CancelFunc)
		want error
	}{
		{"deadline", func(t *testing.T) (context.Context, context.CancelFunc) {
			return context.WithDeadline(t.Context(), time.Now())
		}, context.DeadlineExceeded},
		{"daemon shutdown", func(t *testing.T) (context.Context, context.CancelFunc) {
			return context.WithCancel(t.Context())
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, f := newTestManager(t)
			ctx, cancel := tt.ctx(t)
			defer cancel()
			f.startWait = func(ctx context.Context) error {
				cancel() // the shutdown (or the deadline) comes while the job runs
				<-ctx.Done()
				return fmt.Errorf("start socketley-x.service: waiting for the start job: %w", ctx.Err())
			}
			_, err := m.add(ctx, me(), wire.AddSpec{Name: "x", Path: exe(t, t.TempDir(), "x"), Start: true}, false, 0)
			if !errors.Is(err, tt.want) {
				t.Fatalf("add: %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), "socketley show x") {
				t.Errorf("message %q does not say where to look", err)
			}
			if _, ok := f.Snapshot()["x"]; !ok {
				t.Fatal("test setup: the fake did not start the unit")
			}
			e, ok := m.entry("x")
			if !ok {
				t.Fatal("the entry was deleted while its unit runs: an unregistered running unit")
			}
			if e.Desired != DesiredRunning {
				t.Errorf("desired %s, want running", e.Desired)
			}
			if r := m.view("x"); r.Status != wire.StatusRunning {
				t.Errorf("status %s (%s), want running", r.Status, r.Reason)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	r := newRegistry()
	for _, n := range []string{"web-1", "web-2", "api"} {
		r.put(&Entry{Name: n})
	}
	tests := []struct {
		in    []string
		want  string
		class error
	}{
		{[]string{"web-*"}, "web-1,web-2", nil},
		{[]string{"api", "web-1", "api"}, "api,web-1", nil},
		{[]string{"*"}, "api,web-1,web-2", nil},
		{[]string{"web-[12]", "a?i"}, "api,web-1,web-2", nil},
		{[]string{"we*", "web-*", "web-*"}, "web-1,web-2", nil},
		{[]string{"zz*"}, "", ErrNotFound},
		{[]string{"nope"}, "", ErrNotFound},
		{[]string{"db-*"}, "", ErrNotFound},
		{[]string{"[x"}, "", ErrInvalid},
		{[]string{"bad name"}, "", ErrInvalid},
		{nil, "", ErrInvalid},
	}
	for _, indexed := range []bool{false, true} {
		if indexed {
			r.commit() // patterns narrow by their literal prefix
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("indexed=%v/%s", indexed, strings.Join(tt.in, " ")), func(t *testing.T) {
				got, err := r.match(tt.in)
				if tt.class != nil {
					if !errors.Is(err, tt.class) {
						t.Fatalf("got %v, want %v", err, tt.class)
					}
					return
				}
				if err != nil || strings.Join(got, ",") != tt.want {
					t.Fatalf("got %v %v, want %s", got, err, tt.want)
				}
			})
		}
	}
}

func TestStore(t *testing.T) {
	dir := t.TempDir()
	s := &Store{dir: dir}
	reg, err := s.Load()
	if err != nil || reg.len() != 0 {
		t.Fatalf("missing file: %v %v", reg, err)
	}
	reg.put(&Entry{Name: "a", Managed: true, Args: []string{"x y"}, Desired: DesiredRunning})
	if err := s.Save(reg); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil || got.at("a").Args[0] != "x y" {
		t.Fatalf("round trip: %+v %v", got.at("a"), err)
	}
	if fi, _ := os.Stat(s.Path()); fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v, want 0600", fi.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	var files []string
	for _, e := range ents {
		files = append(files, e.Name())
	}
	if strings.Join(files, " ") != "registry.json registry.json.prev" {
		t.Fatalf("files after Save: %v, want the snapshot and its last good copy only", files)
	}

	for name, content := range map[string]string{
		"corrupt":   `{"version":1,"entries":[`,
		"version":   `{"version":99,"entries":[]}`,
		"bad name":  `{"version":1,"entries":[{"name":"-x"}]}`,
		"duplicate": `{"version":1,"entries":[{"name":"x"},{"name":"x"}]}`,
		"null":      `{"version":1,"entries":[null]}`,
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(s.Path(), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := s.Load()
			if err == nil || !strings.Contains(err.Error(), s.Path()) || !strings.Contains(err.Error(), "untouched") {
				t.Fatalf("got %v, want an error naming the file", err)
			}
			b, _ := os.ReadFile(s.Path())
			if string(b) != content {
				t.Fatal("corrupt file was modified")
			}
		})
	}
}

func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockDir(dir); err == nil || !strings.Contains(err.Error(), "another socketley daemon") {
		t.Fatalf("second lock: got %v", err)
	}
	unlock()
	unlock2, err := lockDir(dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}

func TestRunRefusesCorruptState(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, stateFile)
	if err := os.WriteFile(p, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFake()
	m, _ := New(Config{Mode: paths.User, Socket: filepath.Join(dir, "s.sock"), StateDir: dir,
		Dial: func(context.Context) (Systemd, error) { return f, nil }})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err := m.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("Run = %v, want a corrupt-state error", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "{garbage" {
		t.Fatal("corrupt state file was overwritten")
	}
	if _, err := os.Stat(filepath.Join(dir, "s.sock")); err == nil {
		t.Fatal("daemon listened although the state was corrupt")
	}
}

func TestClassify(t *testing.T) {
	now := time.Now()
	started := &Entry{Name: "x", Managed: true, Started: true, Desired: DesiredRunning}
	attaching := &Entry{Name: "x", Managed: true, Started: true, Desired: DesiredRunning, ExpectAttach: true}
	attached := &Entry{Name: "x", Managed: true, Started: true, Desired: DesiredRunning, Type: "server", Port: 80, AttachPID: 42}
	active := &units.Status{LoadState: "loaded", ActiveState: "active", SubState: "running", MainPID: 42, ExecMainStart: now.Add(-time.Second)}
	old := *active
	old.ExecMainStart = now.Add(-time.Minute)
	newPID := *active
	newPID.MainPID = 43
	tests := []struct {
		name string
		e    *Entry
		st   *units.Status
		o    observed
		want wire.Status
	}{
		{"created", &Entry{Managed: true}, nil, observed{}, wire.StatusCreated},
		{"stopped", &Entry{Managed: true, Started: true}, nil, observed{}, wire.StatusStopped},
		{"running, no attach expected", started, active, observed{}, wire.StatusRunning},
		{"restarting", started, &units.Status{ActiveState: "activating", SubState: "auto-restart", Restarting: true}, observed{}, wire.StatusRestarting},
		{"failed", started, &units.Status{ActiveState: "failed", Result: "exit-code", ExecMainCode: 1, ExecMainStatus: 3}, observed{}, wire.StatusFailed},
		{"crash-loop", started, &units.Status{ActiveState: "failed", Result: "start-limit-hit"}, observed{}, wire.StatusCrashLoop},
		{"starting: attach expected, within timeout", attaching, active, observed{}, wire.StatusStarting},
		{"unhealthy: attach overdue", attaching, &old, observed{}, wire.StatusUnhealthy},
		{"running: attached by main pid", attached, &old, observed{}, wire.StatusRunning},
		{"unhealthy: port down", attached, &old, observed{portDown: true}, wire.StatusUnhealthy},
		{"starting: restarted, new pid not attached yet", attached, &newPID, observed{}, wire.StatusStarting},
		{"inactive unit", started, &units.Status{LoadState: "loaded", ActiveState: "inactive"}, observed{}, wire.StatusStopped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := classify(tt.e, tt.st, &tt.o, now)
			if got != tt.want {
				t.Fatalf("got %s (%s), want %s", got, reason, tt.want)
			}
		})
	}
}

func TestSameProcessZombie(t *testing.T) {
	cmd := exec.Command("sh", "-c", "exit 0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// Until it is reaped the process stays in /proc (running or a zombie).
	start, err := procStartTime(pid)
	if err != nil {
		t.Fatalf("start time of an unreaped child: %v", err)
	}
	// Wait for its exit without reaping it (WNOWAIT): it is a zombie now,
	// which must count as gone.
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EINTR) {
			t.Fatalf("waitid: %v", err)
		}
	}
	if st, err := proc.ReadStat(pid); err != nil || st.State != 'Z' || st.StartTime != start {
		t.Fatalf("exited, unreaped child: %+v %v, want a zombie started at %d", st, err, start)
	}
	if sameProcess(pid, start) {
		t.Fatal("an exited (zombie) process still counts as alive")
	}
	_ = cmd.Wait()
	if sameProcess(os.Getpid(), 0) {
		t.Fatal("wrong start time matched")
	}
	self, _ := procStartTime(os.Getpid())
	if !sameProcess(os.Getpid(), self) {
		t.Fatal("this process does not count as itself")
	}
}

// TestStartAlreadyRunningIsUnchanged: start of a runtime that runs marks
// it Unchanged (clients read the mark, not the message); a runtime it does
// start is not marked.
func TestStartAlreadyRunningIsUnchanged(t *testing.T) {
	m, f := newTestManager(t)
	now := time.Now()
	for _, n := range []string{"up", "down"} {
		m.reg.put(&Entry{Name: n, Managed: true, Path: "/usr/bin/x", Restart: wire.RestartAlways, Desired: DesiredRunning,
			Started: true, Created: now, OwnerUID: os.Getuid()})
	}
	m.reg.commit()
	f.set(units.Status{Unit: units.Name("up"), Name: "up", LoadState: "loaded", ActiveState: "active", SubState: "running",
		MainPID: 4242, ActiveEnter: now, ExecMainStart: now})
	res, err := m.start(t.Context(), me(), []string{"up", "down"}, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, r := range res.Runtimes {
		got[r.Name] = r.Unchanged
	}
	if !got["up"] || got["down"] || len(got) != 2 {
		t.Fatalf("Unchanged marks %v, want up only", got)
	}
}
