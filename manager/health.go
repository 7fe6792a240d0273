package manager

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

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
	DefaultWaitTimeout = wire.DefaultWaitTimeout
	// resyncTimeout bounds the one ListUnits round trip of a tick.
	resyncTimeout = time.Second
	// staleGrace is how long waitRunning distrusts a failure it sees before
	// the new process shows up (the view may lag the start by a moment).
	staleGrace = 500 * time.Millisecond
)

// expectsAttach reports whether e is expected to attach: it was added with
// --attach or has attached at least once.
func expectsAttach(e *Entry) bool { return e.ExpectAttach || e.Type != "" }

// attachedBy reports whether e's last attach came from the unit's current
// main process.
func attachedBy(e *Entry, st *units.Status) bool {
	return st != nil && e.AttachPID > 0 && e.AttachPID == st.MainPID
}

// healthFails returns the restart threshold (0 = never restart).
func healthFails(e *Entry) int {
	if e.HealthFails != nil {
		return *e.HealthFails
	}
	return DefaultHealthFails
}

// attachTimeout returns how long e may take to attach after its process starts.
func attachTimeout(e *Entry) time.Duration {
	if d := time.Duration(e.AttachTimeout); d > 0 {
		return d
	}
	return DefaultAttachTimeout
}

// classify decides a runtime's STATUS and the reason for it from the registry
// entry, systemd's view of its unit (nil when no unit is loaded) and what the
// daemon observed (for an attached process, o.exited says whether it is
// gone; the caller checks that). It does no I/O, so it is table-tested.
func classify(e *Entry, st *units.Status, o *observed, now time.Time) (wire.Status, string) {
	if e.Desired == DesiredRemoved {
		return wire.StatusRemoving, "removal not finished; run socketley remove " + e.Name + " again (the daemon also finishes it at its next start)"
	}
	if !e.Managed {
		if o.exited {
			return wire.StatusStopped, fmt.Sprintf("attached process %d exited", e.PID)
		}
		if o.portDown {
			return wire.StatusUnhealthy, fmt.Sprintf("port %d refuses connections on loopback", e.Port)
		}
		return wire.StatusRunning, ""
	}
	if b := e.Backoff; b != nil && e.Desired == DesiredRunning && (st == nil || !isUp(*st) && !st.Restarting) {
		if b.GaveUp {
			return wire.StatusFailed, joinReason(gaveUpReason(e), lastExit(e, st))
		}
		if !b.NextAt.IsZero() {
			return wire.StatusCrashLoop, joinReason(fmt.Sprintf("%d failed runs in a row; next start in %s",
				b.Failures, max(b.NextAt.Sub(now), 0).Round(time.Millisecond)), lastExit(e, st))
		}
	}
	if st == nil || st.LoadState == "not-found" {
		if !e.Started {
			return wire.StatusCreated, ""
		}
		if e.Desired == DesiredRunning {
			return wire.StatusStopped, "its unit is gone: the process exited (or was stopped outside socketley); run socketley start " + e.Name
		}
		return wire.StatusStopped, ""
	}
	switch {
	case st.Restarting:
		return wire.StatusRestarting, lastExitReason(st)
	case st.ActiveState == "failed":
		if restarts(e) {
			// The backoff is about to schedule its next start.
			return wire.StatusCrashLoop, joinReason("exited too soon; restart pending", lastExitReason(st))
		}
		if st.Result == units.ResultStartLimitHit {
			return wire.StatusCrashLoop, joinReason("start limit hit: it keeps exiting", lastExitReason(st))
		}
		return wire.StatusFailed, lastExitReason(st)
	case st.ActiveState == "deactivating":
		return wire.StatusStopping, ""
	case st.ActiveState == "inactive":
		if !e.Started {
			return wire.StatusCreated, ""
		}
		if len(e.Listen) > 0 && e.Desired == DesiredRunning {
			// The service of a socket that exited (cleanly: a crash is
			// failed): the socket still listens and starts it again.
			return wire.StatusStopped, joinReason("exited; "+units.SocketName(e.Name)+" starts it again at the next connection", lastExitReason(st))
		}
		return wire.StatusStopped, lastExitReason(st)
	}
	// active, activating, reloading: a process exists or is being started.
	if !expectsAttach(e) {
		return wire.StatusRunning, ""
	}
	if attachedBy(e, st) {
		if o.portDown {
			return wire.StatusUnhealthy, fmt.Sprintf("port %d refuses connections on loopback", e.Port)
		}
		return wire.StatusRunning, ""
	}
	since := st.ExecMainStart
	if since.IsZero() {
		since = st.ActiveEnter
	}
	timeout := attachTimeout(e)
	if since.IsZero() || now.Sub(since) < timeout {
		return wire.StatusStarting, fmt.Sprintf("waiting for pid %d to attach", st.MainPID)
	}
	return wire.StatusUnhealthy, fmt.Sprintf("pid %d has not attached after %s", st.MainPID, timeout)
}

