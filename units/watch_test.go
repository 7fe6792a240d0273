package units

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/socketley/socketley/internal/wire"
)

// sd is the unique bus name of systemd in the offline tests.
const sd = ":1.1"

// offlineWatch is a Watch without a bus: only signals that need no D-Bus
// call (changes of cached units, UnitRemoved, NameOwnerChanged) may be fed.
// Its systemd is sd.
func offlineWatch(t *testing.T, units ...Status) *Watch {
	t.Helper()
	w := newWatch(t.Context(), func() {})
	w.owner = sd
	w.nudged = func(string, time.Duration) {} // no bus to ping
	for _, st := range units {
		w.set(st.Name, st)
	}
	w.publish()
	return w
}

func running(name string, pid int) Status {
	return Status{
		Unit: Name(name), Name: name, LoadState: LoadLoaded, ActiveState: ActiveActive, SubState: SubRunning,
		Result: ResultSuccess, Restart: wire.RestartOnFailure, MainPID: pid, ExecStart: []string{"/bin/x"},
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
		Sender: sd, Path: unitPath(unit), Name: propertiesIface + ".PropertiesChanged",
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
		{Sender: sd, Path: "/org/freedesktop/systemd1/job/7", Name: propertiesIface + ".PropertiesChanged", Body: []any{"x"}},
		{Sender: sd, Path: managerPath, Name: managerIface + ".JobNew", Body: []any{uint32(1), godbus.ObjectPath("/j"), "socketley-web.service"}},
	} {
		if !w.receive(sig, true) {
			t.Fatal("receive ended the watch")
		}
	}
	if len(w.touched) != 0 {
		t.Error("signals of other units changed the cache")
	}
}

func TestWatchMistypedSignal(t *testing.T) {
	w := offlineWatch(t, running("web", 100))
	// A body that is not (s, a{sv}, as) is skipped without a panic.
	for _, body := range [][]any{nil, {"x"}, {42, 43}} {
		sig := &godbus.Signal{Sender: sd, Path: unitPath("socketley-web.service"), Name: propertiesIface + ".PropertiesChanged", Body: body}
		if !w.receive(sig, true) {
			t.Fatal("receive ended the watch")
		}
	}
	for _, body := range [][]any{nil, {42}, {godbus.ObjectPath("/x"), "socketley-web.service"}} {
		sig := &godbus.Signal{Sender: sd, Path: managerPath, Name: managerIface + ".UnitRemoved", Body: body}
		if !w.receive(sig, true) {
			t.Fatal("receive ended the watch")
		}
	}
	if _, ok := w.state["web"]; !ok {
		t.Error("a malformed signal removed the unit")
	}
}

// feed hands signals to receive, numbered from seq on.
func feed(t *testing.T, w *Watch, seq godbus.Sequence, sigs ...*godbus.Signal) {
	t.Helper()
	for i, sig := range sigs {
		sig.Sequence = seq + godbus.Sequence(i)
		if !w.receive(sig, true) {
			t.Fatal("receive ended the watch")
		}
	}
}

func TestWatchSettlesOverCrash(t *testing.T) {
	w := offlineWatch(t, running("web", 100))
	unit := "socketley-web.service"
	// systemd 252 on kill -9 with Restart=on-failure: failed, then
	// activating/auto-restart in the same millisecond; here the two arrive
	// in different batches, however far apart.
	feed(t, w, 1,
		changedSignal(unit, unitIface, map[string]any{"ActiveState": "failed", "SubState": "failed"}),
		changedSignal(unit, serviceIface, map[string]any{"MainPID": uint32(0), "Result": "signal",
			"ExecMainCode": int32(CodeKilled), "ExecMainStatus": int32(9)}))
	for range 3 {
		w.publish()
		if st := w.Snapshot()["web"]; st.ActiveState != ActiveActive || st.MainPID != 100 {
			t.Fatalf("the failure was published before it settled: %s/%s pid %d", st.ActiveState, st.SubState, st.MainPID)
		}
	}
	if p, ok := w.pending["web"]; !ok || !p.full {
		t.Errorf("the settling unit is not to be read in full: %+v (present %v)", p, ok)
	}
	feed(t, w, 3, changedSignal(unit, unitIface, map[string]any{"ActiveState": "activating", "SubState": "auto-restart"}))
	w.publish()
	if len(w.settling) != 0 {
		t.Errorf("a restarting unit is still held back: %v", w.settling)
	}
	st := w.Snapshot()["web"]
	if st.ActiveState != ActiveActivating || !st.Restarting || st.LastExit() != "signal KILL" {
		t.Errorf("got %s/%s Restarting=%v LastExit=%q, want activating/auto-restart, true, signal KILL",
			st.ActiveState, st.SubState, st.Restarting, st.LastExit())
	}
}

