package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/socketley/socketley/internal/format"
	"github.com/socketley/socketley/internal/wire"
)

// top's sort keys, as --sort takes them, and the key that selects each.
var topSorts = []struct {
	name string
	key  byte
}{{"cpu", 'c'}, {"mem", 'm'}, {"tasks", 't'}, {"name", 'n'}, {"restarts", 'r'}}

// Bounds of top --interval.
const (
	topMinInterval = 100 * time.Millisecond
	topMaxInterval = time.Hour
)

// topFlags are top's flags.
type topFlags struct {
	interval time.Duration
	sort     string
	once     bool
	out      string
}

// check validates the flags (exit 1, naming the flag and what it takes).
func (f topFlags) check(cmd *cobra.Command) error {
	if err := checkOutput(cmd, f.out); err != nil {
		return err
	}
	if f.interval < topMinInterval || f.interval > topMaxInterval {
		return usageErr("top: --interval %s: give a duration from %s to %s (e.g. 1s, 500ms, 5s)\n%s", f.interval, topMinInterval, topMaxInterval, usageLine(cmd))
	}
	if !validTopSort(f.sort) {
		return usageErr("top: --sort %q is not a column to sort by: use %s\n%s", f.sort, topSortNames(), usageLine(cmd))
	}
	return nil
}

func validTopSort(s string) bool {
	return slices.ContainsFunc(topSorts, func(k struct {
		name string
		key  byte
	}) bool {
		return k.name == s
	})
}

func topSortNames() string {
	names := make([]string, len(topSorts))
	for i, k := range topSorts {
		names[i] = k.name
	}
	return strings.Join(names, ", ")
}

// topSortKey returns the sort the key k selects ("" for none).
func topSortKey(k byte) string {
	for _, s := range topSorts {
		if s.key == k {
			return s.name
		}
	}
	return ""
}

