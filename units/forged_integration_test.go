//go:build integration

package units_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"

	godbus "github.com/godbus/dbus/v5"

	"github.com/socketley/socketley/units"
)

const (
	sdName     = "org.freedesktop.systemd1"
	sdPath     = godbus.ObjectPath("/org/freedesktop/systemd1")
	sdManager  = "org.freedesktop.systemd1.Manager"
	sdUnit     = "org.freedesktop.systemd1.Unit"
	sdService  = "org.freedesktop.systemd1.Service"
	dbusDriver = "org.freedesktop.DBus"
)

// busClient connects to the sandbox's session bus as a plain client, as any
// local user could.
func busClient(t *testing.T) *godbus.Conn {
	t.Helper()
	bus, err := godbus.Dial(os.Getenv("DBUS_SESSION_BUS_ADDRESS"))
	if err != nil {
		t.Fatalf("dial the session bus: %v", err)
	}
	t.Cleanup(func() { bus.Close() })
	if err := bus.Auth([]godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		t.Fatalf("auth: %v", err)
	}
	if err := bus.Hello(); err != nil {
		t.Fatalf("hello: %v", err)
	}
	return bus
}

// sendSignal sends a signal addressed to dest only (not a broadcast: match
// rules do not filter it), then waits for a round trip to the bus driver,
// which the bus answers after it has routed the signal: whatever the test
// makes systemd signal afterwards reaches dest after it.
func sendSignal(t *testing.T, bus *godbus.Conn, dest string, path godbus.ObjectPath, iface, member string, body ...any) {
	t.Helper()
	msg := &godbus.Message{Type: godbus.TypeSignal, Headers: map[godbus.HeaderField]godbus.Variant{
		godbus.FieldDestination: godbus.MakeVariant(dest),
		godbus.FieldPath:        godbus.MakeVariant(path),
		godbus.FieldInterface:   godbus.MakeVariant(iface),
		godbus.FieldMember:      godbus.MakeVariant(member),
	}, Body: body}
	if len(body) > 0 {
		msg.Headers[godbus.FieldSignature] = godbus.MakeVariant(godbus.SignatureOf(body...))
	}
	if call := bus.Send(msg, nil); call.Err != nil {
		t.Fatalf("send %s.%s: %v", iface, member, call.Err)
	}
	var id string
	if err := bus.BusObject().CallWithContext(testCtx(t), dbusDriver+".GetId", 0).Store(&id); err != nil {
		t.Fatalf("round trip to the bus: %v", err)
	}
}

func unitObject(unit string) godbus.ObjectPath { return units.UnitPath(unit) }

