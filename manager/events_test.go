package manager

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

func intp(v int) *int { return &v }

// TestExitOf: how a main process ended, decided from systemd's Result and
// ExecMainCode/ExecMainStatus; Result=oom-kill is an OOM kill whatever the
// signal.
func TestExitOf(t *testing.T) {
	tests := []struct {
		name   string
		st     units.Status
		ok     bool
		kind   wire.EventKind
		code   *int
		signal string
		core   bool
		words  string
	}{
		{"running", units.Status{MainPID: 7}, false, "", nil, "", false, ""},
		{"never ran", units.Status{}, false, "", nil, "", false, ""},
		{"exit 3", units.Status{Result: units.ResultExitCode, ExecMainCode: units.CodeExited, ExecMainStatus: 3},
			true, wire.EventExited, intp(3), "", false, "exit code 3"},
		{"clean exit", units.Status{Result: units.ResultSuccess, ExecMainCode: units.CodeExited},
			true, wire.EventExited, intp(0), "", false, "exit code 0"},
		{"203/EXEC", units.Status{Result: units.ResultExitCode, ExecMainCode: units.CodeExited, ExecMainStatus: 203},
			true, wire.EventExited, intp(203), "", false, "exit code 203/EXEC"},
		{"kill -9", units.Status{Result: units.ResultSignal, ExecMainCode: units.CodeKilled, ExecMainStatus: 9},
			true, wire.EventExited, nil, "KILL", false, "signal KILL"},
		{"segfault with core", units.Status{Result: units.ResultCoreDump, ExecMainCode: units.CodeDumped, ExecMainStatus: 11},
			true, wire.EventExited, nil, "SEGV", true, "signal SEGV (core dumped)"},
		{"oom kill of the main process", units.Status{Result: units.ResultOOMKill, ExecMainCode: units.CodeKilled, ExecMainStatus: 9},
			true, wire.EventOOMKilled, nil, "KILL", false, "killed by the OOM killer (signal KILL)"},
		{"oom kill, then stopped with SIGTERM", units.Status{Result: units.ResultOOMKill, ExecMainCode: units.CodeKilled, ExecMainStatus: 15},
			true, wire.EventOOMKilled, nil, "TERM", false, "killed by the OOM killer (signal TERM)"},
		{"oom kill, no main exit recorded", units.Status{Result: units.ResultOOMKill},
			true, wire.EventOOMKilled, nil, "", false, "killed by the OOM killer"},
		{"SIGKILL without oom is not an oom kill", units.Status{Result: units.ResultSignal, ExecMainCode: units.CodeKilled, ExecMainStatus: 9},
			true, wire.EventExited, nil, "KILL", false, "signal KILL"},
		{"stop timeout", units.Status{Result: units.ResultTimeout, ExecMainCode: units.CodeKilled, ExecMainStatus: 9},
			true, wire.EventExited, nil, "KILL", false, "signal KILL (a timeout: systemd killed it)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, ok := exitOf(tt.st)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if x.Kind != tt.kind || x.Signal != tt.signal || x.CoreDumped != tt.core || x.Words != tt.words {
				t.Errorf("got kind %q signal %q core %v words %q, want %q %q %v %q", x.Kind, x.Signal, x.CoreDumped, x.Words, tt.kind, tt.signal, tt.core, tt.words)
			}
			if (x.ExitCode == nil) != (tt.code == nil) || x.ExitCode != nil && *x.ExitCode != *tt.code {
				t.Errorf("exit code %v, want %v", x.ExitCode, tt.code)
			}
			if x.Result != string(tt.st.Result) {
				t.Errorf("result %q, want %q", x.Result, tt.st.Result)
			}
		})
	}
}

