package units

import godbus "github.com/godbus/dbus/v5"

// SetPrivateFill turns the initial fill over systemd's private socket on or
// off (for tests of the fill over the bus); it returns the previous setting.
func SetPrivateFill(on bool) bool {
	return !noPrivateFill.Swap(!on)
}

// PrivateFills returns how many fills were done over the private socket.
func PrivateFills() int64 { return privateFills.Load() }

// SetNudge turns the restart nudge of the Watches subscribed from now on on
// or off (for the benchmark); it returns a function that restores the
// previous setting, to be called once those Watches are closed.
func SetNudge(on bool) (restore func()) {
	old := nudgeAfter
	if !on {
		nudgeAfter = nil
	}
	return func() { nudgeAfter = old }
}

// UniqueName returns the unique bus name of the watch's connection, to which
// a test sends forged signals.
func (w *Watch) UniqueName() string { return w.bus.Names()[0] }

// UnitPath returns the object path of unit.
func UnitPath(unit string) godbus.ObjectPath { return unitPath(unit) }
