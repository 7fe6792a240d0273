// Package cli implements the socketley command line: one cobra command per
// verb, each reaching the daemon only through internal/control, the client
// the public SDK's sdk.Client wraps: the CLI words its replies from the
// daemon's whole answer (wire.Result), which the SDK does not expose. The
// daemon command
// lives in internal/daemon and is added by cmd/socketley (Main's extra), so
// that the client commands never depend on the daemon's packages.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/socketley/socketley/internal/control"
	"github.com/socketley/socketley/internal/format"
	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/remote"
	"github.com/socketley/socketley/internal/version"
	"github.com/socketley/socketley/internal/wire"
)

// Stdio is where the CLI reads and writes.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// app holds the global flags and the I/O of one invocation.
type app struct {
	stdio  Stdio
	socket string
	user   bool
	system bool
	// hostFlags is -H as given, hostsFile --hosts; host is the daemon's
	// host once parsed from them or $SOCKETLEY_HOST (nil: this machine).
	hostFlags []string
	hostsFile string
	host      *remote.Host
	// hosts are the hosts when several are given (ls, ps and apply).
	hosts []remote.Host
	// rc is host's client, once made (it keeps its ssh connection).
	rc *control.Client
	// began is when this invocation started: a failed start shows the
	// program's output since then, not an earlier run's.
	began time.Time
}

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr is bad input detected by the CLI itself (exit 1).
func usageErr(format string, args ...any) error {
	return &exitError{code: 1, err: fmt.Errorf(format, args...)}
}

// UsageError is bad input found by a command defined outside this package:
// Main prints it and exits 1.
func UsageError(format string, args ...any) error { return usageErr(format, args...) }

// ExitError makes Main print err and exit with code.
func ExitError(code int, err error) error { return &exitError{code: code, err: err} }

// NoArgs refuses any positional argument, with the command's usage.
func NoArgs(cmd *cobra.Command, args []string) error { return noArgs(cmd, args) }

// Globals gives a command defined outside this package the root's
// persistent flags, once they are parsed, and the invocation's stderr.
type Globals struct{ a *app }

// Socket is --socket ("" when not given).
func (g Globals) Socket() string { return g.a.socket }

// Mode is the mode --user or --system chose (paths.Auto for neither).
func (g Globals) Mode() paths.Mode { return g.a.mode() }

// Stderr is where the invocation writes diagnostics.
func (g Globals) Stderr() io.Writer { return g.a.stdio.Err }

// ExportRuntimes returns the daemon's view of the runtimes to export:
// those names match (names or glob patterns, as show), or with no names
// the caller's managed runtimes (root: every managed runtime).
func (g Globals) ExportRuntimes(ctx context.Context, names []string) ([]wire.Runtime, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	c := g.a.client()
	if len(names) > 0 {
		return runtimes(ctx, c, wire.Request{Cmd: wire.CmdShow, Names: names})
	}
	// The daemon picks them by the caller it sees (over -H, the remote
	// user).
	return runtimes(ctx, c, wire.Request{Cmd: wire.CmdList, Mine: true})
}

// DaemonMode returns the mode of the daemon the invocation reaches
// ("user" or "system", from its version reply).
func (g Globals) DaemonMode(ctx context.Context) (string, error) {
	res, err := g.a.client().Do(ctx, wire.Request{Cmd: wire.CmdVersion})
	if err != nil {
		return "", err
	}
	return res.Message, nil
}

// Extra is a command defined outside this package (the daemon's): its name
// and aliases, and how to build it.
type Extra struct {
	Name    string
	Aliases []string
	New     func(Globals) *cobra.Command
}

// builder builds one command, known by its name and aliases before it is
// built.
type builder struct {
	name    string
	aliases []string
	build   func() *cobra.Command
}

// Main runs the CLI with args (without the program name) and returns the
// exit code: 0 success, 1 bad input or not found, 2 fatal. extra adds
// commands defined elsewhere (cmd/socketley adds the daemon's).
func Main(ctx context.Context, args []string, stdio Stdio, extra ...Extra) int {
	a := &app{stdio: stdio, began: time.Now()}
	root := a.rootCmd(args, extra)
	root.SetArgs(args)
	root.SetIn(stdio.In)
	root.SetOut(stdio.Out)
	root.SetErr(stdio.Err)
	err := root.ExecuteContext(ctx)
	a.closeRemote()
	if err == nil {
		return 0
	}
	return report(stdio.Err, rewordCobra(root, err))
}

