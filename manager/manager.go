package manager

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// Defaults for Config fields left zero.
const (
	DefaultTick          = 2 * time.Second
	DefaultAttachTimeout = wire.DefaultAttachTimeout
	DefaultHealthFails   = wire.DefaultHealthFails
	// reconcileBudget bounds the whole boot reconcile, so that a dead peer
	// cannot stall startup.
	reconcileBudget = 2 * time.Minute
)

// Config configures a daemon.
type Config struct {
	// Mode is paths.System or paths.User.
	Mode paths.Mode
	// Socket is the control socket path.
	Socket string
	// StateDir holds the registry (registry.json, its journal
	// registry-GEN.log and the last good copy registry.json.prev) and the
	// daemon lock.
	StateDir string
	// Recover starts from registry.json.prev when registry.json is
	// corrupt (the corrupt file is moved aside, not overwritten).
	Recover bool
	// SocketGroup, in system mode, is the group allowed to use the socket
	// (default "socketley"); callers are root or members of it.
	SocketGroup string
	// Dial connects to systemd.
	Dial DialFunc
	// Tick is the health-check interval (default 2 s).
	Tick time.Duration
	// RestartBackoff is BackoffAuto (""), BackoffSystemd or BackoffDaemon:
	// who delays the restarts of a crash-looping runtime.
	RestartBackoff string
	// MaxRuntimesPerUser is how many runtimes (managed and attached) one
	// non-root uid may have registered; 0 = no limit. The CLI's default is
	// DefaultMaxRuntimesPerUser.
	MaxRuntimesPerUser int
	// Version is reported to clients.
	Version wire.VersionInfo
	// OnRequest, when set, is called once each control request's reply is
	// built, with its command (as parsed; "" when the line did not parse),
	// the class of its error ("" on success) and the time from its line to
	// its reply (the metrics).
	OnRequest func(cmd string, class wire.ErrorClass, d time.Duration)
	// Logger receives the daemon's log; nil discards it.
	Logger *slog.Logger
	// JournalSocket is where events are written to the journal (native
	// protocol); "" means $SOCKETLEY_JOURNAL_SOCKET, else
	// DefaultJournalSocket; "-" writes no events to the journal.
	JournalSocket string
}

// Manager is a running daemon. Create it with New and run it with Run.
type Manager struct {
	cfg   Config
	log   *slog.Logger
	store *Store
	locks keyedMutex
	// booted is set once the reconcile at the daemon's start is done: an
	// Entry.Prev found after that is a confirmed replace whose record
	// failed, never one a dead daemon left (see finishReplace).
	booted atomic.Bool

	// wmu serializes registry changes (update): it is held across the
	// journal write and its fsync, which mu never is.
	wmu sync.Mutex
	// mu guards reg, obs, sd and watch. It is held only briefly, never
	// across a systemd job or a disk write; per-name locks (locks)
	// serialize operations on one runtime.
	mu    sync.RWMutex
	reg   *Registry
	obs   map[string]*observed
	sd    Systemd
	watch Watcher
	// native is set when units get systemd's own restart backoff
	// (RestartSteps=, systemd ≥ 254); decided at each connect.
	native bool

	// heals tracks health restarts and backoff starts in flight; Run waits
	// for them.
	heals sync.WaitGroup
	// starting holds the names whose backoff start is in flight (guarded
	// by mu); wake makes the loop run supervise at once.
	starting map[string]bool
	wake     chan struct{}
	// upgrading holds the names whose upgrade is under way (guarded by
	// mu): a reconcile meanwhile (after a bus reconnect) must not take its
	// unconfirmed switch for an interrupted one and switch back.
	upgrading map[string]bool

	// chMu guards chg, the channel closed at the next change of what a
	// runtime's view is made of (see changes).
	chMu sync.Mutex
	chg  chan struct{}

	// gate holds back requests during startup (nil: none held back). Run
	// sets it before serving and never changes it.
	gate *bootGate

	// groupMu guards group, the gid allowed in system mode (-1 while the
	// group is unknown: it is looked up again until it exists).
	groupMu sync.Mutex
	group   int

	// credOf reads a connection's caller (nil: peerCred); tests replace it.
	credOf func(*net.UnixConn) (Caller, error)

	// usage reads what the runtimes use (nil: not sampled); the tick takes
	// a copy for each pass, so it is never changed after New.
	usage *usageReader
	// events is the event log (events.go).
	events *eventLog
	// streams counts the events -f streams of non-root callers.
	streams streamSlots
	// seen is what observeUnits last saw of each unit (nil until its
	// first pass); only the loop goroutine uses it.
	seen map[string]unitSeen
	// exitQueue holds the exits the watch reported for runtimes busy with
	// a command, until observeUnits looks at them (loop goroutine only).
	exitQueue map[string][]units.Status
}