func TestWatchPublishesSettledFailure(t *testing.T) {
	for _, how := range []string{"read", "unread"} {
		t.Run(how, func(t *testing.T) {
			w := offlineWatch(t, running("web", 100), running("api", 101))
			feed(t, w, 1, changedSignal("socketley-web.service", unitIface, map[string]any{"ActiveState": "failed", "SubState": "failed"}),
				changedSignal("socketley-api.service", serviceIface, map[string]any{"MainPID": uint32(202)}))
			w.publish()
			snap := w.Snapshot()
			if snap["web"].ActiveState != ActiveActive {
				t.Errorf("web published as %s before it settled", snap["web"].ActiveState)
			}
			if snap["api"].MainPID != 202 {
				t.Errorf("another unit was held back with the settling one: api pid %d", snap["api"].MainPID)
			}
			<-w.Changed()
			failed := running("web", 0)
			failed.ActiveState, failed.SubState = ActiveFailed, SubFailed
			if how == "read" {
				// The read of the pending reads confirms the failure.
				w.apply("web", &godbus.Call{Body: []any{getAll(failed)}, ResponseSequence: 3})
			} else {
				// The read failed: flush publishes what it has.
				w.releaseSettling()
			}
			w.publish()
			if st := w.Snapshot()["web"]; st.ActiveState != ActiveFailed {
				t.Errorf("web is %s, want failed", st.ActiveState)
			}
			select {
			case <-w.Changed():
			default:
				t.Error("Changed did not fire for the settled failure")
			}
			if len(w.settling) != 0 {
				t.Errorf("settling left: %v", w.settling)
			}
		})
	}
}

func TestWatchSettlesOverRestartBegin(t *testing.T) {
	// systemd 252 when the restart begins: auto-restart, inactive/dead,
	// activating/start; the last two may arrive far apart.
	st := running("web", 0)
	st.ActiveState, st.SubState = ActiveActivating, SubAutoRestart
	w := offlineWatch(t, st)
	unit := "socketley-web.service"
	feed(t, w, 1, changedSignal(unit, unitIface, map[string]any{"ActiveState": "inactive", "SubState": "dead"}))
	w.publish()
	if got := w.Snapshot()["web"]; !got.Restarting {
		t.Fatalf("the beginning of a restart was published as %s/%s", got.ActiveState, got.SubState)
	}
	feed(t, w, 2, changedSignal(unit, serviceIface, map[string]any{"MainPID": uint32(104)}),
		changedSignal(unit, unitIface, map[string]any{"ActiveState": "activating", "SubState": "start"}))
	w.publish()
	if got := w.Snapshot()["web"]; got.ActiveState != ActiveActivating || got.SubState != SubStart || got.MainPID != 104 {
		t.Errorf("got %s/%s pid %d, want activating/start pid 104", got.ActiveState, got.SubState, got.MainPID)
	}
}