func (a *app) topCmd() *cobra.Command {
	f := topFlags{}
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Live view of what each runtime uses (CPU, memory, tasks)",
		Long: `A live view of every runtime: NAME STATUS CPU% MEM TASKS RESTARTS PID, refreshed
every --interval, sorted by --sort (cpu, mem, tasks, restarts: largest first;
name: a to z). The figures are the daemon's samples of each health tick (the
unit's cgroup, or /proc where the cgroup controllers are not available; see
socketley show).

On a terminal the screen is redrawn; keys (when stdin is a terminal): c, m, t,
n, r sort by cpu, mem, tasks, name, restarts; q quits (so does Ctrl-C).
Otherwise each refresh is printed after the last. --once prints one table (or
with -o json one JSON array) and exits; -o json without --once prints one JSON
array per refresh, one line each.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			return a.runTop(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&f.interval, "interval", time.Second, "time between refreshes (100ms to 1h)")
	fl.StringVar(&f.sort, "sort", "cpu", "sort by cpu, mem, tasks, name or restarts")
	fl.BoolVar(&f.once, "once", false, "print once and exit (for scripts)")
	outputFlag(cmd, &f.out)
	return cmd
}

// runTop fetches and prints until q, Ctrl-C or SIGTERM (or once).
func (a *app) runTop(ctx context.Context, f topFlags) error {
	fetch := func(ctx context.Context) ([]wire.Runtime, error) {
		return runtimes(ctx, a.client(), wire.Request{Cmd: wire.CmdList})
	}
	if f.once {
		rts, err := fetch(ctx)
		if err != nil {
			return err
		}
		return writeTop(a.stdio.Out, f.out, rts, f.sort, time.Now(), false)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	screen := isTerminal(a.stdio.Out)
	keys := make(chan byte, 8)
	if in, ok := a.stdio.In.(*os.File); ok && f.out == "table" {
		restore, err := rawInput(int(in.Fd()))
		if err == nil {
			defer restore()
			go readKeys(in, keys)
		}
	}
	sortBy := f.sort
	var rts []wire.Runtime
	tick := time.NewTicker(f.interval)
	defer tick.Stop()
	fetchNow := true
	for {
		if fetchNow {
			got, err := fetch(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			rts = got
		}
		if err := writeTop(a.stdio.Out, f.out, rts, sortBy, time.Now(), screen); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil // Ctrl-C, SIGTERM: the end of the view, not a failure
		case <-tick.C:
			fetchNow = true
		case k := <-keys:
			if k == 'q' || k == 'Q' {
				return nil
			}
			if s := topSortKey(k | 0x20); s != "" {
				sortBy = s
			}
			fetchNow = false // redraw what is there, sorted anew
		}
	}
}

// writeTop writes one refresh: the table (on a screen, after clearing it)
// or one JSON array on one line.
func writeTop(w io.Writer, out string, rts []wire.Runtime, sortBy string, now time.Time, screen bool) error {
	if rts == nil {
		rts = []wire.Runtime{}
	}
	sortTop(rts, sortBy)
	if out == "json" {
		b, err := json.Marshal(rts)
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	var b strings.Builder
	if screen {
		b.WriteString("\x1b[H\x1b[2J") // home, clear
	}
	renderTop(&b, rts, sortBy, now, screen)
	_, err := io.WriteString(w, b.String())
	return err
}

// sortTop sorts rts by key: cpu, mem, tasks and restarts largest first
// (runtimes without a usage sample last), name a to z; ties by name.
func sortTop(rts []wire.Runtime, key string) {
	metric := func(r wire.Runtime) float64 {
		if key == "restarts" {
			return float64(r.Restarts)
		}
		u := r.Usage
		if u == nil {
			return -1
		}
		switch key {
		case "mem":
			return float64(u.MemoryBytes)
		case "tasks":
			return float64(u.Tasks)
		}
		return u.CPUPercent
	}
	slices.SortStableFunc(rts, func(a, b wire.Runtime) int {
		if key != "name" {
			if c := cmp.Compare(metric(b), metric(a)); c != 0 {
				return c
			}
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// renderTop writes the header line and the table of rts (sorted already).
func renderTop(w io.Writer, rts []wire.Runtime, sortBy string, now time.Time, keys bool) {
	running := 0
	var cpu float64
	var mem uint64
	for _, r := range rts {
		if r.PID > 0 {
			running++
		}
		if u := r.Usage; u != nil {
			cpu += u.CPUPercent
			mem += u.MemoryBytes
		}
	}
	fmt.Fprintf(w, "socketley top - %s - %d runtimes, %d running - cpu %s%%, memory %s - sorted by %s",
		now.Format("15:04:05"), len(rts), running, strconv.FormatFloat(cpu, 'f', 1, 64), format.Size(mem), sortBy)
	if keys {
		fmt.Fprint(w, " (keys: c m t n r sort, q quits)")
	}
	fmt.Fprintln(w)
	rows := make([][]string, 0, len(rts)+1)
	rows = append(rows, []string{"NAME", "STATUS", "CPU%", "MEM", "TASKS", "RESTARTS", "PID"})
	for _, r := range rts {
		cpu := "-"
		if r.Usage != nil {
			cpu = strconv.FormatFloat(r.Usage.CPUPercent, 'f', 1, 64)
		}
		pid := "-"
		if r.PID > 0 {
			pid = strconv.Itoa(r.PID)
		}
		rows = append(rows, []string{r.Name, format.Status(r, now), cpu, format.Memory(r.Usage),
			format.Tasks(r.Usage), strconv.Itoa(r.Restarts), pid})
	}
	_ = format.Columns(w, rows)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// rawInput puts the terminal fd into a mode where each key is read at once
// without echo (no ICANON, no ECHO; signals stay on, so Ctrl-C is SIGINT),
// and returns what restores it. An error: fd is no terminal.
func rawInput(fd int) (restore func(), err error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("stdin is no terminal: %w", err)
	}
	raw := *old
	raw.Lflag &^= unix.ICANON | unix.ECHO
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, fmt.Errorf("set the terminal mode: %w", err)
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}

// readKeys sends each byte read from in to keys until in fails.
func readKeys(in io.Reader, keys chan<- byte) {
	var b [16]byte
	for {
		n, err := in.Read(b[:])
		for _, k := range b[:n] {
			select {
			case keys <- k:
			default: // typed ahead: dropped
			}
		}
		if err != nil && !errors.Is(err, syscall.EINTR) {
			return
		}
	}
}