// observed holds what the daemon saw of an entry; it is not persisted.
type observed struct {
	portDown       bool // the last TCP probe of the attached port failed
	unhealthyTicks int  // consecutive ticks classified unhealthy
	healing        bool // a health restart is in progress
	// runningSince is when the health tick first saw the runtime running
	// (healthy) with main process runningPID at every tick since; zero
	// when it is not running.
	runningSince time.Time
	runningPID   int
	// exited is set by the caller of classify, for an attached (unmanaged)
	// entry, when its process is gone; it is never stored.
	exited bool
	// usage is the last sample of what the runtime's processes use (nil:
	// none), replaced whole at each tick, never modified (views share it).
	usage *usageSample
}

// New validates cfg and prepares a daemon; nothing is touched until Run.
func New(cfg Config) (*Manager, error) {
	if cfg.Mode != paths.System && cfg.Mode != paths.User {
		return nil, errorf(ErrInvalid, "daemon mode must be system or user")
	}
	if cfg.Socket == "" || cfg.StateDir == "" || cfg.Dial == nil {
		return nil, errorf(ErrInvalid, "socket, state directory and systemd dialer are required")
	}
	if cfg.Tick <= 0 {
		cfg.Tick = DefaultTick
	}
	switch cfg.RestartBackoff {
	case "":
		cfg.RestartBackoff = BackoffAuto
	case BackoffAuto, BackoffSystemd, BackoffDaemon:
	default:
		return nil, errorf(ErrInvalid, "restart backoff %q: use auto, systemd or daemon", cfg.RestartBackoff)
	}
	if cfg.SocketGroup == "" {
		cfg.SocketGroup = "socketley"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch cfg.JournalSocket {
	case "":
		cfg.JournalSocket = cmp.Or(os.Getenv("SOCKETLEY_JOURNAL_SOCKET"), DefaultJournalSocket)
	case "-":
		cfg.JournalSocket = ""
	}
	return &Manager{
		events:    newEventLog(&journalWriter{path: cfg.JournalSocket, log: log}, time.Now()),
		cfg:       cfg,
		log:       log,
		store:     &Store{dir: cfg.StateDir},
		obs:       map[string]*observed{},
		group:     -1,
		starting:  map[string]bool{},
		upgrading: map[string]bool{},
		wake:      make(chan struct{}, 1),
		usage:     newUsageReader(),
	}, nil
}

// Run runs the daemon until ctx is done. Order matters:
//  1. lock the state directory, clean temp files of an interrupted write,
//     load the registry;
//  2. take the control socket (inherited from socketley.socket, or bound
//     here), so that a second daemon on the same socket stops before it has
//     touched systemd, and connections are accepted from now on;
//  3. connect to systemd and reconcile (start the persisted runtimes). Meanwhile
//     requests are served as soon as what they need is there (see bootGate):
//     a runtime started by the reconcile attaches at once, nothing is refused;
//  4. READY=1, then the health tick.
//
// On return the managed units keep running; the daemon only stops listening.
func (m *Manager) Run(ctx context.Context) error {
	perm := os.FileMode(0o700)
	if m.cfg.Mode == paths.System {
		perm = 0o755
	}
	if err := os.MkdirAll(m.cfg.StateDir, perm); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	unlock, err := lockDir(m.cfg.StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	if removed, err := m.store.cleanTemp(); err != nil {
		m.log.Warn("clean stale temp files", "err", err)
	} else if len(removed) > 0 {
		m.log.Info("removed temp files of an interrupted registry write", "files", removed)
	}
	reg, err := m.store.Load()
	var corrupt *CorruptError
	if errors.As(err, &corrupt) && m.cfg.Recover {
		m.log.Warn("state file unreadable; --recover: starting from the last good copy", "err", err)
		var aside string
		reg, aside, err = m.store.Recover()
		if err == nil {
			m.log.Warn("recovered the registry from the last good copy and its journal; the unreadable file was moved aside", "moved_to", aside, "runtimes", reg.len())
		}
	}
	if err != nil {
		if !m.cfg.Recover && errors.As(err, &corrupt) && corrupt.Path == m.store.Path() {
			if _, serr := os.Stat(filepath.Join(m.cfg.StateDir, prevFile)); serr == nil {
				err = fmt.Errorf("%w\nthe last good copy %s is kept: socketley daemon --recover starts from it and the journal after it (moving the unreadable file aside)", err, filepath.Join(m.cfg.StateDir, prevFile))
			}
		}
		return err
	}
	defer m.store.Close()
	m.mu.Lock() // Runtimes may read it from another goroutine (metrics)
	m.reg = reg
	m.mu.Unlock()

	sock, err := m.listen()
	if err != nil {
		return err
	}
	defer sock.close()
	m.log.Info("listening", "socket", m.cfg.Socket, "inherited", sock.inherited)
	notify(fmt.Sprintf("STATUS=connecting to systemd and reconciling %d runtimes", reg.len()))

	// Requests are served from here on; the gate holds back those that need
	// systemd or a finished reconcile (m.gate is set before serve starts and
	// never changes).
	m.gate = newBootGate()
	var wg sync.WaitGroup
	// The server's context outlives ctx by the drain (see drainWait).
	srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan struct{})
	// Deferred in this order so that on return the server drains and stops
	// first, then the systemd connection closes, then the socket, then the
	// state lock.
	defer m.disconnect()
	defer func() {
		close(m.gate.draining)
		_ = sock.ln.Close()
		select {
		case <-served:
		case <-time.After(drainWait):
			m.log.Warn("requests still in flight after the drain; closing them", "wait", drainWait)
		}
		stopSrv()
		wg.Wait()
		m.heals.Wait()
	}()
	wg.Add(1)
	go func() { defer wg.Done(); defer close(served); m.serve(srvCtx, sock.ln) }()

	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = m.connect(dctx)
	cancel()
	if err != nil {
		return err
	}
	close(m.gate.connected)

	rctx, cancel := context.WithTimeout(ctx, reconcileBudget)
	m.reconcile(rctx)
	cancel()
	m.booted.Store(true)
	// The event observer's first pass takes note of the units as they are
	// now, before any request may change them: an exit after this point is
	// an event even if it comes before the loop's first wake.
	m.observeUnits()
	close(m.gate.reconciled)

	m.log.Info("daemon ready", "socket", m.cfg.Socket, "mode", m.cfg.Mode.String(),
		"state", m.store.Path(), "runtimes", m.count(), "limits", m.describeLimits(), "version", m.cfg.Version.Version)
	notify("READY=1\nSTATUS=listening")

	wg.Add(1)
	go func() { defer wg.Done(); m.loop(ctx) }()
	<-ctx.Done()
	m.log.Info("shutting down; managed units keep running")
	return nil
}

// count returns the number of registry entries.
func (m *Manager) count() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.reg.len()
}

