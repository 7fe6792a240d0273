package manager

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// Event log limits.
const (
	// eventRingSize is how many recent events the daemon keeps in memory;
	// older ones are read back from the journal (events --since).
	eventRingSize = 4096
	// followBuffer is how many events a follower may fall behind before
	// the daemon ends its stream (it says so in a last line).
	followBuffer = 256
	// journalReadTimeout bounds reading events back from the journal.
	journalReadTimeout = 4 * time.Second
)

// eventLog is the daemon's record of events: a bounded ring of the recent
// ones, the journal, and the followers (events -f). Safe for concurrent
// use; emit never blocks on a follower.
type eventLog struct {
	journal *journalWriter
	// began is when the daemon started: the ring holds every event since
	// then until it first drops one.
	began time.Time

	mu sync.Mutex // guards the fields below
	// ring holds up to eventRingSize events in time order from head.
	ring []wire.Event
	head int
	// dropped is the time of the newest event dropped from the ring
	// (zero: none was).
	dropped time.Time
	subs    map[*follower]struct{}
}

// follower is one events -f connection's queue.
type follower struct {
	ch     chan wire.Event
	keep   func(wire.Event) bool
	behind bool // set (under eventLog.mu) when an event did not fit
	done   chan struct{}
	once   sync.Once
}

func newEventLog(j *journalWriter, began time.Time) *eventLog {
	return &eventLog{journal: j, began: began, subs: map[*follower]struct{}{}}
}

// emit records ev: in the ring, in the journal, and to every follower that
// wants it.
func (l *eventLog) emit(ev wire.Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Time = ev.Time.UTC()
	l.mu.Lock()
	if len(l.ring) < eventRingSize {
		l.ring = append(l.ring, ev)
	} else {
		l.dropped = l.ring[l.head].Time
		l.ring[l.head] = ev
		l.head = (l.head + 1) % eventRingSize
	}
	for f := range l.subs {
		if !f.keep(ev) {
			continue
		}
		select {
		case f.ch <- ev:
		default:
			f.behind = true
			f.stop()
		}
	}
	l.mu.Unlock()
	l.journal.write(ev)
}

// recent returns the ring's events that keep accepts, oldest first, and
// whether the ring holds every event since since.
func (l *eventLog) recent(since time.Time, keep func(wire.Event) bool) ([]wire.Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []wire.Event
	for i := range l.ring {
		ev := l.ring[(l.head+i)%len(l.ring)]
		if !ev.Time.Before(since) && keep(ev) {
			out = append(out, ev)
		}
	}
	covers := !since.Before(l.began) && (l.dropped.IsZero() || l.dropped.Before(since))
	return out, covers
}

// follow registers a follower of the events keep accepts; cancel it with
// unfollow.
func (l *eventLog) follow(keep func(wire.Event) bool) *follower {
	f := &follower{ch: make(chan wire.Event, followBuffer), keep: keep, done: make(chan struct{})}
	l.mu.Lock()
	l.subs[f] = struct{}{}
	l.mu.Unlock()
	return f
}

func (l *eventLog) unfollow(f *follower) {
	l.mu.Lock()
	delete(l.subs, f)
	l.mu.Unlock()
	f.stop()
}

func (f *follower) stop() { f.once.Do(func() { close(f.done) }) }

// emit records an event (see eventLog.emit) and logs it at debug level.
func (m *Manager) emit(ev wire.Event) {
	m.log.Debug("event", "name", ev.Name, "event", string(ev.Kind), "reason", ev.Reason)
	m.events.emit(ev)
}

// emitFor records an event of kind about runtime r.
func (m *Manager) emitFor(r wire.Runtime, kind wire.EventKind, reason string) {
	m.emit(wire.Event{Name: r.Name, Kind: kind, Reason: reason, PID: r.PID, OwnerUID: r.OwnerUID})
}