// TestWatchIgnoresForgedSignals: another client of the bus sends systemd's
// signals straight to the watch's connection. None of them changes the
// watch; a genuine change that follows is published.
func TestWatchIgnoresForgedSignals(t *testing.T) {
	c := dial(t)
	ctx := testCtx(t)
	name := newName(t, c)
	unit := units.Name(name)
	if err := c.Start(ctx, sleeper(name)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	w := subscribe(t, c)
	before, ok := w.Snapshot()[name]
	if !ok || before.ActiveState != units.ActiveActive || before.MainPID <= 0 {
		t.Fatalf("after Subscribe: %+v (present %v), want the running unit", before, ok)
	}
	forger := busClient(t)
	props := func(m map[string]any) map[string]godbus.Variant {
		out := map[string]godbus.Variant{}
		for k, v := range m {
			out[k] = godbus.MakeVariant(v)
		}
		return out
	}
	tests := []struct {
		name   string
		path   godbus.ObjectPath
		iface  string
		member string
		body   []any
	}{
		{"PropertiesChanged: new MainPID", unitObject(unit), "org.freedesktop.DBus.Properties", "PropertiesChanged",
			[]any{sdService, props(map[string]any{"MainPID": uint32(1), "NRestarts": uint32(7)}), []string{}}},
		{"PropertiesChanged: failed", unitObject(unit), "org.freedesktop.DBus.Properties", "PropertiesChanged",
			[]any{sdUnit, props(map[string]any{"ActiveState": "failed", "SubState": "failed"}), []string{}}},
		{"UnitRemoved", sdPath, sdManager, "UnitRemoved", []any{unit, unitObject(unit)}},
		{"JobRemoved", sdPath, sdManager, "JobRemoved", []any{uint32(99999), sdPath + "/job/99999", unit, "done"}},
		{"Reloading", sdPath, sdManager, "Reloading", []any{false}},
		{"NameOwnerChanged: systemd left", "/org/freedesktop/DBus", dbusDriver, "NameOwnerChanged", []any{sdName, ":1.1", ""}},
		{"NameOwnerChanged: new owner", "/org/freedesktop/DBus", dbusDriver, "NameOwnerChanged", []any{sdName, ":1.1", forger.Names()[0]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sendSignal(t, forger, w.UniqueName(), tt.path, tt.iface, tt.member, tt.body...)
			// A genuine change after the forged signal: once it is
			// published, the forged one has been handled.
			barrier(t, c, w)
			st, ok := w.Snapshot()[name]
			if !ok || st.ActiveState != units.ActiveActive || st.MainPID != before.MainPID || st.NRestarts != before.NRestarts {
				t.Errorf("after a forged %s: %+v (present %v), want %s active with pid %d",
					tt.member, st, ok, unit, before.MainPID)
			}
			if err := w.Err(); err != nil {
				t.Fatalf("the watch ended: %v", err)
			}
		})
	}
	// Genuine signals are still applied: stop the unit.
	if err := c.Stop(ctx, name); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	waitWatch(t, w, func(snap map[string]units.Status) (bool, string) {
		s, ok := snap[name]
		return !ok, fmt.Sprintf("the stopped unit is gone from the snapshot; it is %+v", s)
	})
}

// TestWatchAfterDaemonReexec: systemd re-executes (a new connection owns its
// name). A watch subscribed afterwards applies the new owner's signals; one
// that was running ends (ErrNoBus: signals were lost) or follows the new
// owner.
func TestWatchAfterDaemonReexec(t *testing.T) {
	// Not parallel: a re-exec must not disturb the other tests.
	c := dialSerial(t)
	ctx := testCtx(t)
	old := subscribe(t, c)
	// Wait for the new owner through the bus driver's signal.
	bus := busClient(t)
	owners := make(chan *godbus.Signal, 16)
	bus.Signal(owners)
	if err := bus.AddMatchSignalContext(ctx, godbus.WithMatchSender(dbusDriver), godbus.WithMatchMember("NameOwnerChanged"), godbus.WithMatchArg(0, sdName)); err != nil {
		t.Fatalf("add match: %v", err)
	}
	var first string
	if err := bus.BusObject().CallWithContext(ctx, dbusDriver+".GetNameOwner", 0, sdName).Store(&first); err != nil {
		t.Fatalf("GetNameOwner: %v", err)
	}
	if out, err := exec.CommandContext(ctx, "systemctl", "--user", "daemon-reexec").CombinedOutput(); err != nil {
		t.Fatalf("daemon-reexec: %v: %s", err, out)
	}
	var next string
	for next == "" {
		select {
		case sig := <-owners:
			if len(sig.Body) == 3 && sig.Body[0] == sdName {
				next, _ = sig.Body[2].(string)
			}
		case <-ctx.Done():
			t.Fatalf("systemd did not come back on the bus: %v", ctx.Err())
		}
	}
	t.Logf("owner of %s: %s, then %s", sdName, first, next)
	w := subscribe(t, c)
	name := newName(t, c)
	if err := c.Start(ctx, sleeper(name)); err != nil {
		t.Fatalf("Start after daemon-reexec: %v", err)
	}
	waitWatch(t, w, func(snap map[string]units.Status) (bool, string) {
		s, ok := snap[name]
		return ok && s.ActiveState == units.ActiveActive && s.MainPID > 0,
			fmt.Sprintf("the new watch has the unit started after the re-exec: %+v (present %v)", s, ok)
	})
	// The watch from before the re-exec either ended or follows the new
	// owner: it never stays up without seeing the new owner's signals.
	for {
		if s, ok := old.Snapshot()[name]; ok && s.ActiveState == units.ActiveActive {
			t.Log("the old watch follows the new owner")
			return
		}
		select {
		case <-old.Changed():
		case <-old.Done():
			if !errors.Is(old.Err(), units.ErrNoBus) {
				t.Fatalf("the old watch ended with %v, want ErrNoBus", old.Err())
			}
			t.Logf("the old watch ended: %v", old.Err())
			return
		case <-ctx.Done():
			t.Fatalf("the old watch neither ended nor saw the unit: %v", ctx.Err())
		}
	}
}
