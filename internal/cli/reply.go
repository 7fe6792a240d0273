package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/socketley/socketley/internal/control"
	"github.com/socketley/socketley/internal/format"
	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/wire"
)

// An empty read of a failed runtime's output is retried journalRetries
// times, journalRetryEvery apart: journald may not have read the last lines
// the program wrote before it exited.
const (
	journalRetries    = 15
	journalRetryEvery = 100 * time.Millisecond
)

// logTail is how many of a failed runtime's last output lines a failed
// add -s, start or restart shows.
const logTail = 5

// startReply prints what add -s, start or restart (verb) knows about each
// runtime in res after a reply without error: with --wait (waited) it was
// seen running; without, only that its unit was started. A runtime whose
// process has already exited by the time of the reply makes the command
// fail (exit 1) with the exit, its last output lines and what to do next.
func (a *app) startReply(ctx context.Context, c *control.Client, verb string, res *wire.Result, waited bool) error {
	var failed []wire.Runtime
	for _, r := range res.Runtimes {
		name, unit := format.Escape(r.Name), format.Escape(r.Unit)
		switch {
		case r.Unchanged && !exited(r):
			fmt.Fprintf(a.stdio.Out, "%s: already started (unit %s, pid %d, status %s); left alone\n", name, unit, r.PID, format.Escape(r.Status))
		case exited(r):
			failed = append(failed, r)
		case waited:
			fmt.Fprintf(a.stdio.Out, "%s: %s (unit %s, pid %d)\n", name, format.Escape(r.Status), unit, r.PID)
		case verb == "restart":
			fmt.Fprintf(a.stdio.Out, "%s: stopped, then started (unit %s, pid %d)\n", name, unit, r.PID)
		default:
			fmt.Fprintf(a.stdio.Out, "%s: started (unit %s, pid %d)\n", name, unit, r.PID)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	var b strings.Builder
	for i, r := range failed {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%s: %s was started (unit %s) but its process has already exited (%s); %s",
			verb, r.Name, r.Unit, orUnknownExit(r.LastExit), policy(r))
		a.explain(ctx, c, &b, r)
		b.WriteString("\nnext: " + nextSteps(r.Name))
	}
	return &exitError{code: 1, err: errors.New(b.String())}
}

// failReply adds to a failed add -s, start or restart (verb; err, from the
// daemon) the last output lines of each managed runtime of res that failed
// (the only one, or one the error names), and puts the daemon's next steps
// on a line of their own. The other runtimes of res, which started, are
// reported on stdout as usual.
func (a *app) failReply(ctx context.Context, c *control.Client, verb string, res *wire.Result, err error, waited bool) error {
	if res == nil {
		return err
	}
	var b strings.Builder
	var names []string
	for _, r := range res.Runtimes {
		// The daemon marks the runtimes it failed on (Failed); the only
		// runtime of a failed reply is the one (an older daemon's too).
		failed := r.Failed != "" || len(res.Runtimes) == 1
		if !failed {
			if r.Status == wire.StatusRunning && r.PID > 0 {
				word := "started"
				if waited {
					word = "running"
				}
				fmt.Fprintf(a.stdio.Out, "%s: %s (unit %s, pid %d)\n", format.Escape(r.Name), word, format.Escape(r.Unit), r.PID)
			}
			continue
		}
		if r.Managed {
			a.explain(ctx, c, &b, r)
			names = append(names, r.Name)
		}
	}
	if len(names) == 0 {
		return err
	}
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		head, next, ok := strings.Cut(l, "; next: ")
		lines = append(lines, head)
		if ok {
			b.WriteString("\nnext: " + next)
		}
	}
	if !strings.Contains(b.String(), "\nnext: ") {
		for _, n := range names {
			b.WriteString("\nnext: " + nextSteps(n))
		}
	}
	return &wrapped{err: err, msg: strings.Join(lines, "\n") + b.String()}
}

// nextSteps is what to do about a runtime that fails to run (the daemon's
// words, for an older daemon that does not say).
func nextSteps(name string) string {
	return fmt.Sprintf("socketley logs %s shows its output; fix the program, then socketley start %s; or socketley remove %s drops it", name, name, name)
}

// wrapped replaces err's message and keeps err for errors.Is/As (and the
// exit code).
type wrapped struct {
	err error
	msg string
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }

// exited reports whether r's process is gone: no pid, and a status that
// says it ended.
func exited(r wire.Runtime) bool {
	if r.PID > 0 {
		return false
	}
	switch r.Status {
	case wire.StatusFailed, wire.StatusCrashLoop, wire.StatusRestarting, wire.StatusStopped:
		return true
	}
	return false
}

func orUnknownExit(s string) string {
	if s == "" {
		return "exit not reported"
	}
	return s
}