// report writes err to w as the CLI ends with it (with a hint where the
// user can fix it) and returns the exit code.
func report(w io.Writer, err error) int {
	var se *remote.SSHError
	if errors.As(err, &se) {
		// ssh's words, without the control layer's wrapping around them.
		err = &exitError{code: 2, err: se}
	}
	code := exitCode(err)
	if errors.Is(err, errQuiet) {
		return code
	}
	// The error may carry the daemon's text (names, messages): escaped.
	fmt.Fprintln(w, "socketley: "+format.EscapeLines(strings.TrimRight(err.Error(), "\n"))+hint(err))
	return code
}

// Command returns the command tree with extra (for man pages and
// completions).
func Command(extra ...Extra) *cobra.Command {
	return (&app{stdio: Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, began: time.Now()}).rootCmd(nil, extra)
}

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var re *control.ReplyError
	if errors.As(err, &re) {
		return re.Code
	}
	if errors.Is(err, control.ErrUnreachable) {
		return 2
	}
	return 2
}

// hint adds what to do for errors the user can fix.
func hint(err error) string {
	var se *remote.SSHError
	if errors.As(err, &se) {
		return sshHint(se)
	}
	var re *control.ReplyError
	if errors.As(err, &re) && (re.Class == wire.ClassInvalid || re.Class == "") && strings.Contains(re.Message, `unknown field "`) {
		return "\nhint: that daemon is older than this socketley and does not know this request: upgrade socketley there, " +
			"or restart its daemon if it was upgraded (socketley version shows both versions)"
	}
	var ue *control.UnreachableError
	if errors.As(err, &ue) {
		if ue.Socket == paths.SystemSocket {
			return "\nhint: is the daemon running? start the system service: sudo systemctl start socketley"
		}
		return "\nhint: is the daemon running? start it with: socketley daemon --user  (or use the system service: socketley --system ...)"
	}
	if errors.Is(err, wire.ErrDenied) {
		return "\nhint: run it as the runtime's owner or as root"
	}
	return ""
}

