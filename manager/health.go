package manager

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// Health-check tuning.
const (
	probeTimeout = 500 * time.Millisecond
	probeWorkers = 32
	// settleTime is how long a runtime that does not attach must stay active
	// before start --wait calls it running.
	settleTime = time.Second
	// DefaultWaitTimeout bounds --wait when no timeout is given.
	DefaultWaitTimeout = 10 * time.Second
)

// expectsAttach reports whether e is expected to attach: it was added with
// --attach or has attached at least once.
func expectsAttach(e *Entry) bool { return e.ExpectAttach || e.Type != "" }

// healthFails returns the restart threshold (0 = never restart).
func healthFails(e *Entry) int {
	if e.HealthFails != nil {
		return *e.HealthFails
	}
	return DefaultHealthFails
}

// classify decides a runtime's STATUS from the registry entry, systemd's view
// of its unit (nil when no unit is loaded) and what the daemon observed. It
// is pure: no I/O, so it is table-tested.
func classify(e *Entry, st *units.Status, o *observed, now time.Time) (string, string) {
	if !e.Managed {
		if !sameProcess(e.PID, e.StartTime) {
			return wire.StateStopped, fmt.Sprintf("attached process %d exited", e.PID)
		}
		if o.portDown {
			return wire.StateUnhealthy, fmt.Sprintf("port %d refuses connections", e.Port)
		}
		return wire.StateRunning, ""
	}
	if st == nil || st.LoadState == "not-found" {
		if !e.Started {
			return wire.StateCreated, ""
		}
		if e.Desired == DesiredRunning {
			return wire.StateStopped, "unit is not loaded (stopped outside socketley?); run socketley start " + e.Name
		}
		return wire.StateStopped, ""
	}
	switch {
	case st.Restarting:
		return wire.StateRestarting, lastExitReason(st)
	case st.ActiveState == "failed":
		if st.Result == "start-limit-hit" {
			return wire.StateCrashLoop, "start limit hit: it keeps exiting; " + lastExitReason(st)
		}
		return wire.StateFailed, lastExitReason(st)
	case st.ActiveState == "deactivating":
		return "stopping", ""
	case st.ActiveState == "inactive":
		if !e.Started {
			return wire.StateCreated, ""
		}
		return wire.StateStopped, ""
	}
	// active, activating, reloading: a process exists or is being started.
	if !expectsAttach(e) {
		return wire.StateRunning, ""
	}
	if e.AttachPID > 0 && e.AttachPID == st.MainPID {
		if o.portDown {
			return wire.StateUnhealthy, fmt.Sprintf("port %d refuses connections", e.Port)
		}
		return wire.StateRunning, ""
	}
	since := st.ExecMainStart
	if since.IsZero() {
		since = st.ActiveEnter
	}
	timeout := time.Duration(e.AttachTimeout)
	if timeout <= 0 {
		timeout = DefaultAttachTimeout
	}
	if since.IsZero() || now.Sub(since) < timeout {
		return wire.StateStarting, fmt.Sprintf("waiting for pid %d to attach", st.MainPID)
	}
	return wire.StateUnhealthy, fmt.Sprintf("pid %d has not attached after %s", st.MainPID, timeout)
}

func lastExitReason(st *units.Status) string {
	if le := st.LastExit(); le != "" {
		return "last exit: " + le
	}
	if st.Result != "" && st.Result != "success" {
		return "result: " + st.Result
	}
	return ""
}

// tick is one health check: one Resync round trip, then pure decisions, TCP
// probes of attached ports, and health restarts.
func (m *Manager) tick(ctx context.Context) {
	m.mu.RLock()
	w := m.watch
	m.mu.RUnlock()
	if w == nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	if err := w.Resync(rctx); err != nil {
		m.log.Debug("resync", "err", err)
	}
	cancel()
	snap := w.Snapshot()

	m.mu.RLock()
	entries := make([]*Entry, 0, len(m.reg.entries))
	for _, e := range m.reg.entries {
		entries = append(entries, e.clone())
	}
	m.mu.RUnlock()

	var gone []string
	var probe []*Entry
	for _, e := range entries {
		if !e.Managed {
			if !sameProcess(e.PID, e.StartTime) {
				gone = append(gone, e.Name)
				continue
			}
			if e.Port > 0 {
				probe = append(probe, e)
			}
			continue
		}
		if st, ok := snap[e.Name]; ok && st.ActiveState == "active" && e.Port > 0 &&
			e.AttachPID > 0 && e.AttachPID == st.MainPID {
			probe = append(probe, e)
		}
	}
	if len(gone) > 0 {
		err := m.update(func(r *Registry) error {
			for _, n := range gone {
				if e, ok := r.entries[n]; ok && !e.Managed && !sameProcess(e.PID, e.StartTime) {
					delete(r.entries, n)
				}
			}
			return nil
		})
		if err != nil {
			m.log.Error("drop exited attached processes", "err", err)
		} else {
			for _, n := range gone {
				m.log.Info("attached process exited; forgotten", "name", n)
			}
		}
	}
	down := probePorts(ctx, probe)

	now := time.Now()
	var heal []*Entry
	m.mu.Lock()
	for _, e := range entries {
		if !e.Managed {
			if o := m.obs[e.Name]; o != nil || down[e.Name] {
				m.obsOf(e.Name).portDown = down[e.Name]
			}
			continue
		}
		o := m.obsOf(e.Name)
		o.portDown = down[e.Name]
		var st *units.Status
		if s, ok := snap[e.Name]; ok {
			st = &s
		}
		status, reason := classify(e, st, o, now)
		if status != wire.StateUnhealthy {
			o.unhealthyTicks = 0
			continue
		}
		o.unhealthyTicks++
		n := healthFails(e)
		m.log.Warn("unhealthy", "name", e.Name, "reason", reason, "ticks", o.unhealthyTicks, "limit", n)
		if n > 0 && o.unhealthyTicks >= n && !o.healing && e.Desired == DesiredRunning {
			o.healing = true
			o.unhealthyTicks = 0
			heal = append(heal, e)
		}
	}
	m.mu.Unlock()
	for _, e := range heal {
		go m.heal(ctx, e.Name)
	}
}

