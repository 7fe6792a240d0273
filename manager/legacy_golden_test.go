package manager

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestLegacyGolden (testdata/legacy/*.golden) from the daemon's replies")

// goldenTime is the fake clock of TestLegacyGolden: every start, attach and
// creation time is set to it, and the replies' tables are rendered at
// goldenNow, so uptimes read 1h02m.
var (
	goldenTime = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	goldenNow  = goldenTime.Add(time.Hour + 2*time.Minute + 3*time.Second)
)

// goldenStep is one connection of a legacy (C++ SDK) client: send is
// written as is, and the reply frame (code byte, payload, NUL) must be
// testdata/legacy/NAME.golden byte for byte.
type goldenStep struct {
	name   string
	caller Caller
	kind   slotKind
	send   string
	setup  func(t *testing.T, m *Manager, f *fakeSystemd)
}

// TestLegacyGolden pins every reply of the legacy line protocol (what the
// C++ SDK's attach.h and control.h read) byte for byte: a real Manager on
// the fake systemd serves each request line through handleConn, the
// connection code the daemon runs, over a socket pair. The steps run in
// order on one manager (the registry carries over). Run with -update to
// rewrite the golden files; review the diff: any change is a change of the
// C++ wire format.
//
// The replies are deterministic: pids come from the fake (1001, 1002, …),
// times are set to goldenTime and the tables rendered at goldenNow, the
// callers are fixed (root; pid 1 for the unmanaged attach, the only
// process with a pid that is the same everywhere), the program is /bin/sh,
// and show's local times are rendered in UTC (the test runs itself again
// with TZ=UTC).
func TestLegacyGolden(t *testing.T) {
	if os.Getenv("TZ") != "UTC" {
		// time.Local is read once per process: run again with TZ=UTC.
		args := []string{"-test.run=^TestLegacyGolden$", "-test.count=1"}
		if *update {
			args = append(args, "-update")
		}
		if testing.Verbose() {
			args = append(args, "-test.v")
		}
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "TZ=UTC")
		out, err := cmd.CombinedOutput()
		if err != nil || testing.Verbose() {
			t.Logf("TZ=UTC %s:\n%s", strings.Join(cmd.Args, " "), out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	m, f := newTestManager(t)
	m.cfg.Version = wire.VersionInfo{Version: "v1.2.3", Commit: "abc1234", Date: "2025-01-02T03:04:05Z"}
	saved := legacyNow
	legacyNow = func() time.Time { return goldenNow }
	t.Cleanup(func() { legacyNow = saved })

	root := Caller{PID: 4000}
	// pid1 is the attached process: pid 1 attaches itself and detaches. A
	// root stop or remove of c1 from another pid would SIGTERM pid 1:
	// checkSafe refuses such a step.
	pid1 := Caller{PID: 1}
	web := Caller{PID: 1001} // the fake's first unit's main process
	stray := func(_ *testing.T, _ *Manager, f *fakeSystemd) {
		f.set(units.Status{Name: "stray", Unit: units.Name("stray"), LoadState: "loaded", ActiveState: "active",
			SubState: "running", MainPID: 99999, ActiveEnter: goldenTime, ExecStart: []string{"/bin/sh", "-c", "sleep 1000"}})
	}
	tooManyWords := "stop" + strings.Repeat(" x", wire.MaxTokens) + "\n"
	tooManyNames := "stop" + strings.Repeat(" x", wire.MaxNames+1) + "\n"
	steps := []goldenStep{
		// Read-only commands on an empty registry.
		{name: "version", caller: root, send: "version\n"},
		{name: "ls-empty", caller: root, send: "ls\n"},
		{name: "ps-empty", caller: root, send: "ps\n"},
		{name: "stats-empty", caller: root, send: "stats\n"},
		// control.h's add, start, and attach.h's attach (managed and not).
		{name: "add-start", caller: root, send: "add /bin/sh --name web -s --env GREETING=hi --workdir / --restart always --restart-sec 2s -- --port 7070 --verbose\n"},
		{name: "add", caller: root, send: "add /bin/sh --name api\n"},
		{name: "attach-managed", caller: web, send: "attach server web 7070 --pid 1001 --managed\n"},
		{name: "attach", caller: pid1, send: "attach cache c1 6379 --pid 1\n"},
		{name: "ls", caller: root, send: "ls\n", setup: stray},
		{name: "ps", caller: root, send: "ps\n"},
		{name: "show-managed", caller: root, send: "show web\n"},
		{name: "show-created", caller: root, send: "show api\n"},
		{name: "show-attached", caller: root, send: "show c1\n"},
		{name: "show-orphan", caller: root, send: "show stray\n"},
		{name: "show-pattern", caller: root, send: "show w* api\n"},
		{name: "stats", caller: root, send: "stats\n"},
		// Framing: CRLF, tabs and runs of blanks, blank lines skipped.
		{name: "crlf", caller: root, send: "version\r\n"},
		{name: "tabs-and-blank-lines", caller: root, send: "\n \t\n\tshow \t web  \n"},
		{name: "start", caller: root, send: "start api\n"},
		{name: "start-running", caller: root, send: "start web\n"},
		{name: "start-partial", caller: root, send: "start web c1\n"},
		{name: "stop", caller: root, send: "stop api\n"},
		{name: "stop-many", caller: root, send: "stop web api\n"},
		{name: "restart", caller: root, send: "restart web\n"},
		{name: "restart-attached", caller: root, send: "restart c1\n"},
		{name: "remove", caller: root, send: "remove api\n"},
		// attach.h's detach: the attached process removes itself.
		{name: "detach", caller: pid1, send: "remove c1\n"},
		// Errors: the parser's.
		{name: "err-unknown-command", caller: root, send: "frobnicate\n"},
		{name: "err-ls-args", caller: root, send: "ls -a\n"},
		{name: "err-stop-flag", caller: root, send: "stop --force web\n"},
		{name: "err-stop-wait", caller: root, send: "stop web --wait\n"},
		{name: "err-start-usage", caller: root, send: "start\n"},
		{name: "err-remove-usage", caller: root, send: "remove\n"},
		{name: "err-show-usage", caller: root, send: "show\n"},
		{name: "err-attach-no-pid", caller: root, send: "attach server x 7070\n"},
		{name: "err-attach-pid-value", caller: root, send: "attach server x 7070 --pid\n"},
		{name: "err-attach-bad-pid", caller: root, send: "attach server x 7070 --pid me\n"},
		{name: "err-attach-bad-port", caller: root, send: "attach server x port --pid 1\n"},
		{name: "err-attach-words", caller: root, send: "attach server 7070 --pid 1\n"},
		{name: "err-attach-flag", caller: root, send: "attach server x 7070 --pid 1 --bogus\n"},
		{name: "err-add-usage", caller: root, send: "add\n"},
		{name: "err-add-flag", caller: root, send: "add /bin/sh --bogus\n"},
		{name: "err-add-extra", caller: root, send: "add /bin/sh extra\n"},
		{name: "err-add-value", caller: root, send: "add /bin/sh --name\n"},
		{name: "err-add-restart-sec", caller: root, send: "add /bin/sh --restart-sec soon\n"},
		{name: "err-too-many-words", caller: root, send: tooManyWords},
		// Errors: the daemon's, one per class a legacy client can meet.
		{name: "err-attach-type", caller: pid1, send: "attach gizmo x 7070 --pid 1\n"},
		{name: "err-attach-port-range", caller: pid1, send: "attach server x 70000 --pid 1\n"},
		{name: "err-attach-exists", caller: pid1, send: "attach server web 7070 --pid 1\n"},
		{name: "err-attach-managed-denied", caller: pid1, send: "attach server web 7070 --pid 1 --managed\n"},
		{name: "err-attach-managed-unknown", caller: pid1, send: "attach server nosuch 7070 --pid 1 --managed\n"},
		{name: "err-add-relative", caller: root, send: "add bin/sh --name rel\n"},
		{name: "err-add-missing", caller: root, send: "add /nonexistent/socketley-golden --name gone\n"},
		{name: "err-add-exists", caller: root, send: "add /bin/sh --name web\n"},
		{name: "err-add-name", caller: root, send: "add /bin/sh --name -bad\n"},
		{name: "err-add-restart", caller: root, send: "add /bin/sh --name p --restart sometimes\n"},
		{name: "err-add-env", caller: root, send: "add /bin/sh --name p --env NOEQ\n"},
		{name: "err-add-env-reserved", caller: root, send: "add /bin/sh --name p --env SOCKETLEY_NAME=x\n"},
		{name: "err-add-workdir-relative", caller: root, send: "add /bin/sh --name p --workdir srv\n"},
		{name: "err-not-found", caller: root, send: "start nosuch\n"},
		{name: "err-pattern-not-found", caller: root, send: "show nosuch-*\n"},
		{name: "err-too-many-names", caller: root, send: tooManyNames},
		{name: "err-line-too-long", caller: root, send: strings.Repeat("a", wire.MaxLine+1) + "\n"},
		{name: "err-attach-only", caller: root, kind: slotAttach, send: "ls\n"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.setup != nil {
				st.setup(t, m, f)
			}
			checkSafe(t, m, st)
			settle(t, m, f)
			got := serveOne(t, m, st)
			file := filepath.Join("testdata", "legacy", st.name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test -run TestLegacyGolden -update to write it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("reply to %q changed:\n got %q\nwant %q\n(the C++ SDK reads these bytes: if the change is meant, run -update and say so in the commit)",
					truncate(st.send), got, want)
			}
		})
	}
}

// checkSafe fails a step that could make the daemon signal pid 1 (the
// attached c1): a stop, or a remove that is not c1's own detach, naming c1.
func checkSafe(t *testing.T, m *Manager, st goldenStep) {
	t.Helper()
	words := strings.Fields(st.send)
	if len(words) == 0 || (words[0] != wire.CmdStop && words[0] != wire.CmdRemove) || st.caller.PID == 1 {
		return
	}
	if _, ok := m.entry("c1"); !ok {
		return
	}
	for _, w := range words[1:] {
		if ok, _ := path.Match(w, "c1"); ok {
			t.Fatalf("step %s would signal pid 1 (the attached c1)", st.name)
		}
	}
}

// settle sets every time the replies show (a unit's start, an entry's
// creation and attach) to goldenTime.
func settle(t *testing.T, m *Manager, f *fakeSystemd) {
	t.Helper()
	f.mu.Lock()
	for name, st := range f.units {
		if !st.ActiveEnter.IsZero() {
			st.ActiveEnter = goldenTime
		}
		if !st.ExecMainStart.IsZero() {
			st.ExecMainStart = goldenTime
		}
		f.units[name] = st
	}
	f.mu.Unlock()
	if err := m.update(func(r *Registry) error {
		for _, e := range r.sorted() {
			e = r.mod(e.Name)
			if !e.Created.IsZero() {
				e.Created = goldenTime
			}
			if !e.AttachedAt.IsZero() {
				e.AttachedAt = goldenTime
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// serveOne runs handleConn on one end of a socket pair, writes st.send on
// the other, and returns the reply frame as it arrived: code byte, payload
// and the closing NUL.
func serveOne(t *testing.T, m *Manager, st goldenStep) []byte {
	t.Helper()
	srv, cli := socketPair(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.handleConn(ctx, srv, st.caller, st.kind)
	}()
	defer func() {
		_ = cli.Close()
		cancel()
		<-done
	}()
	// Written from a goroutine: a line longer than the socket buffer is
	// answered (and the connection closed) before it is all written.
	go func() { _, _ = cli.Write([]byte(st.send)) }()
	_ = cli.SetReadDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(cli)
	code, err := r.ReadByte()
	if err != nil {
		t.Fatalf("read the reply code: %v", err)
	}
	rest, err := r.ReadBytes(0)
	if err != nil {
		t.Fatalf("read the reply payload: %v (got %q)", err, rest)
	}
	return append([]byte{code}, rest...)
}

// socketPair returns the two ends of a connected Unix stream socket pair.
func socketPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int, name string) *net.UnixConn {
		f := os.NewFile(uintptr(fd), name)
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	return conn(fds[0], "server"), conn(fds[1], "client")
}

// truncate shortens a long request for a failure message.
func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
