package cli

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/sdk"
)

func TestAddSpec(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("my-app.bin", []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("plain", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		path  string
		flags addFlags
		want  string // resulting name, or the error substring
		err   bool
	}{
		{"default name drops the extension", "./my-app.bin", addFlags{restart: "on-failure", attachTimeout: 1, stopTimeout: 2 * time.Second}, "my-app", false},
		{"explicit name", "my-app.bin", addFlags{name: "web", restart: "always", attachTimeout: 1, stopTimeout: 2 * time.Second}, "web", false},
		{"bad name", "my-app.bin", addFlags{name: "a b", restart: "on-failure", attachTimeout: 1, stopTimeout: 2 * time.Second}, "invalid runtime name", true},
		{"bad restart", "my-app.bin", addFlags{restart: "never", attachTimeout: 1, stopTimeout: 2 * time.Second}, "on-failure, always or no", true},
		{"bad env", "my-app.bin", addFlags{restart: "no", env: []string{"=x"}, attachTimeout: 1, stopTimeout: 2 * time.Second}, "KEY=VALUE", true},
		{"negative health", "my-app.bin", addFlags{restart: "no", healthFails: -1, attachTimeout: 1, stopTimeout: 2 * time.Second}, "negative", true},
		{"zero stop timeout", "my-app.bin", addFlags{restart: "no", attachTimeout: 1}, "--stop-timeout 0s: give a positive duration up to 5m", true},
		{"stop timeout too long", "my-app.bin", addFlags{restart: "no", attachTimeout: 1, stopTimeout: 6 * time.Minute}, "--stop-timeout 6m0s", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := tt.flags.spec(tt.path, []string{"--port", "70 70"}, tt.flags.healthFails != 0)
			if tt.err {
				if err == nil || !strings.Contains(err.Error(), tt.want) || exitCode(err) != 1 {
					t.Fatalf("got %v (exit %d), want an exit-1 error mentioning %q", err, exitCode(err), tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if spec.Name != tt.want || spec.Path != filepath.Join(dir, "my-app.bin") || spec.Args[1] != "70 70" {
				t.Fatalf("spec = %+v", spec)
			}
			if time.Duration(spec.StopTimeout) != 2*time.Second {
				t.Fatalf("stop timeout %s, want the flag's 2s", time.Duration(spec.StopTimeout))
			}
			if spec.HealthFails != nil {
				t.Fatal("health-fails sent although not set")
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"usage", usageErr("bad"), 1},
		{"refused", &sdk.ReplyError{Code: 1, Message: "unknown runtime"}, 1},
		{"daemon failure", &sdk.ReplyError{Code: 2, Message: "systemd"}, 2},
		{"unreachable", &sdk.UnreachableError{Socket: "/x", Err: errors.New("refused")}, 2},
		{"other", errors.New("boom"), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exitCode(tt.err); got != tt.want {
				t.Fatalf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

// Usage errors name the argument or flag, say what it accepts and end with
// the usage line; no cobra or strconv wording reaches the user.
func TestMainUsageErrors(t *testing.T) {
	t.Setenv("SOCKETLEY_SOCKET", filepath.Join(t.TempDir(), "none.sock"))
	dir := t.TempDir()
	prog := filepath.Join(dir, "prog")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hostsBad := write("hosts-bad", "# fleet\nssh://a\n\nweb1  # no scheme\n")
	hostsDup := write("hosts-dup", "ssh://b\nssh://a:22 # once more\nssh://a:22\n")
	hostsTwo := write("hosts-two", "ssh://a\nssh://b\n")
	hostsEmpty := write("hosts-empty", "# nothing yet\n\n")
	relative := write("relative.yaml", "runtimes:\n  - name: web\n    path: bin/web\n")
	tests := []struct {
		args []string
		code int
		want string // the whole of stderr, or a part when part is set
		part bool
	}{
		{[]string{"ls"}, 2, "socketley daemon --user", true},
		{[]string{"stop"}, 1, "socketley: stop: give at least one runtime name or glob pattern (such as myapp or 'web-*')\nusage: socketley stop NAME|PATTERN... [flags]\n", false},
		{[]string{"show"}, 1, "socketley: show: give at least one runtime name or glob pattern (such as myapp or 'web-*')\nusage: socketley show NAME|PATTERN... [flags]\n", false},
		{[]string{"start"}, 1, "usage: socketley start NAME|PATTERN... [flags]\n", true},
		{[]string{"ls", "extra"}, 1, "socketley: ls: unexpected argument \"extra\": ls takes no arguments, only flags\nusage: socketley ls [flags]\n", false},
		{[]string{"ps", "x"}, 1, "usage: socketley ps [flags]\n", true},
		{[]string{"logs", "x", "-n", "abc"}, 1, "socketley: logs: -n/--lines \"abc\" is not valid: give a whole number such as 50\nusage: socketley logs NAME [flags]\n", false},
		{[]string{"logs", "x", "-n"}, 1, "socketley: logs: -n/--lines needs a value: a whole number such as 50\nusage: socketley logs NAME [flags]\n", false},
		{[]string{"logs", "x", "-n", "-3"}, 1, "socketley: logs: -n/--lines -3 is negative: give 0 or more lines, such as 50\nusage: socketley logs NAME [flags]\n", false},
		{[]string{"logs"}, 1, "socketley: logs: missing argument: give one runtime name, such as myapp\nusage: socketley logs NAME [flags]\n", false},
		{[]string{"logs", "a", "b"}, 1, "socketley: logs: unexpected argument \"b\": give only one runtime name, such as myapp\nusage: socketley logs NAME [flags]\n", false},
		{[]string{"start", "x", "--timeout", "5"}, 1, "socketley: start: --timeout \"5\" is not valid: give a duration such as 500ms, 10s or 1m30s\nusage: socketley start NAME|PATTERN... [flags]\n", false},
		{[]string{"add"}, 1, "socketley: add: missing PATH: give the path of an executable file before -- (program arguments go after --)\nusage: socketley add PATH [flags] [-- ARGS...]\n", false},
		{[]string{"add", prog, "extra"}, 1, "socketley: add: unexpected argument \"extra\": give one PATH; put program arguments after --\nusage: socketley add PATH [flags] [-- ARGS...]\n", false},
		{[]string{"add", prog, "--name", ""}, 1, "socketley: add: --name is empty: give a runtime name (names are 1-64 characters of letters, digits, '.', '_' and '-', starting with a letter or digit), or leave --name out to use the file name\nusage: socketley add PATH [flags] [-- ARGS...]\n", false},
		{[]string{"add", prog, "--name="}, 1, "socketley: add: --name is empty", true},
		{[]string{"add", prog, "--restart", "never"}, 1, "socketley: add: --restart \"never\": use on-failure, always or no\nusage: socketley add PATH [flags] [-- ARGS...]\n", false},
		{[]string{"add", prog, "--max-restarts", "x"}, 1, "socketley: add: --max-restarts \"x\" is not valid: give a whole number such as 3\nusage: socketley add PATH [flags] [-- ARGS...]\n", false},
		{[]string{"add", prog, "-s", "--bogus"}, 1, "socketley: add: unknown flag --bogus; socketley add --help lists the flags\nusage: socketley add PATH [flags] [-- ARGS...]\n", false},
		{[]string{"remove", "-x-"}, 1, "socketley: remove: unknown flag -x-; socketley remove --help lists the flags\nusage: socketley remove NAME|PATTERN... [flags]\n", false},
		{[]string{"ls", "-o", "yaml"}, 1, "socketley: ls: -o/--output \"yaml\" is not a format: use table or json\nusage: socketley ls [flags]\n", false},
		{[]string{"show", "bad name"}, 1, "socketley: show: invalid runtime name \"bad name\"; names are 1-64 characters of letters, digits, '.', '_' and '-', starting with a letter or digit\nusage: socketley show NAME|PATTERN... [flags]\n", false},
		{[]string{"attach", "server", "x"}, 1, "socketley: attach: missing arguments (2 of 3 given): give TYPE (server, client, proxy or cache), NAME and PORT (1-65535)\nusage: socketley attach TYPE NAME PORT [flags]\n", false},
		{[]string{"attach", "server", "x", "0"}, 1, "socketley: attach: port 0 out of range 1-65535\nusage: socketley attach TYPE NAME PORT [flags]\n", false},
		{[]string{"attach", "server", "x", "http"}, 1, "socketley: attach: PORT \"http\" is not a port: give a number from 1 to 65535\nusage: socketley attach TYPE NAME PORT [flags]\n", false},
		{[]string{"attach", "db", "x", "80"}, 1, "socketley: attach: unknown type \"db\" (server, client, proxy or cache)\nusage: socketley attach TYPE NAME PORT [flags]\n", false},
		{[]string{"--user", "--system", "ls"}, 1, "socketley: --user and --system exclude each other: give one of them, or neither (the daemon is then found as described in socketley --help)\nusage: socketley ls [flags]\n", false},
		{[]string{"--socket", "bad", "--user", "daemon"}, 1, "socketley: daemon: --socket bad: refused (mode user)\n", false},
		{[]string{"daemon"}, 3, "socketley: daemon: stand-in\n", false},
		{[]string{"daemon", "x"}, 1, "unexpected argument \"x\": daemon takes no arguments", true},
		{[]string{"strat", "x"}, 1, "socketley: unknown command \"strat\": the commands are add, apply, attach, completion, daemon, env, events, logs, ls, ps, remove, restart, set, show, start, stop, top, upgrade, version, why (did you mean start?)\nusage: socketley COMMAND [ARGS...] [flags]; socketley --help describes each\n", false},
		{[]string{"upgrade", "x"}, 1, "socketley: upgrade: missing arguments (1 of 2 given): give the runtime NAME and the NEWPATH of its new executable\nusage: socketley upgrade NAME NEWPATH [flags]\n", false},
		{[]string{"upgrade", "x", "/nonexistent/v2"}, 1, "socketley: upgrade: no such file: /nonexistent/v2\nusage: socketley upgrade NAME NEWPATH [flags]\n", false},
		{[]string{"upgrade", "x", prog, "--timeout", "0s"}, 1, "socketley: upgrade: --timeout 0s: give a positive duration such as 10s\nusage: socketley upgrade NAME NEWPATH [flags]\n", false},
		{[]string{"upgrade", "bad name", prog}, 1, "socketley: upgrade: invalid runtime name \"bad name\"", true},
		{[]string{"add", prog, "--listen", "localhost:80"}, 1, "socketley: add: --listen \"localhost:80\": the host must be an IP address, not a name (use PORT, IPv4:PORT or [IPv6]:PORT)\nusage: socketley add PATH [flags] [-- ARGS...]\n", false},
		{[]string{"add", prog, "--listen", "0"}, 1, "the port must be 1–65535", true},
		{[]string{"-H", "web1", "ls"}, 1, "socketley: -H/--host: \"web1\" has no scheme: give ssh://[user@]host[:port], such as ssh://admin@web1.example.com or ssh://10.0.0.5:2222\nusage: socketley ls [flags]\n", false},
		{[]string{"--host=ssh://h:99999", "ps"}, 1, "socketley: -H/--host: \"ssh://h:99999\": port \"99999\" is not a port: give a number from 1 to 65535\nusage: socketley ps [flags]\n", false},
		{[]string{"-H", "ssh://h", "env"}, 1, "socketley: env: env does not work with -H/--host ssh://h: it prints a local socket path for programs started from this shell\n", false},
		{[]string{"-H", "ssh://h", "daemon"}, 1, "socketley: daemon: daemon does not work with -H/--host ssh://h: the daemon runs where it is started", true},
		{[]string{"-H", "ssh://h", "attach", "server", "x", "80"}, 1, "attach does not work with -H/--host ssh://h", true},
		{[]string{"-H", "ssh://h", "add", "./prog"}, 1, "socketley: add: PATH \"./prog\" is relative: with -H it is a path on ssh://h, give it absolute (such as /usr/local/bin/app)\nusage: socketley add PATH [flags] [-- ARGS...]\n", false},
		{[]string{"-H", "ssh://h", "add", "/opt/prog", "--env-file", "app.env"}, 1, "socketley: add: --env-file \"app.env\" is relative: with -H it is a path on ssh://h", true},
		{[]string{"-H", "ssh://h", "add", "/opt/prog", "--workdir", "."}, 1, "socketley: add: --workdir \".\" is relative", true},
		{[]string{"-H", "ssh://h", "add", "/opt/prog", "--credential", "tok:tok.txt"}, 1, "--credential \"tok:tok.txt\": --credential \"tok.txt\" is relative", true},
		{[]string{"-H", "ssh://h", "upgrade", "x", "v2"}, 1, "socketley: upgrade: NEWPATH \"v2\" is relative: with -H it is a path on ssh://h", true},
		{[]string{"-H", "ssh://a", "-H", "ssh://b", "show", "x"}, 1, "socketley: show: several hosts (-H more than once, or --hosts) are for ls, ps and apply only: give show one -H\nusage: socketley show NAME|PATTERN... [flags]\n", false},
		{[]string{"--hosts", hostsTwo, "events"}, 1, "socketley: events: several hosts (-H more than once, or --hosts) are for ls, ps and apply only", true},
		{[]string{"-H", "ssh://a", "-H", "b", "ps"}, 1, "socketley: -H/--host: \"b\" has no scheme", true},
		{[]string{"-H", "ssh://h", "apply", "-f", relative}, 1, "socketley: apply: " + relative + ": 1 problem(s):\n  " + relative + ":3: runtimes[0].path: \"bin/web\" is relative: applied to another host (-H), a path names a file of that host; give it absolute (such as /usr/local/bin/app)\nnothing was changed", true},
		{[]string{"--hosts", hostsBad, "ls"}, 1, "socketley: " + hostsBad + ":4: \"web1\" has no scheme: give ssh://[user@]host[:port], such as ssh://admin@web1.example.com or ssh://10.0.0.5:2222\nusage: socketley ls [flags]\n", false},
		{[]string{"--hosts", hostsDup, "ps"}, 1, "socketley: ps: ssh://a:22 is given twice (" + hostsDup + ":2 and " + hostsDup + ":3): give each host once\nusage: socketley ps [flags]\n", false},
		{[]string{"-H", "ssh://b", "--hosts=" + hostsDup, "ls"}, 1, "socketley: ls: ssh://b is given twice (-H/--host and " + hostsDup + ":1)", true},
		{[]string{"--hosts", hostsEmpty, "apply", "-f", relative}, 1, "socketley: apply: --hosts: " + hostsEmpty + " lists no host: give one ssh://[user@]host[:port] per line\nusage: socketley apply -f FILE [--dry-run] [--prune] [flags]\n", false},
		{[]string{"--hosts=", "ls"}, 1, "socketley: ls: --hosts is empty: give a file with one ssh://[user@]host[:port] per line\nusage: socketley ls [flags]\n", false},
		{[]string{"--hosts", filepath.Join(dir, "none"), "ls"}, 1, "socketley: ls: --hosts: open " + filepath.Join(dir, "none") + ": no such file or directory", true},
		{[]string{"env", "x"}, 1, "socketley: env: unexpected argument \"x\": env takes no arguments, only flags\nusage: socketley env [flags]\n", false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(t.Context(), tt.args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb}, extraDaemon)
			got := errb.String()
			if code != tt.code || (tt.part && !strings.Contains(got, tt.want)) || (!tt.part && got != tt.want) {
				t.Fatalf("exit %d stderr\n%s\nwant exit %d and stderr %s\n%s", code, got, tt.code, map[bool]string{true: "containing", false: "equal to"}[tt.part], tt.want)
			}
			for _, raw := range []string{"requires at least", "accepts ", "strconv.", "invalid argument", "for \"socketley", "flag needs an argument", "if any flags in the group"} {
				if strings.Contains(got, raw) {
					t.Fatalf("stderr has library wording %q:\n%s", raw, got)
				}
			}
		})
	}
}

// env prints the export for the socket in use, quoted for the shell, and
// warns on stderr when no daemon answers there.
func TestEnv(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"--socket", []string{"--socket", "/run/x/s.sock", "env"}, "", "export SOCKETLEY_SOCKET=/run/x/s.sock\n"},
		{"quoted", []string{"--socket", "/tmp/it's here.sock", "env"}, "", "export SOCKETLEY_SOCKET='/tmp/it'\\''s here.sock'\n"},
		{"$SOCKETLEY_SOCKET", []string{"env"}, "/e/s.sock", "export SOCKETLEY_SOCKET=/e/s.sock\n"},
		{"--system", []string{"--system", "env"}, "", "export SOCKETLEY_SOCKET=/run/socketley/socketley.sock\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SOCKETLEY_SOCKET", tt.env)
			var out, errb bytes.Buffer
			code := Main(t.Context(), tt.args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
			if code != 0 || out.String() != tt.want {
				t.Fatalf("exit %d stdout %q, want 0 and %q", code, out.String(), tt.want)
			}
			if !strings.Contains(errb.String(), "warning: no daemon answers at") {
				t.Fatalf("stderr %q lacks the warning", errb.String())
			}
		})
	}
}

func TestCredentialFlags(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		vals []string
		want []wire.Credential
		err  string // part of the error; "" = accepted
	}{
		{"none", nil, nil, ""},
		{"absolute", []string{"token:/etc/app/token"}, []wire.Credential{{ID: "token", Path: "/etc/app/token"}}, ""},
		{"relative, against the cwd", []string{"token:secrets/../token"}, []wire.Credential{{ID: "token", Path: filepath.Join(wd, "token")}}, ""},
		{"colon in the path", []string{"k:/etc/a:b"}, []wire.Credential{{ID: "k", Path: "/etc/a:b"}}, ""},
		{"repeated", []string{"a:/x", "b:/y"}, []wire.Credential{{ID: "a", Path: "/x"}, {ID: "b", Path: "/y"}}, ""},
		{"no colon", []string{"token"}, nil, `--credential "token" is not ID:PATH`},
		{"no ID", []string{":/x"}, nil, "is not ID:PATH"},
		{"no path", []string{"token:"}, nil, "is not ID:PATH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := credentials(tt.vals)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || exitCode(err) != 1 {
					t.Fatalf("got %v (exit %d), want an exit-1 error mentioning %q", err, exitCode(err), tt.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// extraDaemon stands for internal/daemon's command (which this package may
// not import): an Extra that reads the globals and refuses a bad flag the
// way the real one does.
var extraDaemon = Extra{Name: "daemon", New: newExtraDaemon}

func newExtraDaemon(g Globals) *cobra.Command {
	return &cobra.Command{Use: "daemon", Args: NoArgs, RunE: func(*cobra.Command, []string) error {
		if g.Socket() == "bad" {
			return UsageError("daemon: --socket %s: refused (mode %v)", g.Socket(), g.Mode())
		}
		return ExitError(3, errors.New("daemon: stand-in"))
	}}
}

// TestCompletionCommandOnlyWhenNeeded: a run of one command builds that
// command only (by name or alias, after flags and --socket's value), with
// no completion command; help, an unknown word or "completion" build all.
func TestCompletionCommandOnlyWhenNeeded(t *testing.T) {
	for _, tt := range []struct {
		args []string
		only string // the one command built, "" = all
	}{
		{nil, ""}, {[]string{"--help"}, ""}, {[]string{"help", "ls"}, ""}, {[]string{"completion", "bash"}, ""},
		{[]string{"strat"}, ""}, {[]string{"__complete", "ad"}, ""},
		{[]string{"ls"}, "ls"}, {[]string{"list"}, "ls"}, {[]string{"rm", "x"}, "remove"},
		{[]string{"--user", "add", "x"}, "add"}, {[]string{"--socket", "ls", "ps"}, "ps"}, {[]string{"daemon"}, "daemon"},
		{[]string{"--socket=/s", "--system", "ls"}, "ls"}, {[]string{"ls", "--help"}, "ls"},
		{[]string{"--help", "ls"}, ""}, {[]string{"-h", "ls"}, ""}, {[]string{"--version", "ls"}, ""}, {[]string{"--bogus", "ls"}, ""},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			root := (&app{stdio: Stdio{Out: io.Discard, Err: io.Discard}}).rootCmd(tt.args, []Extra{extraDaemon})
			cmds := root.Commands()
			if tt.only == "" {
				if len(cmds) < 14 || root.CompletionOptions.DisableDefaultCmd {
					t.Fatalf("%d commands built, completion disabled %v; want all and completion", len(cmds), root.CompletionOptions.DisableDefaultCmd)
				}
				return
			}
			if len(cmds) != 1 || cmds[0].Name() != tt.only || !root.CompletionOptions.DisableDefaultCmd {
				t.Fatalf("built %d commands (first %q), completion disabled %v; want only %s", len(cmds), cmds[0].Name(), root.CompletionOptions.DisableDefaultCmd, tt.only)
			}
		})
	}
	var out bytes.Buffer
	if code := Main(t.Context(), []string{"--version"}, Stdio{In: strings.NewReader(""), Out: &out, Err: io.Discard}); code != 0 ||
		!strings.HasPrefix(out.String(), "socketley ") || !strings.Contains(out.String(), "(commit ") {
		t.Fatalf("--version: exit %d, %q", code, out.String())
	}
}