// TestWatchSettleByVersion: on systemd ≥ RestartSubStatesVersion (the
// generic path) the sub-state says whether a restart follows: the
// before-auto-restart states are held back as on 252, a final failure or
// stop is published at once, without a read; on 252 (and an unknown
// version) every up → down transition is held until it settles.
func TestWatchSettleByVersion(t *testing.T) {
	unit := "socketley-web.service"
	tests := []struct {
		name    string
		version int
		from    Status
		active  string
		sub     string
		held    bool
	}{
		{"254: crash on the way to a restart", 254, running("web", 100), "failed", "failed-before-auto-restart", true},
		{"254: clean exit on the way to a restart", 254, running("web", 100), "inactive", "dead-before-auto-restart", true},
		{"254: final failure", 254, running("web", 100), "failed", "failed", false},
		{"257: final failure", 257, running("web", 100), "failed", "failed", false},
		{"254: stopped", 254, func() Status {
			st := running("web", 100)
			st.ActiveState, st.SubState = ActiveDeactivating, SubStopSIGTERM
			return st
		}(), "inactive", "dead", false},
		{"252: crash", 252, running("web", 100), "failed", "failed", true},
		{"252: stopped", 252, func() Status {
			st := running("web", 100)
			st.ActiveState, st.SubState = ActiveDeactivating, SubStopSIGTERM
			return st
		}(), "inactive", "dead", true},
		{"unknown version: crash", 0, running("web", 100), "failed", "failed", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := offlineWatch(t, tt.from)
			w.version.Store(int64(tt.version))
			feed(t, w, 1, changedSignal(unit, unitIface, map[string]any{"ActiveState": tt.active, "SubState": tt.sub}))
			w.publish()
			got := w.Snapshot()["web"]
			_, settling := w.settling["web"]
			_, reading := w.pending["web"]
			if tt.held {
				if got.ActiveState != tt.from.ActiveState || !settling || !reading {
					t.Fatalf("published %s/%s (settling %v, read pending %v); want the previous state held until a read",
						got.ActiveState, got.SubState, settling, reading)
				}
				return
			}
			if got.ActiveState != tt.active || got.SubState != tt.sub || settling || reading {
				t.Fatalf("published %s/%s (settling %v, read pending %v); want %s/%s at once, no read",
					got.ActiveState, got.SubState, settling, reading, tt.active, tt.sub)
			}
		})
	}
}

// TestWatchSettlesOverCrash254: systemd 254's crash sequence (measured):
// failed/failed-before-auto-restart, activating/auto-restart,
// activating/auto-restart-queued, active/running, with the failure and the
// restart in different batches: the failure is never published.
func TestWatchSettlesOverCrash254(t *testing.T) {
	w := offlineWatch(t, running("web", 100))
	w.version.Store(254)
	unit := "socketley-web.service"
	feed(t, w, 1,
		changedSignal(unit, unitIface, map[string]any{"ActiveState": "failed", "SubState": "failed-before-auto-restart"}),
		changedSignal(unit, serviceIface, map[string]any{"MainPID": uint32(0), "Result": "signal",
			"ExecMainCode": int32(CodeKilled), "ExecMainStatus": int32(9)}))
	w.publish()
	if st := w.Snapshot()["web"]; st.ActiveState != ActiveActive || st.MainPID != 100 {
		t.Fatalf("the failure before the restart was published: %s/%s pid %d", st.ActiveState, st.SubState, st.MainPID)
	}
	feed(t, w, 3, changedSignal(unit, unitIface, map[string]any{"ActiveState": "activating", "SubState": "auto-restart"}))
	w.publish()
	if st := w.Snapshot()["web"]; !st.Restarting || st.LastExit() != "signal KILL" || len(w.settling) != 0 {
		t.Fatalf("got %s/%s Restarting=%v LastExit=%q settling %v, want restarting after signal KILL",
			st.ActiveState, st.SubState, st.Restarting, st.LastExit(), w.settling)
	}
	feed(t, w, 4, changedSignal(unit, unitIface, map[string]any{"ActiveState": "activating", "SubState": "auto-restart-queued"}))
	feed(t, w, 5, changedSignal(unit, serviceIface, map[string]any{"MainPID": uint32(104)}),
		changedSignal(unit, unitIface, map[string]any{"ActiveState": "active", "SubState": "running"}))
	w.publish()
	if st := w.Snapshot()["web"]; st.ActiveState != ActiveActive || st.MainPID != 104 {
		t.Fatalf("after the restart: %s/%s pid %d", st.ActiveState, st.SubState, st.MainPID)
	}
}

