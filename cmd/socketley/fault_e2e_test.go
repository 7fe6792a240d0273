//go:build integration

// Fault injection (issue #11): the daemon is killed with SIGKILL while
// commands are in flight, its state directory fills up, its snapshot is
// corrupt. The tests are black-box: they drive the CLI and the daemon
// process, read systemd's unit list, and treat the state directory as a
// whole (the only file they name is the snapshot, registry.json; no file in
// it is parsed).
package main_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
)

// faultPrefix returns a name prefix of its own for one test run: the
// systemd manager is shared with other tests, whose socketley-* units are
// none of this test's business.
func faultPrefix() string { return fmt.Sprintf("flt%05x", rand.Uint32()&0xfffff) }

// stopUnitsAtEnd stops and resets every socketley-PREFIX-* unit when the
// test ends, after the env's own cleanup (which removes the runtimes through
// the daemon, when one runs): a test that failed with its daemon killed
// leaves none behind.
func stopUnitsAtEnd(t *testing.T, prefix string) {
	t.Cleanup(func() {
		pat := "socketley-" + prefix + "-*"
		_ = exec.Command("systemctl", "--user", "stop", pat).Run()
		_ = exec.Command("systemctl", "--user", "reset-failed", pat).Run()
	})
}

// sleepPath is the trivial long-running program of these tests.
func sleepPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("no sleep binary: %v", err)
	}
	return p
}

// unitState is a unit as systemd lists it; the zero value is a unit that is
// not loaded.
type unitState struct{ load, active, sub string }

// up reports whether the unit runs or is on its way up or down.
func (u unitState) up() bool {
	switch u.active {
	case "active", "activating", "reloading", "refreshing", "deactivating":
		return true
	}
	return false
}

// started reports whether the unit runs or is starting (what start and
// add -s promise when they answer success).
func (u unitState) started() bool {
	switch u.active {
	case "active", "activating", "reloading", "refreshing":
		return true
	}
	return false
}

func (u unitState) String() string {
	if u.load == "" {
		return "not loaded"
	}
	return u.load + "/" + u.active + "/" + u.sub
}

// unitsWithPrefix lists the loaded socketley-PREFIX-* services of the user
// manager, by runtime name.
func unitsWithPrefix(t *testing.T, prefix string) map[string]unitState {
	t.Helper()
	out, err := exec.Command("systemctl", "--user", "list-units", "--all", "--plain", "--no-legend", "--full",
		"socketley-"+prefix+"-*").Output()
	if err != nil {
		t.Fatalf("systemctl list-units: %v", err)
	}
	us := map[string]unitState{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasSuffix(f[0], ".service") {
			continue
		}
		us[strings.TrimSuffix(strings.TrimPrefix(f[0], "socketley-"), ".service")] = unitState{f[1], f[2], f[3]}
	}
	return us
}

// unitNow reads one runtime's unit from systemd.
func unitNow(t *testing.T, name string) unitState {
	t.Helper()
	out, err := exec.Command("systemctl", "--user", "show", "-p", "LoadState", "-p", "ActiveState", "-p", "SubState",
		"socketley-"+name+".service").Output()
	if err != nil {
		t.Fatalf("systemctl show socketley-%s: %v", name, err)
	}
	var u unitState
	for _, line := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "LoadState":
			u.load = v
		case "ActiveState":
			u.active = v
		case "SubState":
			u.sub = v
		}
	}
	if u.load == "not-found" && !u.up() {
		return unitState{}
	}
	return u
}

// runtimesWithPrefix returns ls -o json's runtimes named PREFIX-*.
func (e *env) runtimesWithPrefix(prefix string) []wire.Runtime {
	e.t.Helper()
	var all []wire.Runtime
	if err := json.Unmarshal([]byte(e.ok("ls", "-o", "json")), &all); err != nil {
		e.t.Fatalf("ls -o json: %v", err)
	}
	var rts []wire.Runtime
	for _, r := range all {
		if strings.HasPrefix(r.Name, prefix+"-") {
			rts = append(rts, r)
		}
	}
	return rts
}

// cliRun is one CLI command running in the background.
type cliRun struct {
	args      []string
	cmd       *exec.Cmd
	out, errb bytes.Buffer
	done      chan struct{} // closed when it has exited; code is set then
	code      int
}

// startCLI starts the CLI against e's daemon and returns at once.
func (e *env) startCLI(args ...string) *cliRun {
	e.t.Helper()
	r := &cliRun{args: args, done: make(chan struct{})}
	r.cmd = exec.Command(binPath, append([]string{"--socket", e.sock}, args...)...)
	r.cmd.Dir = e.dir
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.errb
	if err := r.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		err := r.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			r.code = ee.ExitCode() // -1: killed by a signal
		case err != nil:
			r.code = -2
		}
		close(r.done)
	}()
	return r
}

