package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/socketley/socketley/internal/control"
	"github.com/socketley/socketley/internal/format"
	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/remote"
	"github.com/socketley/socketley/internal/version"
	"github.com/socketley/socketley/internal/wire"
)

// localOnly are the commands that -H refuses, and why: they act on this
// machine, not only through the daemon's socket.
var localOnly = map[string]string{
	"daemon":     "the daemon runs where it is started: run socketley daemon on that host",
	"env":        "it prints a local socket path for programs started from this shell",
	"attach":     "it reports a local process, which a remote daemon cannot manage",
	"dial-stdio": "it is what -H runs on the remote host",
}

// multiHost reports whether the command cmd takes several hosts (-H more
// than once, or --hosts).
func multiHost(cmd string) bool { return cmd == "ls" || cmd == "ps" || cmd == "apply" }

// maxHostsAtOnce bounds how many hosts ls, ps and apply reach at a time
// (each is an ssh process).
const maxHostsAtOnce = 16

// hostArg is one host as given, and where: -H/--host, $SOCKETLEY_HOST or
// FILE:LINE of --hosts.
type hostArg struct{ raw, from string }

// resolveHost sets a.host (one host) or a.hosts (several) from -H,
// --hosts or $SOCKETLEY_HOST, and refuses what the command cannot do with
// them.
func (a *app) resolveHost(cmd *cobra.Command) error {
	var args []hostArg
	for _, raw := range a.hostFlags {
		args = append(args, hostArg{raw, "-H/--host"})
	}
	if cmd.Flags().Changed("hosts") && a.hostsFile == "" {
		return usageErr("%s: --hosts is empty: give a file with one ssh://[user@]host[:port] per line\n%s", cmd.Name(), usageLine(cmd))
	}
	if a.hostsFile != "" {
		more, err := readHostsFile(a.hostsFile)
		if err != nil {
			return usageErr("%s: --hosts: %v\n%s", cmd.Name(), err, usageLine(cmd))
		}
		args = append(args, more...)
	}
	if len(args) == 0 {
		raw := os.Getenv(remote.EnvHost)
		if raw == "" || cmd.Name() == "dial-stdio" {
			// dial-stdio is the remote end: a $SOCKETLEY_HOST there
			// would loop.
			return nil
		}
		args = []hostArg{{raw, "$" + remote.EnvHost}}
	}
	hosts := make([]remote.Host, 0, len(args))
	first := map[string]string{}
	for _, ha := range args {
		h, err := remote.Parse(ha.raw)
		if err != nil {
			return usageErr("%s: %v\n%s", ha.from, err, usageLine(cmd))
		}
		if at, dup := first[h.String()]; dup {
			return usageErr("%s: %s is given twice (%s and %s): give each host once\n%s", cmd.Name(), h, at, ha.from, usageLine(cmd))
		}
		first[h.String()] = ha.from
		hosts = append(hosts, h)
	}
	if why, ok := localOnly[cmd.Name()]; ok {
		return usageErr("%s: %s does not work with %s %s: %s", cmd.Name(), cmd.Name(), args[0].from, hosts[0], why)
	}
	if len(hosts) > 1 {
		if !multiHost(cmd.Name()) {
			return usageErr("%s: several hosts (-H more than once, or --hosts) are for ls, ps and apply only: give %s one -H\n%s", cmd.Name(), cmd.Name(), usageLine(cmd))
		}
		a.hosts = hosts
		return nil
	}
	a.host = &hosts[0]
	return nil
}

// maxHostsFile bounds a --hosts file.
const maxHostsFile = 1 << 20

