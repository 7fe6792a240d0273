package units

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	godbus "github.com/godbus/dbus/v5"
)

const (
	managerIface    = "org.freedesktop.systemd1.Manager"
	unitIface       = "org.freedesktop.systemd1.Unit"
	serviceIface    = "org.freedesktop.systemd1.Service"
	propertiesIface = "org.freedesktop.DBus.Properties"

	// settleDelay: after a unit turns failed or inactive, the Watch waits
	// this long for more signals before publishing. systemd 252 sends a
	// crash as failed, then activating/auto-restart in the same
	// millisecond; publishing in between would show a restart as a failure.
	settleDelay = 50 * time.Millisecond
	// maxBurst bounds how long a stream of signals can hold back publishing
	// (and Resync requests).
	maxBurst = time.Second
)

// Watch is a live cache of every loaded socketley-*.service unit, kept up to
// date by systemd's signals (PropertiesChanged on the Unit and Service
// interfaces, UnitNew, UnitRemoved, JobRemoved) on a connection of its own.
// Reading it costs no D-Bus call. Its methods are safe for concurrent use.
//
// The cache is published as a whole after each burst of signals; a unit that
// is on its way to an automatic restart is never published as failed.
// Signals lost while the bus connection is down are not replayed: when Done
// is closed, dial again, Subscribe again (which fills the new cache).
type Watch struct {
	bus      *godbus.Conn
	life     context.Context    // lifetime of bus; calls of the run loop derive from it
	end      context.CancelFunc // cancels life, closing bus
	sigs     chan *godbus.Signal
	resyncCh chan resyncRequest
	quit     chan struct{} // closed by Close
	done     chan struct{} // closed when run returns
	changed  chan struct{} // buffered 1, coalesced notifications
	closing  sync.Once

	mu   sync.Mutex        // guards snap and err
	snap map[string]Status // published copy; replaced, never modified
	err  error             // why the watch ended

	// Owned by the run goroutine (by subscribe until run starts).
	state  map[string]Status // keyed by runtime name; derive runs at publish
	dirty  bool              // state differs from snap
	settle time.Time         // do not publish before this time
}

type resyncRequest struct {
	ctx   context.Context
	reply chan error
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
	w := &Watch{
		bus:      bus,
		life:     life,
		end:      end,
		sigs:     make(chan *godbus.Signal, 64),
		resyncCh: make(chan resyncRequest),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		changed:  make(chan struct{}, 1),
		snap:     map[string]Status{},
		state:    map[string]Status{},
	}
	if err := w.start(ctx); err != nil {
		bus.Close()
		end()
		return nil, fmt.Errorf("subscribe: %w", mapErr(err))
	}
	go w.run()
	return w, nil
}

// start registers for the signals, asks systemd to send them, and fills the
// cache. Signals that arrive meanwhile wait in the queue, to be applied after
// the fill.
func (w *Watch) start(ctx context.Context) error {
	w.bus.Signal(w.sigs)
	sender := godbus.WithMatchSender(busName)
	rules := [][]godbus.MatchOption{
		{sender, godbus.WithMatchInterface(propertiesIface), godbus.WithMatchMember("PropertiesChanged"),
			godbus.WithMatchPathNamespace(managerPath + "/unit")},
		{godbus.WithMatchSender("org.freedesktop.DBus"), godbus.WithMatchInterface("org.freedesktop.DBus"),
			godbus.WithMatchMember("NameOwnerChanged"), godbus.WithMatchArg(0, busName)},
	}
	for _, member := range []string{"UnitNew", "UnitRemoved", "JobRemoved", "Reloading"} {
		rules = append(rules, []godbus.MatchOption{sender, godbus.WithMatchObjectPath(managerPath),
			godbus.WithMatchInterface(managerIface), godbus.WithMatchMember(member)})
	}
	for _, r := range rules {
		if err := w.bus.AddMatchSignalContext(ctx, r...); err != nil {
			return fmt.Errorf("add match: %w", err)
		}
	}
	// Without Subscribe, systemd sends unit signals only while some other
	// client is subscribed.
	if err := w.bus.Object(busName, managerPath).CallWithContext(ctx, managerIface+".Subscribe", 0).Store(); err != nil {
		return fmt.Errorf("%s.Subscribe: %w", managerIface, err)
	}
	if err := w.resync(ctx); err != nil {
		return err
	}
	w.publish()
	return nil
}