// wait waits for the CLI to exit; a CLI that hangs fails the test.
func (r *cliRun) wait(t *testing.T) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(waitTimeout):
		_ = r.cmd.Process.Kill()
		<-r.done
		t.Fatalf("socketley %s did not exit within %s", strings.Join(r.args, " "), waitTimeout)
	}
}

// exited reports whether the CLI has exited.
func (r *cliRun) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// waitLogOr is waitLog that gives up (false) when done is closed first.
func (e *env) waitLogOr(from int, what string, re *regexp.Regexp, done <-chan struct{}) bool {
	e.t.Helper()
	expire := time.NewTimer(waitTimeout)
	defer expire.Stop()
	for {
		s, changed := e.log.Next()
		if re.MatchString(s[from:]) {
			return true
		}
		select {
		case <-changed:
		case <-done:
			return false
		case err := <-e.exited:
			e.exited <- err // for stopDaemon
			e.t.Fatalf("the daemon exited (%v) before logging %s", err, what)
		case <-expire.C:
			e.t.Fatalf("the daemon did not log %s within %s", what, waitTimeout)
		}
	}
}

// watchDir returns a channel closed at the first inotify event of mask in
// dir for an entry whose name match accepts (nil: any entry), and a
// function that ends the watch.
func watchDir(t *testing.T, dir string, mask uint32, match func(name string) bool) (<-chan struct{}, func()) {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, mask); err != nil {
		_ = syscall.Close(fd)
		t.Fatalf("inotify watch %s: %v", dir, err)
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: Close ends a pending Read
	seen := make(chan struct{})
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			for off := 0; off+syscall.SizeofInotifyEvent <= n; {
				l := int(binary.NativeEndian.Uint32(buf[off+12:]))
				name := string(bytes.TrimRight(buf[off+syscall.SizeofInotifyEvent:min(n, off+syscall.SizeofInotifyEvent+l)], "\x00"))
				if match == nil || match(name) {
					close(seen)
					return
				}
				off += syscall.SizeofInotifyEvent + l
			}
		}
	}()
	return seen, func() { _ = f.Close() }
}

// stateWrites is the inotify mask of a change in the state directory.
const stateWrites = syscall.IN_MODIFY | syscall.IN_CREATE | syscall.IN_DELETE | syscall.IN_MOVED_FROM |
	syscall.IN_MOVED_TO | syscall.IN_CLOSE_WRITE

// Kill moments of TestFaultKill9DuringCommands.
const (
	killNone       = iota
	killAtOnce     // right after the CLI was started (often before the daemon read the request)
	killAfterWrite // at the first change in the state directory after the CLI started
	killAfterLog   // at the daemon's first log line naming the runtime after the CLI started
	killAtCgroup   // when the unit's cgroup appears or goes (systemd started or stopped it)
	killMoments    = killAtCgroup
)

// tri is yes, no or unknown (a command interrupted by a kill may have gone
// either way).
type tri int8

const (
	triNo tri = iota
	triYes
	triUnknown
)

func (v tri) String() string { return [...]string{"no", "yes", "unknown"}[v] }

// faultCmd is one command of the sequence.
type faultCmd struct {
	op    string // add, start, stop, remove
	name  string
	start bool // add -s
	kill  int  // kill moment, killNone for no kill
}

// faultState is what the test knows about one runtime name.
type faultState struct {
	reg tri    // registered
	run tri    // wanted running (yes) or stopped (no); meaningful while reg is yes
	why string // the command or check that settled it, for messages
}

func (s *faultState) set(reg, run tri, why string) {
	if reg != triYes {
		run = triUnknown
	}
	if s.reg != reg || s.run != run {
		s.reg, s.run, s.why = reg, run, why
	}
}

// faultRun is one run of TestFaultKill9DuringCommands.
type faultRun struct {
	t          *testing.T
	e          *env
	seed       uint64
	prefix     string
	sleep      string
	names      []string
	model      map[string]*faultState
	transcript []string
	oldLogs    []string // the logs of the daemons killed so far
	moments    map[string]int
	cgroupDir  string // the cgroup directory of the units' slice ("" if not found)
	reported   map[string]bool
	n          struct {
		commands, kills, inFlight, unreached, successes, failures, unexpected int
		orphans, lost, falseOK, resurrected, inconsistent                     int
	}
}