// lastExit words the last exit from the unit, else from the entry.
func lastExit(e *Entry, st *units.Status) string {
	if st != nil {
		if r := lastExitReason(st); r != "" {
			return r
		}
	}
	if e.LastExit != "" {
		return "last exit: " + e.LastExit
	}
	return ""
}

// lastExitReason words how the last main process ended ("" when unknown).
func lastExitReason(st *units.Status) string {
	if le := st.LastExit(); le != "" {
		return "last exit: " + le
	}
	if st.Result != "" && st.Result != "success" {
		return "result: " + st.Result
	}
	return ""
}

func joinReason(a, b string) string {
	if b == "" {
		return a
	}
	return a + "; " + b
}

// tick is one health check: one Resync round trip (ListUnits), then what
// decideHealth needs is fetched (the unit view, /proc for attached
// processes, the probes of the attached ports) and each entry is decided on
// and the decision applied (counters stored, backoff resets, health
// restarts). It never makes a D-Bus call per unit (Resync refetches only
// units whose state differs from the signal-fed cache, which means a signal
// was missed).
func (m *Manager) tick(ctx context.Context) {
	m.mu.RLock()
	w := m.watch
	m.mu.RUnlock()
	if w == nil {
		return
	}
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, resyncTimeout)
	if err := w.Resync(rctx); err != nil {
		m.log.Debug("resync", "err", err)
	}
	cancel()
	snap := w.Snapshot()

	// Entries of a published registry are never modified (update replaces
	// the registry with a changed copy), so the pointers can be read after
	// the lock is released: no copy needed.
	m.mu.RLock()
	entries := m.reg.sorted()
	m.mu.RUnlock()
	m.sampleUsage(entries, snap)

	// Attached processes that exited are forgotten before anything is
	// probed (their decision needs no probe).
	var gone []*Entry
	var probe []*Entry
	for _, e := range entries {
		if !e.Managed {
			if !sameProcess(e.PID, e.StartTime) {
				if decideHealth(healthInput{Entry: e, Exited: true, Now: start}).Action == healthForget {
					gone = append(gone, e)
				}
				continue
			}
			if e.Port > 0 {
				probe = append(probe, e)
			}
			continue
		}
		if st, ok := snap[e.Name]; ok && st.ActiveState == "active" && e.Port > 0 && attachedBy(e, &st) {
			probe = append(probe, e)
		}
	}
	if len(gone) > 0 {
		m.forgetExited(gone)
	}
	down := probePorts(ctx, probe)

	now := time.Now()
	type healJob struct {
		name   string
		pid    int
		reason string
	}
	var unhealthy []wire.Event
	var heal []healJob
	var reset []string
	nativeReset := map[string]int{}
	m.mu.Lock()
	for _, e := range entries {
		if !e.Managed {
			// Only the probe result is stored for an attached process (the
			// exited ones were forgotten above).
			if o := m.obs[e.Name]; o != nil || down[e.Name] {
				m.obsOf(e.Name).portDown = down[e.Name]
			}
			continue
		}
		// The entry may have changed since the probe (update publishes a
		// new copy of a changed entry), so compare what the probe was
		// about; a removed or re-attached entry waits a tick.
		cur, ok := m.reg.get(e.Name)
		if !ok || !cur.Managed || cur.Port != e.Port || cur.AttachPID != e.AttachPID {
			continue
		}
		e = cur
		o := m.obsOf(e.Name)
		in := healthInput{Entry: e, PortDown: down[e.Name], Obs: *o, Now: now}
		if s, ok := snap[e.Name]; ok {
			in.Unit = &s
		}
		d := decideHealth(in)
		*o = d.Obs
		if d.UnhealthyTicks == 1 {
			m.log.Warn("unhealthy", "name", e.Name, "reason", d.Reason, "limit", healthFails(e))
			unhealthy = append(unhealthy, wire.Event{Name: e.Name, Kind: wire.EventUnhealthy, Reason: d.Reason, PID: d.PID, OwnerUID: e.OwnerUID})
		} else if d.UnhealthyTicks > 1 {
			m.log.Debug("still unhealthy", "name", e.Name, "reason", d.Reason, "ticks", d.UnhealthyTicks, "limit", healthFails(e))
		}
		switch d.Action {
		case healthResetBackoff:
			reset = append(reset, e.Name)
		case healthNativeReset:
			nativeReset[e.Name] = d.PID
		case healthRestart:
			heal = append(heal, healJob{e.Name, d.PID, d.Reason})
		}
	}
	m.mu.Unlock()
	for _, ev := range unhealthy {
		m.emit(ev)
	}
	m.changed() // the probes and counters are part of the view
	m.resetBackoffs(reset)
	m.nativeResets(ctx, nativeReset)
	for _, h := range heal {
		m.heals.Add(1)
		go func() {
			defer m.heals.Done()
			m.heal(ctx, h.name, h.pid, h.reason)
		}()
	}
	m.log.Debug("tick", "entries", len(entries), "probed", len(probe), "took", time.Since(start))
}