// emitRequest records the events of a request that ran: what an operator
// did (add, start, stop, restart, upgrade, attach), for each runtime of the
// reply it did not fail for. remove records its own (the reply lists no
// runtimes).
func (m *Manager) emitRequest(caller Caller, req wire.Request, res *wire.Result, err error) {
	if res == nil {
		return
	}
	by := fmt.Sprintf("by uid %d", caller.UID)
	for _, r := range res.Runtimes {
		if r.Failed != "" || r.Unchanged {
			continue
		}
		if req.Cmd == wire.CmdAdd && req.Replace {
			continue // replace records its own events
		}
		switch req.Cmd {
		case wire.CmdAdd:
			m.emitFor(r, wire.EventAdded, "socketley add "+by)
			if req.Add != nil && req.Add.Start && (err == nil || r.PID > 0) {
				m.emitFor(r, wire.EventStarted, "socketley add --start "+by)
			}
		case wire.CmdStart:
			// A failed --wait of one runtime: started if its process ran
			// (as for add --start).
			if err == nil || len(res.Runtimes) > 1 || r.PID > 0 {
				m.emitFor(r, wire.EventStarted, "socketley start "+by)
			}
		case wire.CmdRestart:
			if err == nil || len(res.Runtimes) > 1 || r.PID > 0 {
				m.emitFor(r, wire.EventStarted, "socketley restart "+by)
			}
		case wire.CmdUpgrade:
			if err == nil {
				m.emitFor(r, wire.EventStarted, "socketley upgrade to "+r.Path+" "+by)
			}
		case wire.CmdStop:
			if err == nil || len(res.Runtimes) > 1 {
				m.emitFor(r, wire.EventStopped, "socketley stop "+by)
			}
		case wire.CmdAttach:
			if err == nil {
				reason := fmt.Sprintf("%s on port %d", r.Type, r.Port)
				ev := wire.Event{Name: r.Name, Kind: wire.EventAttached, Reason: reason, PID: r.AttachPID, OwnerUID: r.OwnerUID}
				m.emit(ev)
			}
		}
	}
}

// emitRemoved records the removal (or the detach) of e by caller, and
// drops what the observer saw of its unit: a runtime added again under the
// name before the observer's next pass starts from nothing.
func (m *Manager) emitRemoved(caller Caller, e *Entry, detach bool) {
	m.mu.Lock()
	delete(m.seen, e.Name)
	delete(m.exitQueue, e.Name)
	m.mu.Unlock()
	if detach {
		m.emit(wire.Event{Name: e.Name, Kind: wire.EventDetached, Reason: "the attached process detached", PID: e.PID, OwnerUID: e.OwnerUID})
		return
	}
	m.emit(wire.Event{Name: e.Name, Kind: wire.EventRemoved, Reason: fmt.Sprintf("socketley remove by uid %d", caller.UID), OwnerUID: e.OwnerUID})
}

// appendHistory adds rec to h, keeping the last wire.MaxRestartHistory.
func appendHistory(h []wire.RestartRecord, rec wire.RestartRecord) []wire.RestartRecord {
	h = append(slices.Clone(h), rec)
	if len(h) > wire.MaxRestartHistory {
		h = h[len(h)-wire.MaxRestartHistory:]
	}
	return h
}

// exitOf decides how st's main process ended, from systemd's Result and
// ExecMainCode/ExecMainStatus; ok is false when st records no exit (the
// process runs, or never ran). Result=oom-kill makes it an OOM kill
// whatever the signal (systemd sets it when the kernel's OOM killer killed
// a process of the unit, and then stops the unit: the main process may
// itself have got SIGTERM or SIGKILL).
func exitOf(st units.Status) (wire.Exit, bool) {
	x := wire.Exit{Kind: wire.EventExited, Result: string(st.Result)}
	switch st.ExecMainCode {
	case units.CodeExited:
		c := st.ExecMainStatus
		x.ExitCode = &c
	case units.CodeKilled, units.CodeDumped:
		x.Signal = signalName(st.ExecMainStatus)
		x.CoreDumped = st.ExecMainCode == units.CodeDumped
	default:
		if st.Result != units.ResultOOMKill {
			return wire.Exit{}, false
		}
	}
	words := st.LastExit()
	switch st.Result {
	case units.ResultOOMKill:
		x.Kind = wire.EventOOMKilled
		if words == "" {
			words = "killed by the OOM killer"
		} else {
			words = "killed by the OOM killer (" + words + ")"
		}
	case units.ResultTimeout:
		words += " (a timeout: systemd killed it)"
	case units.ResultWatchdog:
		words += " (the watchdog timed out)"
	}
	x.Words = words
	return x, true
}

// signalName returns "KILL" for 9, or the number for an unknown signal.
func signalName(sig int) string {
	if name := unix.SignalName(unix.Signal(sig)); name != "" {
		return strings.TrimPrefix(name, "SIG")
	}
	return fmt.Sprint(sig)
}

// unitSeen is what the event observer last saw of a runtime's unit.
type unitSeen struct {
	exitKey   string // identifies the last exit seen ("" none)
	exitWords string // that exit, in words
	restarts  int    // acceptedRestarts of the unit
	limitHit  bool   // failed with start-limit-hit
}