func TestWatchNoSettleForNewUnit(t *testing.T) {
	// A unit that was never up (inactive, as created) and fails is shown at
	// once: there is no restart to wait for.
	st := running("web", 0)
	st.ActiveState, st.SubState = ActiveInactive, SubDead
	w := offlineWatch(t, st)
	feed(t, w, 1, changedSignal("socketley-web.service", unitIface, map[string]any{"ActiveState": "failed", "SubState": "failed"}))
	w.publish()
	if len(w.settling) != 0 {
		t.Errorf("a never-up unit settles: %v", w.settling)
	}
	if got := w.Snapshot()["web"].ActiveState; got != ActiveFailed {
		t.Errorf("got %s, want failed at once", got)
	}
}

func TestWatchSkipsSignalsOlderThanRead(t *testing.T) {
	w := offlineWatch(t, running("web", 100))
	unit := "socketley-web.service"
	w.markRead("web", 10) // a GetAll whose reply was message 10
	feed(t, w, 5,
		changedSignal(unit, serviceIface, map[string]any{"MainPID": uint32(50)}),
		&godbus.Signal{Sender: sd, Path: managerPath, Name: managerIface + ".UnitRemoved", Body: []any{unit, unitPath(unit)}})
	if st, ok := w.state["web"]; !ok || st.MainPID != 100 {
		t.Fatalf("a signal older than the read was applied: %+v (present %v)", st, ok)
	}
	feed(t, w, 11, changedSignal(unit, serviceIface, map[string]any{"MainPID": uint32(300)}))
	if st := w.state["web"]; st.MainPID != 300 {
		t.Errorf("a signal newer than the read was skipped: MainPID %d", st.MainPID)
	}
	w.publish()
	if len(w.read) != 0 {
		t.Errorf("read marks older than the last signal are kept: %v", w.read)
	}
	// A read older than the last signal is not recorded.
	w.markRead("web", 3)
	if len(w.read) != 0 {
		t.Errorf("markRead recorded a read older than the last signal: %v", w.read)
	}
}