// TestObserveUnit: the events one look at a unit yields, given the last.
func TestObserveUnit(t *testing.T) {
	start := time.Unix(1700000000, 0)
	running := &Entry{Name: "api", Managed: true, Desired: DesiredRunning, OwnerUID: 1000, Restarts: 2}
	stopped := &Entry{Name: "api", Managed: true, Desired: DesiredStopped, OwnerUID: 1000}
	gaveUp := &Entry{Name: "api", Managed: true, Desired: DesiredRunning, Backoff: &Backoff{GaveUp: true}}
	exit3 := units.Status{ActiveState: units.ActiveFailed, Result: units.ResultExitCode, ExecMainCode: units.CodeExited, ExecMainStatus: 3, ExecMainStart: start}
	restarting := exit3
	restarting.ActiveState, restarting.Restarting, restarting.NRestarts = units.ActiveActivating, true, 1
	limit := exit3
	limit.Result, limit.NRestarts = units.ResultStartLimitHit, 5
	up := units.Status{ActiveState: units.ActiveActive, MainPID: 42, NRestarts: 1, ExecMainStart: start.Add(time.Second)}
	// What systemd shows after the restart of exit3 was refused: the same
	// run, NRestarts counting the refused restart.
	refused := exit3
	refused.Result, refused.NRestarts = units.ResultStartLimitHit, 1
	oomLater := exit3
	oomLater.Result = units.ResultOOMKill
	oom := units.Status{ActiveState: units.ActiveFailed, Result: units.ResultOOMKill, ExecMainCode: units.CodeKilled, ExecMainStatus: 9, ExecMainStart: start}
	tests := []struct {
		name    string
		prev    unitSeen
		st      units.Status
		e       *Entry
		kinds   []wire.EventKind
		exit    wire.EventKind // "" = no exit kept
		history int
	}{
		{"a running unit", unitSeen{}, units.Status{ActiveState: units.ActiveActive, MainPID: 42}, running, nil, "", 0},
		{"an exit", unitSeen{}, exit3, running, []wire.EventKind{wire.EventExited}, wire.EventExited, 0},
		{"the same exit again", unitSeen{exitKey: "x"}, exit3, running, []wire.EventKind{wire.EventExited}, wire.EventExited, 0},
		{"an exit of a stopped runtime", unitSeen{}, exit3, stopped, nil, "", 0},
		{"an exit after giving up", unitSeen{}, exit3, gaveUp, nil, "", 0},
		{"waiting for systemd's restart", unitSeen{}, restarting, running, []wire.EventKind{wire.EventExited}, wire.EventExited, 0},
		{"the restart refused by the start limit", unitSeen{exitKey: exitKey(exit3), exitWords: "exit code 3"}, refused, running, []wire.EventKind{wire.EventStartLimitHit}, wire.EventStartLimitHit, 0},
		{"the exit turns out an OOM kill", unitSeen{exitKey: exitKey(exit3)}, oomLater, running, []wire.EventKind{wire.EventOOMKilled}, wire.EventOOMKilled, 0},
		{"restarted and up", unitSeen{exitWords: "exit code 3"}, up, running, []wire.EventKind{wire.EventRestarted}, "", 1},
		{"start limit hit", unitSeen{restarts: 4}, limit, running, []wire.EventKind{wire.EventExited, wire.EventStartLimitHit}, wire.EventStartLimitHit, 0},
		{"oom", unitSeen{}, oom, running, []wire.EventKind{wire.EventOOMKilled}, wire.EventOOMKilled, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, out := observeUnit(tt.prev, tt.st, tt.e, start)
			var kinds []wire.EventKind
			for _, ev := range out.events {
				kinds = append(kinds, ev.Kind)
				if ev.Name != "api" || ev.OwnerUID != tt.e.OwnerUID || !ev.Time.Equal(start) {
					t.Errorf("event %+v: wrong name, owner or time", ev)
				}
			}
			if strings.Join(kindStrings(kinds), ",") != strings.Join(kindStrings(tt.kinds), ",") {
				t.Fatalf("events %v, want %v", kinds, tt.kinds)
			}
			if got := ""; out.exit != nil {
				got = string(out.exit.Kind)
				if got != string(tt.exit) {
					t.Errorf("exit kept %q, want %q", got, tt.exit)
				}
			} else if tt.exit != "" {
				t.Errorf("no exit kept, want %q", tt.exit)
			}
			if len(out.history) != tt.history {
				t.Errorf("history %v, want %d records", out.history, tt.history)
			}
			// Looking again at the same state yields nothing new.
			if _, again := observeUnit(next, tt.st, tt.e, start); len(again.events) != 0 {
				t.Errorf("the same state again: %+v", again.events)
			}
		})
	}
	t.Run("exit code and signal fields", func(t *testing.T) {
		_, out := observeUnit(unitSeen{}, exit3, running, start)
		if ev := out.events[0]; ev.ExitCode == nil || *ev.ExitCode != 3 || ev.Reason != "exit code 3" {
			t.Fatalf("exit event %+v", ev)
		}
		_, out = observeUnit(unitSeen{}, units.Status{ActiveState: units.ActiveFailed, Result: units.ResultSignal, ExecMainCode: units.CodeKilled, ExecMainStatus: 9}, running, start)
		if ev := out.events[0]; ev.ExitCode != nil || ev.Signal != "KILL" {
			t.Fatalf("signal event %+v", ev)
		}
		seen, out := observeUnit(unitSeen{}, restarting, running, start)
		if len(out.events) != 1 {
			t.Fatalf("waiting for the restart: %+v, want the exit alone", out.events)
		}
		_, out = observeUnit(seen, up, running, start)
		if len(out.events) != 1 || out.events[0].Restarts != 3 || out.events[0].PID != 42 || !strings.Contains(out.events[0].Reason, "after exit code 3") {
			t.Fatalf("restart event %+v", out.events)
		}
	})
}

