// Package format renders runtimes as the tables and detail views that the
// CLI prints and that the daemon returns to line-format (C++ SDK) clients.
package format

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/socketley/socketley/internal/wire"
)

// Table writes the ls table: every runtime, in the order given (the daemon
// sorts by name). An empty list prints the header only. Control characters
// in the cells are escaped (see Escape).
func Table(w io.Writer, rts []wire.Runtime, now time.Time) error {
	return columns(w, runtimeRows(rts, now, true))
}

// PS writes the ps table: ls's without MODE. PID is the last column, so
// scripts can read it with awk '{print $NF}'.
func PS(w io.Writer, rts []wire.Runtime, now time.Time) error {
	return columns(w, runtimeRows(rts, now, false))
}

// Rows returns the header and one row per runtime of the ls table (withMode)
// or of the ps table, not yet escaped (Columns escapes them).
func Rows(rts []wire.Runtime, now time.Time, withMode bool) [][]string {
	return runtimeRows(rts, now, withMode)
}

// runtimeRows returns the header and one row per runtime of ls (withMode)
// or ps.
func runtimeRows(rts []wire.Runtime, now time.Time, withMode bool) [][]string {
	rows := make([][]string, 0, len(rts)+1)
	header := []string{"NAME", "MODE", "TYPE", "PORT", "STATUS", "RESTARTS", "UPTIME", "CPU", "MEM", "TASKS", "PID"}
	if !withMode {
		header = slices.Delete(header, 1, 2)
	}
	rows = append(rows, header)
	for _, r := range rts {
		row := make([]string, 0, len(header))
		row = append(row, r.Name)
		if withMode {
			row = append(row, mode(r))
		}
		rows = append(rows, append(row, dash(r.Type), portCell(r), Status(r, now),
			strconv.Itoa(r.Restarts), Uptime(r, now), CPU(r.Usage), Memory(r.Usage), Tasks(r.Usage), pid(r.PID)))
	}
	return rows
}

// Columns writes rows (the first is the header) as ls does: left-aligned
// columns separated by two spaces, control characters escaped.
func Columns(w io.Writer, rows [][]string) error { return columns(w, rows) }

// columns writes rows as left-aligned columns separated by two spaces, with
// no trailing blanks; control characters in the cells are escaped (see
// Escape). (text/tabwriter does the same, several times slower, which shows
// at thousands of rows.)
func columns(w io.Writer, rows [][]string) error {
	if len(rows) == 0 {
		return nil
	}
	widths := make([]int, len(rows[0]))
	size := 0
	for _, row := range rows {
		for i, c := range row {
			row[i] = Escape(c)
			widths[i] = max(widths[i], utf8.RuneCountInString(row[i]))
		}
	}
	for _, wd := range widths {
		size += wd + 2
	}
	buf := make([]byte, 0, size*len(rows))
	for _, row := range rows {
		for i, c := range row {
			buf = append(buf, c...)
			if i < len(row)-1 {
				for range widths[i] - utf8.RuneCountInString(c) + 2 {
					buf = append(buf, ' ')
				}
			}
		}
		buf = append(buf, '\n')
	}
	_, err := w.Write(buf)
	return err
}

