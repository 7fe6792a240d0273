package units

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	godbus "github.com/godbus/dbus/v5"
)

const (
	managerIface    = "org.freedesktop.systemd1.Manager"
	unitIface       = "org.freedesktop.systemd1.Unit"
	serviceIface    = "org.freedesktop.systemd1.Service"
	propertiesIface = "org.freedesktop.DBus.Properties"
	// driverName is the bus driver's name: the sender of NameOwnerChanged.
	// No client can own it, so a signal with this sender comes from the bus.
	driverName = "org.freedesktop.DBus"

	// maxBatch bounds how many queued signals are applied before the cache
	// is published and a pending request is served.
	maxBatch = 256
	// inFlight bounds the GetAll calls that a bulk read (Subscribe, Resync)
	// keeps pending on the connection. The system bus allows 128 pending
	// replies per connection by default (max_replies_per_connection).
	inFlight = 64
	// maxErrors bounds the unit errors a bulk read reports one by one.
	maxErrors = 8
	// readDelay: the reads that signals ask for (a new unit, a finished
	// job, a unit that went down) are done this long after the first of
	// them, together. A start or stop job takes about as long; meanwhile
	// the caller of the job usually Refreshes the unit, which makes the
	// read unnecessary, and a read in the middle of the job would only slow
	// systemd down. Not version-specific (a batching of reads); on systemd
	// < RestartSubStatesVersion it is also how long a unit that went down
	// settles before its read confirms it (see settle), on newer ones only
	// a unit in a before-auto-restart state does.
	readDelay = 50 * time.Millisecond
)

// nudgeAfter are the delays, after RestartSec, at which a Watch wakes
// systemd up when a unit waits for its automatic restart (see nudge).
var nudgeAfter = []time.Duration{time.Millisecond, 10 * time.Millisecond}

// Watch is a live cache of every loaded socketley-*.service unit, kept up to
// date by systemd's signals (PropertiesChanged on the Unit and Service
// interfaces, UnitNew, UnitRemoved, JobRemoved) on a connection of its own.
// Reading it costs no D-Bus call. Its methods are safe for concurrent use.
//
// The cache is published as a whole after each batch of signals. When a unit
// that was up (active, activating, reloading, deactivating) turns failed or
// inactive on its way to an automatic restart, the Watch keeps publishing
// its previous state until a newer state of it arrives or it is read in full
// (readDelay later; see settle), so that such a unit is never published as
// failed or inactive. On systemd 252 every such transition is held that way
// (its states do not tell); from 254 on only the before-auto-restart
// sub-states are, and a final failure or stop is published at once. Every full read of a unit (GetAll) is ordered against the
// signals of the same connection: a signal sent before the read is reflected
// in it and is not applied again, so a stale signal never overwrites a
// fresher read. Signals lost while the bus connection is down are not
// replayed: when Done is closed, dial again, Subscribe again (which fills the
// new cache).
//
// When a unit starts waiting for its automatic restart, the Watch wakes
// systemd up right after RestartSec (see nudge): systemd alone may restart
// it up to 250 ms late.
//
// Only signals from systemd are applied: unit signals (PropertiesChanged,
// UnitNew, UnitRemoved, JobRemoved, Reloading) only when their sender is the
// current owner of org.freedesktop.systemd1 (a unique name, read with
// GetNameOwner when the watch starts), and NameOwnerChanged only from the bus
// driver. Match rules filter broadcasts only: any client on the bus can send
// a signal addressed to the watch's connection, and it is delivered whatever
// the rules say; such signals are dropped. When the owner changes (systemd
// re-executed or restarted), the bus driver's NameOwnerChanged names the new
// owner, whose signals are applied from then on.
type Watch struct {
	bus     *godbus.Conn
	life    context.Context    // lifetime of bus; calls of the run loop derive from it
	end     context.CancelFunc // cancels life, closing bus
	sigs    chan *godbus.Signal
	reqs    chan request  // Resync and Refresh, served by run
	quit    chan struct{} // closed by Close
	done    chan struct{} // closed when run returns
	changed chan struct{} // buffered 1, coalesced notifications
	closing sync.Once

	mu   sync.Mutex        // guards snap, err and exits
	snap map[string]Status // published; replaced, never modified
	err  error             // why the watch ended
	// exits holds, per runtime name, the states in which a main process
	// was seen ended, oldest first, until Exits takes them (at most
	// maxExits each).
	exits map[string][]Status
	// exitSeen is the key of the last exit recorded per runtime name
	// (owned by the run goroutine).
	exitSeen map[string]string

	// Owned by the run goroutine (by subscribe until run starts).
	// owner is the unique name of org.freedesktop.systemd1: the only sender
	// whose unit signals are applied ("" before start: none is).
	owner string
	// forged counts the signals dropped for their sender.
	forged int
	state  map[string]Status // keyed by runtime name; derive runs at publish
	// touched holds the names whose state changed since the last publish.
	touched map[string]struct{}
	// read holds, per runtime name, the sequence of the reply that last
	// read the unit in full (or found it not loaded), while signals older
	// than that reply may still be queued; they are skipped for that unit.
	read map[string]godbus.Sequence
	// lastSig is the sequence of the last signal received.
	lastSig godbus.Sequence
	// settling holds the units whose previous published state is kept
	// until they are read in full or a newer state arrives (see settle).
	settling map[string]struct{}
	// pending holds the units that signals asked to read, read together
	// readDelay after the first (see flush).
	pending map[string]pendingRead
	// resyncDue is set by Reloading(false): resync at the end of the batch.
	resyncDue bool
	// nudged, when set (tests), replaces the wake-up calls of nudge.
	nudged func(name string, after time.Duration)
	// version is the manager's major version (0: unknown), read when the
	// watch starts; it chooses how a restart's failure is hidden (see
	// settleAll). Atomic: tests force another version while it runs.
	version atomic.Int64
}

