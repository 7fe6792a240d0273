package wire

import (
	"strconv"
	"time"
)

// CmdEvents lists what happened to runtimes (socketley events); CmdWhy
// explains how one runtime last ended (socketley why).
const (
	CmdEvents = "events"
	CmdWhy    = "why"
)

// EventKind is what happened to a runtime. The set is fixed: each kind has
// a MESSAGE_ID in the journal (EventKind.MessageID, docs/events.md).
type EventKind string

// Event kinds.
const (
	// EventAdded: the runtime was registered (socketley add).
	EventAdded EventKind = "added"
	// EventStarted: an operator started it (add -s, start, restart,
	// upgrade); automatic starts are EventRestarted.
	EventStarted EventKind = "started"
	// EventAttached: a process attached under the name.
	EventAttached EventKind = "attached"
	// EventDetached: the attached process detached, or exited and was
	// forgotten.
	EventDetached EventKind = "detached"
	// EventUnhealthy: the health check found it unhealthy (Reason says
	// why: attach overdue, port refused …).
	EventUnhealthy EventKind = "unhealthy"
	// EventHealthRestart: the health check restarted it (Reason says why).
	EventHealthRestart EventKind = "health-restart"
	// EventExited: its main process ended (ExitCode, or Signal).
	EventExited EventKind = "exited"
	// EventOOMKilled: the kernel's OOM killer ended it (systemd's
	// Result=oom-kill).
	EventOOMKilled EventKind = "oom-killed"
	// EventRestarted: an automatic restart, by systemd (Restart=) or the
	// daemon's crash backoff.
	EventRestarted EventKind = "restarted"
	// EventCrashLoop: it failed again soon after a restart; the daemon's
	// backoff waits before the next start.
	EventCrashLoop EventKind = "crash-loop"
	// EventStartLimitHit: systemd refused a restart (StartLimitBurst= in
	// StartLimitIntervalSec=) and left the unit failed.
	EventStartLimitHit EventKind = "start-limit-hit"
	// EventGaveUp: the daemon stopped restarting it (--max-restarts).
	EventGaveUp EventKind = "gave-up"
	// EventStopped: an operator stopped it (socketley stop).
	EventStopped EventKind = "stopped"
	// EventRemoved: it was unregistered (socketley remove).
	EventRemoved EventKind = "removed"
)

// EventKinds returns all the kinds, in the order of docs/events.md.
func EventKinds() []EventKind {
	return []EventKind{
		EventAdded, EventStarted, EventAttached, EventDetached, EventUnhealthy, EventHealthRestart,
		EventExited, EventOOMKilled, EventRestarted, EventCrashLoop, EventStartLimitHit, EventGaveUp,
		EventStopped, EventRemoved,
	}
}

// MessageID returns the journal's MESSAGE_ID of k: 32 lowercase hex
// digits, fixed forever (docs/events.md), "" for an unknown kind.
func (k EventKind) MessageID() string {
	switch k {
	case EventAdded:
		return "68ced4c8af754d9ca4f094f20693166e"
	case EventStarted:
		return "4d6886cfb3ea4c8fb294d8ff80143591"
	case EventAttached:
		return "0561bbe6f2984d98b7bdb96d4c5d551f"
	case EventDetached:
		return "546f7c641a05425abce70ac01c9c5fae"
	case EventUnhealthy:
		return "eea47e59640d4d1a986e3a535d05f0b2"
	case EventHealthRestart:
		return "334ebc0bd93c4d4aa63ea88781b8bc9c"
	case EventExited:
		return "c450e57d931b4ff0ac97e40c53f95182"
	case EventOOMKilled:
		return "0f4a32b5336742fa87ee4bd99215c5a2"
	case EventRestarted:
		return "986ad2f999654035b41dd7cad0e5ce59"
	case EventCrashLoop:
		return "c3cd35de8ff14dbb9eb5486b948f048f"
	case EventStartLimitHit:
		return "c54694eb8e7f47dc8e8f0a80d249e762"
	case EventGaveUp:
		return "bb7017354acb40738763a0e1161b08c2"
	case EventStopped:
		return "a6c6c3bb5c444c3da5572a8d9b23281c"
	case EventRemoved:
		return "74316977d8014b258ae2e7332f608f37"
	}
	return ""
}