// forgetExited drops attached (unmanaged) entries whose process is gone.
// Each is re-checked under the lock: a re-attach under the same name in
// between is kept.
func (m *Manager) forgetExited(gone []*Entry) {
	var dropped []string
	err := m.update(func(r *Registry) error {
		for _, g := range gone {
			if e, ok := r.get(g.Name); ok && !e.Managed && e.PID == g.PID && e.StartTime == g.StartTime {
				r.del(g.Name)
				dropped = append(dropped, g.Name)
			}
		}
		return nil
	})
	if err != nil {
		m.log.Error("forget exited attached processes", "err", err)
		return
	}
	for _, n := range dropped {
		m.log.Info("attached process exited; forgotten", "name", n)
		for _, g := range gone {
			if g.Name == n {
				m.emit(wire.Event{Name: n, Kind: wire.EventDetached, Reason: "the attached process exited; forgotten", PID: g.PID, OwnerUID: g.OwnerUID})
			}
		}
	}
}

// heal restarts an unhealthy runtime and counts it as a failed run of the
// crash backoff: the first health restart starts it again at once, a runtime
// that stays unhealthy is started after growing delays (or given up on with
// --max-restarts). pid is the main process the decision was about: when the
// unit has another main process by now (it restarted meanwhile), nothing is
// done. reason is why it is unhealthy, in words.
func (m *Manager) heal(ctx context.Context, name string, pid int, reason string) {
	defer m.poke()
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
	if !ok || !e.Managed || e.Desired != DesiredRunning {
		return
	}
	st, ok := m.snapshot()[name]
	if !ok || st.MainPID != pid {
		m.log.Debug("health restart skipped: the unit changed meanwhile", "name", name, "pid", pid)
		return
	}
	// Under systemd's backoff the failed runs so far are the unit's
	// NRestarts, which the stop below ends: carry them into the entry's
	// count: the delay before the new unit is the daemon's for that count,
	// and --max-restarts counts both. (The new unit's own crashes then start
	// again at systemd's first step.)
	carried := 0
	if nativeUnit(&st) {
		carried = st.NRestarts
	}
	m.log.Warn("restarting unhealthy runtime", "name", name, "pid", pid)
	if err := m.stopUnit(ctx, name); err != nil {
		m.log.Error("health restart: stop", "name", name, "err", err)
		return
	}
	var d time.Duration
	var gave bool
	restarts := 0
	if err := m.update(func(r *Registry) error {
		cur, ok := r.edit(name)
		if !ok {
			return nil
		}
		cur.Restarts++
		cur.HealthRestarts++
		cur.LastExit = "stopped by the health check (unhealthy)"
		cur.History = appendHistory(cur.History, wire.RestartRecord{Time: time.Now().UTC(), Kind: wire.EventHealthRestart, Cause: reason})
		restarts = cur.Restarts
		if carried > 0 {
			if cur.Backoff == nil {
				cur.Backoff = &Backoff{}
			}
			cur.Backoff.Failures += carried
		}
		d = failure(cur, time.Now(), 0)
		gave = cur.Backoff.GaveUp
		if d == 0 && !gave {
			cur.Backoff.NextAt = time.Time{} // started below, now
		}
		return nil
	}); err != nil {
		m.log.Error("health restart: persist", "name", name, "err", err)
		return
	}
	m.emit(wire.Event{Name: name, Kind: wire.EventHealthRestart, Reason: reason, PID: pid, Restarts: restarts, OwnerUID: e.OwnerUID})
	if gave || d > 0 {
		m.emitBackoff(name, gave, 0, d)
	}
	switch {
	case gave:
		m.log.Warn("health restart: giving up (max restarts reached); socketley start retries", "name", name)
		m.closeGivenUp(ctx, name)
		return
	case d > 0:
		m.log.Warn("health restart: start after backoff", "name", name, "delay", d)
		return
	}
	e, _ = m.entry(name)
	if err := m.startUnit(ctx, e); err != nil {
		m.log.Error("health restart: start", "name", name, "err", err)
	}
}