// pendingRead is a read asked for by signals.
type pendingRead struct {
	full bool            // read in full (GetAll); else only if loaded (listed first)
	seq  godbus.Sequence // the last signal that asked: a full read after it serves
}

// request asks the run goroutine for a Resync (name "") or a Refresh.
type request struct {
	ctx   context.Context
	name  string
	reply chan reply // buffered 1
}

type reply struct {
	st  Status
	err error
}

// listedUnit is one entry of ListUnitsByPatterns, a(ssssssouso).
type listedUnit struct {
	Name        string
	Description string
	LoadState   string
	ActiveState string
	SubState    string
	Following   string
	Path        godbus.ObjectPath
	JobID       uint32
	JobType     string
	JobPath     godbus.ObjectPath
}

// subscribe implements Conn.Subscribe.
func subscribe(ctx context.Context, scope Scope, addr string) (*Watch, error) {
	ctx, cancel := withDefault(ctx, listTimeout)
	defer cancel()
	life, end := context.WithCancel(context.WithoutCancel(ctx))
	bus, err := connect(ctx, end, func() (*godbus.Conn, error) {
		// Sequential: signals arrive in order, queued without bound; the
		// default handler reorders them when the reader falls behind.
		return dialBus(life, scope, addr, godbus.WithSignalHandler(godbus.NewSequentialSignalHandler()))
	}, func(c *godbus.Conn) { c.Close() })
	if err != nil {
		end()
		return nil, fmt.Errorf("subscribe: %w", noBus("connect to the "+scope.String()+" bus", err))
	}
	w := newWatch(life, end)
	w.bus = bus
	if err := w.start(ctx, privateSocket(scope)); err != nil {
		bus.Close()
		end()
		return nil, fmt.Errorf("subscribe: %w", mapErr(err))
	}
	go w.run()
	return w, nil
}

// newWatch returns a Watch without a connection.
func newWatch(life context.Context, end context.CancelFunc) *Watch {
	return &Watch{
		life:     life,
		end:      end,
		sigs:     make(chan *godbus.Signal, 64),
		reqs:     make(chan request),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		changed:  make(chan struct{}, 1),
		snap:     map[string]Status{},
		exits:    map[string][]Status{},
		exitSeen: map[string]string{},
		state:    map[string]Status{},
		touched:  map[string]struct{}{},
		read:     map[string]godbus.Sequence{},
		settling: map[string]struct{}{},
		pending:  map[string]pendingRead{},
	}
}

// start registers for the signals, asks systemd to send them, and fills the
// cache (over the private socket at private when it can, see fill). Signals
// that arrive meanwhile wait in the queue, to be applied after the fill
// (those older than a unit's read are skipped for it).
func (w *Watch) start(ctx context.Context, private string) error {
	w.bus.Signal(w.sigs)
	const sender = "type='signal',sender='" + busName + "'"
	rules := []string{
		sender + ",interface='" + propertiesIface + "',member='PropertiesChanged',path_namespace='" + string(managerPath) + "/unit'",
		"type='signal',sender='" + driverName + "',interface='" + driverName + "',member='NameOwnerChanged',arg0='" + busName + "'",
	}
	for _, member := range []string{"UnitNew", "UnitRemoved", "JobRemoved", "Reloading"} {
		rules = append(rules, sender+",path='"+string(managerPath)+"',interface='"+managerIface+"',member='"+member+"'")
	}
	// The match rules and Subscribe go out together; the replies are
	// awaited after the last call is sent.
	ch := make(chan *godbus.Call, len(rules)+1)
	calls := make([]*godbus.Call, 0, len(rules)+1)
	for _, r := range rules {
		calls = append(calls, w.bus.BusObject().GoWithContext(ctx, "org.freedesktop.DBus.AddMatch", 0, ch, r))
	}
	// Without Subscribe, systemd sends unit signals only while some other
	// client is subscribed.
	calls = append(calls, w.bus.Object(busName, managerPath).GoWithContext(ctx, managerIface+".Subscribe", 0, ch))
	// systemd's pid, to check the private socket against.
	pidCall := w.bus.BusObject().GoWithContext(ctx, "org.freedesktop.DBus.GetConnectionUnixProcessID", 0, ch, busName)
	// The owner of systemd's name, whose signals are applied. Asked after
	// the match rules: a later change of owner is a NameOwnerChanged in the
	// queue.
	ownerCall := w.bus.BusObject().GoWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, ch, busName)
	// The manager's version: which properties a private fill can read.
	verCall := w.bus.Object(busName, managerPath).GoWithContext(ctx, propertiesIface+".Get", 0, ch, managerIface, "Version")
	for range len(calls) + 3 {
		<-ch
	}
	for i, c := range calls {
		switch {
		case c.Err == nil:
		case i < len(rules):
			return fmt.Errorf("add match %s: %w", rules[i], c.Err)
		default:
			return fmt.Errorf("%s.Subscribe: %w", managerIface, c.Err)
		}
	}
	if err := ownerCall.Store(&w.owner); err != nil {
		return fmt.Errorf("owner of %s: %w", busName, err)
	}
	var pid uint32
	if pidCall.Store(&pid) != nil || noPrivateFill.Load() {
		private = ""
	}
	var version int
	var v godbus.Variant
	if verCall.Store(&v) == nil {
		s, _ := v.Value().(string)
		version, _ = ParseVersion(s)
	}
	w.version.Store(int64(version))
	if err := w.fill(ctx, private, pid, version); err != nil {
		return err
	}
	w.publish()
	return nil
}

