package units

import (
	"errors"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
)

// offlineWatch is a Watch without a bus: only signals that need no D-Bus
// call (changes of cached units, UnitRemoved, NameOwnerChanged) may be fed.
func offlineWatch(t *testing.T, units ...Status) *Watch {
	t.Helper()
	w := &Watch{
		life:    t.Context(),
		sigs:    make(chan *godbus.Signal, 16),
		quit:    make(chan struct{}),
		changed: make(chan struct{}, 1),
		snap:    map[string]Status{},
		state:   map[string]Status{},
	}
	for _, st := range units {
		w.state[st.Name] = st
	}
	return w
}

func running(name string, pid int) Status {
	return Status{
		Unit: Name(name), Name: name, LoadState: LoadLoaded, ActiveState: ActiveActive, SubState: SubRunning,
		Result: ResultSuccess, Restart: RestartOnFailure, MainPID: pid, ExecStart: []string{"/bin/x"},
	}
}

func changedSignal(unit, iface string, props map[string]any, invalidated ...string) *godbus.Signal {
	m := make(map[string]godbus.Variant, len(props))
	for k, v := range props {
		m[k] = godbus.MakeVariant(v)
	}
	if invalidated == nil {
		invalidated = []string{}
	}
	return &godbus.Signal{
		Sender: ":1.1", Path: unitPath(unit), Name: propertiesIface + ".PropertiesChanged",
		Body: []any{iface, m, invalidated},
	}
}

func TestWatchAppliesChanges(t *testing.T) {
	w := offlineWatch(t, running("web", 100))
	// ExecStart and Conditions are invalidated on every change: no refetch
	// (the offline watch would panic on a D-Bus call).
	sig := changedSignal("socketley-web.service", serviceIface,
		map[string]any{"MainPID": uint32(200), "NRestarts": uint32(1)}, "ExecStart", "ExecStartEx")
	if !w.receive(sig, true) {
		t.Fatal("receive ended the watch")
	}
	w.publish()
	st := w.Snapshot()["web"]
	if st.MainPID != 200 || st.NRestarts != 1 {
		t.Errorf("got MainPID=%d NRestarts=%d, want 200 1", st.MainPID, st.NRestarts)
	}
	if len(st.ExecStart) != 1 {
		t.Errorf("ExecStart lost: %q", st.ExecStart)
	}
	select {
	case <-w.Changed():
	default:
		t.Error("Changed did not fire")
	}
}

func TestWatchIgnoresOtherUnits(t *testing.T) {
	w := offlineWatch(t, running("web", 100))
	for _, sig := range []*godbus.Signal{
		changedSignal("dbus.service", unitIface, map[string]any{"ActiveState": "failed"}),
		changedSignal("socketley-web.socket", unitIface, map[string]any{"ActiveState": "failed"}),
		changedSignal("socketley-web.service", "org.freedesktop.systemd1.Socket", map[string]any{"ActiveState": "failed"}),
		{Path: "/org/freedesktop/systemd1/job/7", Name: propertiesIface + ".PropertiesChanged", Body: []any{"x"}},
		{Path: managerPath, Name: managerIface + ".JobNew", Body: []any{uint32(1), godbus.ObjectPath("/j"), "socketley-web.service"}},
	} {
		if !w.receive(sig, true) {
			t.Fatal("receive ended the watch")
		}
	}
	if w.dirty {
		t.Error("signals of other units changed the cache")
	}
}

func TestWatchMistypedSignal(t *testing.T) {
	w := offlineWatch(t, running("web", 100))
	// A body that is not (s, a{sv}, as) is skipped without a panic.
	for _, body := range [][]any{nil, {"x"}, {42, 43}} {
		sig := &godbus.Signal{Path: unitPath("socketley-web.service"), Name: propertiesIface + ".PropertiesChanged", Body: body}
		if !w.receive(sig, true) {
			t.Fatal("receive ended the watch")
		}
	}
	for _, body := range [][]any{nil, {42}, {godbus.ObjectPath("/x"), "socketley-web.service"}} {
		sig := &godbus.Signal{Path: managerPath, Name: managerIface + ".UnitRemoved", Body: body}
		if !w.receive(sig, true) {
			t.Fatal("receive ended the watch")
		}
	}
	if _, ok := w.state["web"]; !ok {
		t.Error("a malformed signal removed the unit")
	}
}