// violation counts a broken invariant and reports it (the test goes on, so
// that the summary counts them all). A violation is counted and reported
// once per key (what was wrong, without where it was seen): it is seen again
// at every check until something changes it.
func (f *faultRun) violation(count *int, key, format string, args ...any) {
	f.t.Helper()
	key = fmt.Sprintf("%p %s", count, key)
	if f.reported[key] {
		return
	}
	f.reported[key] = true
	*count++
	f.t.Errorf("seed %d: "+format, append([]any{f.seed}, args...)...)
}

// args is the CLI command line of c.
func (f *faultRun) args(c faultCmd) []string {
	if c.op == "add" {
		a := []string{"add", f.sleep, "--name", c.name}
		if c.start {
			a = append(a, "-s")
		}
		return append(a, "--", "3600")
	}
	return []string{c.op, c.name}
}

// restartDaemon starts a new daemon on the same state directory, keeping
// the log of the one before.
func (f *faultRun) restartDaemon() {
	f.t.Helper()
	f.oldLogs = append(f.oldLogs, f.e.log.String())
	f.e.startDaemon()
}

// do runs command i, kills the daemon at its kill moment and starts it again,
// updates the model from the reply and checks the reply's promise.
func (f *faultRun) do(i int, c faultCmd) {
	t, e := f.t, f.e
	t.Helper()
	args := f.args(c)
	line := fmt.Sprintf("#%d socketley %s", i, strings.Join(args, " "))
	// Watches begin before the CLI starts, so that no event is missed.
	var event <-chan struct{}
	var eventName, eventKey string
	switch {
	case c.kill == killAfterWrite:
		ch, stop := watchDir(t, e.state, stateWrites, nil)
		defer stop()
		event, eventName, eventKey = ch, "a state-directory write", "at a state write"
	case c.kill == killAtCgroup && f.cgroupDir != "":
		unit := "socketley-" + c.name + ".service"
		ch, stop := watchDir(t, f.cgroupDir, syscall.IN_CREATE|syscall.IN_DELETE, func(n string) bool { return n == unit })
		defer stop()
		event, eventName, eventKey = ch, "a creation or removal of its unit's cgroup", "at a cgroup change"
	case c.kill == killAtCgroup:
		c.kill = killAtOnce // no cgroup directory to watch
	}
	from := e.mark()
	run := e.startCLI(args...)
	f.n.commands++
	how := replied
	moment := ""
	if c.kill != killNone {
		switch {
		case c.kill == killAtOnce:
			moment = "right after the CLI started"
			f.moments["at once"]++
		case c.kill == killAfterLog:
			re := regexp.MustCompile(`name=` + regexp.QuoteMeta(c.name) + `(\s|$)`)
			if e.waitLogOr(from, "a line about "+c.name, re, run.done) {
				moment = "at the daemon's first log line about " + c.name
				f.moments["at a log line"]++
			} else {
				moment = "after its reply (no log line about " + c.name + " before it)"
				f.moments["after the reply"]++
			}
		default:
			select {
			case <-event:
				moment = "at " + eventName
				f.moments[eventKey]++
			case <-run.done:
				moment = "after its reply (no " + eventName + " before it)"
				f.moments["after the reply"]++
			case <-time.After(waitTimeout):
				t.Fatalf("%s: neither %s nor an exit within %s", line, eventName, waitTimeout)
			}
		}
		if !run.exited() {
			how = interrupted
		}
		e.stopDaemon(syscall.SIGKILL)
		f.n.kills++
	}
	run.wait(t)
	if how == interrupted && strings.Contains(run.errb.String(), "cannot reach the socketley daemon") {
		how = unreached // killed before the CLI connected
	}
	switch how {
	case interrupted:
		f.n.inFlight++
	case unreached:
		f.n.unreached++
	}
	out := strings.TrimSpace(run.errb.String() + run.out.String())
	if i := strings.IndexByte(out, '\n'); i >= 0 {
		out = out[:i] + " ..."
	}
	note := ""
	if c.kill != killNone {
		note = fmt.Sprintf(" [daemon SIGKILLed %s; %s]", moment, how)
	}
	line += fmt.Sprintf(" -> exit %d%s: %s", run.code, note, out)
	f.transcript = append(f.transcript, line)
	f.apply(line, c, run, how)
	if c.kill != killNone {
		f.restartDaemon()
		f.check(fmt.Sprintf("after the restart that followed #%d", i))
	} else {
		f.check(fmt.Sprintf("after #%d", i))
	}
}

// outcome says how a command ended with respect to the kill.
type outcome int

const (
	replied     outcome = iota // the daemon lived until the CLI had its reply (or the CLI exited before the kill)
	interrupted                // the daemon was killed while the command was in flight
	unreached                  // the daemon was killed before the CLI could connect
)

