package manager

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// checkLimits refuses limits that would give a non-root caller of the
// system daemon more than systemd gives any service by default: its
// systemd applies them as root, so without this check a caller could lift
// its own unit above what it could set for itself. Memory limits and a CPU
// quota only restrict and are anyone's; a CPU weight above the default
// (100) takes CPU time from other users' services; a tasks or open-files
// limit above the manager's DefaultTasksMax or DefaultLimitNOFILE (hard)
// lifts a cap. The user daemon's callers are the user (and root): their
// own manager applies the limits with their rights.
func (m *Manager) checkLimits(caller Caller, l wire.Limits) error {
	if m.cfg.Mode != paths.System || caller.root() {
		return nil
	}
	if l.CPUWeight > wire.DefaultCPUWeight {
		return errorf(ErrDenied, "--cpu-weight %d: only root may give a weight above %d (the default) with the system daemon: it takes CPU time from other services; give 1-%d",
			l.CPUWeight, wire.DefaultCPUWeight, wire.DefaultCPUWeight)
	}
	if l.TasksMax == 0 && l.NOFILE == 0 {
		return nil
	}
	sd, err := m.systemd()
	if err != nil {
		return err
	}
	def, err := sd.DefaultLimits()
	if err != nil {
		return fmt.Errorf("check --tasks-max and --nofile against the manager's defaults: %w", err)
	}
	if l.TasksMax > def.TasksMax {
		return errorf(ErrDenied, "--tasks-max %s: only root may go above the system manager's default, %s (DefaultTasksMax=); give at most that",
			l.Args().TasksMax, def.Args().TasksMax)
	}
	if l.NOFILE > def.NOFILE {
		return errorf(ErrDenied, "--nofile %s: only root may go above the system manager's hard limit, %s (DefaultLimitNOFILE=); give at most that",
			l.Args().NOFILE, def.Args().NOFILE)
	}
	return nil
}

// checkProperties refuses the -p settings that would give a non-root
// caller of the system daemon more than systemd gives any service
// (wire.PropertyPrivileged: a negative Nice or OOMScoreAdjust, an
// IOWeight above the default), for the reason checkLimits gives, and, with
// a user daemon, those its systemd may fail every start with
// (wire.PropertyUserRefused).
func (m *Manager) checkProperties(caller Caller, props []string) error {
	if m.cfg.Mode != paths.System {
		for _, kv := range props {
			if why := wire.PropertyUserRefused(kv); why != "" {
				return errorf(ErrInvalid, "-p %s: for the system daemon only: %s", kv, why)
			}
		}
		return nil
	}
	if caller.root() {
		return nil
	}
	for _, kv := range props {
		if why := wire.PropertyPrivileged(kv); why != "" {
			return errorf(ErrDenied, "-p %s: only root may set this with the system daemon: %s", kv, why)
		}
	}
	return nil
}