// maxQueuedExits bounds the exits kept per runtime until it is looked at.
const maxQueuedExits = 16

// merge returns u with the decisions of a later look, o, added: the
// events of both, o's exit when it has one, the history of both.
func (u unitEvents) merge(o unitEvents) unitEvents {
	u.events = append(u.events, o.events...)
	if o.exit != nil {
		u.exit = o.exit
	}
	u.history = append(u.history, o.history...)
	return u
}

// exitKey identifies the exit st records: the run (its start time) and
// how it ended. systemd's Result is left out, as it changes after the exit
// (exit-code, then start-limit-hit when the restart is refused), except
// for oom-kill, which may be set just after the exit and makes it another
// kind of exit.
func exitKey(st units.Status) string {
	return fmt.Sprintf("%d/%d/%d/%t", st.ExecMainStart.UnixNano(), st.ExecMainCode, st.ExecMainStatus, st.Result == units.ResultOOMKill)
}

// unitEvents is what observeUnit decided for one runtime.
type unitEvents struct {
	events  []wire.Event
	exit    *wire.Exit           // a new exit to keep in the entry
	history []wire.RestartRecord // new restarts to keep in the entry
}

// observeUnit decides the events of one runtime's unit from what was seen
// before (prev) and now (st): an exit (exited, oom-killed), systemd's
// automatic restarts (restarted), and a start limit hit. Exits of a runtime
// that should not run (stopped or being removed) are an operator's doing,
// not events. Pure: table-tested.
func observeUnit(prev unitSeen, st units.Status, e *Entry, now time.Time) (unitSeen, unitEvents) {
	next := prev
	var out unitEvents
	ev := func(kind wire.EventKind, reason string) wire.Event {
		return wire.Event{Time: now, Name: e.Name, Kind: kind, Reason: reason, OwnerUID: e.OwnerUID}
	}
	// A stop, a removal or a give-up ends the process on purpose.
	running := e.Desired == DesiredRunning && (e.Backoff == nil || !e.Backoff.GaveUp)
	if x, ok := exitOf(st); ok && st.MainPID == 0 {
		if key := exitKey(st); key != prev.exitKey {
			next.exitKey, next.exitWords = key, x.Words
			if running {
				x.Time = now
				out.exit = &x
				r := ev(x.Kind, x.Words)
				r.ExitCode, r.Signal, r.CoreDumped = x.ExitCode, x.Signal, x.CoreDumped
				out.events = append(out.events, r)
			}
		}
	}
	// A restart counts once systemd has carried it out: while the unit
	// waits for it (Restarting), NRestarts already counts a restart the
	// start limit may still refuse (it then fails with start-limit-hit,
	// and acceptedRestarts leaves that one out).
	n := prev.restarts
	if !st.Restarting {
		n = acceptedRestarts(st)
	}
	next.restarts = n
	if n > prev.restarts && running {
		cause := "automatic restart by systemd"
		if next.exitWords != "" {
			cause += " after " + next.exitWords
		}
		r := ev(wire.EventRestarted, cause)
		r.PID, r.Restarts = st.MainPID, e.Restarts+n
		out.events = append(out.events, r)
		out.history = append(out.history, wire.RestartRecord{Time: now, Kind: wire.EventRestarted, Cause: cause})
	}
	hit := st.ActiveState == units.ActiveFailed && st.Result == units.ResultStartLimitHit
	if hit && !prev.limitHit && running {
		reason := "systemd refused to restart it again (start limit: too many restarts in a short time)"
		if next.exitWords != "" {
			reason += "; last exit: " + next.exitWords
		}
		out.events = append(out.events, ev(wire.EventStartLimitHit, reason))
		if out.exit == nil {
			x := wire.Exit{Time: now, Kind: wire.EventStartLimitHit, Result: string(st.Result), Words: reason}
			if px, ok := exitOf(st); ok {
				x.ExitCode, x.Signal, x.CoreDumped = px.ExitCode, px.Signal, px.CoreDumped
			}
			out.exit = &x
		} else {
			out.exit.Kind, out.exit.Words = wire.EventStartLimitHit, reason
		}
	}
	next.limitHit = hit
	return next, out
}