// bootGate holds back requests that arrive while the daemon starts: the
// socket accepts connections before the daemon has connected to systemd and
// reconciled, so nothing is refused, and each request waits for what it needs.
type bootGate struct {
	connected  chan struct{} // closed once systemd is connected and watched
	reconciled chan struct{} // closed once the boot reconcile has finished
	draining   chan struct{} // closed when the daemon shuts down
}

func newBootGate() *bootGate {
	return &bootGate{connected: make(chan struct{}), reconciled: make(chan struct{}), draining: make(chan struct{})}
}

// drainChan returns the channel closed at shutdown (nil without a gate).
func (g *bootGate) drainChan() <-chan struct{} {
	if g == nil {
		return nil
	}
	return g.draining
}

// await waits until req may run. version needs nothing; reads and a managed
// attach (from a runtime the reconcile may be starting right now: it waits
// for that runtime's lock, not for the whole reconcile) need systemd;
// everything that changes the registry waits for the reconcile, which works
// from a copy of it.
func (g *bootGate) await(ctx context.Context, req wire.Request) error {
	if g == nil {
		return nil
	}
	var ch chan struct{}
	switch {
	case req.Cmd == wire.CmdVersion:
		return nil
	case req.Cmd == wire.CmdList, req.Cmd == wire.CmdPS, req.Cmd == wire.CmdShow, req.Cmd == wire.CmdStats,
		req.Cmd == wire.CmdAttach && req.Attach != nil && req.Attach.Managed:
		ch = g.connected
	default:
		ch = g.reconciled
	}
	if closed(ch) {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return errorf(ErrUnavailable, "the socketley daemon is shutting down before it finished starting; try again")
	}
}