// Show writes the detail view of each runtime, separated by blank lines;
// control characters in the values are escaped (see Escape).
func Show(w io.Writer, rts []wire.Runtime, now time.Time) error {
	for i, r := range rts {
		if i > 0 {
			fmt.Fprintln(w)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
		kv := func(k, v string) {
			if v != "" {
				fmt.Fprintf(tw, "%s:\t%s\n", k, Escape(v))
			}
		}
		kv("Name", r.Name)
		kv("Mode", mode(r))
		kv("Unit", r.Unit)
		kv("Status", Status(r, now))
		kv("Reason", r.Reason)
		kv("Desired", r.Desired)
		if r.ActiveState != "" {
			kv("Unit state", r.ActiveState+" ("+r.SubState+")")
		}
		kv("PID", pidOrEmpty(r.PID))
		kv("Uptime", strings.TrimPrefix(Uptime(r, now), "-"))
		restarts := strconv.Itoa(r.Restarts)
		if r.HealthRestarts > 0 {
			restarts += " (" + strconv.Itoa(r.HealthRestarts) + " by the health check; socketley why " + r.Name + " says why)"
		}
		kv("Restarts", restarts)
		kv("Usage", usageLine(r))
		if r.Failures > 0 {
			v := strconv.Itoa(r.Failures) + " in a row"
			if !r.NextRestart.IsZero() {
				v += ", next start in " + Duration(r.NextRestart.Sub(now))
			}
			kv("Failed runs", v)
		}
		kv("Last exit", r.LastExit)
		kv("Type", r.Type)
		if r.Port > 0 {
			kv("Port", strconv.Itoa(r.Port))
		}
		if len(r.Listen) > 0 {
			kv("Listen", strings.Join(r.Listen, " ")+" (held by systemd: "+strings.TrimSuffix(r.Unit, ".service")+".socket)")
		}
		if r.AttachPID > 0 {
			kv("Attached", fmt.Sprintf("pid %d, %s ago", r.AttachPID, Duration(now.Sub(r.AttachedAt))))
		}
		kv("Path", r.Path)
		if r.Redacted {
			kv("Args, env", "(hidden: only root and the runtime's owner see them)")
		}
		if len(r.Args) > 0 {
			kv("Args", quoteAll(r.Args))
		}
		for _, e := range r.Env {
			kv("Env", e)
		}
		for _, c := range r.Credentials {
			kv("Credential", c.ID+" from "+c.Path)
		}
		for _, p := range r.EnvFiles {
			kv("Env file", p)
		}
		if r.Harden {
			kv("Hardened", "yes (add --harden: sandboxing preset, docs/harden.md)")
		}
		kv("Workdir", r.WorkDir)
		if r.Restart != "" {
			kv("Restart", restartPolicy(r))
		}
		if r.StopTimeout > 0 {
			kv("Stop timeout", time.Duration(r.StopTimeout).String()+", then SIGKILL")
		}
		kv("Limits", r.Limits.String())
		if len(r.Properties) > 0 {
			kv("Properties", strings.Join(r.Properties, " "))
		}
		kv("User", r.User)
		if r.Managed || r.Orphan || r.OwnerUID != 0 {
			kv("Owner uid", strconv.Itoa(r.OwnerUID))
		}
		if !r.Created.IsZero() {
			kv("Created", r.Created.Local().Format(time.RFC3339))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// CPU is the CPU column: the usage's CPU percentage with one decimal
// ("1.2%"), "-" without a sample.
func CPU(u *wire.Usage) string {
	if u == nil {
		return "-"
	}
	return strconv.FormatFloat(u.CPUPercent, 'f', 1, 64) + "%"
}

// Memory is the MEM column: the usage's memory in a human size ("12.3M"),
// "-" without a sample.
func Memory(u *wire.Usage) string {
	if u == nil {
		return "-"
	}
	return Size(u.MemoryBytes)
}

// Tasks is the TASKS column: processes and threads, "-" without a sample.
func Tasks(u *wire.Usage) string {
	if u == nil {
		return "-"
	}
	return strconv.Itoa(u.Tasks)
}

// Size renders a byte count in powers of 1024 as systemd does, with one
// decimal below 100 of a unit: 512B, 1.5K, 12.3M, 123M, 2.0G.
func Size(b uint64) string {
	if b < 1024 {
		return strconv.FormatUint(b, 10) + "B"
	}
	v := float64(b)
	unit := 0
	const units = "KMGTPE"
	for v /= 1024; v >= 1024 && unit < len(units)-1; v /= 1024 {
		unit++
	}
	if v < 99.95 {
		return strconv.FormatFloat(v, 'f', 1, 64) + units[unit:unit+1]
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + units[unit:unit+1]
}

// usageLine is show's Usage: the figures and where they come from ("" when
// there is no sample).
func usageLine(r wire.Runtime) string {
	u := r.Usage
	if u == nil {
		return ""
	}
	from := "from the unit's cgroup"
	switch {
	case u.Source == wire.UsageProc && r.Managed:
		from = "from /proc: the cgroup controllers are not available"
	case u.Source == wire.UsageProc:
		from = "from /proc"
	case u.Source != wire.UsageCgroup:
		from = "from " + u.Source
	}
	return fmt.Sprintf("cpu %s, memory %s, tasks %d (%s)", CPU(u), Size(u.MemoryBytes), u.Tasks, from)
}

// restartPolicy words a runtime's restart settings, defaults filled in.
func restartPolicy(r wire.Runtime) string {
	if r.Restart == wire.RestartNo {
		return string(wire.RestartNo)
	}
	maxDelay, reset := time.Duration(r.RestartMaxDelay), time.Duration(r.RestartReset)
	if maxDelay <= 0 {
		maxDelay = wire.DefaultRestartMaxDelay
	}
	if reset <= 0 {
		reset = wire.DefaultRestartReset
	}
	give := "forever"
	if r.MaxRestarts > 0 {
		give = "give up after " + strconv.Itoa(r.MaxRestarts) + " failed runs"
	}
	return fmt.Sprintf("%s (after %s; backoff up to %s, reset after %s up; %s)",
		r.Restart, time.Duration(r.RestartSec), maxDelay, reset, give)
}

// Status is the STATUS column of a runtime: the state, and for a crash loop
// the failure count and when the next start is due ("crash-loop (12×, next
// in 8s)").
func Status(r wire.Runtime, now time.Time) string {
	if r.Status != wire.StatusCrashLoop || r.Failures == 0 {
		return string(r.Status)
	}
	if r.NextRestart.IsZero() || !r.NextRestart.After(now) {
		return fmt.Sprintf("%s (%d×, restarting)", r.Status, r.Failures)
	}
	return fmt.Sprintf("%s (%d×, next in %s)", r.Status, r.Failures, Duration(r.NextRestart.Sub(now).Round(time.Second)))
}

// Uptime is how long the current process has been active, or "-".
func Uptime(r wire.Runtime, now time.Time) string {
	if r.PID == 0 || r.Since.IsZero() {
		return "-"
	}
	return Duration(now.Sub(r.Since))
}

// Duration renders d compactly: 45s, 3m12s, 2h05m, 3d04h.
func Duration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, (s%3600)/60)
	default:
		return fmt.Sprintf("%dd%02dh", s/86400, (s%86400)/3600)
	}
}

// mode is the MODE column: the runtime's Mode, derived from its flags when
// an older daemon left it out.
func mode(r wire.Runtime) string {
	if r.Mode != "" {
		return string(r.Mode)
	}
	return string(wire.ModeOf(r.Managed, r.Orphan))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func port(p int) string {
	if p <= 0 {
		return "-"
	}
	return strconv.Itoa(p)
}

func pid(p int) string {
	if p <= 0 {
		return "-"
	}
	return strconv.Itoa(p)
}

func pidOrEmpty(p int) string {
	if p <= 0 {
		return ""
	}
	return strconv.Itoa(p)
}

// quoteAll renders args so that spaces inside one argument stay visible.
func quoteAll(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'\\") {
			out[i] = strconv.Quote(a)
		} else {
			out[i] = a
		}
	}
	return strings.Join(out, " ")
}

// portCell is ls's PORT: the attached port, or the --listen addresses
// (marked *) when the runtime has not attached one.
func portCell(r wire.Runtime) string {
	if r.Port > 0 || len(r.Listen) == 0 {
		return port(r.Port)
	}
	return strings.Join(r.Listen, ",") + "*"
}