// observeUnits runs on the daemon's loop after each wake (m.seen and
// m.exitQueue are written by it, under the read lock as no other goroutine
// runs it, and by emitRemoved under the write lock): it compares every
// managed runtime's unit with what it saw last, emits the events, and keeps
// the new exits and restarts in the entries (one write). The first pass
// after the daemon starts only takes note: what happened before was
// recorded by the daemon that saw it. Runtimes busy with a command are
// looked at once it is done.
func (m *Manager) observeUnits() {
	snap := m.snapshot()
	if snap == nil {
		return
	}
	m.mu.RLock()
	w := m.watch
	m.mu.RUnlock()
	if w != nil {
		// Exits the snapshot may never show (a crash restarted at once),
		// kept until the runtime is looked at.
		m.mu.Lock()
		for name, sts := range w.Exits() {
			if m.exitQueue == nil {
				m.exitQueue = map[string][]units.Status{}
			}
			q := append(m.exitQueue[name], sts...)
			if len(q) > maxQueuedExits {
				q = q[len(q)-maxQueuedExits:]
			}
			m.exitQueue[name] = q
		}
		m.mu.Unlock()
	}
	now := time.Now().UTC()
	type change struct {
		name string
		out  unitEvents
	}
	var changes []change
	m.mu.RLock()
	seeding := m.seen == nil
	if seeding {
		m.seen = map[string]unitSeen{}
	}
	for e := range m.reg.all() {
		if !e.Managed {
			continue
		}
		st, ok := snap[e.Name]
		if !ok || m.locks.busy(e.Name) {
			continue
		}
		// The exits seen on the way, then the unit as it is now.
		seen := m.seen[e.Name]
		var out unitEvents
		for _, x := range append(m.exitQueue[e.Name], st) {
			var o unitEvents
			seen, o = observeUnit(seen, x, e, now)
			out = out.merge(o)
		}
		delete(m.exitQueue, e.Name)
		m.seen[e.Name] = seen
		if !seeding && len(out.events) > 0 {
			changes = append(changes, change{e.Name, out})
		}
	}
	for name := range m.seen {
		if _, ok := m.reg.get(name); !ok {
			delete(m.seen, name)
		}
	}
	for name := range m.exitQueue {
		if _, ok := m.reg.get(name); !ok {
			delete(m.exitQueue, name)
		}
	}
	m.mu.RUnlock()
	if len(changes) == 0 {
		return
	}
	if err := m.update(func(r *Registry) error {
		for _, c := range changes {
			e, ok := r.edit(c.name)
			if !ok {
				continue
			}
			if c.out.exit != nil {
				x := *c.out.exit
				e.Exit = &x
			}
			for _, h := range c.out.history {
				e.History = appendHistory(e.History, h)
			}
		}
		return nil
	}); err != nil {
		m.log.Error("persist exits and restarts", "err", err)
	}
	for _, c := range changes {
		for _, ev := range c.out.events {
			m.emit(ev)
		}
	}
}

// mayReadEvent reports whether caller may see ev: root, and the runtime's
// owner (the only caller of a user daemon is its own user).
func mayReadEvent(caller Caller, ev wire.Event) bool {
	return caller.root() || ev.OwnerUID == caller.UID
}

// eventFilter checks names (runtime names or glob patterns) and returns
// the filter of the events they select, for caller. A plain name must be a
// registered runtime or have events (known says which do); a pattern must
// be well formed.
func (m *Manager) eventFilter(caller Caller, names []string, known func(string) bool) (func(wire.Event) bool, error) {
	if err := checkNames(names); err != nil {
		return nil, err
	}
	reg := m.registry()
	plain := map[string]bool{}
	var patterns []string
	for _, n := range names {
		if isPattern(n) {
			if _, err := path.Match(n, ""); err != nil {
				return nil, errorf(ErrInvalid, "bad pattern %q: %v", n, err)
			}
			patterns = append(patterns, n)
			continue
		}
		if err := wire.CheckName(n); err != nil {
			return nil, err
		}
		if !reg.has(n) && !known(n) {
			return nil, errorf(ErrNotFound, "unknown runtime %q (see `socketley ls`)", n)
		}
		plain[n] = true
	}
	return func(ev wire.Event) bool {
		if !mayReadEvent(caller, ev) {
			return false
		}
		if len(names) == 0 || plain[ev.Name] {
			return true
		}
		for _, p := range patterns {
			if ok, _ := path.Match(p, ev.Name); ok {
				return true
			}
		}
		return false
	}, nil
}