// connect dials systemd and starts the unit watch.
func (m *Manager) connect(ctx context.Context) error {
	sd, err := m.cfg.Dial(ctx)
	if err != nil {
		return fmt.Errorf("connect to the systemd %s manager: %w", m.cfg.Mode, err)
	}
	w, err := sd.Watch(ctx)
	if err != nil {
		_ = sd.Close()
		return fmt.Errorf("watch socketley units: %w", err)
	}
	v, verr := sd.ManagerVersion()
	native, why := chooseBackoff(m.cfg.RestartBackoff, v, verr)
	if native {
		m.log.Info("restart backoff: systemd's own (RestartSteps=)", "why", why)
	} else {
		m.log.Info("restart backoff: the daemon's (start limit + delayed starts)", "why", why)
	}
	m.mu.Lock()
	m.sd, m.watch, m.native = sd, w, native
	m.mu.Unlock()
	m.changed()
	return nil
}

func (m *Manager) disconnect() {
	m.mu.Lock()
	sd, w := m.sd, m.watch
	m.sd, m.watch = nil, nil
	m.mu.Unlock()
	m.changed()
	if w != nil {
		_ = w.Close()
	}
	if sd != nil {
		_ = sd.Close()
	}
}

// systemd returns the current connection, or ErrUnavailable while reconnecting.
func (m *Manager) systemd() (Systemd, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.sd == nil {
		return nil, errorf(ErrUnavailable, "the connection to the systemd %s manager was lost; the daemon is reconnecting, try again shortly", m.cfg.Mode)
	}
	return m.sd, nil
}

// snapshot returns the current unit view (empty while reconnecting).
func (m *Manager) snapshot() map[string]units.Status {
	m.mu.RLock()
	w := m.watch
	m.mu.RUnlock()
	if w == nil {
		return map[string]units.Status{}
	}
	return w.Snapshot()
}

// loop runs the health tick and reconnects when the bus goes away.
func (m *Manager) loop(ctx context.Context) {
	t := time.NewTicker(m.cfg.Tick)
	defer t.Stop()
	// due fires when the next backoff start is due (see supervise).
	due := time.NewTimer(time.Hour)
	defer due.Stop()
	arm := func(next time.Time) {
		due.Stop()
		if !next.IsZero() {
			due.Reset(max(time.Until(next), 0))
		}
	}
	arm(m.supervise(ctx))
	for {
		m.mu.RLock()
		w := m.watch
		m.mu.RUnlock()
		var lost, changed <-chan struct{}
		if w != nil {
			lost, changed = w.Done(), w.Changed()
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
			m.changed()
			m.noteExits(w.Snapshot())
		case <-lost:
			m.log.Warn("lost the connection to systemd; reconnecting")
			m.disconnect()
			m.reconnect(ctx)
		case <-t.C:
			m.tick(ctx)
		case <-due.C:
		case <-m.wake:
		}
		m.observeUnits()
		arm(m.supervise(ctx))
	}
}

// noteExits persists the last exit of units that are restarting or failed,
// before the next start clears it in systemd (one write, only when an exit
// changed); given-up runtimes are left alone.
func (m *Manager) noteExits(snap map[string]units.Status) {
	changed := map[string]string{}
	m.mu.RLock()
	for name, st := range snap {
		if le := st.LastExit(); le != "" {
			// A given-up runtime keeps the exit of its last crash, not the
			// SIGTERM of the stop that gave up on it.
			if e, ok := m.reg.get(name); ok && e.Managed && e.LastExit != le && (e.Backoff == nil || !e.Backoff.GaveUp) {
				changed[name] = le
			}
		}
	}
	m.mu.RUnlock()
	if len(changed) == 0 {
		return
	}
	if err := m.update(func(r *Registry) error {
		for name, le := range changed {
			if e, ok := r.edit(name); ok {
				e.LastExit = le
			}
		}
		return nil
	}); err != nil {
		m.log.Error("persist last exit", "err", err)
	}
}

