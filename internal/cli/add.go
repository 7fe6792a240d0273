package cli

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/socketley/socketley/internal/format"
	"github.com/socketley/socketley/internal/wire"
)

type addFlags struct {
	name          string
	start         bool
	env           []string
	credentials   []string
	envFiles      []string
	harden        bool
	workdir       string
	restart       string
	restartSec    time.Duration
	maxDelay      time.Duration
	restartReset  time.Duration
	maxRestarts   int
	stopTimeout   time.Duration
	attach        bool
	attachTimeout time.Duration
	healthFails   int
	runAs         string
	listen        []string
	limits        wire.LimitArgs
	properties    []string
	wait          waitFlags
	// abs resolves a path argument or flag (what names it); nil:
	// filepath.Abs (with -H: app.remotePath).
	abs func(what, p string) (string, error)
}

// absPath resolves p with f.abs, or against the current directory.
func (f *addFlags) absPath(what, p string) (string, error) {
	if f.abs == nil {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("%s %q: %w", what, p, err)
		}
		return abs, nil
	}
	return f.abs(what, p)
}

func (a *app) addCmd() *cobra.Command {
	var f addFlags
	cmd := &cobra.Command{
		Use:   "add PATH [flags] [-- ARGS...]",
		Short: "Register a binary as a managed runtime (and start it with -s)",
		Long: `Register the executable PATH as the runtime NAME, run as the transient systemd
unit socketley-NAME.service. PATH is resolved against the current directory and
stored absolute; it must be a regular executable file. With -H it is a path on
that host and must be absolute, as must --workdir, --env-file and --credential. Arguments after -- are
passed to the program and may contain spaces.

The unit gets SOCKETLEY_MANAGED=1, SOCKETLEY_NAME=NAME and SOCKETLEY_SOCKET=<the
daemon's socket> in its environment, plus every --env. Any local user can read
a unit's environment and arguments from systemd: pass secrets with
--credential ID:PATH instead (systemd LoadCredential=), which systemd copies
at every start into $CREDENTIALS_DIRECTORY/ID, readable only by the unit's
user; show lists the IDs and paths, never the contents. With the system daemon
only root may give --credential (systemd reads the file as root).

--env-file PATH (repeatable; systemd EnvironmentFile=) adds the KEY=VALUE lines
of PATH to the environment at every start, after --env (a key in both takes
the file's value); PATH is resolved against the current directory, must exist
and be readable by you at add, and a file missing at a start fails that start.
With the system daemon only root may give --env-file.

--harden runs the unit in systemd's sandbox (docs/harden.md lists every
property): no new privileges and no capabilities, the file system read-only
but for --workdir, /home read-only, a private /tmp and /dev, kernel tunables,
modules, logs and cgroups protected, only AF_UNIX, AF_INET and AF_INET6
sockets, the @system-service system calls, and no writable-executable memory
(programs with a JIT, such as Node.js or Java, need to be run without it).

Restart policy (docs/restart-policy.md): a crash after a run of at least
--restart-reset (10s) is restarted by systemd after --restart-sec (default 0:
at once). Crashes that come sooner are restarted by the daemon after 0, 100ms,
200ms, ... doubling up to --restart-max-delay (30s), forever unless
--max-restarts N gives up after N failed runs in a row. socketley start or
restart retries at once.

A stop (stop, restart, remove, a health restart) sends SIGTERM to every process
of the unit and SIGKILL to what is left after --stop-timeout (10s), so it
always ends; the command returns once the processes are gone.

With -s the reply says what is known: "started" with the pid (systemd started
the process), or with --wait "running" once it runs (attached, or up for about
1 s). If the process has already exited, or --wait sees it fail, the command
exits 1 with the exit code or signal, the program's last output lines from the
journal and the next steps; the runtime stays registered and wanted running,
and the restart policy keeps trying with the crash backoff (--restart no: it
stays down until socketley start; socketley remove drops it). Program arguments
reach the program literally: systemd expands no $VAR in them.

--listen [ADDR:]PORT (repeatable; PORT alone = every address, IPv6 and IPv4)
makes systemd hold the listening socket in socketley-NAME.socket and pass it to
the program (socket activation: LISTEN_FDS, fd 3 on). restart, upgrade, a crash
and the daemon's restarts keep the socket, so clients connecting meanwhile wait
instead of being refused; a connection while the program is down starts it.
The program must take the socket (sd_listen_fds(3); the Go SDK's server does it
by itself): one that binds the port itself cannot use --listen. A port in use
or a bad address is refused and nothing is registered.

Resource limits, in systemd's syntax (systemd.resource-control(5)), become
properties of the unit: --memory-max and --memory-high (bytes, K/M/G/T base
1024, or infinity), --cpu-quota (50% of one CPU; 200% is two), --cpu-weight
(1-10000, default 100), --tasks-max (processes and threads, or infinity) and
--nofile (open files, soft and hard limit, or infinity). socketley set changes
them later.`,
		Example: `  socketley add ./mybin --name myapp -s -- --port 7070 --verbose
  socketley add /usr/local/bin/echo-service -s --env GREETING="hello world" --restart always
  socketley add ./echo-service -s --listen 7070 -- -port 7070
  socketley add ./api -s --memory-max 512M --cpu-quota 50% --nofile 65536
  socketley add ./api -s --harden -p MemoryDenyWriteExecute=no -p Nice=5`,
		Args: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			switch {
			case len(args) == 0 || dash == 0:
				return argsErr(cmd, "missing PATH: give the path of an executable file before -- (program arguments go after --)")
			case dash > 1 || (dash < 0 && len(args) > 1):
				return argsErr(cmd, "unexpected argument %q: give one PATH; put program arguments after --", args[1])
			}
			if cmd.Flags().Changed("name") && f.name == "" {
				return usageErr("add: --name is empty: give a runtime name (%s), or leave --name out to use the file name\n%s", wire.NameRule, usageLine(cmd))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			var progArgs []string
			if dash > 0 {
				progArgs = args[dash:]
			}
			f.abs = a.remotePath
			spec, err := f.spec(args[0], progArgs, cmd.Flags().Changed("health-fails"))
			if err != nil {
				return withUsage(cmd, err)
			}
			ctx, cancel := f.wait.ctx(cmd.Context())
			defer cancel()
			c := a.client()
			res, err := c.Do(ctx, wire.Request{Cmd: wire.CmdAdd, Add: &spec, Wait: f.wait.wait, Timeout: wire.Duration(f.wait.timeout)})
			if err != nil {
				return a.failReply(ctx, c, "add", res, err, f.wait.wait)
			}
			if len(res.Runtimes) == 0 {
				return fmt.Errorf("add %s: the daemon returned no runtime", spec.Name)
			}
			if f.start {
				return a.startReply(ctx, c, "add", res, f.wait.wait)
			}
			r := res.Runtimes[0]
			fmt.Fprintf(a.stdio.Out, "%s: %s (start it with: socketley start %s)\n", format.Escape(r.Name), format.Escape(r.Status), format.Escape(r.Name))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.name, "name", "", "runtime name (default: the file name without extension)")
	fl.BoolVarP(&f.start, "start", "s", false, "start the runtime now")
	fl.StringArrayVar(&f.env, "env", nil, "environment variable KEY=VALUE for the program (repeatable; values may contain spaces)")
	fl.StringArrayVar(&f.credentials, "credential", nil, "secret file ID:PATH the program reads as $CREDENTIALS_DIRECTORY/ID (systemd LoadCredential=; repeatable; system daemon: root only)")
	fl.StringArrayVar(&f.envFiles, "env-file", nil, "file of KEY=VALUE lines systemd reads at every start (EnvironmentFile=; repeatable; system daemon: root only)")
	fl.BoolVar(&f.harden, "harden", false, "sandbox the unit with socketley's preset (docs/harden.md; breaks JIT runtimes: MemoryDenyWriteExecute)")
	fl.StringVar(&f.workdir, "workdir", "", "working directory of the program (default: the manager's, / for the system manager)")
	fl.StringVar(&f.restart, "restart", string(wire.DefaultRestart), "restart policy: on-failure, always or no")
	fl.DurationVar(&f.restartSec, "restart-sec", 0, "delay before systemd restarts a program that crashed after a long run (0 = at once)")
	fl.DurationVar(&f.maxDelay, "restart-max-delay", wire.DefaultRestartMaxDelay, "cap of the crash backoff delay")
	fl.DurationVar(&f.restartReset, "restart-reset", wire.DefaultRestartReset, "how long a run must last for the crash backoff to start over (>= 1s)")
	fl.IntVar(&f.maxRestarts, "max-restarts", 0, "give up after N failed runs in a row (0 = keep restarting forever)")
	fl.DurationVar(&f.stopTimeout, "stop-timeout", wire.DefaultStopTimeout, "how long a stop waits after SIGTERM before SIGKILL (systemd TimeoutStopSec=; up to 5m)")
	fl.BoolVar(&f.attach, "attach", false, "expect the program to attach (status stays starting until it does)")
	fl.DurationVar(&f.attachTimeout, "attach-timeout", wire.DefaultAttachTimeout, "how long an expected attach may take before the runtime is unhealthy")
	fl.IntVar(&f.healthFails, "health-fails", wire.DefaultHealthFails, "consecutive unhealthy health checks (every 2 s) before a restart; 0 disables")
	fl.StringVar(&f.runAs, "run-as", "", "system daemon, root only: run the unit as this user (default: the caller)")
	limitFlags(fl, &f.limits)
	propertyFlag(fl, &f.properties)
	fl.StringArrayVar(&f.listen, "listen", nil, "[ADDR:]PORT that systemd listens on and passes to the program (socket activation, LISTEN_FDS; repeatable): connections wait while it restarts")
	f.wait.register(cmd)
	return cmd
}

// spec builds the add request from the flags, resolving PATH, --workdir
// credential and env-file paths against the current directory, and checks it with
// wire.AddSpec.Check (the daemon's own rules). Whether the files exist and
// may be run is the daemon's to check, with the caller's rights, on the
// machine that runs them.
func (f *addFlags) spec(path string, args []string, healthSet bool) (wire.AddSpec, error) {
	abs, err := f.absPath("PATH", path)
	if err != nil {
		return wire.AddSpec{}, usageErr("add: %v", err)
	}
	name := f.name
	if name == "" {
		base := filepath.Base(abs)
		name = strings.TrimSuffix(base, filepath.Ext(base))
		if err := wire.CheckName(name); err != nil {
			return wire.AddSpec{}, usageErr("add: %v (choose one with --name)", err)
		}
	}
	creds, err := credentialsWith(f.credentials, f.absPath)
	if err != nil {
		return wire.AddSpec{}, err
	}
	var envFiles []string // nil when none
	for _, p := range f.envFiles {
		if p == "" {
			return wire.AddSpec{}, usageErr("add: --env-file %q: give the path of a file of KEY=VALUE lines", p)
		}
		abs, err := f.absPath("--env-file", p)
		if err != nil {
			return wire.AddSpec{}, usageErr("add: %v", err)
		}
		envFiles = append(envFiles, abs)
	}
	wd := f.workdir
	if wd != "" {
		if wd, err = f.absPath("--workdir", wd); err != nil {
			return wire.AddSpec{}, usageErr("add: %v", err)
		}
	}
	spec := wire.AddSpec{
		Name: name, Path: abs, Args: args, Env: f.env, WorkDir: wd, Restart: wire.RestartPolicy(f.restart), Credentials: creds, EnvFiles: envFiles, Harden: f.harden,
		RestartSec: wire.Duration(f.restartSec), Start: f.start, RunAs: f.runAs,
		RestartMaxDelay: wire.Duration(f.maxDelay), RestartReset: wire.Duration(f.restartReset), MaxRestarts: f.maxRestarts,
		ExpectAttach: f.attach, AttachTimeout: wire.Duration(f.attachTimeout), StopTimeout: wire.Duration(f.stopTimeout),
		Listen: f.listen, Limits: f.limits, Properties: f.properties,
	}
	if healthSet {
		n := f.healthFails
		spec.HealthFails = &n
	}
	switch {
	case f.stopTimeout <= 0:
		return wire.AddSpec{}, usageErr("add: --stop-timeout %s: give a positive duration up to %s, such as 10s", f.stopTimeout, wire.MaxStopTimeout)
	case f.attachTimeout <= 0:
		return wire.AddSpec{}, usageErr("add: --attach-timeout %s must be a positive duration such as 10s", f.attachTimeout)
	}
	if err := spec.Check(); err != nil {
		return wire.AddSpec{}, usageErr("add: %v", err)
	}
	return spec, nil
}

// credentials parses --credential ID:PATH values (split at the first ":",
// so PATH may contain colons) and resolves each PATH against the current
// directory. The daemon checks the ID, duplicates and the file.
func credentials(vals []string) ([]wire.Credential, error) {
	return credentialsWith(vals, func(_, p string) (string, error) { return filepath.Abs(p) })
}

// credentialsWith is credentials with abs resolving each PATH.
func credentialsWith(vals []string, abs func(what, p string) (string, error)) ([]wire.Credential, error) {
	var out []wire.Credential // nil when none
	for _, v := range vals {
		id, p, ok := strings.Cut(v, ":")
		if !ok || id == "" || p == "" {
			return nil, usageErr("add: --credential %q is not ID:PATH (e.g. --credential token:/etc/app/token)", v)
		}
		path, err := abs("--credential", p)
		if err != nil {
			return nil, usageErr("add: --credential %q: %v", v, err)
		}
		out = append(out, wire.Credential{ID: id, Path: path})
	}
	return out, nil
}