// Event is one thing that happened to a runtime, as socketley events
// lists it and the daemon writes it to the journal.
type Event struct {
	Time time.Time `json:"time"`
	Name string    `json:"name"`
	Kind EventKind `json:"event"`
	// Reason is what happened, in words ("exit code 3", "port 7070
	// refused connections", "socketley stop by uid 1000").
	Reason string `json:"reason,omitempty"`
	// ExitCode is the exit status of an exit (EventExited, and the exit
	// that led to a restart), nil when the process was killed by a signal
	// or there was no exit.
	ExitCode *int `json:"exit_code,omitempty"`
	// Signal is the name of the signal that killed the process ("KILL",
	// "SEGV"), "" when it exited.
	Signal string `json:"signal,omitempty"`
	// CoreDumped is set when the process dumped core.
	CoreDumped bool `json:"core_dumped,omitempty"`
	// PID is the process the event is about (0 when none).
	PID int `json:"pid,omitempty"`
	// Restarts is the runtime's count of automatic restarts after a
	// restart event.
	Restarts int `json:"restarts,omitempty"`
	// OwnerUID is the uid that added or attached the runtime: a non-root
	// caller of the system daemon sees only its own runtimes' events.
	OwnerUID int `json:"owner_uid"`
}

// Details words the event's fields after its kind, for a human listing:
// the reason, then the pid and the restart count.
func (e Event) Details() string {
	s := e.Reason
	add := func(t string) {
		if s != "" {
			s += "; "
		}
		s += t
	}
	if e.PID > 0 {
		add("pid " + strconv.Itoa(e.PID))
	}
	if e.Restarts > 0 {
		add("restarts " + strconv.Itoa(e.Restarts))
	}
	return s
}

// Exit is how a runtime's main process last ended, as socketley why
// reports it.
type Exit struct {
	Time time.Time `json:"time,omitzero"`
	// Kind is EventExited, EventOOMKilled or EventStartLimitHit.
	Kind EventKind `json:"kind"`
	// Result is systemd's service result (exit-code, signal, core-dump,
	// oom-kill, timeout, start-limit-hit, …).
	Result     string `json:"result,omitempty"`
	ExitCode   *int   `json:"exit_code,omitempty"`
	Signal     string `json:"signal,omitempty"`
	CoreDumped bool   `json:"core_dumped,omitempty"`
	// Words is the whole exit in a sentence ("exit code 3", "killed by
	// the OOM killer (signal KILL)").
	Words string `json:"words"`
}

// RestartRecord is one automatic restart of a runtime (systemd's, the
// backoff's or the health check's), kept by the daemon across its own
// restarts (the last MaxRestartHistory).
type RestartRecord struct {
	Time time.Time `json:"time"`
	// Kind is EventRestarted or EventHealthRestart.
	Kind EventKind `json:"kind"`
	// Cause is why, in words: the exit before it, or the health reason.
	Cause string `json:"cause,omitempty"`
}

// MaxRestartHistory is how many restarts socketley why remembers per
// runtime.
const MaxRestartHistory = 20

// Why is the reply of socketley why: how a runtime last ended and what
// happened to it.
type Why struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Reason is why the runtime is in its status (as in show).
	Reason string `json:"reason,omitempty"`
	// LastExit is the last exit seen (nil: none since it was added).
	LastExit *Exit `json:"last_exit,omitempty"`
	// Restarts and HealthRestarts are the counts (show's).
	Restarts       int `json:"restarts"`
	HealthRestarts int `json:"health_restarts"`
	// History is the last restarts, oldest first.
	History []RestartRecord `json:"history,omitempty"`
	// Events are the runtime's recent events the daemon holds, oldest
	// first.
	Events []Event `json:"events,omitempty"`
	// Journal is the unit's last lines of output (filled by the CLI).
	Journal []string `json:"journal,omitempty"`
}