func (o outcome) String() string {
	return [...]string{"the CLI had exited", "in flight", "before the CLI connected"}[o]
}

// apply updates the model with the outcome of c and checks the promise of a
// success at once (units do not depend on the daemon, dead or alive).
func (f *faultRun) apply(line string, c faultCmd, run *cliRun, how outcome) {
	t := f.t
	t.Helper()
	st := f.model[c.name]
	if run.code == 0 {
		f.n.successes++
		u := unitNow(t, c.name)
		switch c.op {
		case "add":
			st.set(triYes, map[bool]tri{true: triYes, false: triNo}[c.start], line)
			if c.start && !u.started() {
				f.violation(&f.n.falseOK, line, "false success: %s, but the unit is %s", line, u)
			}
		case "start":
			st.set(triYes, triYes, line)
			if !u.started() {
				f.violation(&f.n.falseOK, line, "false success: %s, but the unit is %s", line, u)
			}
		case "stop":
			st.set(triYes, triNo, line)
			if u.up() {
				f.violation(&f.n.falseOK, line, "false success: %s, but the unit is %s", line, u)
			}
		case "remove":
			st.set(triNo, triUnknown, line)
			if u.load != "" {
				f.violation(&f.n.falseOK, line, "false success: %s, but the unit is still there: %s", line, u)
			}
		}
		return
	}
	f.n.failures++
	errs := run.errb.String()
	// Refusals say how things stand (they are replies, whatever came after).
	switch {
	case strings.Contains(errs, "unregistered unit"): // an orphan's name: the next check reports it
		st.set(triNo, triUnknown, line)
		return
	case strings.Contains(errs, "already exists"):
		if st.reg != triYes {
			st.set(triYes, triUnknown, line)
		}
		return
	case strings.Contains(errs, "unknown runtime"), strings.Contains(errs, "no runtime matches"):
		st.set(triNo, triUnknown, line)
		return
	}
	switch how {
	case unreached:
		return // the daemon never saw it
	case replied:
		// No fault was injected while it ran: a valid command on a sound
		// daemon does not fail.
		f.n.unexpected++
		t.Errorf("seed %d: unexpected failure with no fault injected: %s\n%s", f.seed, line, errs)
	}
	switch {
	case c.op == "add" && st.reg == triYes: // an add of a registered name changes nothing
	case c.op != "add" && st.reg == triNo: // nothing to act on
	case c.op == "start" || c.op == "stop":
		st.set(st.reg, triUnknown, line)
	default: // add, remove
		st.set(triUnknown, triUnknown, line)
	}
}