func TestWatchRemovesUnit(t *testing.T) {
	w := offlineWatch(t, running("web", 100), running("api", 101))
	sig := &godbus.Signal{Sender: sd, Path: managerPath, Name: managerIface + ".UnitRemoved",
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
		{"systemd left the bus", &godbus.Signal{Sender: driverName, Name: "org.freedesktop.DBus.NameOwnerChanged",
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
		sig := &godbus.Signal{Sender: driverName, Name: "org.freedesktop.DBus.NameOwnerChanged", Body: []any{busName, "", ":1.9"}}
		if !w.receive(sig, true) || w.Err() != nil {
			t.Errorf("a new owner ended the watch: %v", w.Err())
		}
	})
}

func TestSnapshotIsImmutable(t *testing.T) {
	w := offlineWatch(t, running("web", 100), running("api", 101))
	old := w.Snapshot()
	feed(t, w, 1, changedSignal("socketley-web.service", serviceIface, map[string]any{"MainPID": uint32(200)}),
		&godbus.Signal{Sender: sd, Path: managerPath, Name: managerIface + ".UnitRemoved",
			Body: []any{"socketley-api.service", unitPath("socketley-api.service")}})
	w.publish()
	if old["web"].MainPID != 100 || len(old) != 2 {
		t.Errorf("a published snapshot was modified: %v", old)
	}
	cur := w.Snapshot()
	if cur["web"].MainPID != 200 || len(cur) != 1 {
		t.Errorf("new snapshot: %v, want web with pid 200 only", cur)
	}
	if w.publish(); !sameMap(cur, w.Snapshot()) {
		t.Error("publish without a change replaced the snapshot")
	}
}

func sameMap(a, b map[string]Status) bool {
	return fmt.Sprintf("%p", a) == fmt.Sprintf("%p", b)
}

func TestWatchDefersReads(t *testing.T) {
	w := offlineWatch(t, running("web", 100))
	stub, newUnit := "socketley-ghost.service", "socketley-new.service"
	feed(t, w, 1,
		// A not-found stub comes and goes within the batch: nothing to read.
		&godbus.Signal{Sender: sd, Path: managerPath, Name: managerIface + ".UnitNew", Body: []any{stub, unitPath(stub)}},
		&godbus.Signal{Sender: sd, Path: managerPath, Name: managerIface + ".UnitRemoved", Body: []any{stub, unitPath(stub)}},
		// A new unit: read only if it is loaded.
		&godbus.Signal{Sender: sd, Path: managerPath, Name: managerIface + ".UnitNew", Body: []any{newUnit, unitPath(newUnit)}},
		changedSignal(newUnit, unitIface, map[string]any{"ActiveState": "active"}),
		// A job of a cached unit: read in full.
		&godbus.Signal{Sender: sd, Path: managerPath, Name: managerIface + ".JobRemoved",
			Body: []any{uint32(7), godbus.ObjectPath("/org/freedesktop/systemd1/job/7"), "socketley-web.service", "done"}},
	)
	want := map[string]pendingRead{"new": {full: false, seq: 4}, "web": {full: true, seq: 5}}
	if fmt.Sprint(w.pending) != fmt.Sprint(want) {
		t.Errorf("pending reads: %v, want %v", w.pending, want)
	}
	// A full read of web after the signal (a Refresh) serves its pending
	// read; one from before does not.
	w.apply("web", &godbus.Call{Body: []any{getAll(running("web", 100))}, ResponseSequence: 5})
	if _, ok := w.pending["web"]; !ok {
		t.Error("a read older than the JobRemoved cancelled the pending read")
	}
	w.apply("web", &godbus.Call{Body: []any{getAll(running("web", 100))}, ResponseSequence: 6})
	if _, ok := w.pending["web"]; ok {
		t.Error("a read after the JobRemoved left the pending read")
	}
}

// getAll returns st as a GetAll reply.
func getAll(st Status) map[string]godbus.Variant {
	argv := []any{st.ExecStart[0], st.ExecStart, false, uint64(0), uint64(0), uint64(0), uint64(0), uint32(0), int32(0), int32(0)}
	return map[string]godbus.Variant{
		"Id": godbus.MakeVariant(st.Unit), "LoadState": godbus.MakeVariant(st.LoadState),
		"ActiveState": godbus.MakeVariant(st.ActiveState), "SubState": godbus.MakeVariant(st.SubState),
		"MainPID": godbus.MakeVariant(uint32(st.MainPID)), "ExecStart": godbus.MakeVariant([][]any{argv}),
	}
}

func TestWatchNudgesRestart(t *testing.T) {
	st := running("web", 100)
	st.RestartSec = 300 * time.Millisecond
	w := offlineWatch(t, st)
	var got []string
	w.nudged = func(name string, after time.Duration) { got = append(got, fmt.Sprint(name, " ", after)) }
	unit := "socketley-web.service"
	feed(t, w, 1,
		changedSignal(unit, unitIface, map[string]any{"ActiveState": "failed", "SubState": "failed"}),
		changedSignal(unit, unitIface, map[string]any{"ActiveState": "activating", "SubState": "auto-restart"}),
		// Still waiting: no second nudge.
		changedSignal(unit, serviceIface, map[string]any{"NRestarts": uint32(1)}),
	)
	want := []string{"web 301ms", "web 310ms"}
	if !slices.Equal(got, want) {
		t.Errorf("nudges: %q, want %q", got, want)
	}
}

func TestSameStatusComparesEveryField(t *testing.T) {
	base := running("web", 100)
	if !sameStatus(base, running("web", 100)) {
		t.Fatal("equal statuses differ")
	}
	v := reflect.ValueOf(&base).Elem()
	for i := range v.NumField() {
		changed := base
		f := reflect.ValueOf(&changed).Elem().Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(f.String() + "x")
		case reflect.Int, reflect.Int64:
			f.SetInt(f.Int() + 1)
		case reflect.Bool:
			f.SetBool(!f.Bool())
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"/bin/other"}))
		case reflect.Struct: // time.Time
			f.Set(reflect.ValueOf(time.Unix(1, 0)))
		default:
			t.Fatalf("field %s: kind %s not covered by this test", v.Type().Field(i).Name, f.Kind())
		}
		if sameStatus(base, changed) {
			t.Errorf("sameStatus ignores field %s", v.Type().Field(i).Name)
		}
	}
}