// reconnect dials until it succeeds or ctx ends, then reconciles, which
// adopts the units that survived and starts those that vanished with the
// manager.
func (m *Manager) reconnect(ctx context.Context) {
	backoff := 200 * time.Millisecond
	for {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := m.connect(dctx)
		cancel()
		if err == nil {
			m.log.Info("reconnected to systemd; resyncing")
			rctx, cancel := context.WithTimeout(ctx, reconcileBudget)
			m.reconcile(rctx)
			cancel()
			return
		}
		m.log.Debug("reconnect", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// update applies fn to a copy of the registry, persists the change (one
// journal record, fsynced), and only then makes the copy current. When fn or
// the write fails nothing changes. Changes are serialized by m.wmu; m.mu is
// held while fn runs and while the copy is published, not during the write,
// so readers (ls, show, the health tick, attach) never wait for the disk.
func (m *Manager) update(fn func(r *Registry) error) error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.mu.Lock()
	next := m.reg.begin() // only update replaces m.reg, and m.wmu is held
	err := fn(next)
	m.mu.Unlock()
	if err != nil {
		return err
	}
	compact, err := m.store.Append(next)
	var unsure *unsureError
	if errors.As(err, &unsure) {
		return fmt.Errorf("could not save the registry; the change was not made now: %w", err)
	}
	if err != nil {
		return fmt.Errorf("could not save the registry, so nothing was changed: %w", err)
	}
	next.commit()
	m.mu.Lock()
	m.reg = next
	for name := range next.dirty {
		if !next.has(name) {
			delete(m.obs, name)
		}
	}
	m.mu.Unlock()
	m.changed()
	if compact {
		m.store.Compact(next, func(err error) {
			if err != nil {
				m.log.Error("fold the registry journal into a new snapshot; the journal keeps every change, tried again later", "err", err)
			}
		})
	}
	return nil
}

// changes returns a channel that is closed at the next change of what the
// runtimes' views are made of: a registry change (update: an add, an
// attach, a stop, a backoff step …), a change of the unit view (the watch's
// Changed, relayed by the loop), the health tick's probes and counters, a
// connect or disconnect. A waiter takes the channel before it reads the
// state it waits on, so that no change after the read is missed; it reads
// again when the channel is closed. Time alone changes some statuses
// (settleTime, the attach timeout): a waiter arms a timer for those.
func (m *Manager) changes() <-chan struct{} {
	m.chMu.Lock()
	defer m.chMu.Unlock()
	if m.chg == nil {
		m.chg = make(chan struct{})
	}
	return m.chg
}

// changed wakes every waiter of changes (a broadcast: the channel is closed
// and replaced by a new one).
func (m *Manager) changed() {
	m.chMu.Lock()
	defer m.chMu.Unlock()
	if m.chg != nil {
		close(m.chg)
		m.chg = nil // made at the next changes call
	}
}

// registry returns the current registry. A published registry is never
// changed (update replaces it with a changed copy), so the caller may read
// it without m.mu, for as long as it likes; it may not change it.
func (m *Manager) registry() *Registry {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.reg
}

// entry returns a copy of the named entry.
func (m *Manager) entry(name string) (*Entry, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e, ok := m.reg.get(name)
	if !ok {
		return nil, false
	}
	return e.clone(), true
}

// obsOf returns the observed record for name, creating it; m.mu must be held.
func (m *Manager) obsOf(name string) *observed {
	o := m.obs[name]
	if o == nil {
		o = &observed{}
		m.obs[name] = o
	}
	return o
}

// notify sends state (e.g. "READY=1") to systemd when it runs the daemon
// as a Type=notify service (go-systemd's sd_notify); otherwise it does
// nothing. A failed notification is not an error of the daemon's: systemd
// then says the start timed out.
func notify(state string) {
	_, _ = daemon.SdNotify(false, state)
}

// keyedMutex serializes operations per runtime name.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	mu   sync.Mutex
	refs int
}

// lock locks every name (sorted, so that two multi-name operations cannot
// deadlock) and returns the unlock function.
func (k *keyedMutex) lock(names ...string) func() {
	sorted := sortedUnique(names)
	held := make([]*keyedLock, 0, len(sorted))
	for _, n := range sorted {
		k.mu.Lock()
		if k.locks == nil {
			k.locks = map[string]*keyedLock{}
		}
		l := k.locks[n]
		if l == nil {
			l = &keyedLock{}
			k.locks[n] = l
		}
		l.refs++
		k.mu.Unlock()
		l.mu.Lock()
		held = append(held, l)
	}
	return func() {
		for i, l := range held {
			l.mu.Unlock()
			k.mu.Lock()
			l.refs--
			if l.refs == 0 {
				delete(k.locks, sorted[i])
			}
			k.mu.Unlock()
		}
	}
}

// tryLock locks name only when no operation holds or waits for it, and
// returns the unlock function and true; else nil and false.
func (k *keyedMutex) tryLock(name string) (func(), bool) {
	k.mu.Lock()
	if k.locks[name] != nil {
		k.mu.Unlock()
		return nil, false
	}
	k.mu.Unlock()
	// A lock taken between the check and here only makes this one wait.
	return k.lock(name), true
}

// busy reports whether an operation holds or waits for name's lock.
func (k *keyedMutex) busy(name string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.locks[name] != nil
}

// sortedUnique returns the sorted distinct strings of in.
func sortedUnique(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}