// settledUnits lists this run's units once none is deactivating (a stop job
// a kill left to systemd ends on its own; inactive, once reached, stays).
func (f *faultRun) settledUnits(where string) map[string]unitState {
	f.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		us := unitsWithPrefix(f.t, f.prefix)
		var busy []string
		for name, u := range us {
			if u.active == "deactivating" {
				busy = append(busy, name+" "+u.String())
			}
		}
		if len(busy) == 0 {
			return us
		}
		if time.Now().After(deadline) {
			f.t.Errorf("seed %d, %s: units still deactivating after %s: %v", f.seed, where, waitTimeout, busy)
			return us
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// check compares the daemon's registry (ls -o json) and systemd's units with
// the model: no orphan, no lost runtime, no false success, the desired state
// of each runtime is what systemd runs. Then it settles what the model did
// not know from what it saw (what ls shows was persisted before it was
// published, so a later kill must not undo it either).
func (f *faultRun) check(where string) {
	t := f.t
	t.Helper()
	units := f.settledUnits(where)
	reg := map[string]wire.Runtime{}
	orphans := map[string]string{}
	for _, r := range f.e.runtimesWithPrefix(f.prefix) {
		if r.Orphan {
			orphans[r.Name] = "ls lists it as an orphan, unit " + units[r.Name].String()
		} else {
			reg[r.Name] = r
		}
	}
	// (a) every active socketley-* unit of this run belongs to a registered runtime.
	for name, u := range units {
		if _, ok := reg[name]; !ok && u.up() {
			orphans[name] = "unit " + u.String() + ", not in ls"
		}
	}
	for _, name := range slices.Sorted(maps.Keys(orphans)) {
		f.violation(&f.n.orphans, name+" "+orphans[name], "%s: orphan %s: %s", where, name, orphans[name])
	}
	for _, name := range f.names {
		st := f.model[name]
		r, isReg := reg[name]
		u := units[name]
		switch {
		case st.reg == triYes && !isReg:
			// (b) registered by a successful add (or seen in ls) and never removed.
			f.violation(&f.n.lost, name+" "+st.why, "%s: lost runtime %s: not in ls, but registered according to %s", where, name, st.why)
		case st.reg == triNo && isReg:
			if strings.Contains(st.why, " remove ") && strings.Contains(st.why, "exit 0") {
				f.violation(&f.n.falseOK, name+" "+st.why, "%s: false success: %s is in ls (status %s, desired %s), but %s",
					where, name, r.Status, r.Desired, st.why)
			} else {
				f.violation(&f.n.resurrected, name+" "+st.why, "%s: %s is in ls (status %s, desired %s), but it was not registered according to %s",
					where, name, r.Status, r.Desired, st.why)
			}
		case st.reg == triYes && st.run == triYes && (r.Desired != "running" || !u.started()):
			// (c) start or add -s answered success: wanted running, and running.
			f.violation(&f.n.falseOK, name+" "+st.why, "%s: false success: %s is desired %s, unit %s, but it should run according to %s",
				where, name, r.Desired, u, st.why)
		case st.reg == triYes && st.run == triNo && (r.Desired != "stopped" || u.up()):
			// (c) stop (or add without -s) answered success: wanted stopped, and stopped.
			f.violation(&f.n.falseOK, name+" "+st.why, "%s: false success: %s is desired %s, unit %s, but it should be stopped according to %s",
				where, name, r.Desired, u, st.why)
		case isReg && (r.Status == wire.StatusRemoving || r.Desired == "removed"):
			// A remove the kill interrupted is finished by the reconcile at
			// the daemon's start (docs/security.md, #11.4); one that failed
			// otherwise was reported as an unexpected failure.
			f.violation(&f.n.inconsistent, fmt.Sprint(name, r.Status, r.Desired, u), "%s: %s is still %s (desired %s, unit %s): an interrupted remove was not finished",
				where, name, r.Status, r.Desired, u)
		case isReg && (r.Desired == "running" && !u.started() || r.Desired == "stopped" && u.up()):
			// Whatever the model knew: no command is in flight and the
			// daemon has reconciled, so systemd runs what the registry wants.
			f.violation(&f.n.inconsistent, fmt.Sprint(name, r.Status, r.Desired, u), "%s: %s is desired %s (status %s) but its unit is %s", where, name, r.Desired, r.Status, u)
		}
		// Settle the model from what was seen.
		seen := where + " (seen in ls)"
		switch {
		case !isReg:
			st.set(triNo, triUnknown, where+" (not in ls)")
		case r.Status == wire.StatusRemoving || r.Desired == "removed":
			st.set(triUnknown, triUnknown, seen)
		case r.Desired == "running":
			st.set(triYes, triYes, seen)
		case r.Desired == "stopped":
			st.set(triYes, triNo, seen)
		default:
			st.set(triYes, triUnknown, seen)
		}
	}
}

// unitsCgroupDir returns the cgroup directory in which the units of e's
// daemon get their own (the parent of a probe runtime's ControlGroup), or ""
// when it is not under /sys/fs/cgroup.
func unitsCgroupDir(t *testing.T, e *env, prefix string) string {
	t.Helper()
	probe := prefix + "-probe"
	e.ok("add", sleepPath(t), "--name", probe, "-s", "--", "3600")
	cg := unitProp(t, probe, "ControlGroup")
	e.ok("remove", probe)
	dir := filepath.Join("/sys/fs/cgroup", filepath.Dir(cg))
	if fi, err := os.Stat(dir); cg == "" || err != nil || !fi.IsDir() {
		t.Logf("no cgroup directory for the units (ControlGroup %q): kills at a cgroup change become kills right after the CLI started", cg)
		return ""
	}
	return dir
}

// faultSequence returns n commands over names, drawn from seed. It keeps its
// own idea of each name (registered, running) as if every command succeeded,
// and mostly picks a command that does something (add an unregistered name,
// start a stopped runtime, ...), sometimes one that must be refused (start
// an unknown name, add an existing one). About one command in four gets a
// kill moment.
func faultSequence(seed uint64, names []string, n int) []faultCmd {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	registered, running := map[string]bool{}, map[string]bool{}
	seq := make([]faultCmd, n)
	for i := range seq {
		c := faultCmd{name: names[rng.IntN(len(names))]}
		p := rng.IntN(100)
		switch {
		case !registered[c.name] && p < 80:
			c.op, c.start = "add", rng.IntN(2) == 0
		case !registered[c.name]:
			c.op = [...]string{"start", "stop", "remove"}[rng.IntN(3)]
		case p < 40 && running[c.name]:
			c.op = "stop"
		case p < 40:
			c.op = "start"
		case p < 75:
			c.op = "remove"
		case p < 85:
			c.op = "add" // refused: it exists
		case p < 95:
			c.op = map[bool]string{true: "start", false: "stop"}[running[c.name]] // a no-op that succeeds
		default:
			c.op = map[bool]string{true: "stop", false: "start"}[running[c.name]]
		}
		switch c.op {
		case "add":
			if !registered[c.name] {
				registered[c.name], running[c.name] = true, c.start
			}
		case "start", "stop":
			if registered[c.name] {
				running[c.name] = c.op == "start"
			}
		case "remove":
			registered[c.name], running[c.name] = false, false
		}
		if rng.IntN(4) == 0 {
			c.kill = killAtOnce + rng.IntN(killMoments)
		}
		seq[i] = c
	}
	return seq
}

// TestFaultKill9DuringCommands runs a seeded pseudo-random sequence of add
// (with and without -s), start, stop and remove over a few names, and SIGKILLs
// the daemon during about one command in four: right after the CLI started,
// at the first write into the state directory, at the daemon's first log
// line about the runtime, or when systemd creates or removes the unit's
// cgroup (inotify on the slice's cgroup directory). The daemon is started
// again on the same state directory. After every command (after the restart, if there was a kill)
// and at the end: no orphan unit, no lost runtime, no false success (a
// command that exited 0 had its effect, and keeps it across kills). A command
// interrupted by the kill may have gone either way: the name is "unknown"
// until a later reply or check settles it. SOCKETLEY_FAULT_SEED repeats a
// sequence (the kill moments race by nature); SOCKETLEY_FAULT_COMMANDS
// (default 100) sizes it.
func TestFaultKill9DuringCommands(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("SOCKETLEY_FAULT_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("SOCKETLEY_FAULT_SEED=%q: want an unsigned integer", v)
		}
		seed = s
	}
	commands := envInt(t, "SOCKETLEY_FAULT_COMMANDS", 100)
	t.Logf("seed %d (SOCKETLEY_FAULT_SEED=%d repeats this sequence)", seed, seed)
	testenv.RequireSystemd(t)
	prefix := faultPrefix()
	stopUnitsAtEnd(t, prefix)
	e := newEnv(t)
	f := &faultRun{t: t, e: e, seed: seed, prefix: prefix, sleep: sleepPath(t), model: map[string]*faultState{}, moments: map[string]int{}, reported: map[string]bool{}}
	for i := range 8 {
		name := fmt.Sprintf("%s-%c", prefix, 'a'+i)
		f.names = append(f.names, name)
		f.model[name] = &faultState{reg: triNo, run: triUnknown, why: "the start (nothing registered)"}
	}
	f.cgroupDir = unitsCgroupDir(t, e, prefix)
	seq := faultSequence(seed, f.names, commands)
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("SOCKETLEY_FAULT_VERBOSE") == "1" {
			t.Logf("seed %d, commands:\n%s", seed, strings.Join(f.transcript, "\n"))
		}
		if t.Failed() {
			for i, l := range f.oldLogs {
				t.Logf("log of killed daemon %d:\n%s", i+1, l)
			}
		}
	})
	start := time.Now()
	for i, c := range seq {
		f.do(i+1, c)
	}
	// At the end: one more kill and restart, then a clean stop and start.
	e.stopDaemon(syscall.SIGKILL)
	f.restartDaemon()
	f.check("at the end, after a SIGKILL and restart")
	e.stopDaemon(syscall.SIGTERM)
	f.restartDaemon()
	f.check("at the end, after a SIGTERM and restart")
	n := f.n
	t.Logf("seed %d: %d commands in %s; %d kills: %d with the command in flight, %d before the CLI connected "+
		"(%d right after the CLI started, %d at a state write, %d at a cgroup change, %d at a log line, %d after the reply); "+
		"%d successes, %d failures (%d unexpected); %d orphans, %d lost, %d false successes, %d resurrected, %d inconsistent",
		seed, n.commands, time.Since(start).Round(time.Millisecond), n.kills, n.inFlight, n.unreached, f.moments["at once"],
		f.moments["at a state write"], f.moments["at a cgroup change"], f.moments["at a log line"], f.moments["after the reply"],
		n.successes, n.failures, n.unexpected, n.orphans, n.lost, n.falseOK, n.resurrected, n.inconsistent)
}