// probePorts checks the port of each entry on loopback and returns the names
// whose port does not accept connections. One sock_diag dump lists every
// listening TCP socket; only the ports missing from it (or all of them when
// sock_diag is unavailable) get a real connect, a few at a time. So a
// healthy server is never disturbed by probe connections.
func probePorts(ctx context.Context, es []*Entry) map[string]bool {
	down := map[string]bool{}
	if len(es) == 0 {
		return down
	}
	listening, err := loopbackListeners()
	var dial []*Entry
	for _, e := range es {
		if err != nil || !listening[uint16(e.Port)] {
			dial = append(dial, e)
		}
	}
	if len(dial) == 0 {
		return down
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, probeWorkers)
	for _, e := range dial {
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
// when the runtime exits, fails or crash-loops, and after timeout with what
// it was still waiting for.
//
// It is driven by events, not by polling: it looks again when what a view
// is made of changes (changes: the unit watch, a registry change such as an
// attach, a health tick) and when a condition that only time changes falls
// due (waitDue: settleTime after the process started, staleGrace after the
// wait began, the attach timeout), and at no other time.
func (m *Manager) waitRunning(ctx context.Context, name string, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultWaitTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	due := time.NewTimer(time.Hour)
	due.Stop()
	defer due.Stop()
	begin := time.Now()
	seenUp := false
	// refreshed: the view was refreshed from systemd since the last wake-up
	// (once is enough: a view that still lags then catches up with an event).
	refreshed := false
	for {
		// Taken before the state is read: a change after the read closes it.
		wake := m.changes()
		e, ok := m.entry(name)
		if !ok {
			return errorf(ErrNotFound, "%s was removed while waiting", name)
		}
		r := m.view(name)
		if r.PID > 0 {
			seenUp = true
		}
		switch r.Status {
		case wire.StatusRunning:
			// Without attach: the unit active with a main process for settleTime.
			if expectsAttach(e) || r.ActiveState == "active" && r.PID > 0 && !r.Since.IsZero() && time.Since(r.Since) >= settleTime {
				return nil
			}
		case wire.StatusFailed, wire.StatusCrashLoop, wire.StatusStopped, wire.StatusRestarting:
			// Right after a start the signal-fed view may still show the
			// previous run's failure for a moment: believe a failure once the
			// new process was seen, or after staleGrace.
			if seenUp || time.Since(begin) >= staleGrace {
				down, lagged := m.confirmDown(ctx, name, &r)
				if down {
					return errorf(ErrFailed, "%s", downReason(name, r))
				}
				if lagged && !refreshed && m.refreshView(ctx, name) {
					refreshed = true
					continue // the view now has systemd's state: look again
				}
			}
		case wire.StatusUnhealthy:
			if !attachedBy(e, &units.Status{MainPID: r.PID}) {
				// The attach is overdue (the attach timeout is shorter than --timeout).
				return errorf(ErrFailed, "%s is unhealthy: %s", name, r.Reason)
			}
			// Attached, port refusing: it may be about to listen; keep waiting.
		}
		var timer <-chan time.Time
		if at := waitDue(e, r, begin, seenUp); !at.IsZero() {
			due.Reset(max(time.Until(at), 0))
			timer = due.C
		}
		select {
		case <-ctx.Done():
			switch {
			case r.Status == wire.StatusStarting:
				return errorf(ErrFailed, "%s is still unattached after %s (pid %d); it must call attach (SDK Attach, or socketley attach) with its name, type and port", name, timeout, r.PID)
			case r.Status == wire.StatusUnhealthy:
				return errorf(ErrFailed, "%s is not healthy after %s: %s", name, timeout, r.Reason)
			}
			return errorf(ErrFailed, "%s is not running after %s (status %s)", name, timeout, r.Status)
		case <-wake:
		case <-timer:
		}
		due.Stop()
		refreshed = false
	}
}

// waitDue returns when, with nothing else changing, the next look of
// waitRunning at the view r of e can come to another result (zero: only a
// change can): settleTime after the process started (a runtime that does
// not attach is running from then), staleGrace after the wait began (a
// failure is believed from then), the attach timeout after the process
// started (starting turns unhealthy then).
func waitDue(e *Entry, r wire.Runtime, begin time.Time, seenUp bool) time.Time {
	switch r.Status {
	case wire.StatusRunning:
		if !expectsAttach(e) && r.ActiveState == "active" && r.PID > 0 && !r.Since.IsZero() {
			return r.Since.Add(settleTime)
		}
	case wire.StatusFailed, wire.StatusCrashLoop, wire.StatusStopped, wire.StatusRestarting:
		if !seenUp {
			return begin.Add(staleGrace)
		}
	case wire.StatusStarting:
		if !r.Since.IsZero() {
			return r.Since.Add(attachTimeout(e))
		}
	}
	return time.Time{}
}

// refreshView reads name's unit into the unit view (one GetAll on the
// watch's connection, see units.Watch.Refresh), so that a view that lags
// systemd catches up now; it reports whether it did.
func (m *Manager) refreshView(ctx context.Context, name string) bool {
	m.mu.RLock()
	w := m.watch
	m.mu.RUnlock()
	if w == nil {
		return false
	}
	_, err := w.Refresh(ctx, name)
	return err == nil || errors.Is(err, units.ErrNoSuchUnit)
}

// confirmDown asks systemd directly (one call, only on this failure path)
// whether the unit is really down, so that a lagging or briefly wrong view
// never fails a wait. When systemd cannot be asked, the view is believed.
// A confirmed failure fills in the exit the view lacked. lagged reports
// that systemd has the unit up while the view has it down.
func (m *Manager) confirmDown(ctx context.Context, name string, r *wire.Runtime) (down, lagged bool) {
	sd, err := m.systemd()
	if err != nil {
		return true, false
	}
	st, err := sd.Status(ctx, name)
	if err != nil {
		return true, false // ErrNoSuchUnit: gone indeed; anything else: believe the view
	}
	if isUp(st) && !st.Restarting {
		m.log.Debug("wait: the view lags systemd; still waiting", "name", name, "state", st.ActiveState)
		return false, true
	}
	if r.LastExit == "" {
		r.LastExit = st.LastExit()
	}
	return true, false
}

// startFailed marks a start job that failed because the program itself
// ended (systemd recorded its exit) as ErrFailed, a runtime failure (exit
// code 1), rather than a systemd failure. The message is err's.
type startFailed struct{ err error }

func (e *startFailed) Error() string   { return e.err.Error() }
func (e *startFailed) Unwrap() []error { return []error{e.err, ErrFailed} }

// classifyStartErr returns err, marked as ErrFailed when it is a failed
// start job whose process ran and exited.
func classifyStartErr(err error) error {
	var je *units.JobError
	if errors.As(err, &je) && je.Status.ExecMainCode != 0 {
		return &startFailed{err}
	}
	return err
}

// downReason says why a runtime that should run does not, in words.
func downReason(name string, r wire.Runtime) string {
	if r.LastExit != "" {
		return fmt.Sprintf("%s exited (%s) and %s", name, r.LastExit, statusWords(r.Status))
	}
	return fmt.Sprintf("%s is %s: %s", name, r.Status, orUnknown(r.Reason))
}

// statusWords words the status of a runtime that is down.
func statusWords(status wire.Status) string {
	switch status {
	case wire.StatusCrashLoop:
		return "is in a crash loop (status crash-loop)"
	case wire.StatusRestarting:
		return "is about to be restarted (status restarting)"
	case wire.StatusFailed:
		return "has failed (status failed)"
	case wire.StatusStopped:
		return "is down (status stopped)"
	}
	return "is " + string(status)
}

// waitAll waits for every runtime in res, updating their views. A failure
// names verb and the runtime and says what follows (see whatNext).
func (m *Manager) waitAll(ctx context.Context, verb string, res *wire.Result, timeout time.Duration) error {
	for i, r := range res.Runtimes {
		if err := m.waitRunning(ctx, r.Name, timeout); err != nil {
			res.Runtimes[i] = m.view(r.Name)
			res.Runtimes[i].Failed, res.Runtimes[i].FailedClass = err.Error(), wire.ClassOf(err)
			if e, ok := m.entry(r.Name); ok && e.Managed {
				return &msgError{err: err, msg: fmt.Sprintf("%s %s: %v; %s", verb, r.Name, err, whatNext(e, err))}
			}
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

// loopbackListeners returns the TCP ports that have a listening socket a
// loopback connect would reach (bound to a wildcard or loopback address), in
// the daemon's network namespace. It costs one NETLINK_SOCK_DIAG dump per
// address family, filtered to LISTEN sockets by the kernel, however many
// connections the servers have. An error means sock_diag is unavailable
// (old kernel, module missing, seccomp); the caller then dials each port.
func loopbackListeners() (map[uint16]bool, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(time.Second.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, fmt.Errorf("sock_diag timeout: %w", err)
	}
	ports := map[uint16]bool{}
	for i, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if err := dumpListeners(fd, family, uint32(i+1), ports); err != nil {
			return nil, err
		}
	}
	return ports, nil
}

// Sizes of the sock_diag structures (linux/inet_diag.h).
const (
	sizeofInetDiagReqV2 = 56 // family, protocol, ext, pad, states, inet_diag_sockid
	sizeofInetDiagMsg   = 72 // family, state, timer, retrans, sockid, expires, rqueue, wqueue, uid, inode
	tcpListen           = 10 // TCP_LISTEN in include/net/tcp_states.h
)

// dumpListeners adds to ports the loopback-reachable TCP listeners of one
// address family.
func dumpListeners(fd int, family uint8, seq uint32, ports map[uint16]bool) error {
	ne := binary.NativeEndian
	req := make([]byte, unix.SizeofNlMsghdr+sizeofInetDiagReqV2)
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], seq)
	req[16] = family
	req[17] = unix.IPPROTO_TCP
	ne.PutUint32(req[20:], 1<<tcpListen)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sock_diag request: %w", err)
	}
	buf := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("sock_diag receive: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("sock_diag parse: %w", err)
		}
		for _, msg := range msgs {
			if msg.Header.Seq != seq {
				continue
			}
			switch msg.Header.Type {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(msg.Data) >= 4 {
					if errno := int32(ne.Uint32(msg.Data)); errno != 0 {
						return fmt.Errorf("sock_diag: %w", unix.Errno(-errno))
					}
				}
				return nil
			}
			d := msg.Data
			if len(d) < sizeofInetDiagMsg || d[1] != tcpListen {
				continue
			}
			port := binary.BigEndian.Uint16(d[4:6])
			src := net.IP(d[8:24])
			if family == unix.AF_INET {
				src = net.IP(d[8:12])
			}
			if src.IsLoopback() || src.IsUnspecified() {
				ports[port] = true
			}
		}
	}
}
