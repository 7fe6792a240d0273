package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
)

// replyDaemon answers every request on a unix socket with reply (version
// requests with the user mode) and returns the socket path.
func replyDaemon(t *testing.T, code byte, reply wire.Result) string {
	t.Helper()
	return testenv.FakeDaemon(t, func(line string) (byte, []byte) {
		var req wire.Request
		_ = json.Unmarshal([]byte(line), &req)
		res, rc := reply, code
		if req.Cmd == wire.CmdVersion {
			res, rc = wire.Result{Message: "user", Version: &wire.VersionInfo{Version: "dev"}}, 0
		}
		b, _ := json.Marshal(res)
		return rc, b
	})
}

// The replies of add -s, start and restart state only what is known; a
// process that is gone by the reply makes the command fail with its exit,
// its output (or why it cannot be read) and the next steps.
func TestStartReplies(t *testing.T) {
	t.Setenv("SOCKETLEY_SOCKET", "")
	dir := t.TempDir()
	prog := filepath.Join(dir, "prog")
	writeExe(t, prog)
	up := wire.Runtime{Name: "prog", Unit: "socketley-prog.service", Managed: true, Status: wire.StatusRunning, PID: 131, Restart: "on-failure"}
	gone := wire.Runtime{Name: "prog", Unit: "socketley-prog.service", Managed: true, Status: wire.StatusCrashLoop, LastExit: "exit code 3", Restart: "on-failure"}
	other := wire.Runtime{Name: "other", Unit: "socketley-other.service", Managed: true, Status: wire.StatusFailed, LastExit: "exit code 1", Restart: "no"}
	goneNo := gone
	goneNo.Status, goneNo.Restart = wire.StatusFailed, "no"
	const noJournal = "its output cannot be read: "
	// The daemon marks the runtime it failed on; the CLI reads the mark,
	// not the message.
	otherFailed := other
	otherFailed.Failed, otherFailed.FailedClass = "its start failed: boom", wire.ClassFailed
	tests := []struct {
		name   string
		args   []string
		code   byte
		reply  wire.Result
		exit   int
		stdout string
		stderr []string // in order
	}{
		{"add -s started", []string{"add", prog, "-s"}, 0, wire.Result{Runtimes: []wire.Runtime{up}}, 0,
			"prog: started (unit socketley-prog.service, pid 131)\n", nil},
		{"add -s --wait running", []string{"add", prog, "-s", "--wait"}, 0, wire.Result{Runtimes: []wire.Runtime{up}}, 0,
			"prog: running (unit socketley-prog.service, pid 131)\n", nil},
		{"start started", []string{"start", "prog"}, 0, wire.Result{Runtimes: []wire.Runtime{up}, Message: "started prog"}, 0,
			"prog: started (unit socketley-prog.service, pid 131)\n", nil},
		{"start already", []string{"start", "prog"}, 0, wire.Result{Runtimes: []wire.Runtime{unchanged(up)}, Message: "prog is already running"}, 0,
			"prog: already started (unit socketley-prog.service, pid 131, status running); left alone\n", nil},
		{"restart", []string{"restart", "prog"}, 0, wire.Result{Runtimes: []wire.Runtime{up}, Message: "restarted prog"}, 0,
			"prog: stopped, then started (unit socketley-prog.service, pid 131)\n", nil},
		{"add -s gone by the reply", []string{"add", prog, "-s"}, 0, wire.Result{Runtimes: []wire.Runtime{gone}}, 1, "", []string{
			"socketley: add: prog was started (unit socketley-prog.service) but its process has already exited (exit code 3); prog stays registered and is left to its restart policy (--restart on-failure): socketley restarts it with the crash backoff, ls shows crash-loop meanwhile\n",
			noJournal,
			"\nnext: socketley logs prog shows its output; fix the program, then socketley start prog; or socketley remove prog drops it\n"}},
		{"start gone by the reply, --restart no", []string{"start", "prog"}, 0, wire.Result{Runtimes: []wire.Runtime{goneNo}}, 1, "", []string{
			"socketley: start: prog was started (unit socketley-prog.service) but its process has already exited (exit code 3); prog stays registered and is not restarted (--restart no)\n",
			noJournal, "\nnext: socketley logs prog"}},
		{"--wait failure from the daemon", []string{"start", "prog", "--wait"}, 1, wire.Result{Runtimes: []wire.Runtime{gone},
			Error: "start prog: prog exited (exit code 3) and is in a crash loop (status crash-loop); prog stays registered and is left to its restart policy (--restart on-failure): socketley restarts it with the crash backoff, ls shows crash-loop meanwhile; next: socketley logs prog shows its output; fix the program, then socketley start prog; or socketley remove prog drops it"}, 1, "", []string{
			"socketley: start prog: prog exited (exit code 3) and is in a crash loop (status crash-loop); prog stays registered and is left to its restart policy (--restart on-failure): socketley restarts it with the crash backoff, ls shows crash-loop meanwhile\n",
			noJournal,
			"\nnext: socketley logs prog shows its output; fix the program, then socketley start prog; or socketley remove prog drops it\n"}},
		{"--wait failure, restarted meanwhile", []string{"add", prog, "-s", "--wait"}, 1, wire.Result{Runtimes: []wire.Runtime{up},
			Error: "add prog: prog exited (exit code 3) and is down (status stopped); prog stays registered and is left to its restart policy (--restart on-failure): socketley restarts it with the crash backoff, ls shows crash-loop meanwhile; next: socketley logs prog shows its output; fix the program, then socketley start prog; or socketley remove prog drops it"}, 1, "", []string{
			"socketley: add prog: prog exited (exit code 3) and is down (status stopped); prog stays registered",
			noJournal, "\nnext: socketley logs prog shows its output"}},
		{"one of two fails", []string{"start", "prog", "other"}, 1, wire.Result{Runtimes: []wire.Runtime{up, otherFailed},
			Error: "start other: its start failed: boom; other stays registered and is not restarted (--restart no); next: socketley logs other shows its output; fix the program, then socketley start other; or socketley remove other drops it"}, 1,
			"prog: started (unit socketley-prog.service, pid 131)\n", []string{
				"socketley: start other: its start failed: boom; other stays registered and is not restarted (--restart no)\n",
				noJournal, "\nnext: socketley logs other shows its output"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := replyDaemon(t, tt.code, tt.reply)
			// No journal: the reply says why the output cannot be read.
			old := journalDirs
			journalDirs = []string{t.TempDir()}
			t.Cleanup(func() { journalDirs = old })
			var out, errb bytes.Buffer
			code := Main(t.Context(), append([]string{"--socket", sock}, tt.args...), Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
			if code != tt.exit || out.String() != tt.stdout {
				t.Fatalf("exit %d stdout %q, want %d and %q (stderr %q)", code, out.String(), tt.exit, tt.stdout, errb.String())
			}
			rest := errb.String()
			for _, want := range tt.stderr {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Fatalf("stderr lacks %q (in order):\n%s", want, errb.String())
				}
				rest = rest[i+len(want):]
			}
			if tt.stderr == nil && errb.Len() > 0 {
				t.Fatalf("stderr %q, want none", errb.String())
			}
			if strings.Contains(out.String()+errb.String(), ": running") && !strings.Contains(strings.Join(tt.args, " "), "--wait") {
				t.Fatal("a reply without --wait claims running")
			}
		})
	}
}

func writeExe(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// unchanged marks r as a runtime the command left as it was.
func unchanged(r wire.Runtime) wire.Runtime {
	r.Unchanged = true
	return r
}

// TestOlderDaemon: a daemon that refuses a request field it does not know
// (one older than the CLI) gets a hint that says what to do, not only its
// JSON error.
func TestOlderDaemon(t *testing.T) {
	sock := replyDaemon(t, wire.CodeInvalid, wire.Result{Error: `malformed JSON request: json: unknown field "mine"`, Class: wire.ClassInvalid})
	manifest := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(manifest, []byte("runtimes:\n  - {name: web, path: /bin/sh}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := Main(t.Context(), []string{"--socket", sock, "apply", "-f", manifest}, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	if code != 1 || !strings.Contains(errb.String(), `unknown field "mine"`) || !strings.Contains(errb.String(), "hint: that daemon is older than this socketley") {
		t.Fatalf("exit %d\nstderr:\n%s", code, errb.String())
	}
}