// regView is what the registry holds about a runtime, as ls -o json shows
// it, without what changes on its own (status, uptime).
type regView struct {
	Managed  bool
	Desired  string
	Path     string
	Args     []string
	Env      []string
	WorkDir  string
	Restart  wire.RestartPolicy
	OwnerUID int
	Created  time.Time
	PID      int
}

// registryView returns the registry of this test's runtimes as ls shows it.
func (e *env) registryView(prefix string) map[string]regView {
	e.t.Helper()
	v := map[string]regView{}
	for _, r := range e.runtimesWithPrefix(prefix) {
		if r.Orphan {
			e.t.Fatalf("ls lists an orphan unit %s (%s/%s)", r.Name, r.ActiveState, r.SubState)
		}
		v[r.Name] = regView{Managed: r.Managed, Desired: r.Desired, Path: r.Path, Args: r.Args, Env: r.Env,
			WorkDir: r.WorkDir, Restart: r.Restart, OwnerUID: r.OwnerUID, Created: r.Created, PID: r.PID}
	}
	return v
}

// sameRegistry fails the test when got differs from want.
func sameRegistry(t *testing.T, what string, want, got map[string]regView) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		w, _ := json.MarshalIndent(want, "", "  ")
		g, _ := json.MarshalIndent(got, "", "  ")
		t.Fatalf("%s: the registry differs\nbefore: %s\nafter: %s", what, w, g)
	}
}