func (a *app) rootCmd(args []string, extra []Extra) *cobra.Command {
	root := &cobra.Command{
		Use:   "socketley",
		Short: "Run small network services as systemd units",
		Long: `socketley registers binaries and runs each as a transient systemd unit
socketley-NAME.service, restarted by systemd, health-checked and tracked by the
socketley daemon. Binaries built with the socketley SDK attach to report their
type and port.

The daemon is found at --socket or $SOCKETLEY_SOCKET; else --user/--system;
else the system socket /run/socketley/socketley.sock when it is usable,
otherwise the user socket $XDG_RUNTIME_DIR/socketley/socketley.sock.
-H ssh://[user@]host[:port] (or $SOCKETLEY_HOST) uses the daemon of that host
instead, through ssh running socketley dial-stdio there (docs/cli.md).

Exit codes: 0 success, 1 bad input or not found, 2 fatal (daemon unreachable,
systemd or D-Bus error); Ctrl-C ends a command with 130 (logs -f, top: 0).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Version(),
	}
	// The template calls versionLine only when --version is given: the
	// build info it reads is not worth reading for every command.
	cobra.AddTemplateFunc("socketleyVersion", versionLine)
	root.SetVersionTemplate("{{socketleyVersion}}\n")
	pf := root.PersistentFlags()
	pf.StringVar(&a.socket, "socket", "", "control socket path (default: $SOCKETLEY_SOCKET, else by mode)")
	pf.BoolVar(&a.user, "user", false, "use the per-user daemon and the user's systemd manager")
	pf.BoolVar(&a.system, "system", false, "use the system daemon (/run/socketley/socketley.sock)")
	pf.StringArrayVarP(&a.hostFlags, "host", "H", nil, "the daemon of another machine, ssh://[user@]host[:port], reached with ssh (default: $SOCKETLEY_HOST; ls, ps and apply take several)")
	pf.StringVar(&a.hostsFile, "hosts", "", "a file of hosts, one ssh://[user@]host[:port] per line (# comments), as if each were given with -H")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if a.user && a.system {
			return usageErr("--user and --system exclude each other: give one of them, or neither (the daemon is then found as described in socketley --help)\n%s", usageLine(cmd))
		}
		return a.resolveHost(cmd)
	}
	root.SetFlagErrorFunc(flagUsageErr)
	builders := []builder{
		{"add", nil, a.addCmd}, {"apply", nil, a.applyCmd}, {"set", nil, a.setCmd}, {"upgrade", nil, a.upgradeCmd}, {"start", nil, a.startCmd}, {"stop", nil, a.stopCmd},
		{"restart", nil, a.restartCmd}, {"remove", []string{"rm"}, a.removeCmd}, {"ls", []string{"list"}, a.lsCmd},
		{"ps", nil, a.psCmd}, {"show", nil, a.showCmd}, {"top", nil, a.topCmd}, {"logs", nil, a.logsCmd}, {"attach", nil, a.attachCmd},
		{"env", nil, a.envCmd}, {"events", nil, a.eventsCmd}, {"why", nil, a.whyCmd}, {"version", nil, a.versionCmd},
		{"dial-stdio", nil, a.dialStdioCmd},
	}
	for _, x := range extra {
		builders = append(builders, builder{x.Name, x.Aliases, func() *cobra.Command { return x.New(Globals{a}) }})
	}
	// A run of one command builds that command only (cobra would build
	// every command, with its help text and flags, and its "completion"
	// command, on every run). Help, an unknown word and completion build all.
	if b := commandNamed(builders, args); b != nil {
		root.AddCommand(b.build())
		root.CompletionOptions.DisableDefaultCmd = true
		return root
	}
	for _, b := range builders {
		root.AddCommand(b.build())
	}
	return root
}

// commandNamed returns the builder of the command args run: the first word
// that is not a global flag (--user, --system, --socket[=]VALUE,
// -H/--host[=]VALUE, --hosts[=]VALUE), by name
// or alias; nil when that word names none (help, completion, a typo) or a
// flag before it is another one (-h, --help, --version, a bad flag: cobra
// answers those from the whole tree).
func commandNamed(builders []builder, args []string) *builder {
	for i := 0; i < len(args); i++ {
		switch w := args[i]; {
		case w == "--socket" || w == "--host" || w == "-H" || w == "--hosts":
			i++
		case w == "--user" || w == "--system" || strings.HasPrefix(w, "--socket=") || strings.HasPrefix(w, "--host=") ||
			strings.HasPrefix(w, "--hosts=") || strings.HasPrefix(w, "-H"):
		case strings.HasPrefix(w, "-"):
			return nil
		default:
			for j := range builders {
				if builders[j].name == w || slices.Contains(builders[j].aliases, w) {
					return &builders[j]
				}
			}
			return nil
		}
	}
	return nil
}

// mode returns the mode chosen by --user/--system.
func (a *app) mode() paths.Mode {
	switch {
	case a.user:
		return paths.User
	case a.system:
		return paths.System
	}
	return paths.Auto
}

// client returns a daemon client for the chosen socket, on the -H host
// when one is given.
func (a *app) client() *control.Client {
	if a.host != nil {
		return a.remoteClient()
	}
	return &control.Client{Socket: paths.Socket(a.socket, a.mode()), Version: version.Version()}
}

// runtimes sends req and returns the runtimes of the reply.
func runtimes(ctx context.Context, c *control.Client, req wire.Request) ([]wire.Runtime, error) {
	res, err := c.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	return res.Runtimes, nil
}

func versionLine() string {
	v := version.Info()
	return fmt.Sprintf("socketley %s (commit %s, built %s)", v.Version, v.Commit, v.Date)
}

// outputFlag registers -o/--output on cmd.
func outputFlag(cmd *cobra.Command, out *string) {
	cmd.Flags().StringVarP(out, "output", "o", "table", "output format: table or json")
}

func checkOutput(cmd *cobra.Command, out string) error {
	if out != "table" && out != "json" {
		return usageErr("%s: -o/--output %q is not a format: use table or json\n%s", cmd.Name(), out, usageLine(cmd))
	}
	return nil
}

// checkNames validates plain names (patterns go to the daemon as they are).
func checkNames(cmd *cobra.Command, names []string) error {
	for _, n := range names {
		if strings.ContainsAny(n, "*?[") {
			continue
		}
		if err := wire.CheckName(n); err != nil {
			return usageErr("%s: %v\n%s", cmd.Name(), err, usageLine(cmd))
		}
	}
	return nil
}