// heal restarts an unhealthy runtime (stop, wait, start) and counts it.
func (m *Manager) heal(ctx context.Context, name string) {
	unlock := m.locks.lock(name)
	defer unlock()
	defer func() {
		m.mu.Lock()
		if o := m.obs[name]; o != nil {
			o.healing = false
		}
		m.mu.Unlock()
	}()
	e, ok := m.entry(name)
	if !ok || e.Desired != DesiredRunning {
		return
	}
	m.log.Warn("restarting unhealthy runtime", "name", name)
	if err := m.stopUnit(ctx, name); err != nil {
		m.log.Error("health restart: stop", "name", name, "err", err)
		return
	}
	if err := m.startUnit(ctx, e); err != nil {
		m.log.Error("health restart: start", "name", name, "err", err)
		return
	}
	m.mu.Lock()
	m.obsOf(name).restarts++
	m.mu.Unlock()
}

// probePorts connects to each entry's port on loopback, a few at a time, and
// returns the names whose port refused or timed out.
func probePorts(ctx context.Context, es []*Entry) map[string]bool {
	down := map[string]bool{}
	if len(es) == 0 {
		return down
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, probeWorkers)
	for _, e := range es {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if !probe(ctx, e.Port) {
				mu.Lock()
				down[e.Name] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return down
}

// probe reports whether something accepts TCP connections on port, on IPv4
// or IPv6 loopback.
func probe(ctx context.Context, port int) bool {
	d := net.Dialer{Timeout: probeTimeout}
	for _, host := range []string{"127.0.0.1", "::1"} {
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err == nil {
			_ = c.Close()
			return true
		}
	}
	return false
}

// waitRunning waits until name is running: attached by its current process
// when it expects attach, otherwise active for settleTime. It fails at once
// when the runtime exits, fails or crash-loops.
func (m *Manager) waitRunning(ctx context.Context, name string, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultWaitTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var last wire.Runtime
	for {
		r := m.view(name)
		last = r
		e, ok := m.entry(name)
		if !ok {
			return errorf(ErrNotFound, "%s was removed while waiting", name)
		}
		switch r.Status {
		case wire.StateRunning:
			if expectsAttach(e) || time.Since(r.Since) >= settleTime {
				return nil
			}
		case wire.StateFailed, wire.StateCrashLoop, wire.StateStopped, wire.StateRestarting:
			return errorf(ErrFailed, "%s is %s: %s", name, r.Status, orUnknown(r.Reason, r.LastExit))
		case wire.StateUnhealthy:
			return errorf(ErrFailed, "%s is unhealthy: %s", name, r.Reason)
		}
		select {
		case <-ctx.Done():
			if expectsAttach(e) && r.Status == wire.StateStarting {
				return errorf(ErrFailed, "%s is still unattached after %s (pid %d)", name, timeout, last.PID)
			}
			return errorf(ErrFailed, "%s is not running after %s (status %s)", name, timeout, last.Status)
		case <-t.C:
		}
	}
}

// waitAll waits for every runtime in res, updating their views.
func (m *Manager) waitAll(ctx context.Context, res *wire.Result, timeout time.Duration) error {
	for i, r := range res.Runtimes {
		if err := m.waitRunning(ctx, r.Name, timeout); err != nil {
			res.Runtimes[i] = m.view(r.Name)
			return err
		}
		res.Runtimes[i] = m.view(r.Name)
	}
	return nil
}

func orUnknown(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return "no reason reported"
}