func TestWatchNoChangeNoPublish(t *testing.T) {
	w := offlineWatch(t, running("web", 100))
	snap := w.Snapshot()
	select {
	case <-w.Changed():
	default:
	}
	// A signal that changes nothing a Status follows.
	feed(t, w, 1, changedSignal("socketley-web.service", serviceIface, map[string]any{"MainPID": uint32(100), "CPUUsageNSec": uint64(5)}))
	w.publish()
	if !sameMap(snap, w.Snapshot()) {
		t.Error("a signal that changed nothing published a new snapshot")
	}
	select {
	case <-w.Changed():
		t.Error("Changed fired without a change")
	default:
	}
}

// TestWatchDropsForgedSignals: a signal that does not come from systemd (its
// sender is not the owner of systemd's name; NameOwnerChanged not from the bus
// driver) changes nothing; a genuine signal after it is applied.
func TestWatchDropsForgedSignals(t *testing.T) {
	unit := "socketley-web.service"
	forge := func(sender string, sig *godbus.Signal) *godbus.Signal {
		sig.Sender = sender
		return sig
	}
	tests := []struct {
		name string
		sig  *godbus.Signal
	}{
		{"PropertiesChanged MainPID", forge(":1.66", changedSignal(unit, serviceIface, map[string]any{"MainPID": uint32(1)}))},
		{"PropertiesChanged failed", forge(":1.66", changedSignal(unit, unitIface, map[string]any{"ActiveState": "failed", "SubState": "failed"}))},
		{"PropertiesChanged without sender", forge("", changedSignal(unit, serviceIface, map[string]any{"MainPID": uint32(1)}))},
		{"PropertiesChanged from the bus driver", forge(driverName, changedSignal(unit, serviceIface, map[string]any{"MainPID": uint32(1)}))},
		{"UnitRemoved", &godbus.Signal{Sender: ":1.66", Path: managerPath, Name: managerIface + ".UnitRemoved", Body: []any{unit, unitPath(unit)}}},
		{"UnitNew", &godbus.Signal{Sender: ":1.66", Path: managerPath, Name: managerIface + ".UnitNew", Body: []any{"socketley-x.service", unitPath("socketley-x.service")}}},
		{"JobRemoved", &godbus.Signal{Sender: ":1.66", Path: managerPath, Name: managerIface + ".JobRemoved",
			Body: []any{uint32(7), godbus.ObjectPath("/org/freedesktop/systemd1/job/7"), unit, "done"}}},
		{"Reloading", &godbus.Signal{Sender: ":1.66", Path: managerPath, Name: managerIface + ".Reloading", Body: []any{false}}},
		{"NameOwnerChanged: systemd left", &godbus.Signal{Sender: ":1.66", Name: driverName + ".NameOwnerChanged", Body: []any{busName, sd, ""}}},
		{"NameOwnerChanged: new owner", &godbus.Signal{Sender: ":1.66", Name: driverName + ".NameOwnerChanged", Body: []any{busName, sd, ":1.66"}}},
		{"NameOwnerChanged from systemd", &godbus.Signal{Sender: sd, Name: driverName + ".NameOwnerChanged", Body: []any{busName, sd, ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := offlineWatch(t, running("web", 100))
			feed(t, w, 1, tt.sig)
			if len(w.touched) != 0 || len(w.pending) != 0 || len(w.settling) != 0 || w.resyncDue || w.owner != sd {
				t.Errorf("a forged signal was acted on: touched %v, pending %v, settling %v, resync %v, owner %q",
					w.touched, w.pending, w.settling, w.resyncDue, w.owner)
			}
			if w.forged != 1 {
				t.Errorf("forged signals counted: %d, want 1", w.forged)
			}
			// A genuine change after it is applied.
			feed(t, w, 2, changedSignal(unit, serviceIface, map[string]any{"MainPID": uint32(200)}))
			w.publish()
			if st, ok := w.Snapshot()["web"]; !ok || st.MainPID != 200 || st.ActiveState != ActiveActive {
				t.Errorf("after the genuine change: %+v (present %v), want active with pid 200", st, ok)
			}
			if err := w.Err(); err != nil {
				t.Errorf("Err() = %v", err)
			}
		})
	}
}

// TestWatchFollowsOwnerChange: when the bus driver says another connection
// owns systemd's name, that connection's signals are applied and the old
// owner's are not; everything is read again.
func TestWatchFollowsOwnerChange(t *testing.T) {
	w := offlineWatch(t, running("web", 100))
	unit := "socketley-web.service"
	const next = ":1.50"
	feed(t, w, 1, &godbus.Signal{Sender: driverName, Name: driverName + ".NameOwnerChanged", Body: []any{busName, sd, next}})
	if w.owner != next || !w.resyncDue {
		t.Fatalf("owner %q, resync due %v; want %q, true", w.owner, w.resyncDue, next)
	}
	tests := []struct {
		name      string
		sender    string
		pid, want uint32
	}{
		{"old owner", sd, 301, 100},
		{"new owner", next, 302, 302},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig := changedSignal(unit, serviceIface, map[string]any{"MainPID": tt.pid})
			sig.Sender = tt.sender
			feed(t, w, godbus.Sequence(2+i), sig)
			w.publish()
			if got := w.Snapshot()["web"].MainPID; got != int(tt.want) {
				t.Errorf("MainPID %d, want %d", got, tt.want)
			}
		})
	}
	if err := w.Err(); err != nil {
		t.Errorf("Err() = %v", err)
	}
}