// set changes the limits of one managed runtime (socketley set NAME):
// saved first (the registry is what every later unit of the runtime is
// made from), then the cgroup limits (memory, CPU, tasks) applied to its
// loaded unit at once, without a restart. --nofile cannot change on a
// running process: it takes effect when a new unit is made for the
// runtime (a restart; for a --listen runtime, whose socket keeps its
// service loaded, the next stop and start), or at once with s.Restart,
// which restarts the runtime (a --listen runtime with its socket, so
// connections are refused for that moment). The reply's message says,
// line by line, what took effect and what waits.
func (m *Manager) set(ctx context.Context, caller Caller, s wire.SetSpec) (*wire.Result, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	lim, _, err := wire.ParseLimits(s.Limits)
	if err != nil {
		return nil, err
	}
	name := s.Name
	es, err := m.resolve(caller, []string{name}, "set")
	if err != nil {
		return nil, err
	}
	if !es[0].Managed {
		return nil, errorf(ErrInvalid, "%s is an attached process (pid %d), not a managed unit; socketley sets limits only on the units it runs", name, es[0].PID)
	}
	if err := m.checkLimits(caller, lim); err != nil {
		return nil, err
	}
	if err := m.checkProperties(caller, s.Properties); err != nil {
		return nil, err
	}
	change := describeSet(lim, s)
	unlock := m.locks.lock(name)
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	e, ok := m.entry(name)
	if !ok {
		return nil, errorf(ErrNotFound, "runtime %s was removed meanwhile", name)
	}
	if e.Desired == DesiredRemoved {
		return nil, errorf(ErrInvalid, "%s is being removed (run socketley remove %s again to finish); its limits cannot change", name, name)
	}
	err = m.update(func(r *Registry) error {
		cur, ok := r.edit(name)
		if !ok {
			return errorf(ErrNotFound, "runtime %s was removed meanwhile", name)
		}
		cur.Limits = cur.Limits.With(lim)
		cur.Properties = wire.MergeProperties(cur.Properties, s.Properties)
		if s.Harden != nil {
			cur.Harden = *s.Harden
		}
		if s.Restart && cur.Desired == DesiredRunning {
			cur.Backoff = nil // an operator's restart retries at once
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	e, _ = m.entry(name)
	log := m.log.With("name", name, "unit", units.Name(name))
	log.Info("set", "change", change.all(), "limits", e.Limits.String(), "properties", strings.Join(e.Properties, " "), "harden", e.Harden)

	var notes []string
	if s.Restart && e.Desired == DesiredRunning {
		if err := m.restartForLimits(ctx, e); err != nil {
			res := &wire.Result{Runtimes: []wire.Runtime{m.view(name)}}
			unlock() // first: supervise skips a locked runtime
			locked = false
			m.poke() // a failed start is the backoff's now
			return res, &msgError{err: err, msg: fmt.Sprintf("set %s: %s saved; the restart failed: %v", name, change.all(), err)}
		}
		v := m.view(name)
		notes = append(notes, fmt.Sprintf("%s: %s saved and in effect: restarted (pid %d)", name, change.all(), v.PID))
		if len(e.Listen) > 0 {
			notes = append(notes, fmt.Sprintf("%s: its socket was closed and opened again with it (the limits of a --listen runtime's service change only then)", name))
		}
		return &wire.Result{Runtimes: []wire.Runtime{v}, Message: strings.Join(notes, "\n")}, nil
	}

	if change.live != "" {
		applied, err := m.applyLive(ctx, e)
		switch {
		case err != nil:
			return &wire.Result{Runtimes: []wire.Runtime{m.view(name)}},
				&msgError{err: err, msg: fmt.Sprintf("set %s: %s saved, but systemd did not apply it to the unit now: %v; it applies at the next start", name, change.live, err)}
		case applied:
			notes = append(notes, fmt.Sprintf("%s: %s applied now (no restart)", name, change.live))
		default:
			notes = append(notes, fmt.Sprintf("%s: %s saved; it applies when %s starts (it has no unit now)", name, change.live, name))
		}
	}
	if change.later != "" {
		st, loaded := m.snapshot()[name]
		switch {
		case !loaded || st.LoadState == units.LoadNotFound:
			notes = append(notes, fmt.Sprintf("%s: %s saved; it applies when %s starts", name, change.later, name))
		case len(e.Listen) > 0:
			notes = append(notes, fmt.Sprintf("%s: %s saved; it takes effect once its socket is closed and opened again: socketley stop %s, then socketley start %s (or set --restart)",
				name, change.later, name, name))
		default:
			notes = append(notes, fmt.Sprintf("%s: %s saved; it takes effect at the next restart (socketley restart %s, or set --restart)", name, change.later, name))
		}
	}
	if s.Restart {
		notes = append(notes, fmt.Sprintf("%s: not restarted: it is %s (socketley start %s starts it with these limits)", name, e.Desired, name))
	}
	return &wire.Result{Runtimes: []wire.Runtime{m.view(name)}, Message: strings.Join(notes, "\n")}, nil
}

// setChange words a set request: live is what systemd changes on the
// running unit (cgroup limits, live -p settings), later what waits for a
// new unit (--nofile, the other -p settings, removed settings, --harden).
type setChange struct{ live, later string }

func (c setChange) all() string {
	if c.live != "" && c.later != "" {
		return c.live + ", " + c.later
	}
	return c.live + c.later
}

func describeSet(lim wire.Limits, s wire.SetSpec) setChange {
	var live, later []string
	if w := lim.Live().String(); w != "" {
		live = append(live, w)
	}
	if lim.NOFILE != 0 {
		later = append(later, wire.Limits{NOFILE: lim.NOFILE}.String())
	}
	for _, kv := range s.Properties {
		k, v, _ := strings.Cut(kv, "=")
		r, _ := wire.PropertyRuleOf(k)
		switch {
		case v == "":
			later = append(later, k+" back to systemd's default")
		case r.Live:
			live = append(live, kv)
		default:
			later = append(later, kv)
		}
	}
	if s.Harden != nil {
		later = append(later, map[bool]string{true: "the --harden preset", false: "no --harden preset"}[*s.Harden])
	}
	return setChange{live: strings.Join(live, ", "), later: strings.Join(later, ", ")}
}

// hasLive reports whether e has settings applyLive sets on a loaded unit:
// cgroup limits or live -p settings (IOWeight, MemorySwapMax).
func hasLive(e *Entry) bool {
	if !e.Limits.Live().IsZero() {
		return true
	}
	for _, kv := range e.Properties {
		k, _, _ := strings.Cut(kv, "=")
		if r, ok := wire.PropertyRuleOf(k); ok && r.Live {
			return true
		}
	}
	return false
}

// applyLive sets the cgroup limits of e on its loaded unit; applied is
// false when no unit is loaded (the next one is made with them).
func (m *Manager) applyLive(ctx context.Context, e *Entry) (applied bool, err error) {
	sd, err := m.systemd()
	if err != nil {
		return false, err
	}
	err = sd.SetLimits(ctx, e.Name, e.Limits.Live(), e.Properties)
	if errors.Is(err, units.ErrNoSuchUnit) {
		return false, nil
	}
	return err == nil, err
}

// restartForLimits restarts e as restart does, so that a new unit is made
// with its limits; a --listen runtime's socket is closed and opened again
// too (it keeps its service, and so the service's properties, loaded).
func (m *Manager) restartForLimits(ctx context.Context, e *Entry) error {
	if err := m.stopListen(ctx, e); err != nil {
		return err
	}
	if err := m.stopUnit(ctx, e.Name); err != nil {
		return err
	}
	if err := m.startUnit(ctx, e); err != nil {
		return m.explainStartErr(e, err)
	}
	m.log.Info("restarted for its limits", "name", e.Name)
	return nil
}