func kindStrings(ks []wire.EventKind) []string {
	var s []string
	for _, k := range ks {
		s = append(s, string(k))
	}
	return s
}

// TestMessageIDs: every kind has its own 128-bit id in 32 lowercase hex digits.
func TestMessageIDs(t *testing.T) {
	seen := map[string]wire.EventKind{}
	for _, k := range wire.EventKinds() {
		id := k.MessageID()
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Errorf("%s: MESSAGE_ID %q is not 32 lowercase hex digits", k, id)
		}
		if o, dup := seen[id]; dup {
			t.Errorf("%s and %s share MESSAGE_ID %s", k, o, id)
		}
		seen[id] = k
	}
}

// TestJournalField: KEY=VALUE\n, or the binary-safe form (KEY\n, a 64-bit
// little-endian length, the value, \n) for a value with a newline.
func TestJournalField(t *testing.T) {
	tests := []struct {
		name, key, value string
		want             []byte
	}{
		{"plain", "SOCKETLEY_NAME", "api", []byte("SOCKETLEY_NAME=api\n")},
		{"empty", "A", "", []byte("A=\n")},
		{"equals in value", "A", "x=y", []byte("A=x=y\n")},
		{"newline", "MESSAGE", "a\nb", append(append([]byte("MESSAGE\n"), 3, 0, 0, 0, 0, 0, 0, 0), "a\nb\n"...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := appendJournalField(nil, tt.key, tt.value); !bytes.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
	long := "\n" + strings.Repeat("x", maxJournalValue+10)
	got := appendJournalField(nil, "R", long)
	if n := binary.LittleEndian.Uint64(got[2:10]); n != maxJournalValue {
		t.Fatalf("a long value is cut to %d bytes, want %d", n, maxJournalValue)
	}
}

// parseNative decodes a native-protocol datagram into its fields.
func parseNative(t *testing.T, b []byte) map[string]string {
	t.Helper()
	f := map[string]string{}
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			t.Fatalf("unterminated field %q", b)
		}
		line := b[:nl]
		if k, v, ok := bytes.Cut(line, []byte("=")); ok {
			f[string(k)] = string(v)
			b = b[nl+1:]
			continue
		}
		n := binary.LittleEndian.Uint64(b[nl+1 : nl+9])
		f[string(line)] = string(b[nl+9 : nl+9+int(n)])
		if b[nl+9+int(n)] != '\n' {
			t.Fatalf("binary field %s not followed by a newline", line)
		}
		b = b[nl+10+int(n):]
	}
	return f
}

// TestJournalEntryRoundTrip: what the daemon writes carries the documented
// fields, and reading it back (journalctl -o json's shape) gives the event.
func TestJournalEntryRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 6, 16, 0, 0, 123456789, time.UTC)
	evs := []wire.Event{
		{Time: at, Name: "api", Kind: wire.EventExited, Reason: "exit code 3", ExitCode: intp(3), PID: 0, OwnerUID: 1000},
		{Time: at, Name: "db", Kind: wire.EventExited, Reason: "signal SEGV (core dumped)", Signal: "SEGV", CoreDumped: true, OwnerUID: 0},
		{Time: at, Name: "x", Kind: wire.EventRestarted, Reason: "line one\nline two", PID: 42, Restarts: 7, OwnerUID: 5},
		{Time: at, Name: "y", Kind: wire.EventOOMKilled, Reason: "killed by the OOM killer", Signal: "KILL"},
	}
	for _, ev := range evs {
		t.Run(ev.Name, func(t *testing.T) {
			f := parseNative(t, journalEntry(ev))
			want := map[string]string{
				"MESSAGE_ID": ev.Kind.MessageID(), "SYSLOG_IDENTIFIER": "socketley", "SOCKETLEY_NAME": ev.Name,
				"SOCKETLEY_EVENT": string(ev.Kind), "SOCKETLEY_REASON": ev.Reason,
			}
			for k, v := range want {
				if f[k] != v {
					t.Errorf("%s = %q, want %q", k, f[k], v)
				}
			}
			if !strings.HasPrefix(f["MESSAGE"], "socketley: "+ev.Name+" "+string(ev.Kind)) {
				t.Errorf("MESSAGE %q", f["MESSAGE"])
			}
			if ev.ExitCode != nil && f["SOCKETLEY_EXIT_CODE"] != "3" || ev.ExitCode == nil && f["SOCKETLEY_EXIT_CODE"] != "" {
				t.Errorf("SOCKETLEY_EXIT_CODE %q", f["SOCKETLEY_EXIT_CODE"])
			}
			if f["SOCKETLEY_EXIT_SIGNAL"] != ev.Signal {
				t.Errorf("SOCKETLEY_EXIT_SIGNAL %q", f["SOCKETLEY_EXIT_SIGNAL"])
			}
			// journalctl -o json: strings, and arrays of bytes for values
			// that are not printable (the newline).
			js := map[string]any{}
			for k, v := range f {
				if strings.ContainsRune(v, '\n') {
					var arr []any
					for _, c := range []byte(v) {
						arr = append(arr, float64(c))
					}
					js[k] = arr
				} else {
					js[k] = v
				}
			}
			b, _ := json.Marshal(js)
			got, err := parseJournal(bytes.NewBuffer(append(b, '\n')), at.Add(-time.Second))
			if err != nil || len(got) != 1 {
				t.Fatalf("read back: %v %v", got, err)
			}
			gb, _ := json.Marshal(got[0])
			wb, _ := json.Marshal(ev)
			if string(gb) != string(wb) {
				t.Fatalf("read back %s\nwant      %s", gb, wb)
			}
		})
	}
	t.Run("not ours", func(t *testing.T) {
		for _, line := range []string{
			`{"SOCKETLEY_EVENT":"exited","MESSAGE_ID":"00000000000000000000000000000000","SOCKETLEY_NAME":"a","SOCKETLEY_TIME":"2026-12-06T16:00:00Z","SOCKETLEY_OWNER_UID":"0"}`,
			`{"SOCKETLEY_EVENT":"bogus","MESSAGE_ID":"","SOCKETLEY_NAME":"a","SOCKETLEY_TIME":"2026-12-06T16:00:00Z","SOCKETLEY_OWNER_UID":"0"}`,
			`{"SOCKETLEY_EVENT":"exited","MESSAGE_ID":"` + wire.EventExited.MessageID() + `","SOCKETLEY_NAME":"../x","SOCKETLEY_TIME":"2026-12-06T16:00:00Z","SOCKETLEY_OWNER_UID":"0"}`,
			`{"SOCKETLEY_EVENT":"exited","MESSAGE_ID":"` + wire.EventExited.MessageID() + `","SOCKETLEY_NAME":"a","SOCKETLEY_TIME":"2026-12-06T16:00:00Z"}`,
			`not json`,
		} {
			if got, _ := parseJournal(bytes.NewBufferString(line+"\n"), time.Time{}); len(got) != 0 {
				t.Errorf("%s: read as %+v", line, got)
			}
		}
	})
}