func TestWatchSettlesOverCrash(t *testing.T) {
	w := offlineWatch(t, running("web", 100))
	unit := "socketley-web.service"
	// systemd 252 on kill -9 with Restart=on-failure: failed, then
	// activating/auto-restart in the same millisecond.
	first := changedSignal(unit, unitIface, map[string]any{"ActiveState": "failed", "SubState": "failed"})
	burst := []*godbus.Signal{
		changedSignal(unit, serviceIface, map[string]any{"MainPID": uint32(0), "Result": "signal",
			"ExecMainCode": int32(CodeKilled), "ExecMainStatus": int32(9)}),
		changedSignal(unit, unitIface, map[string]any{"ActiveState": "activating", "SubState": "auto-restart"}),
	}
	go func() {
		time.Sleep(10 * time.Millisecond) // later than a drain, within the settle time
		for _, s := range burst {
			w.sigs <- s
		}
	}()
	start := time.Now()
	if !w.receive(first, true) || !w.drain() {
		t.Fatal("the watch ended")
	}
	if d := time.Since(start); d < settleDelay {
		t.Errorf("drain returned after %v, want ≥ %v", d, settleDelay)
	}
	w.publish()
	st := w.Snapshot()["web"]
	if st.ActiveState != ActiveActivating || !st.Restarting || st.LastExit() != "signal KILL" {
		t.Errorf("got %s/%s Restarting=%v LastExit=%q, want activating/auto-restart, true, signal KILL",
			st.ActiveState, st.SubState, st.Restarting, st.LastExit())
	}
}

func TestWatchRemovesUnit(t *testing.T) {
	w := offlineWatch(t, running("web", 100), running("api", 101))
	sig := &godbus.Signal{Path: managerPath, Name: managerIface + ".UnitRemoved",
		Body: []any{"socketley-web.service", unitPath("socketley-web.service")}}
	if !w.receive(sig, true) {
		t.Fatal("receive ended the watch")
	}
	w.publish()
	snap := w.Snapshot()
	if _, ok := snap["web"]; ok || len(snap) != 1 {
		t.Errorf("got %v, want only api", snap)
	}
}

func TestWatchEnds(t *testing.T) {
	tests := []struct {
		name string
		sig  *godbus.Signal
		ok   bool
	}{
		{"connection lost", nil, false},
		{"systemd left the bus", &godbus.Signal{Name: "org.freedesktop.DBus.NameOwnerChanged",
			Body: []any{busName, ":1.5", ""}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := offlineWatch(t)
			if w.receive(tt.sig, tt.ok) {
				t.Fatal("receive returned true, want the watch to end")
			}
			if err := w.Err(); !errors.Is(err, ErrNoBus) {
				t.Errorf("Err() = %v, want ErrNoBus", err)
			}
		})
	}
	t.Run("new owner", func(t *testing.T) {
		w := offlineWatch(t)
		sig := &godbus.Signal{Name: "org.freedesktop.DBus.NameOwnerChanged", Body: []any{busName, "", ":1.9"}}
		if !w.receive(sig, true) || w.Err() != nil {
			t.Errorf("a new owner ended the watch: %v", w.Err())
		}
	})
}

func TestSnapshotIsACopy(t *testing.T) {
	w := offlineWatch(t, running("web", 100))
	w.dirty = true
	w.publish()
	a := w.Snapshot()
	st := a["web"]
	st.ExecStart[0] = "changed"
	a["web"] = st
	delete(a, "web")
	if got := w.Snapshot()["web"].ExecStart[0]; got != "/bin/x" {
		t.Errorf("Snapshot shares memory with the cache: ExecStart[0] = %q", got)
	}
}