// fillUp writes path until the filesystem is full, then gives back about
// headroom bytes, and returns the size of the file.
func fillUp(t *testing.T, path string, headroom int64) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := bytes.Repeat([]byte{'x'}, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatalf("fill %s: %v", path, err)
		}
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	size := max(fi.Size()-headroom, 0)
	if err := f.Truncate(size); err != nil {
		t.Fatalf("truncate %s: %v", path, err)
	}
	return size
}

// TestFaultFullStateFilesystem puts the state directory on a 256 KiB tmpfs,
// fills it but for 8 KiB, and adds runtimes (-s) until an add fails. That
// add must exit non-zero saying the disk is full and leave nothing behind
// (no entry, no unit), the daemon must go on answering, and once space is
// freed the same add succeeds. The registry then survives a SIGKILL and a
// clean stop of the daemon as ls showed it.
func TestFaultFullStateFilesystem(t *testing.T) {
	testenv.RequireSystemd(t)
	if os.Geteuid() != 0 {
		testenv.Skip(t, "mounting a tmpfs for the state directory needs root")
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", state).CombinedOutput(); err != nil {
		testenv.Skipf(t, "cannot mount a tmpfs at %s: %v %s", state, err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { // after the daemon's cleanup, before t.TempDir's
		if out, err := exec.Command("umount", state).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", state, err, out)
			_ = exec.Command("umount", "-l", state).Run()
		}
	})
	prefix := faultPrefix()
	stopUnitsAtEnd(t, prefix)
	e := newEnvAt(t, dir, state)
	sleep := sleepPath(t)
	start := time.Now()

	filler := filepath.Join(state, "filler")
	const headroom = 8 << 10
	size := fillUp(t, filler, headroom)
	t.Logf("filler: %d bytes; %d bytes left on the 256 KiB tmpfs", size, headroom)

	var failed string
	for i := 0; failed == ""; i++ {
		if i == 300 {
			t.Fatalf("300 adds with %d bytes free on the state filesystem, none failed", headroom)
		}
		name := fmt.Sprintf("%s-%03d", prefix, i)
		before := e.registryView(prefix)
		out, errs, code := e.run("add", sleep, "--name", name, "-s", "--", "3600")
		if code == 0 {
			if u := unitNow(t, name); !u.started() {
				t.Fatalf("add %s -s answered success, but its unit is %s", name, u)
			}
			continue
		}
		failed = name
		t.Logf("add #%d (%s) on the full disk: exit %d\n%s%s", i+1, name, code, out, errs)
		if !strings.Contains(strings.ToLower(errs), "no space left on device") {
			t.Errorf("the failed add does not say the disk is full (no space left on device): %q", errs)
		}
		// Nothing half-done: no entry, no unit; the daemon answers.
		if u := unitNow(t, name); u.up() {
			t.Errorf("the failed add left its unit %s", u)
		} else if u.load != "" {
			t.Logf("the failed add left a loaded unit %s (not running)", u)
		}
		sameRegistry(t, "after the failed add "+name, before, e.registryView(prefix))
		for n, u := range unitsWithPrefix(t, prefix) {
			if n != name && !u.started() {
				t.Errorf("%s is %s after the failed add, want running", n, u)
			}
		}
	}
	if _, _, code := e.run("stop", failed); code != 1 {
		t.Errorf("stop %s after its failed add: exit %d, want 1 (unknown runtime)", failed, code)
	}

	// Space again: the same add succeeds.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	e.ok("add", sleep, "--name", failed, "-s", "--", "3600")
	if u := unitNow(t, failed); !u.started() {
		t.Fatalf("add %s -s after freeing space: unit %s", failed, u)
	}
	want := e.registryView(prefix)
	if _, ok := want[failed]; !ok {
		t.Fatalf("%s not in ls after its add succeeded", failed)
	}
	t.Logf("%d runtimes registered", len(want))

	e.stopDaemon(syscall.SIGKILL)
	e.startDaemon()
	sameRegistry(t, "after kill -9 and restart", want, e.registryView(prefix))
	e.stopDaemon(syscall.SIGTERM)
	e.startDaemon()
	sameRegistry(t, "after SIGTERM and restart", want, e.registryView(prefix))
	t.Logf("full disk, recovery and two restarts with %d runtimes: %s", len(want), time.Since(start).Round(time.Millisecond))
}