// readHostsFile reads a --hosts file: one ssh://[user@]host[:port] per
// line; blank lines and lines starting with # are skipped, as is what
// follows " #" on a line.
func readHostsFile(path string) ([]hostArg, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxHostsFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxHostsFile {
		return nil, fmt.Errorf("%s is larger than %d bytes: is it a hosts file?", path, maxHostsFile)
	}
	var out []hostArg
	for i, line := range strings.Split(string(data), "\n") {
		if j := strings.Index(line, " #"); j >= 0 {
			line = line[:j]
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, hostArg{line, fmt.Sprintf("%s:%d", path, i+1)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s lists no host: give one ssh://[user@]host[:port] per line", path)
	}
	return out, nil
}

// hostList is one host's part of ls/ps -o json with several hosts: its
// runtimes, or why it could not be listed.
type hostList struct {
	Host     string         `json:"host"`
	Runtimes []wire.Runtime `json:"runtimes,omitzero"`
	Error    string         `json:"error,omitempty"`
}

// listHosts prints the ls (withMode) or ps listing of every host of
// a.hosts, the hosts in the order given: one table with a HOST column
// first, or (out json) one hostList per host. A host that cannot be
// reached is reported on stderr (and in its hostList) and the others are
// listed; the command then exits 2.
func (a *app) listHosts(ctx context.Context, cmd string, withMode bool, out string) error {
	type answer struct {
		rts []wire.Runtime
		err error
	}
	answers := make([]answer, len(a.hosts))
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxHostsAtOnce)
	for i, h := range a.hosts {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			one := a.onHost(h, a.stdio)
			defer one.closeRemote()
			rts, err := runtimes(ctx, one.remoteClient(), wire.Request{Cmd: cmd})
			answers[i] = answer{rts, err}
		})
	}
	wg.Wait()
	now := time.Now()
	var rows [][]string
	lists := make([]hostList, len(a.hosts))
	failed := 0
	for i, h := range a.hosts {
		lists[i] = hostList{Host: h.String(), Runtimes: answers[i].rts}
		if err := answers[i].err; err != nil {
			failed++
			// ssh's words, without the control layer's wrapping around
			// them (they name the host).
			msg := h.String() + ": " + err.Error()
			var se *remote.SSHError
			if errors.As(err, &se) {
				msg = se.Error()
			}
			msg = strings.TrimRight(msg, "\n")
			lists[i] = hostList{Host: h.String(), Error: msg}
			fmt.Fprintln(a.stdio.Err, "socketley: "+format.EscapeLines(msg))
			continue
		}
		if lists[i].Runtimes == nil {
			lists[i].Runtimes = []wire.Runtime{}
		}
		for j, row := range format.Rows(answers[i].rts, now, withMode) {
			if j == 0 {
				if rows == nil {
					rows = append(rows, append([]string{"HOST"}, row...))
				}
				continue
			}
			rows = append(rows, append([]string{h.String()}, row...))
		}
	}
	switch {
	case out == "json":
		enc := json.NewEncoder(a.stdio.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(lists); err != nil {
			return err
		}
	case rows != nil:
		if err := format.Columns(a.stdio.Out, rows); err != nil {
			return err
		}
	}
	if failed > 0 {
		return &exitError{code: 2, err: errQuiet}
	}
	return nil
}

// onHost returns the invocation's settings aimed at host h, writing to
// stdio.
func (a *app) onHost(h remote.Host, stdio Stdio) *app {
	return &app{stdio: stdio, socket: a.socket, user: a.user, system: a.system, host: &h, began: a.began}
}

// remoteWords returns the command line that runs verb with args on the
// remote host: socketley, the global flags that choose the daemon there
// (--socket, --user, --system as given; $SOCKETLEY_SOCKET of this shell is
// not passed on), verb and args.
func (a *app) remoteWords(verb string, args ...string) []string {
	w := []string{"socketley"}
	switch {
	case a.socket != "":
		w = append(w, "--socket", a.socket)
	case a.user:
		w = append(w, "--user")
	case a.system:
		w = append(w, "--system")
	}
	return append(append(w, verb), args...)
}