// listEvents answers events [--since T] [NAME...]: the ring's events, and,
// when the ring does not reach back to since, the journal's.
func (m *Manager) listEvents(ctx context.Context, caller Caller, req wire.Request) (*wire.Result, error) {
	all := func(wire.Event) bool { return true }
	evs, covers := m.events.recent(req.Since, all)
	msg := ""
	if !req.Since.IsZero() && !covers {
		jctx, cancel := context.WithTimeout(ctx, journalReadTimeout)
		q := journalQuery{owner: -1}
		if !caller.root() {
			q.owner = caller.UID
		}
		if !slices.ContainsFunc(req.Names, isPattern) {
			q.names = req.Names
		}
		old, full, err := readJournal(jctx, req.Since, q)
		cancel()
		switch {
		case err != nil:
			msg = fmt.Sprintf("events before %s are not listed: reading the journal failed: %v", m.events.began.Format(time.RFC3339), err)
			m.log.Warn("read events back from the journal", "err", err)
		case full && len(old) > 0:
			msg = fmt.Sprintf("only the last %d events from the journal are listed, from %s on: give a later --since or names for the earlier ones", maxJournalEvents, old[0].Time.Format(time.RFC3339))
		}
		evs = mergeEvents(old, evs)
	}
	known := map[string]bool{}
	for _, ev := range evs {
		known[ev.Name] = true
	}
	keep, err := m.eventFilter(caller, req.Names, func(n string) bool { return known[n] })
	if err != nil {
		return nil, err
	}
	out := evs[:0:0]
	for _, ev := range evs {
		if keep(ev) {
			out = append(out, ev)
		}
	}
	return &wire.Result{Events: out, Message: msg}, nil
}

// eventKey identifies an event in two lists (the ring and the journal).
type eventKey struct {
	t    int64
	name string
	kind wire.EventKind
}

func keyOf(ev wire.Event) eventKey { return eventKey{ev.Time.UnixNano(), ev.Name, ev.Kind} }