// TestJournalWriter: events reach a native-protocol socket; a missing one
// is no error.
func TestJournalWriter(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "socket")
	j := &journalWriter{path: filepath.Join(dir, "missing"), log: discard()}
	j.write(wire.Event{Name: "a", Kind: wire.EventAdded}) // no panic, no error
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	j = &journalWriter{path: p, log: discard()}
	defer j.close()
	j.write(wire.Event{Name: "api", Kind: wire.EventStopped, Reason: "socketley stop by uid 0", Time: time.Now()})
	buf := make([]byte, 4096)
	_ = ln.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := ln.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	f := parseNative(t, buf[:n])
	if f["SOCKETLEY_NAME"] != "api" || f["SOCKETLEY_EVENT"] != "stopped" || f["PRIORITY"] != "6" {
		t.Fatalf("fields %v", f)
	}
}

// TestJournalWriterNeverWaits: with journald not reading (its socket
// buffer full), write drops the journal's copy at once and counts it
// instead of blocking the daemon's loop.
func TestJournalWriterNeverWaits(t *testing.T) {
	p := filepath.Join(t.TempDir(), "socket")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // never read
	j := &journalWriter{path: p, log: discard()}
	defer j.close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 5000 { // more than any socket queue holds (net.unix.max_dgram_qlen)
			j.write(wire.Event{Name: "api", Kind: wire.EventExited, Reason: "exit code 1", Time: time.Now()})
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("write waits for a journald that does not read")
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.dropped == 0 || j.conn == nil {
		t.Fatalf("dropped %d, connection kept %v: want drops counted on the same connection", j.dropped, j.conn != nil)
	}
}

// TestEventRing: the ring keeps the last eventRingSize events in order and
// knows from when it holds them all.
func TestEventRing(t *testing.T) {
	began := time.Unix(1000, 0)
	l := newEventLog(&journalWriter{log: discard()}, began)
	all := func(wire.Event) bool { return true }
	for i := range eventRingSize + 10 {
		l.emit(wire.Event{Time: began.Add(time.Duration(i) * time.Second), Name: "a", Kind: wire.EventRestarted, Restarts: i})
	}
	evs, covers := l.recent(time.Time{}, all)
	if len(evs) != eventRingSize || evs[0].Restarts != 10 || evs[len(evs)-1].Restarts != eventRingSize+9 {
		t.Fatalf("ring: %d events from %d to %d", len(evs), evs[0].Restarts, evs[len(evs)-1].Restarts)
	}
	if covers {
		t.Fatal("a ring that dropped events claims to cover all time")
	}
	if _, covers := l.recent(began.Add(10*time.Second), all); !covers {
		t.Fatal("the ring does not cover the time of its oldest event")
	}
	if _, covers := l.recent(began.Add(9*time.Second), all); covers {
		t.Fatal("the ring covers the time of a dropped event")
	}
	l2 := newEventLog(&journalWriter{log: discard()}, began)
	if _, covers := l2.recent(began.Add(-time.Second), all); covers {
		t.Fatal("the ring covers a time before the daemon started")
	}
}

// TestFollowerFallsBehind: a follower that does not read is cut off, and
// emit never blocks.
func TestFollowerFallsBehind(t *testing.T) {
	l := newEventLog(&journalWriter{log: discard()}, time.Now())
	f := l.follow(func(wire.Event) bool { return true })
	defer l.unfollow(f)
	for range followBuffer + 1 {
		l.emit(wire.Event{Name: "a", Kind: wire.EventAdded})
	}
	select {
	case <-f.done:
	default:
		t.Fatal("a follower behind by more than its buffer is not stopped")
	}
}

// TestMergeEvents: the journal's and the ring's events, once each, in order.
func TestMergeEvents(t *testing.T) {
	t0 := time.Unix(100, 0)
	a := []wire.Event{{Time: t0, Name: "a", Kind: wire.EventAdded}, {Time: t0.Add(2), Name: "a", Kind: wire.EventStarted}}
	b := []wire.Event{{Time: t0.Add(2), Name: "a", Kind: wire.EventStarted}, {Time: t0.Add(1), Name: "b", Kind: wire.EventAdded}}
	got := mergeEvents(a, b)
	if len(got) != 3 || got[0].Name != "a" || got[1].Name != "b" || got[2].Kind != wire.EventStarted {
		t.Fatalf("merged %+v", got)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestJournalArgs: journalctl is asked only for what the caller may see
// (its runtimes' events when it is not root, the names it gave) and for
// at most maxJournalEvents.
func TestJournalArgs(t *testing.T) {
	since := time.Unix(1700000000, 250_000_000)
	tests := []struct {
		name      string
		q         journalQuery
		want, not []string
	}{
		{"root, all", journalQuery{owner: -1}, nil, []string{fieldOwner + "=", fieldName + "="}},
		{"a user", journalQuery{owner: 1000}, []string{fieldOwner + "=1000"}, []string{fieldName + "="}},
		{"a user's names", journalQuery{owner: 1000, names: []string{"api", "web"}}, []string{fieldOwner + "=1000", fieldName + "=api", fieldName + "=web"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := strings.Join(journalArgs(since, 0, tt.q), " ")
			for _, w := range append(tt.want, "_UID=0", "--since=@1700000000.250000", "--lines=20000", "SYSLOG_IDENTIFIER=socketley") {
				if !strings.Contains(args, w) {
					t.Errorf("%q lacks %q", args, w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(args, n) {
					t.Errorf("%q has %q", args, n)
				}
			}
		})
	}
}

// TestWhyListsThisRegistrationOnly: why's events are those of the runtime
// registered now: not those of an earlier one of the same name (removed,
// maybe another user's), nor any other owner's.
func TestWhyListsThisRegistrationOnly(t *testing.T) {
	m, _ := newTestManager(t)
	bin := exe(t, t.TempDir(), "svc")
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "api", Path: bin}, false, 0); err != nil {
		t.Fatal(err)
	}
	e, _ := m.entry("api")
	other := e.OwnerUID + 1
	now := time.Now().UTC()
	for i, ev := range []wire.Event{
		{Kind: wire.EventAdded, OwnerUID: other},   // the earlier runtime api
		{Kind: wire.EventStopped, OwnerUID: other}, //
		{Kind: wire.EventRemoved, OwnerUID: other}, // its end
		{Kind: wire.EventAdded, OwnerUID: e.OwnerUID, Reason: "this one"},
		{Kind: wire.EventStopped, OwnerUID: other}, // not this runtime's owner
	} {
		ev.Name, ev.Time = "api", now.Add(time.Duration(i)*time.Millisecond)
		m.events.emit(ev)
	}
	res, err := m.why(me(), []string{"api"})
	if err != nil {
		t.Fatal(err)
	}
	if evs := res.Why.Events; len(evs) != 1 || evs[0].Reason != "this one" {
		t.Fatalf("why lists %+v; want this registration's added alone", evs)
	}
}

// TestStreamSlots: a non-root uid may hold maxStreamsPerUID event streams,
// all non-root uids together maxStreams; root is not counted; a stream
// given back frees its slot.
func TestStreamSlots(t *testing.T) {
	var s streamSlots
	var release []func()
	take := func(uid int) error {
		r, err := s.take(Caller{UID: uid})
		if err == nil {
			release = append(release, r)
		}
		return err
	}
	for range maxStreamsPerUID {
		if err := take(1000); err != nil {
			t.Fatal(err)
		}
	}
	if err := take(1000); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "uid 1000") {
		t.Fatalf("stream %d of one uid: %v, want the per-user limit", maxStreamsPerUID+1, err)
	}
	for uid := 1001; len(release) < maxStreams; uid++ {
		if err := take(uid); err != nil {
			t.Fatal(err)
		}
	}
	if err := take(5000); !errors.Is(err, ErrLimit) {
		t.Fatalf("stream %d in all: %v, want the limit", maxStreams+1, err)
	}
	if err := take(0); err != nil {
		t.Fatalf("root: %v", err)
	}
	release[0]()
	if err := take(1000); err != nil {
		t.Fatalf("after one stream of uid 1000 ended: %v", err)
	}
}

// TestEmitRequestStarted: start and restart record started for what they
// started: every runtime when the request succeeded, and, when a --wait
// failed, a runtime whose process runs (as add --start does).
func TestEmitRequestStarted(t *testing.T) {
	failed := wire.Error(ErrFailed, "a did not come up")
	for _, tt := range []struct {
		name string
		cmd  string
		rts  []wire.Runtime
		err  error
		want int
	}{
		{"start", wire.CmdStart, []wire.Runtime{{Name: "a", PID: 42}}, nil, 1},
		{"start, wait failed, process runs", wire.CmdStart, []wire.Runtime{{Name: "a", PID: 42}}, failed, 1},
		{"start, wait failed, process gone", wire.CmdStart, []wire.Runtime{{Name: "a"}}, failed, 0},
		{"restart, wait failed, process runs", wire.CmdRestart, []wire.Runtime{{Name: "a", PID: 42}}, failed, 1},
		{"start of two, one failed", wire.CmdStart, []wire.Runtime{{Name: "a", PID: 42}, {Name: "b", Failed: "no"}}, failed, 1},
		{"unchanged", wire.CmdStart, []wire.Runtime{{Name: "a", PID: 42, Unchanged: true}}, nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newTestManager(t)
			m.emitRequest(me(), wire.Request{Cmd: tt.cmd}, &wire.Result{Runtimes: tt.rts}, tt.err)
			evs, _ := m.events.recent(time.Time{}, func(ev wire.Event) bool { return ev.Kind == wire.EventStarted })
			if len(evs) != tt.want {
				t.Fatalf("started events %+v, want %d", evs, tt.want)
			}
		})
	}
}

// TestObserveUnitsExitsTheCacheNeverShowed: an exit the watch reports but
// the cache never showed (systemd restarted the unit at once) is an exited
// event, then the restart is a restarted event naming it; an exit of a
// runtime busy with a command waits for the next pass.
func TestObserveUnitsExitsTheCacheNeverShowed(t *testing.T) {
	m, f := newTestManager(t)
	bin := exe(t, t.TempDir(), "svc")
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "web", Path: bin, Start: true}, false, 0); err != nil {
		t.Fatal(err)
	}
	m.observeUnits() // the first pass takes note
	up := f.Snapshot()["web"]
	killed := up
	killed.ActiveState, killed.SubState, killed.MainPID = units.ActiveFailed, units.SubFailed, 0
	killed.Result, killed.ExecMainCode, killed.ExecMainStatus = units.ResultSignal, units.CodeKilled, 9
	f.queueExit("web", killed)
	again := up
	again.MainPID, again.NRestarts, again.ExecMainStart = up.MainPID+1, 1, up.ExecMainStart.Add(time.Second)
	f.set(again)

	unlock := m.locks.lock("web") // busy with a command: not looked at
	m.observeUnits()
	unlock()
	if evs, _ := m.events.recent(time.Time{}, func(ev wire.Event) bool { return ev.Kind == wire.EventExited }); len(evs) != 0 {
		t.Fatalf("a busy runtime's exit was observed: %+v", evs)
	}
	m.observeUnits()
	evs, _ := m.events.recent(time.Time{}, func(ev wire.Event) bool {
		return ev.Kind == wire.EventExited || ev.Kind == wire.EventRestarted
	})
	if len(evs) != 2 || evs[0].Kind != wire.EventExited || evs[0].Signal != "KILL" ||
		evs[1].Kind != wire.EventRestarted || !strings.Contains(evs[1].Reason, "after signal KILL") {
		t.Fatalf("events %+v, want exited (KILL) then restarted after it", evs)
	}
	if e, _ := m.entry("web"); e.Exit == nil || e.Exit.Signal != "KILL" || len(e.History) != 1 {
		t.Fatalf("entry: exit %+v, history %+v", e.Exit, e.History)
	}
}