// fill reads every loaded socketley unit into the empty cache: one listing
// on the bus, then the properties over the private socket of systemd (pid)
// at private, if it can be reached and is the same systemd; over the bus
// (pipelined GetAll) otherwise, and for the units the private socket could
// not read. Errors reading some units are joined, the others are cached.
func (w *Watch) fill(ctx context.Context, private string, pid uint32, version int) error {
	rows, seq, err := w.listLoaded(ctx, unitPattern)
	if err != nil {
		return err
	}
	names := make([]string, len(rows))
	for i, u := range rows {
		names[i], _ = RuntimeName(u.Name)
	}
	if private != "" && len(rows) > 0 {
		names = w.fillPrivate(ctx, private, pid, rows, seq, privatePropsFor(version))
	}
	if err := w.readUnits(ctx, names); err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	return nil
}

// fillPrivate reads rows into the cache over the private socket, with two
// connections for many units: decoding the replies, not systemd, is what
// takes time, and each connection decodes on a goroutine of its own. It
// returns the names of the units it could not read.
func (w *Watch) fillPrivate(ctx context.Context, private string, pid uint32, rows []listedUnit, seq godbus.Sequence, props [][2]string) []string {
	parts := [][]listedUnit{rows}
	if len(rows) >= 2*privateInFlight {
		parts = [][]listedUnit{rows[:len(rows)/2], rows[len(rows)/2:]}
	}
	type result struct {
		sts     []Status
		missing []string
		err     error
	}
	results := make([]result, len(parts))
	var wg sync.WaitGroup
	for i, part := range parts {
		wg.Go(func() {
			conn, bc, err := dialPrivate(ctx, ctx, private, pid)
			if err != nil {
				results[i].err = err
				return
			}
			results[i].sts, results[i].missing = readPrivate(ctx, conn, bc, part, props)
			conn.Close()
		})
	}
	wg.Wait()
	var missing []string
	for i, r := range results {
		if r.err != nil {
			for _, u := range parts[i] {
				name, _ := RuntimeName(u.Name)
				missing = append(missing, name)
			}
			continue
		}
		privateFills.Add(1)
		for _, st := range r.sts {
			w.set(st.Name, st)
			// The states are the listing's: signals older than it are
			// reflected, the later ones are applied.
			w.markRead(st.Name, seq)
		}
		missing = append(missing, r.missing...)
	}
	return missing
}

// listLoaded lists the loaded socketley units whose names match patterns,
// with the sequence of the reply. ListUnitsByPatterns, unlike GetAll or
// ListUnitsByNames, never loads a unit.
func (w *Watch) listLoaded(ctx context.Context, patterns ...string) ([]listedUnit, godbus.Sequence, error) {
	var listed []listedUnit
	call := w.bus.Object(busName, managerPath).
		CallWithContext(ctx, managerIface+".ListUnitsByPatterns", 0, []string{}, patterns)
	if err := call.Store(&listed); err != nil {
		return nil, 0, fmt.Errorf("list %s: %w", patterns[0], mapErr(err))
	}
	out := listed[:0]
	for _, u := range listed {
		if _, ok := RuntimeName(u.Name); ok && u.LoadState != LoadNotFound {
			out = append(out, u)
		}
	}
	return out, call.ResponseSequence, nil
}

// Snapshot returns the cache, keyed by runtime name. Units that are not
// loaded are absent. The map is shared, never modified after it is
// published (a change publishes a new map), and must not be modified by the
// caller, nor the ExecStart slices in it. Snapshot makes no copy and takes
// no D-Bus call.
func (w *Watch) Snapshot() map[string]Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snap
}