// TestWatchRecordsExits: Exits reports every exit once, in order, also
// the crash whose failure the published state never shows (settled over
// by the automatic restart), and then forgets them.
func TestWatchRecordsExits(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	web := running("web", 100)
	web.ExecMainStart = t0
	w := offlineWatch(t, web)
	unit := "socketley-web.service"
	crash := func(seq godbus.Sequence, status int32) {
		feed(t, w, seq,
			changedSignal(unit, unitIface, map[string]any{"ActiveState": "failed", "SubState": "failed"}),
			changedSignal(unit, serviceIface, map[string]any{"MainPID": uint32(0), "Result": "signal",
				"ExecMainCode": int32(CodeKilled), "ExecMainStatus": status}))
		feed(t, w, seq+2, changedSignal(unit, unitIface, map[string]any{"ActiveState": "activating", "SubState": "auto-restart"}))
		w.publish()
	}
	if got := w.Exits(); got != nil {
		t.Fatalf("exits of a running unit: %+v", got)
	}
	crash(1, 9)
	if st := w.Snapshot()["web"]; st.ActiveState == ActiveFailed {
		t.Fatal("the settled failure was published")
	}
	feed(t, w, 4, changedSignal(unit, unitIface, map[string]any{"ActiveState": "failed", "SubState": "failed"})) // the same exit again
	got := w.Exits()
	if len(got["web"]) != 1 || got["web"][0].LastExit() != "signal KILL" || got["web"][0].MainPID != 0 {
		t.Fatalf("exits %+v, want the one kill -9", got)
	}
	if again := w.Exits(); again != nil {
		t.Fatalf("exits taken twice: %+v", again)
	}
	// The restart, then another crash: a new exit.
	feed(t, w, 5, changedSignal(unit, serviceIface, map[string]any{"MainPID": uint32(101), "ExecMainStartTimestamp": uint64(t0.Add(time.Second).UnixMicro()),
		"ExecMainCode": int32(0), "ExecMainStatus": int32(0)}))
	crash(6, 11)
	got = w.Exits()
	if len(got["web"]) != 1 || got["web"][0].LastExit() != "signal SEGV" {
		t.Fatalf("exits %+v, want the SEGV", got)
	}
}
