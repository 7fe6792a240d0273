package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/socketley/socketley/internal/format"
	"github.com/socketley/socketley/internal/wire"
)

// parseSince reads events --since: an RFC 3339 time, or a duration (Go's
// syntax, such as 10m or 1h30m) meaning that long before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q is neither a time nor a duration: give an RFC 3339 time (2026-01-02T15:04:05Z) or how long ago (10m, 2h, 1h30m)", s)
}

// eventTimeLayout is the TIME column of events.
const eventTimeLayout = "2006-01-02 15:04:05.000"

// eventLine is one human line of events: TIME NAME EVENT DETAILS, escaped.
func eventLine(ev wire.Event) string {
	d := ev.Details()
	if d == "" {
		d = "-"
	}
	return fmt.Sprintf("%s  %-16s %-15s %s", ev.Time.Local().Format(eventTimeLayout), format.Escape(ev.Name), ev.Kind, format.Escape(d))
}

// writeEvent prints ev as a line (table) or a JSON object (json).
func writeEvent(w io.Writer, out string, ev wire.Event) error {
	if out == "json" {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	_, err := fmt.Fprintln(w, eventLine(ev))
	return err
}

func (a *app) eventsCmd() *cobra.Command {
	var out, since string
	var follow bool
	cmd := &cobra.Command{
		Use:   "events [NAME|PATTERN...]",
		Short: "List what happened to runtimes: starts, exits, restarts, health",
		Long: `List the events of the runtimes (all, or those named; a NAME may be a glob
pattern), oldest first: TIME NAME EVENT DETAILS. The events are added, started,
attached, detached, unhealthy, health-restart, exited (with its exit code or
signal), oom-killed, restarted (an automatic restart, by systemd or the daemon's
crash backoff), crash-loop, start-limit-hit, gave-up, stopped and removed
(docs/events.md). Without --since the daemon lists the events it holds in memory
(since it started, up to 4096); --since T lists those from T on and reads the
journal for what happened before the daemon started (T is an RFC 3339 time, or
a duration such as 10m meaning that long ago). -f keeps printing new events
until interrupted. -o json prints one JSON object per line. A user other than
root sees the events of its own runtimes only. The daemon also writes every
event to the journal: journalctl SOCKETLEY_NAME=NAME lists them.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cmd, out); err != nil {
				return err
			}
			if err := checkNames(cmd, args); err != nil {
				return err
			}
			req := wire.Request{Cmd: wire.CmdEvents, Names: args}
			if cmd.Flags().Changed("since") {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return usageErr("events: %v\n%s", err, usageLine(cmd))
				}
				req.Since = t
			}
			w := a.stdio.Out
			if follow {
				ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				err := a.client().Follow(ctx, req, func(res *wire.Result) error {
					return a.printEvents(out, res)
				}, func(ev wire.Event) error { return writeEvent(w, out, ev) })
				if ctx.Err() != nil && cmd.Context().Err() == nil {
					return nil // interrupted -f
				}
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			res, err := a.client().Do(ctx, req)
			if err != nil {
				return err
			}
			return a.printEvents(out, res)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events until interrupted")
	cmd.Flags().StringVar(&since, "since", "", "list events from this time on (RFC 3339, or a duration such as 10m: that long ago), reading the journal")
	outputFlag(cmd, &out)
	return cmd
}

// printEvents prints the events of a reply, and its note (events it could
// not list) on stderr.
func (a *app) printEvents(out string, res *wire.Result) error {
	for _, ev := range res.Events {
		if err := writeEvent(a.stdio.Out, out, ev); err != nil {
			return err
		}
	}
	if res.Message != "" {
		fmt.Fprintln(a.stdio.Err, "socketley: "+format.EscapeLines(strings.TrimSpace(res.Message)))
	}
	return nil
}

func (a *app) whyCmd() *cobra.Command {
	var out string
	var lines int
	cmd := &cobra.Command{
		Use:   "why NAME",
		Short: "Say how a runtime last ended and what happened to it",
		Long: `Explain a runtime: its status, how its main process last ended (exit code,
signal, core dump, OOM kill, start limit hit, timeout), its restarts with their
time and cause (systemd's, the crash backoff's and the health check's, with its
reason: attach overdue, port refused; the last 20 are kept across daemon
restarts), its recent events, and the last lines of its output from the journal
(-n, default 20; 0 for none). -o json prints it all as one JSON object.`,
		Args: exactArgs(1, "one runtime name, such as myapp"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cmd, out); err != nil {
				return err
			}
			name := args[0]
			if err := wire.CheckName(name); err != nil {
				return usageErr("why: %v\n%s", err, usageLine(cmd))
			}
			if lines < 0 {
				return usageErr("why: -n/--lines %d is negative: give 0 or more lines, such as 20\n%s", lines, usageLine(cmd))
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			c := a.client()
			res, err := c.Do(ctx, wire.Request{Cmd: wire.CmdWhy, Names: []string{name}})
			if err != nil {
				return err
			}
			w := res.Why
			if w == nil {
				return errors.New("why: the daemon sent no answer (is it older than this socketley?)")
			}
			var jerr error
			if lines > 0 {
				w.Journal, jerr = a.journalLines(ctx, c, name, lines, time.Time{})
			}
			if out == "json" {
				enc := json.NewEncoder(a.stdio.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(w)
			}
			writeWhy(a.stdio.Out, w, time.Now())
			if jerr != nil {
				fmt.Fprintf(a.stdio.Out, "output: not available: %s\n", format.Escape(jerr.Error()))
			}
			return nil
		},
	}
	cmd.Flags().IntVarP(&lines, "lines", "n", 20, "number of the unit's last output lines to show")
	outputFlag(cmd, &out)
	return cmd
}

// writeWhy prints the human form of why.
func writeWhy(wr io.Writer, w *wire.Why, now time.Time) {
	p := func(f string, args ...any) { fmt.Fprintf(wr, f, args...) }
	st := string(w.Status)
	if w.Reason != "" {
		st += " (" + format.Escape(w.Reason) + ")"
	}
	p("%s: %s\n", format.Escape(w.Name), st)
	switch x := w.LastExit; {
	case x == nil:
		p("last exit: none seen\n")
	case x.Time.IsZero():
		p("last exit: %s\n", format.Escape(x.Words))
	default:
		p("last exit: %s, at %s (%s ago)\n", format.Escape(x.Words), x.Time.Local().Format(eventTimeLayout), format.Duration(now.Sub(x.Time)))
	}
	p("restarts: %d (health restarts: %d)\n", w.Restarts, w.HealthRestarts)
	if len(w.History) > 0 {
		p("restart history (last %d):\n", len(w.History))
		for _, h := range w.History {
			p("  %s  %-15s %s\n", h.Time.Local().Format(eventTimeLayout), h.Kind, format.Escape(h.Cause))
		}
	}
	if len(w.Events) > 0 {
		p("events:\n")
		for _, ev := range w.Events {
			p("  %s\n", eventLine(ev))
		}
	}
	if len(w.Journal) > 0 {
		p("output (last %d lines):\n", len(w.Journal))
		for _, l := range w.Journal {
			p("  %s\n", format.Escape(l))
		}
	}
}