// Changed returns a channel (buffered 1) that receives after the cache
// changed; several changes may coalesce into one receive. Read Snapshot then.
func (w *Watch) Changed() <-chan struct{} { return w.changed }

// Done returns a channel that is closed when the watch ends: the bus
// connection was lost, systemd left the bus, or Close was called. Err says
// which.
func (w *Watch) Done() <-chan struct{} { return w.done }

// Err returns nil while the watch runs, then why it ended: an error wrapping
// ErrNoBus (connection lost, systemd gone) or ErrWatchClosed.
func (w *Watch) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Resync checks the cache against one ListUnitsByPatterns round trip: units
// that are new, gone, or whose load/active/sub state differs are refetched
// (GetAll, pipelined) or dropped. A change that leaves the three states equal
// (a new MainPID after a missed restart) is not detected. Results: nil; a
// context error (default deadline 10 s); an error wrapping ErrNoBus when the
// watch has ended; the joined errors of units that could not be read.
func (w *Watch) Resync(ctx context.Context) error {
	_, err := w.ask(ctx, "", "resync")
	return err
}

// Refresh reads the runtime's unit in one GetAll round trip on the watch's
// connection and publishes it into the cache before it returns, without the
// settle delay. It is ordered with the signals: those sent before the read
// are not applied over it. Use it after a start or stop job, so that the
// next Snapshot agrees with systemd. Results: the unit's Status (as
// published); ErrNoSuchUnit when the unit is not loaded (it is then absent
// from the cache); ErrInvalid for a bad runtime name; a context error
// (default deadline 3 s); an error wrapping ErrNoBus when the watch has
// ended.
func (w *Watch) Refresh(ctx context.Context, name string) (Status, error) {
	if _, err := unitOf("refresh", name); err != nil {
		return Status{}, err
	}
	return w.ask(ctx, name, "refresh "+Name(name))
}

// ask sends a request to the run goroutine and waits for its reply.
func (w *Watch) ask(ctx context.Context, name, op string) (Status, error) {
	timeout := queryTimeout
	if name == "" {
		timeout = listTimeout
	}
	ctx, cancel := withDefault(ctx, timeout)
	defer cancel()
	req := request{ctx: ctx, name: name, reply: make(chan reply, 1)}
	select {
	case w.reqs <- req:
	case <-w.done:
		return Status{}, fmt.Errorf("%s: %w", op, w.Err())
	case <-ctx.Done():
		return Status{}, fmt.Errorf("%s: %w", op, ctx.Err())
	}
	select {
	case r := <-req.reply:
		return r.st, r.err
	case <-w.done:
		return Status{}, fmt.Errorf("%s: %w", op, w.Err())
	case <-ctx.Done():
		return Status{}, fmt.Errorf("%s: %w", op, ctx.Err())
	}
}

// Close ends the watch and its connection, and waits for its goroutine.
// Err is then ErrWatchClosed (unless the watch had ended before). Close
// always returns nil.
func (w *Watch) Close() error {
	w.closing.Do(func() {
		w.fail(ErrWatchClosed)
		close(w.quit)
		w.end()
		w.bus.Close()
	})
	<-w.done
	return nil
}

// fail records why the watch ends; the first reason wins.
func (w *Watch) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

// run applies signals and serves requests, one at a time, and publishes
// after each; the reads that signals ask for are done readDelay later.
func (w *Watch) run() {
	defer func() {
		w.end()
		w.bus.Close()
		close(w.done)
	}()
	reads := time.NewTimer(time.Hour)
	reads.Stop()
	defer reads.Stop()
	var readsDue <-chan time.Time // fires when the pending reads are due
	for {
		select {
		case <-w.quit:
			return
		case sig, ok := <-w.sigs:
			if !w.receive(sig, ok) || !w.receiveQueued() {
				return
			}
			if readsDue == nil && (len(w.pending) > 0 || w.resyncDue) {
				reads.Reset(readDelay)
				readsDue = reads.C
			}
		case req := <-w.reqs:
			r := w.serve(req)
			w.publish()
			req.reply <- r
			continue
		case <-readsDue:
			readsDue = nil
			w.flush()
		}
		w.publish()
	}
}

// serve runs a Resync or Refresh request.
func (w *Watch) serve(req request) reply {
	if req.name == "" {
		return reply{err: w.resync(req.ctx)}
	}
	unit := Name(req.name)
	call := w.bus.Object(busName, unitPath(unit)).CallWithContext(req.ctx, propertiesIface+".GetAll", 0, "")
	if err := w.apply(req.name, call); err != nil {
		if !errors.Is(err, ErrNoBus) && !isCtxErr(err) && !w.bus.Connected() {
			err = noBus("connection lost", err)
		}
		return reply{err: fmt.Errorf("refresh %s: %w", unit, err)}
	}
	st, ok := w.state[req.name]
	if !ok {
		return reply{err: fmt.Errorf("refresh %s: %w", unit, ErrNoSuchUnit)}
	}
	derive(&st)
	return reply{st: st}
}