// Snapshot returns a copy of the cache, keyed by runtime name. Units that
// are not loaded are absent.
func (w *Watch) Snapshot() map[string]Status {
	w.mu.Lock()
	snap := w.snap
	w.mu.Unlock()
	out := make(map[string]Status, len(snap))
	for k, v := range snap {
		v.ExecStart = slices.Clone(v.ExecStart)
		out[k] = v
	}
	return out
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
// (one GetAll each) or dropped. A change that leaves the three states equal
// (a new MainPID after a missed restart) is not detected. Results: nil; a
// context error (default deadline 10 s); an error wrapping ErrNoBus when the
// watch has ended; the joined errors of units that could not be read.
func (w *Watch) Resync(ctx context.Context) error {
	ctx, cancel := withDefault(ctx, listTimeout)
	defer cancel()
	req := resyncRequest{ctx: ctx, reply: make(chan error, 1)}
	select {
	case w.resyncCh <- req:
	case <-w.done:
		return fmt.Errorf("resync: %w", w.Err())
	case <-ctx.Done():
		return fmt.Errorf("resync: %w", ctx.Err())
	}
	select {
	case err := <-req.reply:
		return err
	case <-w.done:
		return fmt.Errorf("resync: %w", w.Err())
	case <-ctx.Done():
		return fmt.Errorf("resync: %w", ctx.Err())
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

// run applies signals and resync requests to the cache, one at a time.
func (w *Watch) run() {
	defer func() {
		w.end()
		w.bus.Close()
		close(w.done)
	}()
	for {
		select {
		case <-w.quit:
			return
		case sig, ok := <-w.sigs:
			if !w.receive(sig, ok) || !w.drain() {
				return
			}
			w.publish()
		case req := <-w.resyncCh:
			err := w.resync(req.ctx)
			w.publish()
			req.reply <- err
		}
	}
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

// drain handles the signals already queued, and waits out the settle time,
// so that a burst is published once (but at least every maxBurst); false
// ends the watch.
func (w *Watch) drain() bool {
	limit := time.Now().Add(maxBurst)
	for {
		wait := min(time.Until(w.settle), time.Until(limit))
		if time.Now().After(limit) {
			return true
		}
		if wait <= 0 {
			select {
			case sig, ok := <-w.sigs:
				if !w.receive(sig, ok) {
					return false
				}
				continue
			default:
				return true
			}
		}
		t := time.NewTimer(wait)
		select {
		case sig, ok := <-w.sigs:
			t.Stop()
			if !w.receive(sig, ok) {
				return false
			}
		case <-t.C:
		case <-w.quit:
			t.Stop()
			return false
		}
	}
}

// publish makes the state visible and notifies Changed, if anything changed.
func (w *Watch) publish() {
	if !w.dirty {
		return
	}
	w.dirty = false
	snap := make(map[string]Status, len(w.state))
	for name, st := range w.state {
		derive(&st)
		snap[name] = st
	}
	w.mu.Lock()
	w.snap = snap
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// handle applies one signal. Errors reading a unit are dropped (the next
// signal or Resync repairs the entry); the error returned ends the watch.
func (w *Watch) handle(sig *godbus.Signal) error {
	ctx, cancel := context.WithTimeout(w.life, queryTimeout)
	defer cancel()
	switch sig.Name {
	case propertiesIface + ".PropertiesChanged":
		w.propertiesChanged(ctx, sig)
	case managerIface + ".UnitNew":
		if name, ok := unitArg(sig, 0); ok {
			_ = w.fetchIfLoaded(ctx, name)
		}
	case managerIface + ".UnitRemoved":
		if name, ok := unitArg(sig, 0); ok {
			w.drop(name)
		}
	case managerIface + ".JobRemoved":
		// JobRemoved(u id, o job, s unit, s result): the unit's state after
		// a start, stop or automatic restart, read in full.
		if name, ok := unitArg(sig, 2); ok {
			if _, have := w.state[name]; have {
				_ = w.refetch(ctx, name)
			} else {
				_ = w.fetchIfLoaded(ctx, name)
			}
		}
	case managerIface + ".Reloading":
		// Reloading(false): a daemon-reload finished; re-read what changed.
		if len(sig.Body) > 0 {
			if active, ok := sig.Body[0].(bool); ok && !active {
				_ = w.resync(ctx)
			}
		}
	case "org.freedesktop.DBus.NameOwnerChanged":
		// (name, old owner, new owner): systemd left the bus (exit,
		// re-exec); signals may be lost from here on.
		if len(sig.Body) == 3 {
			name, _ := sig.Body[0].(string)
			owner, _ := sig.Body[2].(string)
			if name == busName && owner == "" {
				return noBus("watch: systemd left the bus", nil)
			}
		}
	}
	return nil
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

// propertiesChanged applies PropertiesChanged(s iface, a{sv} changed,
// as invalidated) of a socketley unit.
func (w *Watch) propertiesChanged(ctx context.Context, sig *godbus.Signal) {
	name, ok := runtimeFromPath(sig.Path)
	if !ok || len(sig.Body) < 2 {
		return
	}
	iface, _ := sig.Body[0].(string)
	if iface != unitIface && iface != serviceIface {
		return
	}
	st, have := w.state[name]
	if !have {
		_ = w.fetchIfLoaded(ctx, name)
		return
	}
	changed, ok := sig.Body[1].(map[string]godbus.Variant)
	if !ok {
		_ = w.refetch(ctx, name)
		return
	}
	var invalidated []string
	if len(sig.Body) > 2 {
		invalidated, _ = sig.Body[2].([]string)
	}
	before := st.ActiveState
	if err := applyVariants(&st, changed); err != nil {
		_ = w.refetch(ctx, name)
		return
	}
	w.state[name] = st
	w.dirty = true
	if st.ActiveState != before && (st.ActiveState == ActiveFailed || st.ActiveState == ActiveInactive) {
		w.settle = time.Now().Add(settleDelay)
	}
	// systemd lists some properties (emits-invalidation) without a value.
	if slices.ContainsFunc(invalidated, tracked) {
		_ = w.refetch(ctx, name)
	}
}

// resync implements Resync on the run goroutine (or before it starts).
func (w *Watch) resync(ctx context.Context) error {
	listed, err := w.list(ctx, unitPattern)
	if err != nil {
		return fmt.Errorf("resync: list %s: %w", unitPattern, mapErr(err))
	}
	seen := make(map[string]bool, len(listed))
	var errs []error
	for _, u := range listed {
		name, ok := RuntimeName(u.Name)
		if !ok || u.LoadState == LoadNotFound {
			continue
		}
		seen[name] = true
		old, have := w.state[name]
		if have && old.LoadState == u.LoadState && old.ActiveState == u.ActiveState && old.SubState == u.SubState {
			continue
		}
		if err := w.refetch(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("resync: %w", err))
		}
	}
	for name := range w.state {
		if !seen[name] {
			w.drop(name)
		}
	}
	return errors.Join(errs...)
}

// refetch reads a unit in full into the cache, or drops it if it is gone.
func (w *Watch) refetch(ctx context.Context, name string) error {
	unit := Name(name)
	var props map[string]godbus.Variant
	err := w.bus.Object(busName, unitPath(unit)).
		CallWithContext(ctx, propertiesIface+".GetAll", 0, "").Store(&props)
	if err != nil {
		return fmt.Errorf("status %s: %w", unit, mapErr(err))
	}
	values := make(map[string]any, len(props))
	for k, v := range props {
		values[k] = v.Value()
	}
	st, err := statusFrom(unit, values)
	if errors.Is(err, ErrNoSuchUnit) {
		w.drop(name)
		return nil
	}
	if err != nil {
		return err
	}
	w.state[name] = st
	w.dirty = true
	return nil
}

// fetchIfLoaded refetches a unit only if it is loaded. Reading a unit that
// is not loaded makes systemd load a not-found stub (and send UnitNew for
// it), so UnitNew must not lead straight to GetAll: that could loop.
func (w *Watch) fetchIfLoaded(ctx context.Context, name string) error {
	unit := Name(name)
	listed, err := w.list(ctx, unit)
	if err != nil {
		return fmt.Errorf("list %s: %w", unit, mapErr(err))
	}
	for _, u := range listed {
		if u.Name == unit && u.LoadState != LoadNotFound {
			return w.refetch(ctx, name)
		}
	}
	w.drop(name)
	return nil
}

// drop removes a unit from the cache.
func (w *Watch) drop(name string) {
	if _, ok := w.state[name]; ok {
		delete(w.state, name)
		w.dirty = true
	}
}

// list calls ListUnitsByPatterns, which (unlike ListUnitsByNames or GetAll)
// never loads a unit.
func (w *Watch) list(ctx context.Context, pattern string) ([]listedUnit, error) {
	var out []listedUnit
	err := w.bus.Object(busName, managerPath).
		CallWithContext(ctx, managerIface+".ListUnitsByPatterns", 0, []string{}, []string{pattern}).Store(&out)
	return out, err
}
