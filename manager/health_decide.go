package manager

import (
	"time"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// The health tick is split in two: fetching (tick: systemd's view of the
// units, the sock_diag/connect probes of the attached ports, /proc for
// attached processes) and deciding (decideHealth, below: a pure function of
// what was fetched, the counters kept between ticks and the time). The
// decider does no I/O and keeps no state of its own; the tick applies its
// decision (stores the counters, starts the action).

// healthAction is what the health tick does about one runtime after a
// decision.
type healthAction int

const (
	// healthNone: nothing to do.
	healthNone healthAction = iota
	// healthForget: an attached (unmanaged) process exited; its entry is
	// dropped (forgetExited).
	healthForget
	// healthResetBackoff: a runtime under the daemon's backoff has run
	// for its reset period; its failure count is forgotten (resetBackoffs).
	healthResetBackoff
	// healthNativeReset: a runtime under systemd's backoff has run for its
	// reset period with failed runs counted; ResetFailedUnit on the running
	// unit (nativeResets).
	healthNativeReset
	// healthRestart: unhealthy for --health-fails ticks in a row; the
	// runtime is restarted as a failed run (heal).
	healthRestart
)

func (a healthAction) String() string {
	switch a {
	case healthNone:
		return "none"
	case healthForget:
		return "forget"
	case healthResetBackoff:
		return "reset-backoff"
	case healthNativeReset:
		return "native-reset"
	case healthRestart:
		return "restart"
	}
	return "unknown"
}

// healthInput is what the tick fetched about one entry.
type healthInput struct {
	// Entry is the registry entry (never nil; orphan units have none and
	// are never decided on).
	Entry *Entry
	// Unit is systemd's view of the entry's unit; nil when none is loaded
	// (always nil for an attached entry).
	Unit *units.Status
	// Exited: an attached (unmanaged) entry's process is gone (pid and
	// start time no longer match a live process).
	Exited bool
	// PortDown: the probe found nothing accepting connections on the
	// entry's port on loopback (false when it was not probed).
	PortDown bool
	// Obs holds the counters kept between ticks (Obs.portDown and
	// Obs.exited are ignored: PortDown and Exited are this tick's).
	Obs observed
	// Now is the time of the tick.
	Now time.Time
}

// healthDecision is what decideHealth decided about one entry.
type healthDecision struct {
	// Status and Reason are the runtime's status at the tick (classify).
	Status wire.Status
	Reason string
	// Action is what the tick does next; PID is the unit's main process
	// that a native reset or a health restart is about (0 without one).
	Action healthAction
	PID    int
	// UnhealthyTicks is how many ticks in a row, this one included, the
	// runtime has been unhealthy (0 when it is not).
	UnhealthyTicks int
	// Obs is the observed record after the tick: the counters to store.
	Obs observed
}

// decideHealth decides, without I/O, the status of one runtime at a health
// tick and what follows from it:
//
//   - an attached process that exited is forgotten; one whose port is down is
//     unhealthy, which is shown and nothing more (socketley did not start
//     it, so it does not restart it);
//   - a managed runtime that is running starts (or keeps) its running clock,
//     which a new main pid restarts; once it has run for --restart-reset its
//     failure count is reset: the daemon's backoff is forgotten when no start
//     is pending and it has not given up, systemd's (a native unit with
//     failed runs) gets a native reset of the running pid;
//   - any other status stops the running clock;
//   - an unhealthy runtime counts one more unhealthy tick (any other status
//     resets the count); at --health-fails ticks in a row (0: never) a
//     runtime that should run and is not already being restarted for its
//     health is restarted, and the count starts over.
func decideHealth(in healthInput) healthDecision {
	e, st, o := in.Entry, in.Unit, in.Obs
	o.portDown, o.exited = in.PortDown, false
	if !e.Managed {
		o.exited = in.Exited
		status, reason := classify(e, nil, &o, in.Now)
		d := healthDecision{Status: status, Reason: reason, Obs: o}
		d.Obs.exited = false // never stored
		if in.Exited {
			d.Action = healthForget
		}
		return d
	}
	status, reason := classify(e, st, &o, in.Now)
	d := healthDecision{Status: status, Reason: reason}
	pid := 0
	if st != nil {
		pid = st.MainPID
	}
	if status == wire.StatusRunning {
		// Running since this tick unless the same process was running at
		// the last one: ticks sample, so a new pid restarts the clock.
		if o.runningSince.IsZero() || o.runningPID != pid {
			o.runningSince, o.runningPID = in.Now, pid
		}
		if in.Now.Sub(o.runningSince) >= restartReset(e) {
			if b := e.Backoff; b != nil && b.NextAt.IsZero() && !b.GaveUp && !nativeUnit(st) {
				d.Action = healthResetBackoff
			} else if nativeUnit(st) && nativeFailures(e, *st) > 0 {
				d.Action, d.PID = healthNativeReset, pid
			}
		}
	} else {
		o.runningSince = time.Time{}
	}
	if status != wire.StatusUnhealthy {
		o.unhealthyTicks = 0
		d.Obs = o
		return d
	}
	o.unhealthyTicks++
	d.UnhealthyTicks = o.unhealthyTicks
	if n := healthFails(e); n > 0 && o.unhealthyTicks >= n && !o.healing && e.Desired == DesiredRunning {
		o.healing = true
		o.unhealthyTicks = 0
		d.Action, d.PID = healthRestart, pid
	}
	d.Obs = o
	return d
}