// receive handles one value from the signal channel; false ends the watch.
func (w *Watch) receive(sig *godbus.Signal, ok bool) bool {
	if !ok {
		w.fail(noBus("watch: bus connection lost", nil))
		return false
	}
	if err := w.handle(sig); err != nil {
		w.fail(err)
		return false
	}
	return true
}

// receiveQueued handles the signals already queued (at most maxBatch), so
// that a burst is published once; false ends the watch.
func (w *Watch) receiveQueued() bool {
	for range maxBatch {
		select {
		case sig, ok := <-w.sigs:
			if !w.receive(sig, ok) {
				return false
			}
		default:
			return true
		}
	}
	return true
}

// publish makes the changed state visible and notifies Changed, if anything
// changed. A settling unit keeps its published state.
func (w *Watch) publish() {
	w.pruneRead()
	if len(w.touched) == 0 {
		return
	}
	var snap map[string]Status
	if len(w.touched) > len(w.state)/2 {
		// Most of it changed (the fill): build afresh.
		snap = make(map[string]Status, len(w.state))
		for name, st := range w.state {
			if _, held := w.settling[name]; held {
				if prev, ok := w.snap[name]; ok {
					snap[name] = prev
				}
				continue
			}
			derive(&st)
			snap[name] = st
		}
	} else {
		snap = maps.Clone(w.snap)
		if snap == nil {
			snap = map[string]Status{}
		}
		for name := range w.touched {
			if _, held := w.settling[name]; held {
				continue
			}
			if st, ok := w.state[name]; ok {
				derive(&st)
				snap[name] = st
			} else {
				delete(snap, name)
			}
		}
	}
	clear(w.touched)
	w.mu.Lock()
	w.snap = snap
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// pruneRead forgets the read marks that no queued signal can be older than.
func (w *Watch) pruneRead() {
	for name, seq := range w.read {
		if seq <= w.lastSig {
			delete(w.read, name)
		}
	}
}

// stale reports whether sig was sent before the last full read of name.
func (w *Watch) stale(name string, sig *godbus.Signal) bool {
	seq, ok := w.read[name]
	return ok && sig.Sequence != godbus.NoSequence && sig.Sequence < seq
}

// markRead records that name was read in full by the reply with sequence seq.
func (w *Watch) markRead(name string, seq godbus.Sequence) {
	if seq != godbus.NoSequence && seq > w.lastSig {
		w.read[name] = seq
	}
}

// handle applies one signal. It makes no D-Bus call: units to read are
// noted in pending, for flush. The error returned ends the watch.
func (w *Watch) handle(sig *godbus.Signal) error {
	if sig.Sequence > w.lastSig {
		w.lastSig = sig.Sequence
	}
	if !w.trusted(sig) {
		w.forged++
		return nil
	}
	switch sig.Name {
	case propertiesIface + ".PropertiesChanged":
		w.propertiesChanged(sig)
	case managerIface + ".UnitNew":
		// A unit that is only asked about is loaded as a not-found stub
		// (UnitNew, then UnitRemoved): listed first, never read directly.
		if name, ok := unitArg(sig, 0); ok && !w.stale(name, sig) {
			w.want(name, false, sig.Sequence)
		}
	case managerIface + ".UnitRemoved":
		if name, ok := unitArg(sig, 0); ok && !w.stale(name, sig) {
			w.drop(name)
			delete(w.pending, name)
		}
	case managerIface + ".JobRemoved":
		// JobRemoved(u id, o job, s unit, s result): the unit's state after
		// a start, stop or automatic restart, read in full.
		if name, ok := unitArg(sig, 2); ok && !w.stale(name, sig) {
			_, have := w.state[name]
			w.want(name, have, sig.Sequence)
		}
	case managerIface + ".Reloading":
		// Reloading(false): a daemon-reload finished; re-read what changed.
		if len(sig.Body) > 0 {
			if active, ok := sig.Body[0].(bool); ok && !active {
				w.resyncDue = true
			}
		}
	case driverName + ".NameOwnerChanged":
		// (name, old owner, new owner), from the bus driver (see trusted).
		if len(sig.Body) == 3 {
			name, _ := sig.Body[0].(string)
			owner, _ := sig.Body[2].(string)
			switch {
			case name != busName || owner == w.owner:
			case owner == "":
				// systemd left the bus (exit, re-exec): signals may be
				// lost from here on.
				return noBus("watch: systemd left the bus", nil)
			default:
				// Another connection took systemd's name: its signals
				// count from here on; what the old owner did last may
				// not have been signalled, so read everything again.
				w.owner = owner
				w.resyncDue = true
			}
		}
	}
	return nil
}

// trusted reports whether sig comes from whom it claims to: NameOwnerChanged
// from the bus driver, every other signal from the current owner of
// systemd's name. The bus sets the sender of every message, so it cannot be
// forged; a signal that a client addresses to the watch's connection reaches
// it whatever the match rules, and is not trusted.
func (w *Watch) trusted(sig *godbus.Signal) bool {
	if sig.Name == driverName+".NameOwnerChanged" {
		return sig.Sender == driverName
	}
	return w.owner != "" && sig.Sender == w.owner
}

// want notes that signal seq asks to read name: in full, or only if it is
// loaded.
func (w *Watch) want(name string, full bool, seq godbus.Sequence) {
	p := w.pending[name]
	w.pending[name] = pendingRead{full: p.full || full, seq: max(p.seq, seq)}
}

// flush reads the units that signals asked for: one ListUnitsByPatterns
// for those to read only if loaded, then GetAll calls, pipelined. The
// signals are older than these reads and reflected in them. A unit read in
// full meanwhile (a Refresh) is not read again. Errors are dropped: the
// next signal or Resync repairs the entry; a settling unit that could not
// be read is published as cached.
func (w *Watch) flush() {
	defer w.releaseSettling()
	if !w.resyncDue && len(w.pending) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(w.life, listTimeout)
	defer cancel()
	if w.resyncDue {
		w.resyncDue = false
		clear(w.pending)
		_ = w.resync(ctx)
		return
	}
	var full, ifLoaded []string
	for name, p := range w.pending {
		if p.full {
			full = append(full, name)
		} else {
			ifLoaded = append(ifLoaded, Name(name))
		}
	}
	clear(w.pending)
	if len(ifLoaded) > 0 {
		listed, seq, err := w.listLoaded(ctx, ifLoaded...)
		if err != nil {
			return
		}
		loaded := make(map[string]bool, len(listed))
		for _, u := range listed {
			loaded[u.Name] = true
		}
		for _, unit := range ifLoaded {
			name, _ := RuntimeName(unit)
			if loaded[unit] {
				full = append(full, name)
				continue
			}
			w.drop(name)
			w.markRead(name, seq)
		}
	}
	_ = w.readUnits(ctx, full)
}

// unitArg returns the runtime name in the string argument i of sig.
func unitArg(sig *godbus.Signal, i int) (string, bool) {
	if len(sig.Body) <= i {
		return "", false
	}
	unit, ok := sig.Body[i].(string)
	if !ok {
		return "", false
	}
	return RuntimeName(unit)
}

// up reports whether a unit in state s has, or is about to have or lose, a
// process: leaving such a state for failed or inactive is settled.
func up(s ActiveState) bool {
	switch s {
	case ActiveActive, ActiveActivating, ActiveDeactivating, ActiveReloading:
		return true
	}
	return false
}

// propertiesChanged applies PropertiesChanged(s iface, a{sv} changed,
// as invalidated) of a socketley unit.
func (w *Watch) propertiesChanged(sig *godbus.Signal) {
	name, ok := runtimeFromPath(sig.Path)
	if !ok || len(sig.Body) < 2 {
		return
	}
	iface, _ := sig.Body[0].(string)
	if iface != unitIface && iface != serviceIface {
		return
	}
	if w.stale(name, sig) {
		return
	}
	st, have := w.state[name]
	if !have {
		w.want(name, false, sig.Sequence)
		return
	}
	changed, ok := sig.Body[1].(map[string]godbus.Variant)
	if !ok {
		w.want(name, true, sig.Sequence)
		return
	}
	var invalidated []string
	if len(sig.Body) > 2 {
		invalidated, _ = sig.Body[2].([]string)
	}
	before, wasWaiting := st.ActiveState, waitingRestart(st)
	if err := applyVariants(&st, changed); err != nil {
		w.want(name, true, sig.Sequence)
		return
	}
	w.set(name, st)
	if waitingRestart(st) && !wasWaiting {
		w.nudge(name, st.RestartSec)
	}
	down := st.ActiveState == ActiveFailed || st.ActiveState == ActiveInactive
	switch {
	case !down:
		// Back up (a restart): the failure in between is never shown.
		w.unsettle(name)
	case !settleAll(int(w.version.Load())):
		// systemd ≥ 254: the sub-state says whether a restart follows.
		if beforeAutoRestart(st.SubState) {
			w.settle(name, sig.Sequence)
		} else {
			w.unsettle(name) // a final failed or inactive state: at once
		}
	case up(before):
		w.settle(name, sig.Sequence)
	}
	// systemd lists some properties (emits-invalidation) without a value.
	if slices.ContainsFunc(invalidated, tracked) {
		w.want(name, true, sig.Sequence)
	}
}

// settleAll reports whether a Watch of a manager of the given major version
// settles every unit that goes down from an up state (see settle), because
// the states do not tell a restart's failure from a final one: systemd
// before RestartSubStatesVersion (252: failed/failed, then
// activating/auto-restart; inactive/dead when the restart begins). An
// unknown version (0) is treated as such a manager: settling where it is
// not needed only delays a failure by readDelay, not settling where it is
// needed shows a restart as a failure. From RestartSubStatesVersion on (the
// generic path) only the states marked before-auto-restart are settled and
// a final failed or inactive state is published at once.
func settleAll(version int) bool { return version < RestartSubStatesVersion }

// beforeAutoRestart reports whether sub is a state that systemd ≥
// RestartSubStatesVersion passes through on its way to an automatic restart.
func beforeAutoRestart(sub SubState) bool {
	return sub == SubFailedBeforeAutoRestart || sub == SubDeadBeforeAutoRestart
}

// waitingRestart reports whether a unit waits for its automatic restart.
func waitingRestart(st Status) bool {
	return st.ActiveState == ActiveActivating && st.SubState == SubAutoRestart
}

// settle keeps the published state of name, a unit that was up and turned
// failed or inactive (signal seq), until a newer state of it arrives or it
// is read in full, readDelay later with the other pending reads. systemd
// goes through such states on its way to an automatic restart, in the same
// dispatch: after a crash failed, then activating/auto-restart; on 252 also
// inactive/dead between auto-restart and activating/start when the restart
// begins. The signals of the next state may reach the Watch arbitrarily
// later on a busy machine, but a read sent after the signal was received is
// answered after that dispatch, with the state systemd went on to. A unit
// that is really down is published when the read confirms it.
//
// Which states are settled depends on the version (settleAll): on 252 the
// states are those of a final failure, so every up → failed/inactive
// transition is settled (the workaround); from 254 on the sub-state names
// the transitional ones (failed-before-auto-restart,
// dead-before-auto-restart), and only those are settled.
func (w *Watch) settle(name string, seq godbus.Sequence) {
	w.settling[name] = struct{}{}
	w.want(name, true, seq)
}

// releaseSettling publishes the settling units as cached; flush calls it
// after its reads, which release the units they read.
func (w *Watch) releaseSettling() {
	for name := range w.settling {
		w.unsettle(name)
	}
}

// nudge wakes systemd up just after the automatic restart of name is due.
//
// systemd arms the restart timer with accuracy 0, which sd-event turns into
// its default of 250 ms: the restart runs at the first wake-up of systemd's
// event loop after RestartSec, and with nothing else to do that is a point
// of a per-boot 250 ms grid, up to RestartSec+250 ms after the exit. Any
// message makes the loop run and dispatch the elapsed timer. The timer was
// armed before systemd sent the signal that the Watch just got, so a Ping
// (no reply expected) RestartSec+1ms from now, and a second one 10 ms
// later, come after it is due.
//
// Not a 252-only workaround, so not gated on the version: measured with
// BenchmarkRestartNudge (RestartSec=100ms, median delay after RestartSec)
// on 252.38: 20 ms with the nudge, 145 ms without; on 254.26: 17 ms and
// 145 ms. Every service.c in the stored systemd sources arms the restart
// timer with accuracy 0 (service_arm_timer). Should a version arm it
// precisely, gate this on it in propertiesChanged.
func (w *Watch) nudge(name string, restartSec time.Duration) {
	for _, extra := range nudgeAfter {
		if w.nudged != nil {
			w.nudged(name, restartSec+extra)
			continue
		}
		time.AfterFunc(restartSec+extra, func() {
			select {
			case <-w.done:
			default:
				w.bus.Object(busName, managerPath).Go("org.freedesktop.DBus.Peer.Ping", godbus.FlagNoReplyExpected, nil)
			}
		})
	}
}

// resync implements Resync on the run goroutine.
func (w *Watch) resync(ctx context.Context) error {
	listed, seq, err := w.listLoaded(ctx, unitPattern)
	if err != nil {
		return fmt.Errorf("resync: %w", err)
	}
	seen := make(map[string]bool, len(listed))
	var stale []string
	for _, u := range listed {
		name, _ := RuntimeName(u.Name)
		seen[name] = true
		old, have := w.state[name]
		if have && old.LoadState == u.LoadState && old.ActiveState == u.ActiveState && old.SubState == u.SubState {
			continue
		}
		stale = append(stale, name)
	}
	for name := range w.state {
		if !seen[name] {
			w.drop(name)
			w.markRead(name, seq)
		}
	}
	if err := w.readUnits(ctx, stale); err != nil {
		return fmt.Errorf("resync: %w", err)
	}
	return nil
}

// readUnits reads the named units in full, keeping up to inFlight GetAll
// calls pending on the connection, and applies each reply as it comes.
// Units that cannot be read keep their entry; their errors are joined (the
// first maxErrors of them, then a count).
func (w *Watch) readUnits(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	ch := make(chan *godbus.Call, min(inFlight, len(names)))
	var errs []error
	failed := 0
	next, pending := 0, 0
	for next < len(names) || pending > 0 {
		for next < len(names) && pending < cap(ch) {
			w.bus.Object(busName, unitPath(Name(names[next]))).
				GoWithContext(ctx, propertiesIface+".GetAll", 0, ch, "")
			next++
			pending++
		}
		// Every call is delivered once: with its reply, or with the error
		// of a send failure, a lost connection or ctx.
		call := <-ch
		pending--
		name, _ := runtimeFromPath(call.Path)
		if err := w.apply(name, call); err != nil {
			if failed++; failed <= maxErrors {
				errs = append(errs, fmt.Errorf("status %s: %w", Name(name), err))
			}
		}
	}
	if failed > maxErrors {
		errs = append(errs, fmt.Errorf("%d more units could not be read", failed-maxErrors))
	}
	return errors.Join(errs...)
}

// apply stores the result of a GetAll call of name: the unit, or its
// absence. A full read ends the unit's settling: a GetAll never sees the
// transient states of a restart. Errors are not prefixed with the unit.
func (w *Watch) apply(name string, call *godbus.Call) error {
	st, err := statusFromReply(call)
	switch {
	case errors.Is(err, ErrNoSuchUnit):
		w.drop(name)
	case err != nil:
		return err
	default:
		w.set(name, st)
		w.unsettle(name)
	}
	w.markRead(name, call.ResponseSequence)
	if p, ok := w.pending[name]; ok && call.ResponseSequence > p.seq {
		delete(w.pending, name) // this read serves it
	}
	return nil
}

// statusFromReply decodes the reply of a GetAll call of a unit.
func statusFromReply(call *godbus.Call) (Status, error) {
	if call.Err != nil {
		return Status{}, mapErr(call.Err)
	}
	if len(call.Body) != 1 {
		return Status{}, fmt.Errorf("GetAll returned %d values, want 1", len(call.Body))
	}
	props, ok := call.Body[0].(map[string]godbus.Variant)
	if !ok {
		return Status{}, fmt.Errorf("GetAll returned %T, want a{sv}", call.Body[0])
	}
	return decodeReply(func(k string) (any, bool) {
		v, ok := props[k]
		if !ok {
			return nil, false
		}
		return v.Value(), true
	})
}

// set stores a unit's state; a state equal to the cached one is no change.
func (w *Watch) set(name string, st Status) {
	if old, ok := w.state[name]; ok && sameStatus(old, st) {
		return
	}
	w.state[name] = st
	w.touched[name] = struct{}{}
	w.noteExit(name, st)
}

// maxExits bounds the exits Watch keeps per unit until Exits takes them.
const maxExits = 16

// noteExit records st when it shows a main process that ended and was not
// recorded yet. The published state may never show it: the failure
// between a crash and its automatic restart is settled away (see settle),
// and a busy reader of Snapshot may miss a short state anyway.
func (w *Watch) noteExit(name string, st Status) {
	if st.MainPID != 0 || st.ExecMainCode == 0 || st.ExecMainStart.IsZero() {
		return
	}
	key := fmt.Sprintf("%d/%d/%d", st.ExecMainStart.UnixNano(), st.ExecMainCode, st.ExecMainStatus)
	if w.exitSeen[name] == key {
		return
	}
	w.exitSeen[name] = key
	// Not derive: its start-limit guess (failed, a restart policy, a
	// restart before) is wrong for the failure a restart follows.
	st.Restarting = st.ActiveState == ActiveActivating && (st.SubState == SubAutoRestart || st.SubState == SubAutoRestartQueued)
	w.mu.Lock()
	defer w.mu.Unlock()
	q := append(w.exits[name], st)
	if len(q) > maxExits {
		q = q[len(q)-maxExits:]
	}
	w.exits[name] = q
}

// Exits returns, and forgets, the states in which the main process of a
// unit was seen ended since the last call, keyed by runtime name, oldest
// first: every exit the Watch saw, also those the published state never
// showed (a crash followed at once by its automatic restart). At most the
// last 16 per unit are kept between calls.
func (w *Watch) Exits() map[string][]Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.exits) == 0 {
		return nil
	}
	out := w.exits
	w.exits = map[string][]Status{}
	return out
}

