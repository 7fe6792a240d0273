package manager

import (
	"context"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// Systemd is what the daemon needs from the service manager. *units.Conn
// satisfies it through unitsAdapter; tests use a fake.
type Systemd interface {
	// Start creates and starts the transient unit for spec, waiting for the job.
	Start(ctx context.Context, spec units.Spec) error
	// Stop stops the runtime's unit and waits until it is inactive.
	// A unit that does not exist is units.ErrNoSuchUnit.
	Stop(ctx context.Context, name string) error
	// ResetFailed clears a failed unit so that its name can be started again.
	ResetFailed(ctx context.Context, name string) error
	// Status returns the unit's current properties (units.ErrNoSuchUnit if none).
	Status(ctx context.Context, name string) (units.Status, error)
	// UnitByPID returns the unit name a process belongs to.
	UnitByPID(ctx context.Context, pid int) (string, error)
	// Watch returns a live view of every socketley-* unit.
	Watch(ctx context.Context) (Watcher, error)
	// StartSocket makes the runtime's socket unit (socketley-NAME.socket)
	// listen on listen and trigger the service, created from spec (not
	// started) when it is not loaded; an active socket is left alone.
	StartSocket(ctx context.Context, spec units.Spec, listen []string) error
	// StartLoaded starts the runtime's service as it is loaded (the
	// service of a socket made by StartSocket) and waits for the job.
	StartLoaded(ctx context.Context, name string) error
	// StopSocket stops the runtime's socket unit (nil when not loaded).
	StopSocket(ctx context.Context, name string) error
	// SocketActive reports whether the runtime's socket unit is active.
	SocketActive(ctx context.Context, name string) (bool, error)
	// ManagerVersion returns the manager's major version (252, 254, …).
	ManagerVersion() (int, error)
	// SetLimits changes the cgroup limits (wire.Limits.Live) and the live
	// -p settings among properties (wire.PropertyRule.Live) of the
	// runtime's loaded unit at once; units.ErrNoSuchUnit when none is
	// loaded.
	SetLimits(ctx context.Context, name string, l wire.Limits, properties []string) error
	// DefaultLimits returns the manager's DefaultTasksMax and
	// DefaultLimitNOFILE (hard) as TasksMax and NOFILE.
	DefaultLimits() (wire.Limits, error)
	// Close releases the connection.
	Close() error
}

// Watcher is a live, signal-fed cache of socketley-* units.
type Watcher interface {
	// Snapshot returns the cache keyed by runtime name. The map is shared
	// and read-only: never modify it (or the ExecStart slices in it).
	Snapshot() map[string]units.Status
	// Refresh reads one unit now and publishes it into the cache before it
	// returns; units.ErrNoSuchUnit (and the unit dropped from the cache)
	// when it is not loaded.
	Refresh(ctx context.Context, name string) (units.Status, error)
	// Changed receives (coalesced) after any change to the cache.
	Changed() <-chan struct{}
	// Done is closed when the connection to the bus is lost.
	Done() <-chan struct{}
	// Exits returns and forgets the states in which a unit's main process
	// was seen ended since the last call, by runtime name, oldest first:
	// also those the cache never showed (a crash restarted at once).
	Exits() map[string][]units.Status
	// Resync compares the cache with one ListUnits round trip and fixes it.
	Resync(ctx context.Context) error
	// Close stops the watch.
	Close() error
}

// DialFunc connects to systemd; the daemon calls it at start and again after
// the bus or the manager went away.
type DialFunc func(ctx context.Context) (Systemd, error)

// UnitsDialer returns a DialFunc for the real systemd in scope.
func UnitsDialer(scope units.Scope) DialFunc {
	return func(ctx context.Context) (Systemd, error) {
		c, err := units.Dial(ctx, scope)
		if err != nil {
			return nil, err
		}
		return unitsAdapter{c}, nil
	}
}

// unitsAdapter makes *units.Conn a Systemd.
type unitsAdapter struct{ *units.Conn }

func (a unitsAdapter) Watch(ctx context.Context) (Watcher, error) {
	w, err := a.Conn.Subscribe(ctx)
	if err != nil {
		return nil, err
	}
	return w, nil
}

var (
	_ Systemd = unitsAdapter{}
	_ Watcher = (*units.Watch)(nil)
)
