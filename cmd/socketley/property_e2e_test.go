//go:build integration

package main_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// TestProperties: add -p settings are properties of the unit in systemd's
// own view and shown by show (that they override the --harden preset key by
// key is units' TestHardenOverriddenByProperties: this test's program lives
// under /tmp, which the preset hides); set -p applies IOWeight to the running unit without a restart, saves Nice
// for the next restart (--restart applies it), and -p KEY= removes one.
// Keys outside the allow-list and bad values exit 1 naming the key, with
// nothing registered or changed.
func TestProperties(t *testing.T) {
	e := newEnv(t)
	e.script("p.sh", "exec sleep 1000")
	e.ok("add", "./p.sh", "--name", "prop", "-s", "-p", "Nice=5", "-p", "MemoryDenyWriteExecute=no",
		"-p", "TimeoutStartSec=2min", "-p", "UMask=27", "-p", "Description=the prop test")
	for prop, want := range map[string]string{"Nice": "5", "MemoryDenyWriteExecute": "no", "TimeoutStartUSec": "2min",
		"UMask": "0027", "Description": "the prop test"} {
		if got := unitProp(t, "prop", prop); got != want {
			t.Errorf("after add: %s=%s, want %s", prop, got, want)
		}
	}
	want := []string{"Description=the prop test", "MemoryDenyWriteExecute=no", "Nice=5", "TimeoutStartSec=120s", "UMask=0027"}
	if got := e.show("prop").Properties; !slices.Equal(got, want) {
		t.Errorf("show -o json properties %q, want %q", got, want)
	}
	if out := e.ok("show", "prop"); !strings.Contains(out, "Nice=5 TimeoutStartSec=120s") {
		t.Errorf("show does not list the properties:\n%s", out)
	}
	pid := livePID(t, "prop")

	out := e.ok("set", "prop", "-p", "IOWeight=40", "-p", "Nice=7", "-p", "UMask=")
	for _, line := range []string{"prop: IOWeight=40 applied now (no restart)",
		"prop: Nice=7, UMask back to systemd's default saved; it takes effect at the next restart"} {
		if !strings.Contains(out, line) {
			t.Errorf("set replied %q, want %q", out, line)
		}
	}
	if got := unitProp(t, "prop", "IOWeight"); got != "40" {
		t.Errorf("after set: IOWeight=%s, want 40 on the running unit", got)
	}
	if got := unitProp(t, "prop", "Nice"); got != "5" || livePID(t, "prop") != pid {
		t.Errorf("set changed what waits for a restart: Nice=%s, MainPID %d (was %d)", got, livePID(t, "prop"), pid)
	}
	e.ok("set", "prop", "--restart", "-p", "Nice=7")
	if livePID(t, "prop") == pid {
		t.Fatal("set --restart did not restart the program")
	}
	for prop, want := range map[string]string{"Nice": "7", "IOWeight": "40", "UMask": "0022", "MemoryDenyWriteExecute": "no"} {
		if got := unitProp(t, "prop", prop); got != want {
			t.Errorf("after set --restart: %s=%s, want %s", prop, got, want)
		}
	}

	before := stateFiles(t, e.state)
	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"add", "./p.sh", "--name", "bad", "-p", "ExecStartPre=/bin/true"}, "-p/--property ExecStartPre: not a setting socketley passes on; allowed: Description, IOWeight,"},
		{[]string{"add", "./p.sh", "--name", "bad", "-p", "User=root"}, "-p/--property User: use --run-as"},
		{[]string{"add", "./p.sh", "--name", "bad", "-p", "Nice=99"}, `-p/--property Nice="99": a whole number from -20 to 19`},
		{[]string{"add", "./p.sh", "--name", "bad", "-p", "Nice"}, `give KEY=VALUE`},
		{[]string{"set", "prop", "-p", "TimeoutStartSec=soon"}, "a time span such as 90"},
		{[]string{"set", "prop", "-p", "Bogus="}, "-p/--property Bogus: not a setting"},
	} {
		_, errs, code := e.run(tt.args...)
		if code != 1 || !strings.Contains(errs, tt.msg) {
			t.Errorf("socketley %s: exit %d, stderr %q; want 1 and %q", strings.Join(tt.args, " "), code, errs, tt.msg)
		}
	}
	if after := stateFiles(t, e.state); !bytes.Equal(before, after) {
		t.Error("bad input changed the state files")
	}
}