// unsettle ends the settling of name; its state is published again.
func (w *Watch) unsettle(name string) {
	if _, held := w.settling[name]; held {
		delete(w.settling, name)
		w.touched[name] = struct{}{}
	}
}

// sameStatus reports whether a and b are equal (a test checks that every
// field is compared).
func sameStatus(a, b Status) bool {
	return a.Unit == b.Unit && a.Name == b.Name && a.LoadState == b.LoadState &&
		a.ActiveState == b.ActiveState && a.SubState == b.SubState && a.Result == b.Result &&
		a.Restart == b.Restart && a.RestartSec == b.RestartSec && a.MainPID == b.MainPID &&
		a.NRestarts == b.NRestarts && a.ExecMainCode == b.ExecMainCode && a.ExecMainStatus == b.ExecMainStatus &&
		a.ActiveEnter.Equal(b.ActiveEnter) && a.ExecMainStart.Equal(b.ExecMainStart) &&
		a.StateChange.Equal(b.StateChange) && a.RestartNext == b.RestartNext && a.RestartSteps == b.RestartSteps &&
		slices.Equal(a.ExecStart, b.ExecStart) && a.Restarting == b.Restarting
}

// drop removes a unit from the cache.
func (w *Watch) drop(name string) {
	if _, ok := w.state[name]; ok {
		delete(w.state, name)
		delete(w.exitSeen, name)
		w.touched[name] = struct{}{}
	}
	delete(w.settling, name)
}