// mergeEvents merges two time-ordered lists, dropping the events both hold.
func mergeEvents(a, b []wire.Event) []wire.Event {
	seen := map[eventKey]bool{}
	var out []wire.Event
	for _, l := range [][]wire.Event{a, b} {
		for _, ev := range l {
			k := keyOf(ev)
			if !seen[k] {
				seen[k] = true
				out = append(out, ev)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}

// followRequest reports whether line is an events -f request (JSON form
// only: the C++ clients' line format has no such command).
func followRequest(line string) (wire.Request, bool) {
	if !strings.HasPrefix(line, "{") || !strings.Contains(line, `"follow"`) {
		return wire.Request{}, false
	}
	req, form, err := wire.ParseRequest(line)
	if err != nil || form != wire.FormJSON || req.Cmd != wire.CmdEvents || !req.Follow {
		return wire.Request{}, false
	}
	return req, true
}

// followEvents serves events -f on c: the first reply frame is the answer
// of events without -f (code 0 and the events so far, or the error); then
// each new event the caller may see is one more frame (code 0, the event
// as a JSON object) until the client closes the connection, the daemon
// shuts down, or the client falls followBuffer events behind (then a last
// frame with code 2 says so). Nothing the client sends is read as a request.
func (m *Manager) followEvents(ctx context.Context, c *net.UnixConn, r *bufio.Reader, caller Caller, req wire.Request) {
	err := m.gate.await(ctx, req)
	if err == nil {
		var release func()
		if release, err = m.streams.take(caller); err == nil {
			defer release()
		}
	}
	if err != nil {
		_ = c.SetWriteDeadline(time.Now().Add(writeDeadline))
		code, payload := jsonReply(nil, err)
		_ = wire.WriteReply(c, code, payload)
		return
	}
	// Follow first, then list: an event in between is in both, and sent
	// once; none is lost.
	f := m.events.follow(func(ev wire.Event) bool { return mayReadEvent(caller, ev) })
	defer m.events.unfollow(f)
	res, err := m.listEvents(ctx, caller, req)
	var keep func(wire.Event) bool
	listed := map[eventKey]bool{}
	if err == nil {
		known := map[string]bool{}
		for _, ev := range res.Events {
			known[ev.Name] = true
			listed[keyOf(ev)] = true
		}
		keep, err = m.eventFilter(caller, req.Names, func(n string) bool { return known[n] })
	}
	code, payload := jsonReply(res, err)
	_ = c.SetWriteDeadline(time.Now().Add(writeDeadline))
	if werr := wire.WriteReply(c, code, payload); werr != nil || err != nil {
		return
	}
	// The client sends nothing more; its close (EOF) ends the stream.
	_ = c.SetReadDeadline(time.Time{})
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		_, _ = r.ReadByte()
		for {
			if _, err := r.ReadByte(); err != nil {
				return
			}
		}
	}()
	defer func() {
		_ = c.SetReadDeadline(time.Unix(1, 0))
		<-gone
	}()
	for {
		select {
		case ev := <-f.ch:
			if !keep(ev) || listed[keyOf(ev)] {
				continue
			}
			b, err := json.Marshal(ev)
			if err != nil {
				continue
			}
			_ = c.SetWriteDeadline(time.Now().Add(writeDeadline))
			if err := wire.WriteReply(c, wire.CodeOK, b); err != nil {
				return
			}
		case <-f.done:
			m.events.mu.Lock()
			behind := f.behind
			m.events.mu.Unlock()
			if behind {
				_ = c.SetWriteDeadline(time.Now().Add(writeDeadline))
				code, payload := jsonReply(nil, errorf(ErrUnavailable, "events -f: fell more than %d events behind; the daemon ended the stream (run events again, with --since)", followBuffer))
				_ = wire.WriteReply(c, code, payload)
			}
			return
		case <-gone:
			return
		case <-ctx.Done():
			return
		case <-m.gate.drainChan():
			return
		}
	}
}

// Limits of the events -f streams of non-root callers, which hold their
// connection for as long as they like (no idle limit): they may not take
// the whole shared pool of connections.
const (
	maxStreamsPerUID = 4
	maxStreams       = 32
)

// streamSlots counts the events -f streams of non-root callers. The zero
// value is ready; safe for concurrent use.
type streamSlots struct {
	mu     sync.Mutex
	total  int
	perUID map[int]int
}

// take counts one more stream of caller (root is not counted) and returns
// the func that gives it back, or an error of class limit.
func (s *streamSlots) take(caller Caller) (func(), error) {
	if caller.root() {
		return func() {}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.perUID[caller.UID] >= maxStreamsPerUID:
		return nil, errorf(ErrLimit, "events -f: uid %d already follows %d event streams (the per-user limit); end one and try again", caller.UID, maxStreamsPerUID)
	case s.total >= maxStreams:
		return nil, errorf(ErrLimit, "events -f: %d event streams are open (the limit for non-root users); try again later", maxStreams)
	}
	if s.perUID == nil {
		s.perUID = map[int]int{}
	}
	s.total++
	s.perUID[caller.UID]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.total--
		if s.perUID[caller.UID]--; s.perUID[caller.UID] <= 0 {
			delete(s.perUID, caller.UID)
		}
	}, nil
}

// why answers why NAME: the runtime's last exit, restarts and events.
func (m *Manager) why(caller Caller, names []string) (*wire.Result, error) {
	if len(names) != 1 || isPattern(names[0]) {
		return nil, errorf(ErrInvalid, "why: give one runtime name (no pattern)")
	}
	name := names[0]
	if err := wire.CheckName(name); err != nil {
		return nil, err
	}
	e, ok := m.entry(name)
	if !ok {
		return nil, errorf(ErrNotFound, "unknown runtime %q (see `socketley ls`)", name)
	}
	if err := authorizeEntry(caller, e, "why"); err != nil {
		return nil, err
	}
	v := m.view(name)
	w := &wire.Why{Name: name, Status: v.Status, Reason: v.Reason, Restarts: v.Restarts, HealthRestarts: v.HealthRestarts,
		History: slices.Clone(e.History)}
	if e.Exit != nil {
		x := *e.Exit
		w.LastExit = &x
	}
	if st, ok := m.snapshot()[name]; ok && w.LastExit == nil {
		if x, ok := exitOf(st); ok && st.MainPID == 0 {
			w.LastExit = &x
		}
	}
	if w.LastExit == nil && e.LastExit != "" {
		w.LastExit = &wire.Exit{Kind: wire.EventExited, Words: e.LastExit}
	}
	// This registration's events only: those after the last removal of
	// the name (a runtime removed before may have been another user's).
	evs, _ := m.events.recent(time.Time{}, func(ev wire.Event) bool { return ev.Name == name })
	for i, ev := range slices.Backward(evs) {
		if ev.Kind == wire.EventRemoved {
			evs = evs[i+1:]
			break
		}
	}
	w.Events = slices.DeleteFunc(evs, func(ev wire.Event) bool { return ev.OwnerUID != e.OwnerUID || !mayReadEvent(caller, ev) })
	return &wire.Result{Why: w}, nil
}