// remoteClient returns the client of the daemon on a.host: a connection
// runs ssh HOST -- socketley dial-stdio, and is kept for the invocation's
// next request (control.Client.Reuse: apply sends one per step, top one
// per refresh) until closeRemote.
func (a *app) remoteClient() *control.Client {
	if a.rc != nil {
		return a.rc
	}
	h := *a.host
	words := a.remoteWords("dial-stdio")
	a.rc = &control.Client{
		Socket:  h.String(),
		Version: version.Version(),
		Dial: func(ctx context.Context) (net.Conn, error) {
			return remote.Dial(ctx, "", h, words)
		},
		Reuse: true,
	}
	return a.rc
}

// closeRemote ends the ssh connection remoteClient kept, if any.
func (a *app) closeRemote() {
	if a.rc != nil {
		_ = a.rc.Close()
	}
}

// remotePath requires an absolute path for a flag or argument (what) that
// names a file of the remote host with -H; locally it resolves p against
// the current directory.
func (a *app) remotePath(what, p string) (string, error) {
	if a.host == nil {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("%s %q: %w", what, p, err)
		}
		return abs, nil
	}
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("%s %q is relative: with -H it is a path on %s, give it absolute (such as /usr/local/bin/app)", what, p, a.host)
	}
	return filepath.Clean(p), nil
}

// errRemoteJournal is the output of a runtime on another host.
var errRemoteJournal = errors.New("the output is in the journal of the remote host")

// runRemote runs socketley words on a.host with the CLI's stdio (for logs,
// whose journal is on that host), and returns its exit: the remote
// command's status, or 2 when ssh itself failed.
func (a *app) runRemote(ctx context.Context, words []string) error {
	prog := os.Getenv(remote.EnvSSH)
	if prog == "" {
		prog = "ssh"
	}
	path, err := exec.LookPath(prog)
	if err != nil {
		return &exitError{code: 2, err: &remote.SSHError{Host: *a.host, Status: -1, Err: err}}
	}
	cmd := exec.CommandContext(ctx, path, a.host.SSHArgs(words)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, a.stdio.Out, a.stdio.Err
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return nil // interrupted logs -f
	case errors.As(err, &ee) && ee.ExitCode() == 255:
		return &exitError{code: 2, err: &remote.SSHError{Host: *a.host, Status: 255}}
	case errors.As(err, &ee) && ee.ExitCode() > 0:
		// The remote socketley has said why on stderr.
		return &exitError{code: ee.ExitCode(), err: errQuiet}
	}
	return &exitError{code: 2, err: &remote.SSHError{Host: *a.host, Status: -1, Err: err}}
}

// errQuiet ends the CLI with its exit code and no message (the message has
// been written already).
var errQuiet = errors.New("")

// dialStdioCmd is the hidden command that -H runs on the remote host.
func (a *app) dialStdioCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "dial-stdio",
		Short:  "Connect stdin and stdout to the daemon's control socket (what -H runs over ssh)",
		Hidden: true,
		Args:   noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return dialStdio(cmd.Context(), paths.Socket(a.socket, a.mode()), a.stdio.In, a.stdio.Out)
		},
	}
}

// dialStdio copies in to the control socket sock and the socket to out
// until the daemon closes the connection; at the end of in it half-closes
// the connection (the daemon then ends it once its replies are written).
func dialStdio(ctx context.Context, sock string, in io.Reader, out io.Writer) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return &control.UnreachableError{Socket: sock, Err: err}
	}
	conn := c.(*net.UnixConn)
	defer conn.Close()
	go func() {
		_, _ = io.Copy(conn, in)
		_ = conn.CloseWrite()
	}()
	if _, err := io.Copy(out, conn); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("dial-stdio: %w", err)
	}
	return nil
}

// sshHint says what to check when ssh failed.
func sshHint(se *remote.SSHError) string {
	switch se.Status {
	case 255, -1:
		return fmt.Sprintf("\nhint: check that this works without a prompt (a key or an agent, a known host key): %s %s",
			"ssh", strings.Join(se.Host.SSHArgs([]string{"socketley", "version"}), " "))
	case 127:
		return "\nhint: install socketley on that host, in /usr/local/bin or /usr/bin"
	}
	return ""
}