// policy says what follows for r, which stays registered and wanted running.
func policy(r wire.Runtime) string {
	if r.Restart == wire.RestartNo {
		return fmt.Sprintf("%s stays registered and is not restarted (--restart no)", r.Name)
	}
	return fmt.Sprintf("%s stays registered and is left to its restart policy (--restart %s): socketley restarts it with the crash backoff, ls shows crash-loop meanwhile",
		r.Name, orDefaultPolicy(r.Restart))
}

func orDefaultPolicy(p wire.RestartPolicy) wire.RestartPolicy {
	if p == "" {
		return wire.DefaultRestart
	}
	return p
}

// explain appends r's last output lines (or why they cannot be read) to b.
func (a *app) explain(ctx context.Context, c *control.Client, b *strings.Builder, r wire.Runtime) {
	lines, err := a.journalTail(ctx, c, r.Name, logTail)
	switch {
	case err != nil:
		fmt.Fprintf(b, "\nits output cannot be read: %v", err)
	case len(lines) == 0:
		b.WriteString("\nits output: none in the journal since this command began")
	default:
		b.WriteString("\nits last output (from the journal):")
		for _, l := range lines {
			b.WriteString("\n  " + l)
		}
	}
}

// journal says how to read the output of the units of the daemon c talks to.
type journal struct {
	path   string // journalctl
	system bool   // the system manager's units (else a user manager's)
}

// findJournal finds journalctl and the journal of c's daemon; the error
// says why the output cannot be read.
func (a *app) findJournal(ctx context.Context, c *control.Client) (journal, error) {
	if a.host != nil {
		return journal{}, fmt.Errorf("%w: socketley -H %s logs NAME shows it", errRemoteJournal, a.host)
	}
	j := journal{system: c.Socket == paths.SystemSocket}
	if v, err := c.Do(ctx, wire.Request{Cmd: wire.CmdVersion}); err == nil {
		j.system = v.Message == paths.System.String()
	}
	p, err := exec.LookPath("journalctl")
	if err != nil {
		return j, fmt.Errorf("journalctl is not installed, so the output of units is not shown: %w", err)
	}
	if !journalPresent() {
		return j, errNoJournal
	}
	j.path = p
	return j, nil
}

// errNoJournal is a machine without a running journald.
var errNoJournal = errors.New("no journal available on this machine (systemd-journald is not running), so the output of units is not stored")

// unitArgs selects the journal entries of name's unit: its own output
// (also the lines journald could no longer tie to the unit, found by their
// identifier, see wire.SyslogIdentifier) and, unless own, systemd's lines
// about the unit. Root reads every journal; others read their user
// journal (--user) for the user daemon.
func (j journal) unitArgs(name string, own bool) []string {
	unit := wire.UnitName(name)
	var args []string
	field, about := "_SYSTEMD_USER_UNIT=", "USER_UNIT="
	if j.system {
		field, about = "_SYSTEMD_UNIT=", "UNIT="
	} else if os.Getuid() != 0 {
		args = append(args, "--user")
	}
	args = append(args, field+unit, "+", "SYSLOG_IDENTIFIER="+wire.SyslogIdentifier(name))
	if !own {
		args = append(args, "+", about+unit)
	}
	return args
}

// journalTail returns name's last n lines of output from the journal since
// this invocation began.
func (a *app) journalTail(ctx context.Context, c *control.Client, name string, n int) ([]string, error) {
	return a.journalLines(ctx, c, name, n, a.began)
}

// journalLines returns name's last n lines of output from the journal,
// since the given time when it is not zero (then an empty read is retried
// for a moment: see journalRetries).
func (a *app) journalLines(ctx context.Context, c *control.Client, name string, n int, since time.Time) ([]string, error) {
	j, err := a.findJournal(ctx, c)
	if err != nil {
		return nil, err
	}
	// The unit's own output only, not systemd's lines about the unit.
	args := []string{"--no-pager", "-q", "-o", "cat", "-n", strconv.Itoa(n)}
	retries := 0
	if !since.IsZero() {
		args = append(args, fmt.Sprintf("--since=@%d.%06d", since.Unix(), since.Nanosecond()/1000))
		retries = journalRetries
	}
	args = append(args, j.unitArgs(name, true)...)
	if os.Geteuid() == 0 {
		// Root may ask journald to write out what it has received.
		_ = exec.CommandContext(ctx, j.path, "--sync").Run()
	}
	// journald reads the program's output asynchronously: lines written
	// just before the exit may reach the journal after the reply. An empty
	// read is retried for a moment (this is the failure path only).
	var lines []string
	for i := 0; ; i++ {
		var out, errb bytes.Buffer
		cmd := exec.CommandContext(ctx, j.path, args...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			msg := strings.TrimSpace(errb.String())
			if msg == "" {
				msg = err.Error()
			}
			return nil, fmt.Errorf("journalctl failed: %s", msg)
		}
		sc := bufio.NewScanner(&out)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		if len(lines) > 0 || i >= retries || ctx.Err() != nil {
			break
		}
		time.Sleep(journalRetryEvery)
	}
	return lines, nil
}