// dirNames lists the names in dir, for messages.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// TestFaultCorruptStateRefusesToStart corrupts the snapshot registry.json of
// a state directory with three runtimes (truncated to half, garbage, empty):
// the daemon must refuse to start (non-zero exit, naming the file) and change
// nothing in the state directory: the corrupt file stays byte for byte, and
// no file is removed, changed or added (stateFiles: every file but the lock).
// With the good snapshot put back, the daemon starts with the three runtimes.
func TestFaultCorruptStateRefusesToStart(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(b []byte) []byte
	}{
		{"truncated to half", func(b []byte) []byte { return b[:len(b)/2] }},
		{"garbage", func([]byte) []byte {
			rng := rand.New(rand.NewPCG(11, 11))
			g := make([]byte, 1024)
			for i := range g {
				g[i] = byte(rng.Uint32())
			}
			g[0] = 0xff // not JSON, whatever follows
			return g
		}},
		{"empty", func([]byte) []byte { return []byte{} }},
	}
	sleep := sleepPath(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			state := filepath.Join(dir, "state")
			e := newEnvAt(t, dir, state)
			prefix := faultPrefix()
			for i := range 3 {
				e.ok("add", sleep, "--name", fmt.Sprintf("%s-%d", prefix, i), "--", "3600")
			}
			e.stopDaemon(syscall.SIGTERM)
			p := filepath.Join(state, "registry.json")
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("the snapshot after a clean stop: %v", err)
			}
			if len(b) < 2 {
				t.Fatalf("the snapshot is %d bytes long", len(b))
			}
			corrupt := tt.corrupt(b)
			if err := os.WriteFile(p, corrupt, 0o600); err != nil {
				t.Fatal(err)
			}
			before, beforeNames := stateFiles(t, state), dirNames(t, state)

			// It must exit by itself; "daemon ready" would mean it accepted the state.
			log := &testenv.LogBuffer{}
			cmd := exec.Command(binPath, "daemon", "--user", "--socket", e.sock, "--state-dir", state, "--log-level", "debug")
			cmd.Stdout, cmd.Stderr = log, log
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			expire := time.NewTimer(waitTimeout)
			defer expire.Stop()
			var werr error
		wait:
			for {
				s, changed := log.Next()
				if strings.Contains(s, `msg="daemon ready"`) {
					_ = cmd.Process.Kill()
					<-exited
					t.Fatalf("the daemon started on a corrupt registry.json:\n%s", log.String())
				}
				select {
				case <-changed:
				case werr = <-exited:
					break wait
				case <-expire.C:
					_ = cmd.Process.Kill()
					<-exited
					t.Fatalf("the daemon neither exited nor got ready within %s:\n%s", waitTimeout, log.String())
				}
			}
			out := log.String()
			var ee *exec.ExitError
			if !errors.As(werr, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("daemon on a corrupt registry.json: %v, want a non-zero exit\n%s", werr, out)
			}
			t.Logf("exit %d: %s", ee.ExitCode(), strings.TrimSpace(out))
			if !strings.Contains(out, p) {
				t.Errorf("the message does not name %s:\n%s", p, out)
			}
			if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, corrupt) {
				t.Errorf("registry.json was changed: %d bytes (%v), was %d (the corrupt ones)", len(b), err, len(corrupt))
			}
			if !bytes.Equal(stateFiles(t, state), before) {
				t.Errorf("the state directory was changed: it held %q, now %q (every file but the lock compared)", beforeNames, dirNames(t, state))
			}
			// Nothing else was lost: with the good snapshot back, the daemon
			// starts with the three runtimes.
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			e.startDaemon()
			if got := len(e.registryView(prefix)); got != 3 {
				t.Fatalf("with registry.json restored the daemon has %d of the 3 runtimes", got)
			}
		})
	}
}
