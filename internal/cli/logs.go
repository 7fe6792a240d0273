package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/socketley/socketley/internal/control"
	"github.com/socketley/socketley/internal/wire"
)

// journalDirs are where journald keeps volatile and persistent journals.
var journalDirs = []string{"/run/log/journal", "/var/log/journal"}

func (a *app) logsCmd() *cobra.Command {
	var follow bool
	var lines int
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Show a runtime's output from the journal",
		Long: `Show the output (stdout and stderr) of the runtime's unit from the systemd
journal, through journalctl, with systemd's lines about the unit: the user
journal (--user; root reads all) for the user daemon, the system journal for the
system daemon. Lines are found by unit and by their identifier socketley-NAME,
so the last words of a program that exits at once are there too. Needs
systemd-journald; without it the output is not stored and the command says so.
With -H the command runs on that host (ssh HOST socketley logs ...), whose
journal holds the output.`,
		Args: exactArgs(1, "one runtime name, such as myapp"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := wire.CheckName(name); err != nil {
				return usageErr("logs: %v\n%s", err, usageLine(cmd))
			}
			if lines < 0 {
				return usageErr("logs: -n/--lines %d is negative: give 0 or more lines, such as 50\n%s", lines, usageLine(cmd))
			}
			if a.host != nil {
				// The journal is on that host: its socketley logs reads it.
				words := a.remoteWords("logs", name, "-n", strconv.Itoa(lines))
				if follow {
					words = append(words, "-f")
				}
				ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				return a.runRemote(ctx, words)
			}
			c := a.client()
			res, err := c.Do(cmd.Context(), wire.Request{Cmd: wire.CmdShow, Names: []string{name}})
			switch {
			case err == nil && len(res.Runtimes) == 1:
				r := res.Runtimes[0]
				if !r.Managed && !r.Orphan {
					return usageErr("logs: %s is an attached process (pid %d), not a unit; socketley does not capture its output", name, r.PID)
				}
			case errors.Is(err, control.ErrUnreachable):
				// Still useful: the journal outlives the daemon.
			case err != nil:
				return err
			}
			j, err := a.findJournal(cmd.Context(), c)
			if err != nil {
				if errors.Is(err, errNoJournal) {
					return usageErr("logs: no journal available on this machine (systemd-journald is not running), so the output of %s is not stored", name)
				}
				return usageErr("logs: no journal available: journalctl is not installed, so the output of %s cannot be shown", name)
			}
			jargs := append([]string{"--no-pager", "-n", strconv.Itoa(lines)}, j.unitArgs(name, false)...)
			if follow {
				jargs = append(jargs, "-f")
			}
			ctx := cmd.Context()
			if follow {
				// Ctrl-C ends -f: journalctl gets it too; we exit 0.
				var stop context.CancelFunc
				ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
				defer stop()
			}
			jcmd := exec.CommandContext(ctx, j.path, jargs...)
			jcmd.Stdout, jcmd.Stderr = a.stdio.Out, a.stdio.Err
			if err := jcmd.Run(); err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) && ctx.Err() == nil {
					msg := fmt.Sprintf("logs: journalctl exited with status %d", ee.ExitCode())
					if os.Getuid() != 0 {
						msg += "\nhint: to read the system journal, join group systemd-journal (sudo usermod -aG systemd-journal $USER, then log in again)"
					}
					return &exitError{code: 2, err: errors.New(msg)}
				}
				if ctx.Err() != nil {
					return nil // interrupted -f
				}
				return fmt.Errorf("logs: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output")
	cmd.Flags().IntVarP(&lines, "lines", "n", 50, "number of recent lines to show")
	return cmd
}

func journalPresent() bool {
	for _, d := range journalDirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			if ents, err := os.ReadDir(d); err == nil && len(ents) > 0 {
				return true
			}
		}
	}
	return false
}
